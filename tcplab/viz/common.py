"""Shared look of every course figure: the mode in the title, colors per TCP state, layout.

Every figure built from a :class:`~tcplab.experiments.Result` says in its title whether a
real kernel or the simulator produced it:

>>> from tcplab.experiments.result import Result
>>> mode_tag(Result("accept_queue", "sim", "asked", {}, profile="linux-6.18"))
'SIMULATED (linux-6.18)'
>>> mode_tag(Result("accept_queue", "real", "netns", {}, kernel="6.18.4"))
'REAL (Linux 6.18.4)'

and a real run that lost fidelity (the host was too busy to measure the kernel alone) says that too:

>>> from tcplab.model.outcome import Fidelity
>>> mode_tag(Result("congestion", "real", "netns", {}, kernel="6.18.4", fidelity=Fidelity(False, "host busy: ...")))
'REAL, host busy (Linux 6.18.4)'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from tcplab.experiments.result import Result

__all__ = ["mode_tag", "titled", "style", "STATE_COLORS", "STATE_ORDER", "REAL_COLOR", "SIM_COLOR",
           "LIMIT_COLOR"]

REAL_COLOR = "#1a7f37"
SIM_COLOR = "#9a6700"
LIMIT_COLOR = "#cf222e"

#: the 11 states in Linux's numbering (include/net/tcp_states.h), for tables and bar charts
STATE_ORDER = ("ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE",
               "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING")

STATE_COLORS = {
    "ESTABLISHED": "#2da44e", "SYN_SENT": "#fb8500", "SYN_RECV": "#8250df", "FIN_WAIT1": "#0969da",
    "FIN_WAIT2": "#54aeff", "TIME_WAIT": "#6e7781", "CLOSE": "#24292f", "CLOSE_WAIT": "#cf222e",
    "LAST_ACK": "#ff8182", "LISTEN": "#1f6feb", "CLOSING": "#bf8700",
}


def mode_tag(result: Result | str) -> str:
    """``'REAL (Linux <release>)'``, ``'REAL, host busy (Linux <release>)'`` or
    ``'SIMULATED (<profile>)'`` (``Result.badge`` and where); a plain string passes through."""
    if isinstance(result, str):
        return result
    if result.mode == "real":
        return f"{result.badge} (Linux {result.kernel})" if result.kernel else result.badge
    prof = result.profile
    return f"SIMULATED ({prof})" if prof else "SIMULATED"


def titled(fig: go.Figure, text: str, result: Result | str | None, subtitle: str = "") -> go.Figure:
    """Set the title to ``text``; the mode tag (colored) and ``subtitle`` go on a second line."""
    sub = f" <span style='color:#57606a'>· {subtitle}</span>" if subtitle else ""
    if result is None:
        second = f"<br><span style='font-size:13px'>{sub}</span>" if subtitle else ""
        fig.update_layout(title={"text": text + second, "x": 0.01, "xanchor": "left"})
        return fig
    tag = mode_tag(result)
    color = ("#57606a" if "REAL" in tag and "SIMULATED" in tag else   # a mix of both
             LIMIT_COLOR if "host busy" in tag else REAL_COLOR if tag.startswith("REAL") else SIM_COLOR)
    fig.update_layout(title={"text": f"{text}<br><span style='font-size:13px'><b style='color:{color}'>{tag}</b>"
                                     f"{sub}</span>", "x": 0.01, "xanchor": "left"})
    return fig


def style(fig: go.Figure, *, height: int = 420, legend: bool = True, **layout: Any) -> go.Figure:
    """The course's common layout: white template, readable fonts, legend above the plot."""
    fig.update_layout(template="plotly_white", height=height, font={"size": 13},
                      margin={"l": 60, "r": 30, "t": 110, "b": 110 if legend else 60}, showlegend=legend,
                      legend={"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0.0},
                      **layout)
    return fig
