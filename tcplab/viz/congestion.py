"""The congestion figure: cwnd and ssthresh per flow above, smoothed RTT and the bottleneck queue
below, on one time axis — slow start, the sawtooth or the cubic curve, and bufferbloat in one look.

>>> from tcplab.experiments import congestion
>>> fig = congestion_figure(congestion(rate_mbit=10, rtt_ms=20, buffer_packets=20, duration=1, mode="sim"))
>>> sorted({t.name for t in fig.data})
['bottleneck queue (packets)', 'cwnd flow 0', 'srtt flow 0 (ms)', 'ssthresh flow 0']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcplab.viz.common import LIMIT_COLOR, style, titled

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from tcplab.experiments.result import Result

__all__ = ["congestion_figure"]

_FLOW_COLORS = ("#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e", "#57606a", "#fb8500")


def _round_step(span: float) -> int:
    """The smallest 1-2-5 step at or above ``span`` (a round tick spacing).

    >>> _round_step(50), _round_step(3.2), _round_step(0.3), _round_step(230)
    (50, 5, 1, 500)
    """
    step = 1
    for _ in range(20):                 # 1e20 packets: far past any buffer
        for m in (1, 2, 5):
            if step * m >= span:
                return step * m
        step *= 10
    return step


def congestion_figure(result: Result) -> go.Figure:
    """Two panels sharing the time axis: cwnd (solid) and ssthresh (dotted) per flow in packets;
    srtt per flow in ms and the bottleneck's queue in packets (right axis)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        specs=[[{}], [{"secondary_y": True}]])
    tl = result.timeline
    for flow in sorted(tl["flow"].unique()) if len(tl) else []:
        rows = tl[tl["flow"] == flow]
        color = _FLOW_COLORS[int(flow) % len(_FLOW_COLORS)]
        fig.add_scatter(x=rows["t"], y=rows["cwnd"], mode="lines", name=f"cwnd flow {flow}",
                        line={"color": color}, row=1, col=1)
        fig.add_scatter(x=rows["t"], y=rows["ssthresh"], mode="lines", name=f"ssthresh flow {flow}",
                        line={"color": color, "dash": "dot", "shape": "hv"}, row=1, col=1)
        fig.add_scatter(x=rows["t"], y=rows["srtt_ms"], mode="lines", name=f"srtt flow {flow} (ms)",
                        line={"color": color, "width": 1}, row=2, col=1)
    q = result.tables.get("queue")
    if q is not None and len(q):
        fig.add_scatter(x=q["t"], y=q["queue_packets"], mode="lines", name="bottleneck queue (packets)",
                        line={"color": LIMIT_COLOR, "width": 1, "shape": "hv"}, opacity=0.6,
                        row=2, col=1, secondary_y=True)
    p = result.params
    fig.update_yaxes(title_text="packets", row=1, col=1)
    fig.update_yaxes(title_text="srtt (ms)", row=2, col=1)
    # the queue's own scale, 0 to the buffer's limit, with its own round ticks (not the srtt grid's)
    top = max(int(p.get("buffer_packets") or 1), int(q["queue_packets"].max()) if q is not None and len(q) else 1)
    fig.update_yaxes(title_text="queue (packets)", row=2, col=1, secondary_y=True, range=[0, top * 1.05],
                     showgrid=False, tickmode="linear", tick0=0, dtick=_round_step(top / 5))
    fig.update_xaxes(title_text="time (s)", row=2, col=1)
    titled(fig, f"{p.get('algorithm')} through {p.get('rate_mbit')} Mbit/s, {p.get('rtt_ms')} ms, "
                f"{p.get('buffer_packets')}-packet buffer", result)
    fig.update_layout(height=560)
    return style(fig)
