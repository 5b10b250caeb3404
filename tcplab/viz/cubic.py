"""CUBIC's curve measured: the real (or simulated) cwnd of one flow with, for each epoch after a
loss, the cubic fitted to it (:func:`tcplab.model.cubic_fit.cubic_epochs`), its plateau Wmax and
the kernel's K (``bictcp_update()``) marked.

>>> from tcplab.experiments import congestion
>>> r = congestion(rate_mbit=10, rtt_ms=200, buffer_packets=30, duration=12, mode="sim")
>>> fig = cubic_figure(r)
>>> names = [t.name for t in fig.data]
>>> names[0], any(n.startswith("fit: epoch 1") for n in names)
('cwnd flow 0', True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tcplab.model.cubic_fit import CubicEpoch, cubic_epochs
from tcplab.viz.common import LIMIT_COLOR, style, titled

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from tcplab.experiments.result import Result

__all__ = ["cubic_figure", "cubic_epoch_table", "flow_rows"]

_CWND = "#0072B2"
_FIT = "#D55E00"


def flow_rows(result: Result, flow: int = 0) -> list[dict[str, Any]]:
    """One flow's samples of a congestion Result as plain dicts (NaN ssthresh -> None)."""
    tl = result.timeline
    rows = tl[tl["flow"] == flow].to_dict("records") if len(tl) else []
    for r in rows:
        s = r.get("ssthresh")
        r["ssthresh"] = None if s is None or s != s else int(s)
    return rows


def cubic_epoch_table(result: Result, flow: int = 0) -> Any:
    """One row per epoch after a loss: the kernel's Wmax and K beside the fitted ones, the fitted C,
    the measured reduction (ssthresh / cwnd before the loss) and the samples either side of K."""
    import pandas as pd

    rows = []
    for i, e in enumerate(cubic_epochs(flow_rows(result, flow)), 1):
        rows.append({"epoch": i, "starts_s": round(e.t_start, 2), "ssthresh": e.ssthresh,
                     "cwnd_before_loss": e.loss_cwnd,
                     "reduction": None if e.beta_measured is None else round(e.beta_measured, 3),
                     "Wmax_kernel": round(e.wmax_kernel, 1), "Wmax_fit": round(e.fit.wmax, 1),
                     "K_kernel_s": round(e.k_kernel, 2), "K_fit_s": round(e.fit.k, 2), "C_fit": round(e.fit.c, 3),
                     "rms_packets": round(e.fit.rms, 2), "concave_samples": e.concave_samples,
                     "convex_samples": e.convex_samples})
    return pd.DataFrame(rows)


def cubic_figure(result: Result, flow: int = 0) -> go.Figure:
    """cwnd over time with each epoch's fitted cubic (dashed), its Wmax (dotted) and K (a marker)."""
    import plotly.graph_objects as go

    rows = flow_rows(result, flow)
    fig = go.Figure()
    fig.add_scatter(x=[r["t"] for r in rows], y=[r["cwnd"] for r in rows], mode="lines",
                    name=f"cwnd flow {flow}", line={"color": _CWND})
    for i, e in enumerate(cubic_epochs(rows), 1):
        _epoch(fig, i, e)
    p = result.params
    fig.update_xaxes(title_text="time (s)")
    fig.update_yaxes(title_text="packets")
    titled(fig, f"CUBIC's curve fitted: {p.get('rate_mbit')} Mbit/s, {p.get('rtt_ms')} ms, "
                f"{p.get('buffer_packets')}-packet buffer", result)
    fig.update_layout(height=460)
    return style(fig)


def _epoch(fig: go.Figure, i: int, e: CubicEpoch) -> None:
    n = 80
    ts = [e.t_start + (e.t_end - e.t_start) * j / n for j in range(n + 1)]
    fig.add_scatter(x=ts, y=[e.fit.at(t - e.t_start) for t in ts], mode="lines",
                    name=f"fit: epoch {i}, C={e.fit.c:.2f}, K={e.fit.k:.2f} s (kernel {e.k_kernel:.2f} s)",
                    line={"color": _FIT, "dash": "dash"})
    fig.add_scatter(x=[e.t_start, e.t_end], y=[e.wmax_kernel] * 2, mode="lines",
                    name=f"Wmax epoch {i}: kernel {e.wmax_kernel:.0f}, fit {e.fit.wmax:.0f}",
                    line={"color": LIMIT_COLOR, "dash": "dot", "width": 1})
    if e.t_start + e.k_kernel <= e.t_end + 1.0:
        fig.add_scatter(x=[e.t_start + e.k_kernel], y=[e.wmax_kernel], mode="markers",
                        name=f"K epoch {i} (kernel): start + {e.k_kernel:.2f} s",
                        marker={"color": LIMIT_COLOR, "symbol": "x", "size": 10})
