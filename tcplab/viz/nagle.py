"""The Nagle / delayed-ACK figure (notebook 13): each request's latency on a log scale, so a
20 µs request with TCP_NODELAY and a 44 ms stall behind a delayed ACK are both visible, with the
delayed-ACK timer's floor and ceiling (TCP_DELACK_MIN, TCP_DELACK_MAX) marked.

>>> from tcplab.experiments import nagle
>>> fig = nagle_figure(nagle(requests=5, mode="sim"))
>>> [t.name for t in fig.data], fig.layout.yaxis.type
(['answered at once', 'waited for a delayed ACK'], 'log')
>>> fmt_seconds(6.8e-05), fmt_seconds(0.044), fmt_seconds(1.5)
('68 µs', '44.0 ms', '1.50 s')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcplab.viz.common import LIMIT_COLOR, style, titled

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from tcplab.experiments.result import Result

__all__ = ["nagle_figure", "nagle_table", "fmt_seconds"]

#: the log axis's fixed range in ms: 10 µs .. 500 ms, the same for every run so heights compare
_RANGE_MS = (0.01, 500.0)


def fmt_seconds(s: float | None) -> str:
    """A duration in the unit that reads best (µs, ms or s), never ``6.8e-05``."""
    if s is None:
        return "–"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def nagle_figure(result: Result) -> go.Figure:
    """One bar per request, latency in ms on a fixed log axis; stalled requests red; the
    delayed-ACK timer's 40 ms floor and 200 ms ceiling as lines."""
    import plotly.graph_objects as go

    from tcplab.model.profiles import get_profile

    p, s = result.params, result.summary
    df = result.tables.get("requests")
    fig = go.Figure()
    # the stalled bars are hatched too: a learner who cannot tell the colours apart still can
    for stalled, name, color, hatch in ((False, "answered at once", "#009E73", ""),
                                        (True, "waited for a delayed ACK", LIMIT_COLOR, "/")):
        rows = df[df["stalled"] == stalled] if df is not None and len(df) else None
        # a bar must start below the axis' floor to show on a log axis: base at the range's bottom
        fig.add_bar(x=list(rows["n"]) if rows is not None else [],
                    # under 10 µs (the simulator's 0: it gives loopback no cost) still shows a stub
                    y=[max(v, _RANGE_MS[0] * 1.5) - _RANGE_MS[0] for v in rows["latency_ms"]] if rows is not None else [],
                    base=_RANGE_MS[0], name=name, marker_color=color, marker_pattern_shape=hatch,
                    customdata=[fmt_seconds(v / 1000) for v in rows["latency_ms"]] if rows is not None else [],
                    hovertemplate="request %{x}: %{customdata}<extra></extra>")
    prof = get_profile(result.profile if result.mode == "sim" else None)
    for at, label in ((prof.delack_min, "TCP_DELACK_MIN"), (prof.delack_max, "TCP_DELACK_MAX")):
        fig.add_hline(y=at * 1000, line_dash="dot", line_color="#57606a")
        # an annotation's y on a log axis is the exponent (add_hline's own label lands off the chart)
        fig.add_annotation(xref="paper", x=1, xanchor="right", yanchor="bottom", y=_log10(at * 1000),
                           text=f"{label} {at * 1000:.0f} ms", showarrow=False, font={"color": "#57606a"})
    fig.update_yaxes(type="log", range=[_log10(_RANGE_MS[0]), _log10(_RANGE_MS[1])],
                     title_text="latency (ms, log scale)", tickvals=[0.01, 0.1, 1, 10, 40, 100, 200],
                     ticktext=["0.01", "0.1", "1", "10", "40", "100", "200"])
    n = int(p.get("requests") or 0)
    fig.update_xaxes(title_text="request", tickmode="linear", tick0=1, dtick=1 if n <= 25 else max(1, n // 20))
    opts = ", ".join(f"{k}" for k in ("nodelay", "quickack") if p.get(k)) or "defaults"
    sub = (f"{s.get('stalled_requests')} of {n} requests stalled; median {fmt_seconds(s.get('median_latency_s'))}, "
           f"first {fmt_seconds(s.get('first_latency_s'))}")
    titled(fig, f"{n} requests of {p.get('request_writes')} × {p.get('write_size')} B writes ({opts})", result, sub)
    style(fig, height=420, barmode="overlay", bargap=0.15)
    fig.update_layout(margin={"t": 120})
    return fig


def _log10(v: float) -> float:
    import math
    return math.log10(v)


def nagle_table(result: Result) -> pd.DataFrame | None:
    """The requests with their latency in a readable unit (the panel's table)."""
    df = result.tables.get("requests")
    if df is None:
        return None
    out = df.copy()
    out["latency"] = [fmt_seconds(v / 1000) for v in df["latency_ms"]]
    return out[["n", "latency", "segments", "stalled"]].rename(columns={"n": "request"})
