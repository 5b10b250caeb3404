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

import html
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from tcplab.experiments.result import Result

__all__ = ["mode_tag", "titled", "style", "alt_text", "described", "caption_html", "text_on",
           "STATE_COLORS", "STATE_ORDER", "REAL_COLOR", "SIM_COLOR", "LIMIT_COLOR",
           "OKABE_ITO", "COLORWAY", "DASHES", "SYMBOLS"]

#: Okabe & Ito's eight colours (https://jfly.uni-koeln.de/color/), told apart with every common
#: colour-vision deficiency; every trace of a course figure takes its colour from here or a grey
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7"}
#: the order plotly gives traces without a colour of their own (the course template's colorway)
COLORWAY = tuple(OKABE_ITO[c] for c in ("blue", "orange", "bluish_green", "vermillion", "reddish_purple",
                                         "sky_blue", "black", "yellow"))
#: where traces compare things, they differ by dash (lines) or symbol (markers) too, in this order
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
SYMBOLS = ("circle", "diamond", "square", "triangle-up", "x", "star", "cross", "triangle-down")

REAL_COLOR = OKABE_ITO["bluish_green"]
SIM_COLOR = OKABE_ITO["orange"]
LIMIT_COLOR = OKABE_ITO["vermillion"]
#: the mode tag in a title is text: darker shades (contrast over 4.5:1 on white); its words say the mode
_TAG_TEXT = {"real": "#1a7f37", "sim": "#9a6700", "busy": "#cf222e", "mixed": "#57606a"}

#: the 11 states in Linux's numbering (include/net/tcp_states.h), for tables and bar charts
STATE_ORDER = ("ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE",
               "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING")

