"""The three-way handshake (and what follows) as a sequence diagram of captured packets.

Reads the ``packets`` table of a handshake Result (real capture and simulator alike:
``direction`` "client->server", ``rel_seq``/``rel_ack``, ``payload``, ``options``).

>>> import pandas as pd
>>> from tcplab.experiments.result import Result
>>> pk = pd.DataFrame([{"t": 0.0, "direction": "client->server", "flags": "S", "seq": 1000, "ack": 0,
...                     "rel_seq": 0, "rel_ack": None, "window": 65495, "payload": 0, "options": "mss=65495"},
...                    {"t": 5e-05, "direction": "server->client", "flags": "SA", "seq": 5000, "ack": 1001,
...                     "rel_seq": 0, "rel_ack": 1, "window": 65483, "payload": 0, "options": "mss=65495"}])
>>> r = Result("handshake", "sim", "t", {}, tables={"packets": pk})
>>> packet_rows(r)[1]["label"]
'SYN,ACK seq=0 ack=1'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tcplab.viz.common import style, titled

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from tcplab.experiments.result import Result

__all__ = ["sequence_diagram", "packet_rows", "FLAG_NAMES"]

FLAG_NAMES = {"S": "SYN", "A": "ACK", "F": "FIN", "R": "RST", "P": "PSH", "U": "URG", "E": "ECE", "C": "CWR"}
_ORDER = "SFRPAUEC"


def _flags(f: str) -> str:
    return ",".join(FLAG_NAMES[c] for c in sorted(str(f), key=_ORDER.index) if c in FLAG_NAMES)


def _isnan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def packet_rows(result: Result) -> list[dict[str, Any]]:
    """One dict per packet: t, to_server (bool), flags, rel seq/ack, payload length, options, label."""
    df = result.tables.get("packets")
    if df is None or len(df) == 0:
        return []
    rows = []
    for p in df.to_dict("records"):
        to_server = str(p.get("direction", "")).startswith("client")
        seq, ack = p.get("seq"), p.get("ack")
        rel_seq, rel_ack = p.get("rel_seq"), p.get("rel_ack")
        length = int(p.get("payload", 0) or 0)
        label = _flags(p["flags"])
        if not _isnan(rel_seq):
            label += f" seq={int(rel_seq)}"
        if "A" in str(p["flags"]) and not _isnan(rel_ack):
            label += f" ack={int(rel_ack)}"
        if length:
            label += f" len={length}"
        opts = p.get("options")
        rows.append({"t": float(p["t"]), "to_server": bool(to_server), "flags": str(p["flags"]), "seq": seq,
                     "ack": ack, "rel_seq": rel_seq, "rel_ack": rel_ack, "len": length,
                     "options": "" if _isnan(opts) else str(opts), "label": label})
    return rows


def sequence_diagram(result: Result, *, max_packets: int = 12) -> go.Figure:
    """Client and server lanes, one arrow per packet (time flows down), labelled with flags,
    relative seq/ack and (for SYNs) the options. Trace 0: the packets' midpoints
    (``text`` = labels, ``customdata`` = options). Absolute ISNs are in the hover text."""
    import plotly.graph_objects as go

    rows = packet_rows(result)[:max_packets]
    fig = go.Figure()
    n = len(rows)
    ys = [-(i + 1) for i in range(n)]
    for r, y in zip(rows, ys, strict=True):
        x0, x1 = (0.0, 1.0) if r["to_server"] else (1.0, 0.0)
        color = "#0072B2" if r["to_server"] else "#D55E00"
        fig.add_annotation(x=x1, y=y - 0.45, ax=x0, ay=y, xref="x", yref="y", axref="x", ayref="y", text="",
                           showarrow=True, arrowhead=2, arrowsize=1.3, arrowwidth=2, arrowcolor=color)
        fig.add_annotation(x=0.5, y=y - 0.22, text=f"<b>{r['label']}</b>", showarrow=False, yshift=9,
                           font={"size": 12, "color": color}, bgcolor="rgba(255,255,255,0.9)")
        if "S" in r["flags"] and r["options"]:
            fig.add_annotation(x=0.5, y=y - 0.22, text=r["options"], showarrow=False, yshift=-9,
                               font={"size": 10, "color": "#57606a"})
        fig.add_annotation(x=-0.02, y=y, text=f"{r['t'] * 1000:.3f} ms", showarrow=False, xanchor="right",
                           font={"size": 10, "color": "#57606a"})
    fig.add_trace(go.Scatter(
        x=[0.5] * n, y=[y - 0.22 for y in ys], mode="markers", marker={"size": 18, "opacity": 0},
        text=[r["label"] for r in rows], customdata=[r["options"] for r in rows],
        hovertext=[f"{r['label']}<br>absolute seq={r['seq']} ack={r['ack']}<br>{r['options']}" for r in rows],
        hoverinfo="text", name="packets", showlegend=False))
    for x, name in ((0.0, "client"), (1.0, "server")):
        fig.add_shape(type="line", x0=x, x1=x, y0=0.2, y1=-(n + 0.8), line={"color": "#24292f", "width": 2})
        fig.add_annotation(x=x, y=0.45, text=f"<b>{name}</b>", showarrow=False, font={"size": 14})
    fig.update_xaxes(visible=False, range=[-0.25, 1.15])
    fig.update_yaxes(visible=False, range=[-(n + 1), 0.8])
    s = result.summary
    titled(fig, "Three-way handshake, packet by packet", result,
           f"negotiated: MSS {s.get('mss')}, SACK {'on' if s.get('sack') else 'off'}, "
           f"window scale {s.get('wscale')}, timestamps {'on' if s.get('timestamps') else 'off'}")
    return style(fig, height=max(300, 70 * n + 140), legend=False)
