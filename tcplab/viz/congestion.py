"""The congestion figure: cwnd and ssthresh per flow above, smoothed RTT and the bottleneck queue
below, on one time axis — slow start, the sawtooth or the cubic curve, and bufferbloat in one look.

>>> from tcplab.experiments import congestion
>>> fig = congestion_figure(congestion(rate_mbit=10, rtt_ms=20, buffer_packets=20, duration=1, mode="sim"))
>>> sorted({t.name for t in fig.data})
['bottleneck queue (packets)', 'cwnd, flow 0', 'srtt (ms)', 'ssthresh']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcplab.viz.common import LIMIT_COLOR, style, titled

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from tcplab.experiments.result import Result

__all__ = ["congestion_figure", "congestion_flows"]

_FLOW_COLORS = ("#0072B2", "#CC79A7", "#009E73", "#E69F00", "#CC79A7", "#D55E00", "#57606a", "#E69F00")


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
    """Two panels sharing the time axis. Above: cwnd per flow in packets (ssthresh dotted for a
    single flow; with several flows each is a thin line and their sum a thick one), and the path's
    capacity (BDP + buffer) dashed. Below: smoothed RTT per flow in ms over the path's own RTT, and
    the bottleneck queue in packets (shaded, right axis): a deep buffer fills and the RTT follows it
    (bufferbloat)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        specs=[[{}], [{"secondary_y": True}]],
                        subplot_titles=("congestion window (packets)", "smoothed RTT, and the bottleneck queue"))
    tl = result.timeline
    p = result.params
    flows = sorted(tl["flow"].unique()) if tl is not None and len(tl) else []
    many = len(flows) > 1
    q = result.tables.get("queue")
    if q is not None and len(q):
        fig.add_scatter(x=list(q["t"]), y=list(q["queue_packets"]), mode="lines", name="bottleneck queue (packets)",
                        line={"color": LIMIT_COLOR, "width": 0.5, "shape": "hv"}, fill="tozeroy",
                        fillcolor="rgba(213,94,0,0.15)", row=2, col=1, secondary_y=True)
    for flow in flows:
        rows = tl[tl["flow"] == flow]
        color = _FLOW_COLORS[int(flow) % len(_FLOW_COLORS)]
        fig.add_scatter(x=list(rows["t"]), y=list(rows["cwnd"]), mode="lines", name=f"cwnd, flow {flow}",
                        legendgroup=f"flow{flow}", line={"color": color, "width": 1 if many else 2},
                        row=1, col=1)
        if not many and rows["ssthresh"].notna().any():
            fig.add_scatter(x=list(rows["t"]), y=_gaps(rows["ssthresh"]), mode="lines", name="ssthresh",
                            line={"color": color, "dash": "dot", "shape": "hv"}, row=1, col=1)
        fig.add_scatter(x=list(rows["t"]), y=_gaps(rows["srtt_ms"]), mode="lines",
                        name=f"srtt, flow {flow}" if many else "srtt (ms)", legendgroup=f"flow{flow}",
                        showlegend=not many, line={"color": color, "width": 1 if many else 1.5}, row=2, col=1)
    if many:
        total = _total_cwnd(tl)
        fig.add_scatter(x=list(total.index), y=list(total.values), mode="lines", name="cwnd, all flows",
                        line={"color": "#24292f", "width": 2.5}, row=1, col=1)
    rate, rtt, buf = p.get("rate_mbit"), p.get("rtt_ms"), p.get("buffer_packets")
    if rate and rtt:
        bdp = float(rate) * 1e6 / 8 * float(rtt) / 1000 / 1500
        fig.add_hline(y=bdp + float(buf or 0), line_dash="dash", line_color="#57606a", row=1, col=1,
                      annotation_text=f"BDP {bdp:.0f} + buffer {buf} packets", annotation_position="top left",
                      annotation_font_color="#57606a")
        fig.add_hline(y=float(rtt), line_dash="dot", line_color="#57606a", row=2, col=1,
                      annotation_text=f"path RTT {float(rtt):g} ms", annotation_position="bottom left",
                      annotation_font_color="#57606a")
    fig.update_yaxes(title_text="packets", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="srtt (ms)", rangemode="tozero", row=2, col=1)
    # the queue's own scale, 0 to the buffer's limit, with its own round ticks (not the srtt grid's)
    top = max(int(buf or 1), int(q["queue_packets"].max()) if q is not None and len(q) else 1)
    fig.update_yaxes(title_text="queue (packets)", row=2, col=1, secondary_y=True, range=[0, top * 1.05],
                     showgrid=False, tickmode="linear", tick0=0, dtick=_round_step(top / 5))
    fig.update_xaxes(title_text="time (s)", row=2, col=1)
    s = result.summary
    sub = (f"{s.get('throughput_mbit')} Mbit/s ({_pct(s.get('utilization'))} of the link); sRTT median "
           f"{s.get('srtt_p50_ms')} ms, max {s.get('srtt_max_ms')} ms; {s.get('loss_events')} loss events")
    if many and s.get("fairness") is not None:
        sub += f"; fairness {s.get('fairness')}"
    n = f"{len(flows)} flows of " if many else ""
    titled(fig, f"{n}{p.get('algorithm')} through {rate} Mbit/s, {rtt} ms, {buf}-packet buffer", result, sub)
    style(fig, height=620)
    fig.update_layout(margin={"t": 120})
    return fig


def _gaps(column: pd.Series) -> list[float | None]:
    """A column with NaN as None (a gap): NaN is not JSON, and a FigureWidget must serialize it."""
    return [None if v != v else float(v) for v in column]


def _total_cwnd(tl: pd.DataFrame) -> pd.Series:
    """The sum of every flow's cwnd over time: each flow's last value carried to every sample time."""
    wide = tl.pivot_table(index="t", columns="flow", values="cwnd", aggfunc="last").sort_index().ffill().fillna(0)
    return wide.sum(axis=1)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{float(v) * 100:.0f} %"


def congestion_flows(result: Result) -> pd.DataFrame:
    """One row per flow (throughput, median and largest sRTT, retransmissions, final cwnd): the
    panel's table, instead of the first queue samples.

    >>> from tcplab.experiments import congestion
    >>> list(congestion_flows(congestion(duration=1, flows=2, mode="sim")).columns)
    ['flow', 'throughput (Mbit/s)', 'sRTT median (ms)', 'sRTT max (ms)', 'retransmits', 'cwnd at the end']
    """
    import pandas as pd

    tl = result.timeline
    thr = result.summary.get("flow_throughput_mbit") or []
    rows = []
    for flow in sorted(tl["flow"].unique()) if tl is not None and len(tl) else []:
        f = tl[tl["flow"] == flow]
        rows.append({"flow": int(flow), "throughput (Mbit/s)": thr[int(flow)] if int(flow) < len(thr) else None,
                     "sRTT median (ms)": round(float(f["srtt_ms"].median()), 1),
                     "sRTT max (ms)": round(float(f["srtt_ms"].max()), 1),
                     "retransmits": int(f["total_retrans"].max()), "cwnd at the end": int(f["cwnd"].iloc[-1])})
    return pd.DataFrame(rows, columns=["flow", "throughput (Mbit/s)", "sRTT median (ms)", "sRTT max (ms)",
                                       "retransmits", "cwnd at the end"])
