"""SYN retransmission figures (docs/kernel-facts.md case 3, ``net/ipv4/tcp_timer.c``).

>>> from tcplab.experiments.result import Result
>>> r = Result("syn_retries", "sim", "t", {"retries": 1, "linear_timeouts": 4},
...            summary={"retransmit_times": [1.0, 2.0], "failed_after": 3.0, "syns_sent": 3})
>>> list(syn_timeline(r).data[0].x)
[0.0, 1.0, 2.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tcplab.model.retries import syn_schedule
from tcplab.viz.common import LIMIT_COLOR, REAL_COLOR, SIM_COLOR, STATE_COLORS, style, titled

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from tcplab.experiments.result import Result

__all__ = ["syn_timeline", "failure_curve", "send_times", "linear_timeouts_of"]


def send_times(result: Result) -> list[float]:
    """Every SYN's send time (the first at 0) from a syn_retries Result."""
    return [0.0, *[float(t) for t in result.summary.get("retransmit_times", [])]]


def linear_timeouts_of(result: Result) -> int:
    """tcp_syn_linear_timeouts in force for the run: the parameter, else the recorded sysctl, else 0
    where the kernel has none (before 6.5), else the profile's default."""
    v = result.params.get("linear_timeouts")
    if v is None:
        v = result.sysctls.get("net.ipv4.tcp_syn_linear_timeouts")
    if v is None and "net.ipv4.tcp_syn_linear_timeouts" in result.absent_sysctls:
        return 0
    if v is None:
        from tcplab.model.profiles import get_profile
        return get_profile(result.profile).syn_linear_timeouts
    return int(v)


def syn_timeline(result: Result) -> go.Figure:
    """One marker per SYN at its send time, the gaps (RTOs) labelled, and ETIMEDOUT.

    Trace 0: measured SYNs (x = send times); trace 1: the rules' prediction
    (``tcplab.model.retries.syn_schedule``); trace 2: the failure.
    """
    import plotly.graph_objects as go

    k = int(result.params.get("retries", 0))
    lin = linear_timeouts_of(result)
    xs = send_times(result)
    pred = syn_schedule(k, lin)
    fail = result.summary.get("failed_after")
    fig = go.Figure()
    labels = [f"#{i + 1}" for i in range(len(xs))]
    fig.add_trace(go.Scatter(x=xs, y=[1] * len(xs), mode="markers+text", text=labels, textposition="top center",
                             marker={"size": 16, "symbol": "triangle-right", "color": STATE_COLORS["SYN_SENT"]},
                             name=f"SYNs sent ({len(xs)})",
                             hovertemplate="SYN sent at %{x:.3f} s<extra></extra>"))
    fig.add_trace(go.Scatter(x=list(pred.send_times), y=[0] * len(pred.send_times), mode="markers",
                             marker={"size": 12, "symbol": "line-ns-open", "line": {"width": 3},
                                     "color": "#57606a"},
                             name=f"rules predict ({len(pred.send_times)} SYNs, fail at {pred.fail_after:g} s)",
                             hovertemplate="predicted %{x:.0f} s<extra></extra>"))
    fx = [fail] if fail is not None else []
    fig.add_trace(go.Scatter(x=fx, y=[1] * len(fx), mode="markers+text", text=["ETIMEDOUT"] * len(fx),
                             textposition="bottom center", name="connect() fails",
                             marker={"size": 16, "symbol": "x", "color": LIMIT_COLOR},
                             hovertemplate="connect() failed at %{x:.3f} s<extra></extra>"))
    for a, b in zip(xs, [*xs[1:], *fx], strict=False):
        fig.add_annotation(x=(a + b) / 2, y=0.62, text=f"{b - a:.1f}s", showarrow=False,
                           font={"size": 11, "color": "#57606a"})
    budget = (2 ** (k + 1)) - 1
    fig.add_vline(x=budget, line_dash="dot", line_color="#CC79A7",
                  annotation_text=f"budget (2^{k + 1}−1) = {budget} s", annotation_position="top left",
                  annotation_font_color="#CC79A7")
    fig.update_yaxes(tickvals=[0, 1], ticktext=["predicted", "measured"], range=[-0.6, 1.6])
    fig.update_xaxes(title_text="seconds after connect() (gaps = RTO)", range=[-0.6, max([*xs, *fx, budget]) * 1.06])
    titled(fig, f"SYN retransmissions: TCP_SYNCNT={k}, tcp_syn_linear_timeouts={lin}", result,
           f"{len(xs)} SYNs, connect() failed after {fail} s" if fail is not None else "")
    style(fig, height=380)
    fig.update_layout(legend={"y": -0.3}, margin={"b": 120})
    return fig


def failure_curve(results: Sequence[Result] = (), *, max_retries: int = 8, linear_timeouts: int = 4) -> go.Figure:
    """Time until connect() fails vs TCP_SYNCNT: measured/simulated points, the classic
    ``2^(k+1) − 1`` and the 6.x rule (k + linear_timeouts retransmits, or the budget, whichever
    the timer reaches first). Trace 0: ``2^(k+1)-1``; trace 1: the rule; trace 2: results."""
    import plotly.graph_objects as go

    ks = list(range(1, max_retries + 1))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=ks, y=[2 ** (k + 1) - 1 for k in ks], mode="lines+markers",
                             line={"dash": "dash", "color": "#CC79A7"}, name="2^(k+1) − 1 (the articles)"))
    fig.add_trace(go.Scatter(x=ks, y=[syn_schedule(k, linear_timeouts).fail_after for k in ks],
                             mode="lines+markers", line={"color": "#57606a"},
                             name=f"rule with tcp_syn_linear_timeouts={linear_timeouts}"))
    pts = sorted((int(r.params["retries"]), r.summary.get("failed_after"), r.mode) for r in results)
    fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers",
                             marker={"size": 14, "color": [(REAL_COLOR if p[2] == "real" else SIM_COLOR) for p in pts],
                                     "symbol": [("circle" if p[2] == "real" else "diamond") for p in pts]},
                             text=[("REAL" if p[2] == "real" else "SIMULATED") for p in pts],
                             hovertemplate="k=%{x}: failed after %{y:.2f} s (%{text})<extra></extra>",
                             name="runs (green circle REAL, orange diamond SIMULATED)"))
    fig.update_xaxes(title_text="TCP_SYNCNT / tcp_syn_retries (k)", dtick=1)
    fig.update_yaxes(title_text="connect() fails after (s), log scale", type="log",
                     tickvals=[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000], ticktext=[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000])
    modes = {r.mode for r in results}
    tag = ("REAL" if modes == {"real"} else "SIMULATED" if modes == {"sim"} else
           "REAL + SIMULATED" if modes else "rules only")
    titled(fig, "Time to ETIMEDOUT vs SYN retries", tag)
    return style(fig, height=420)
