"""The figure of ``loss_recovery`` (notebook 14): a time/sequence chart at the sender. Data segments
going out (the ones the path lost crossed out, retransmissions in red), ACKs coming in (duplicate
ACKs in orange, hovering shows their SACK blocks), the stall from the loss to its repair, and under each ACK of
the recovery the number of segments the sender sent on it (PRR's pacing).

>>> from tcplab.experiments import loss_recovery
>>> [t.name for t in recovery_figure(loss_recovery(drop="5th", mode="sim")).data]
['data sent', 'lost on the path', 'retransmission', 'ACK (cumulative)', 'duplicate ACK', 'sent on this ACK (PRR)']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcplab.viz.common import LIMIT_COLOR, style, titled

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from tcplab.experiments.result import Result

__all__ = ["recovery_figure"]

_TRACES = (
    ("out", "new", "data sent", "circle", "#0072B2", "seq"),
    ("out", "lost", "lost on the path", "x-thin-open", LIMIT_COLOR, "seq"),
    ("out", "retransmit", "retransmission", "diamond", LIMIT_COLOR, "seq"),
    ("in", "ack", "ACK (cumulative)", "triangle-left", "#009E73", "ack"),
    ("in", "dupack", "duplicate ACK", "triangle-left-open", "#E69F00", "ack"),
)


def recovery_figure(result: Result) -> go.Figure:
    """Byte offsets against ms after the first data segment; the title says how the loss was repaired."""
    import plotly.graph_objects as go

    fig = go.Figure()
    df = result.tables.get("segments")
    if df is not None and len(df):
        for direction, kind, name, symbol, color, col in _TRACES:
            rows = df[(df["direction"] == direction) & (df["kind"] == kind)]
            if not len(rows):
                continue
            hover = [f"{kind} {int(v)}" + (f" SACK {s}" if isinstance(s, str) and s else "")
                     for v, s in zip(rows[col], rows["sack"])]
            fig.add_scatter(x=list(rows["t_ms"]), y=[int(v) for v in rows[col]], mode="markers", name=name,
                            text=hover, hoverinfo="x+text",
                            marker={"symbol": symbol, "color": color, "size": 12 if kind == "lost" else 9,
                                    "line": {"width": 2, "color": color}})
    prr = result.tables.get("prr")
    if prr is not None and len(prr):
        # PRR's pacing: how many segments left on each ACK of the recovery (tcp_cwnd_reduction())
        fig.add_scatter(x=list(prr["t_ms"]), y=[int(v) for v in prr["ack"]], mode="text", name="sent on this ACK (PRR)",
                        text=[str(int(n)) for n in prr["sent"]], textposition="bottom center",
                        textfont={"color": "#CC79A7", "size": 13}, hoverinfo="x+text")
    s = result.summary
    if s.get("repaired_by"):
        sub = (f"repaired by {' then '.join(s['repairs'])} after {s['stall_ms']} ms; "
               f"{s['dupacks_before_retransmit']} duplicate ACKs before the retransmission")
        if s.get("prr_sent_per_ack"):
            sub += (f"; PRR sent {sum(s['prr_sent_per_ack'])} segments on {len(s['prr_sent_per_ack'])} ACKs of the "
                    f"recovery (numbers under them)")
    else:
        sub = "nothing was lost"
    fig.update_xaxes(title_text="ms after the first data segment")
    fig.update_yaxes(title_text="byte offset (data: its start; ACK: what it acknowledges)")
    titled(fig, "One loss at the sender: segments out, ACKs in", result, sub)
    return style(fig)