STATE_COLORS = {
    "ESTABLISHED": "#009E73", "SYN_SENT": "#E69F00", "SYN_RECV": "#CC79A7", "FIN_WAIT1": "#0072B2",
    "FIN_WAIT2": "#56B4E9", "TIME_WAIT": "#6e7781", "CLOSE": "#24292f", "CLOSE_WAIT": "#D55E00",
    "LAST_ACK": "#F0E442", "LISTEN": "#0072B2", "CLOSING": "#E69F00",
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
    """Set the title to ``text``; the mode tag (colored) and ``subtitle`` go on a second line.
    With a Result, its :attr:`~tcplab.experiments.result.Result.alt_text` becomes the figure's text
    alternative (:func:`described`)."""
    from tcplab.experiments.result import Result as _Result

    described(fig, result.alt_text if isinstance(result, _Result) else None)
    sub = f" <span style='color:#57606a'>· {subtitle}</span>" if subtitle else ""
    if result is None:
        second = f"<br><span style='font-size:13px'>{sub}</span>" if subtitle else ""
        fig.update_layout(title={"text": text + second, "x": 0.01, "xanchor": "left"})
        return fig
    tag = mode_tag(result)
    color = _TAG_TEXT["mixed" if "REAL" in tag and "SIMULATED" in tag else   # a mix of both
                      "busy" if "host busy" in tag else "real" if tag.startswith("REAL") else "sim"]
    fig.update_layout(title={"text": f"{text}<br><span style='font-size:13px'><b style='color:{color}'>{tag}</b>"
                                     f"{sub}</span>", "x": 0.01, "xanchor": "left"})
    return fig


def style(fig: go.Figure, *, height: int = 420, legend: bool = True, **layout: Any) -> go.Figure:
    """The course's common layout: white template, readable fonts, legend above the plot; the
    figure shows its text alternative under it when displayed (:func:`described`)."""
    described(fig)
    fig.update_layout(template="plotly_white", colorway=list(COLORWAY), height=height, font={"size": 13},
                      margin={"l": 60, "r": 30, "t": 110, "b": 110 if legend else 60}, showlegend=legend,
                      legend={"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0.0},
                      **layout)
    return fig


def text_on(fill: str) -> str:
    """Black or white, whichever reads better on ``fill`` (a ``#rrggbb``): the larger WCAG contrast.

    >>> text_on(OKABE_ITO["yellow"]), text_on(OKABE_ITO["blue"]), text_on("#24292f")
    ('#000000', '#ffffff', '#ffffff')
    """
    r, g, b = (int(fill[i:i + 2], 16) / 255 for i in (1, 3, 5))
    lum = sum(w * (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4)
              for w, c in zip((0.2126, 0.7152, 0.0722), (r, g, b), strict=True))
    return "#000000" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "#ffffff"


_PLAIN = re.compile(r"<[^>]+>")


def _plain(text: Any) -> str:
    """A plotly title without its HTML (``<br>``, ``<b>``, spans), spaced."""
    return " ".join(_PLAIN.sub(" ", html.unescape(str(text or ""))).split())


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _trace_text(trace: Any) -> str:
    name = trace.name or trace.type
    if trace.type == "heatmap" and trace.text is not None:     # a grid of labelled cells: each cell
        cells = [f"{y} / {x}: {_plain(t)}" for y, row in zip(trace.y or (), trace.text, strict=False)
                 for x, t in zip(trace.x or (), row, strict=False)]
        return "; ".join(cells)
    if trace.type == "bar":     # bars name their categories: say each one's value
        cats, vals = (trace.y, trace.x) if trace.orientation == "h" else (trace.x, trace.y)
        if cats is not None and vals is not None and 0 < len(cats) <= 12:
            return f"{name}: " + ", ".join(f"{c} {_num(v)}" for c, v in zip(cats, vals, strict=False))
    ys = [v for v in (getattr(trace, "y", None) or ()) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not ys:
        return str(name)
    lo, hi = min(ys), max(ys)
    span = f"{lo:.4g}" if lo == hi else f"{lo:.4g} to {hi:.4g}"
    return f"{name} ({len(ys)} points, {span})"


def alt_text(fig: go.Figure) -> str:
    """The text alternative of ``fig``: its Result's sentences when a Result made it
    (``layout.meta["description"]``, set by :func:`titled`), else words read off the figure
    itself: the title and each trace's name, points and range.

    >>> import plotly.graph_objects as go
    >>> fig = go.Figure(go.Scatter(x=[0, 1], y=[3, 5], name="recv_q"))
    >>> alt_text(titled(fig, "accept queue", "SIMULATED (linux-6.18)"))
    'accept queue SIMULATED (linux-6.18). recv_q (2 points, 3 to 5).'
    """
    meta = fig.layout.meta
    if isinstance(meta, dict) and meta.get("description"):
        return str(meta["description"])
    title = _plain(fig.layout.title.text) or "figure"
    traces = "; ".join(_trace_text(t) for t in fig.data[:8]) + (f"; and {len(fig.data) - 8} more" if len(fig.data) > 8 else "")
    return f"{title}. {traces}." if traces else f"{title}."


def caption_html(text: str) -> str:
    """The text alternative as a notebook shows it under a figure: a disclosure a screen reader
    announces ("Figure as text", a button) and a sighted learner opens on request.

    >>> caption_html("Backlog 5 admitted 6 of 20 clients. SIMULATED.")  # doctest: +ELLIPSIS
    '<details class="tcplab-alt"><summary>Figure as text</summary><p>Backlog 5 admitted 6 of 20 clients. SIMULATED.</p></details>'
    """
    return (f'<details class="tcplab-alt"><summary>Figure as text</summary>'
            f"<p>{html.escape(text)}</p></details>")


_DESCRIBED: dict[str, type] = {}


def _described_class() -> type:
    """go.Figure that shows its text alternative under it when a notebook displays it (plotly's
    SVG carries no accessible name: plotly.js sets aria-label only on its mode-bar buttons)."""
    if "cls" not in _DESCRIBED:
        import plotly.graph_objects as go

        class DescribedFigure(go.Figure):
            """A course figure: a plotly Figure that also displays its :func:`alt_text`."""

            def _ipython_display_(self) -> None:
                from IPython.display import HTML, display

                super()._ipython_display_()
                display(HTML(caption_html(alt_text(self))))

        # importable as tcplab.viz.common.DescribedFigure (module __getattr__): a figure pickles
        DescribedFigure.__qualname__ = "DescribedFigure"
        DescribedFigure.__module__ = __name__
        _DESCRIBED["cls"] = DescribedFigure
    return _DESCRIBED["cls"]


def __getattr__(name: str) -> Any:
    # DescribedFigure subclasses plotly's Figure: made on first use, so importing this module
    # does not import plotly
    if name == "DescribedFigure":
        return _described_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def described(fig: go.Figure, text: str | None = None) -> go.Figure:
    """Give ``fig`` its text alternative: ``text`` (a Result's :attr:`alt_text`) into
    ``layout.meta["description"]`` (kept by ``to_dict``/``to_json`` and by a panel's FigureWidget),
    and make a notebook show it under the figure. Without ``text`` the figure's own words are used
    (:func:`alt_text`). Returns ``fig``, still a ``go.Figure``.

    >>> import plotly.graph_objects as go
    >>> fig = described(go.Figure(), "Two SYNs sent. SIMULATED (linux-6.18).")
    >>> fig.layout.meta["description"], isinstance(fig, go.Figure)
    ('Two SYNs sent. SIMULATED (linux-6.18).', True)
    """
    import plotly.graph_objects as go

    if text:
        meta = fig.layout.meta
        fig.layout.meta = {**(meta if isinstance(meta, dict) else {}), "description": text}
    if type(fig) is go.Figure:
        # the same object, one display hook more: callers that hold ``fig`` keep it
        fig.__class__ = _described_class()
    return fig
