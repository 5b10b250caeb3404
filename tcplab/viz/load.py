"""A server under load (``load`` Result): accept-queue occupancy, drops, connect latency.

* :func:`dashboard`        three rows over time: accept queue (Recv-Q) against its limit,
                           ListenOverflows per interval, and every client's connect() time.
* :func:`connect_latency`  histogram + CDF of connect() times, with the SYN retransmission
                           steps (1 s, 2 s, 3 s … on 6.x: tcp_syn_linear_timeouts) marked.

Timeline columns read: ``t``, ``recv_q``, ``pending``, ``ListenOverflows`` (cumulative). Table ``clients``: ``started_s`` (s),
``connect_s`` (None if never connected),
``outcome``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tcplab.viz.diagnose import titled

if TYPE_CHECKING:
    from tcplab.experiments.result import Result

__all__ = ["queue_limit", "connect_times", "dashboard", "connect_latency", "RETRY_STEPS"]

#: where connect() times cluster when SYNs are dropped: the 1st, 2nd, 3rd retransmission
RETRY_STEPS = (1.0, 2.0, 3.0)


def queue_limit(result: Result) -> int:
    """The accept queue's limit as ss shows it (Send-Q): ``min(backlog, somaxconn)``."""
    backlog = int(result.params.get("backlog", 0))
    som = result.params.get("somaxconn")
    if som is None:
        som = result.sysctls.get("net.core.somaxconn")
    if som is None:
        from tcplab.model.profiles import get_profile
        som = get_profile(result.profile or result.kernel).somaxconn
    return min(backlog, int(som))


def connect_times(result: Result) -> tuple[list[float], list[float], int]:
    """``(started_s, connect_s, not_connected)`` of the clients that connected."""
    df = result.tables.get("clients")
    if df is None or not len(df) or "connect_s" not in df.columns:
        return [], [], 0
    ok = df[df["connect_s"].notna()]
    return ok["started_s"].astype(float).tolist(), ok["connect_s"].astype(float).tolist(), int(len(df) - len(ok))


def dashboard(result: Result) -> go.Figure:
    """Queue, drops and connect latency on one time axis (rows share x)."""
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07,
                        subplot_titles=("accept queue (ss Recv-Q of the listener)",
                                        "SYNs dropped (ListenOverflows per interval) and clients waiting",
                                        "connect() time of each client, by when it started"))
    tl = result.timeline
    limit = queue_limit(result)
    if tl is not None and len(tl) and "recv_q" in tl.columns:
        t = tl["t"].astype(float).tolist()
        fig.add_trace(go.Scatter(x=t, y=tl["recv_q"].tolist(), name="Recv-Q (accept queue)", mode="lines",
                                 line={"color": "#0072B2", "shape": "hv"}), row=1, col=1)
        if "ListenOverflows" in tl.columns:
            lo = [int(v) for v in tl["ListenOverflows"].fillna(0).tolist()]
            per = [b - a for a, b in zip([0, *lo[:-1]], lo, strict=True)]
            fig.add_trace(go.Bar(x=t, y=per, name="SYNs dropped (ListenOverflows in each 50 ms)",
                                 marker_color="#D55E00", opacity=0.7), row=2, col=1)
        if "pending" in tl.columns:
            fig.add_trace(go.Scatter(x=t, y=tl["pending"].tolist(), name="clients waiting (SYN_SENT)",
                                     mode="lines", line={"color": "#E69F00", "shape": "hv"}), row=2, col=1)
    fig.add_hline(y=limit + 1, line_dash="dash", line_color="#D55E00", row=1, col=1,
                  annotation_text=f"full: min(backlog, somaxconn) + 1 = {limit + 1}",
                  annotation_position="top left")
    starts, times, never = connect_times(result)
    fig.add_trace(go.Scattergl(x=starts, y=times, mode="markers", name="connect() time",
                               marker={"size": 4, "color": "#009E73", "opacity": 0.6}), row=3, col=1)
    s = result.summary
    p99 = s.get("p99_connect_s")
    if p99 is not None:
        fig.add_hline(y=p99, line_dash="dot", line_color="#CC79A7", row=3, col=1,
                      annotation_text=f"p99 {p99:.3f} s", annotation_position="top left")
    fig.update_yaxes(title_text="connections", row=1, col=1)
    fig.update_yaxes(title_text="clients", row=2, col=1)
    fig.update_yaxes(title_text="seconds", row=3, col=1)
    fig.update_xaxes(title_text="seconds since the load started", row=3, col=1)
    fig.update_layout(height=720, legend={"orientation": "h", "y": -0.08}, bargap=0)
    p = result.params
    return titled(fig, f"server under load: {p.get('rate')} connects/s, accept {p.get('accept_rate')}/s, "
                       f"backlog {p.get('backlog')} — {s.get('established')}/{s.get('attempts')} connected",
                  result)


def connect_latency(result: Result) -> go.Figure:
    """Histogram (left) and CDF (right) of connect() times. A dropped SYN costs a whole
    retransmission timeout, so times jump to ~1 s, ~2 s, ~3 s instead of spreading."""
    _, times, never = connect_times(result)
    times = sorted(times)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("how many clients waited how long",
                                                        "share of clients connected within x s (CDF)"))
    fig.add_trace(go.Histogram(x=times, name="clients", marker_color="#0072B2", nbinsx=60), row=1, col=1)
    n = len(times) + never
    cdf = [(i + 1) / n for i in range(len(times))] if n else []
    fig.add_trace(go.Scatter(x=times, y=cdf, mode="lines", name="CDF", line={"shape": "hv", "color": "#009E73"}),
                  row=1, col=2)
    top = max(times) if times else 1.0
    for step in RETRY_STEPS:
        if step <= top * 1.05:
            for col in (1, 2):
                fig.add_vline(x=step, line_dash="dot", line_color="#999", row=1, col=col)
    p99 = result.summary.get("p99_connect_s")
    if p99 is not None:
        fig.add_vline(x=p99, line_color="#CC79A7", row=1, col=2, annotation_text=f"p99 {p99:.3f} s",
                      annotation_position="bottom right")
    fig.update_xaxes(title_text="connect() time (s) — dotted: 1st/2nd/3rd SYN retransmission", row=1, col=1)
    fig.update_xaxes(title_text="connect() time (s)", row=1, col=2)
    fig.update_yaxes(title_text="clients", row=1, col=1)
    fig.update_yaxes(title_text="share of all clients", range=[0, 1.02], row=1, col=2)
    fig.update_layout(height=380, showlegend=False, bargap=0.05)
    extra = f", {never} never connected" if never else ""
    return titled(fig, f"connect latency: {len(times)} clients{extra}", result)
