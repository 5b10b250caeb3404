"""The TCP state diagram drawn from the model's table, and socket-state counts.

The diagram is built from :data:`tcplab.model.states.TRANSITIONS` (via
:func:`tcplab.model.states.edges`): every arrow in the picture is a row of the table, so
the picture cannot drift from the code. Only the node *positions* live here.

>>> f = state_diagram()
>>> sorted(set(f.data[-1].text)) == sorted(s.name for s in TcpState)
True
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from tcplab.model.states import EVENTS, TcpState, edges
from tcplab.viz.common import STATE_COLORS, STATE_ORDER, described, style, text_on, titled

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from tcplab.experiments.result import Result

__all__ = ["state_diagram", "state_counts", "state_count_table", "POSITIONS", "CLIENT_PATH", "SERVER_PATH",
           "edge_kind"]

S = TcpState

#: where each state sits (RFC 9293 figure 5 layout). CLOSE is drawn twice: at the top where
#: connections start and at the bottom where they end.
POSITIONS: dict[str, tuple[float, float]] = {
    "CLOSE": (2.0, 7.2), "LISTEN": (0.6, 6.0), "SYN_SENT": (3.4, 6.0), "SYN_RECV": (0.6, 4.8),
    "ESTABLISHED": (2.0, 4.0), "FIN_WAIT1": (0.6, 3.0), "CLOSE_WAIT": (3.4, 3.0), "FIN_WAIT2": (0.6, 1.8),
    "CLOSING": (2.0, 1.8), "LAST_ACK": (3.4, 1.8), "TIME_WAIT": (1.3, 0.7), "CLOSE_end": (2.8, 0.0),
}
_BW, _BH = 0.5, 0.3   # half width / height of a node box, in axis units
_TOP = {S.CLOSE, S.LISTEN, S.SYN_SENT, S.SYN_RECV}

#: the active opener's and closer's usual path, and the passive side's
CLIENT_PATH = {("CLOSE", "app_connect"), ("SYN_SENT", "rcv_syn_ack"), ("ESTABLISHED", "app_close"),
               ("FIN_WAIT1", "rcv_ack"), ("FIN_WAIT2", "rcv_fin"), ("TIME_WAIT", "timeout_2msl")}
SERVER_PATH = {("CLOSE", "app_listen"), ("LISTEN", "rcv_syn"), ("SYN_RECV", "rcv_ack"),
               ("ESTABLISHED", "rcv_fin"), ("CLOSE_WAIT", "app_close"), ("LAST_ACK", "rcv_ack")}
#: colour and dash per kind of edge (the dash, in the line under the arrows, tells them apart without colour)
KIND_STYLE = {
    "client": {"color": "#0072B2", "width": 3, "dash": "solid", "label": "client path (active open / close)"},
    "server": {"color": "#D55E00", "width": 3, "dash": "dash", "label": "server path (passive open / close)"},
    "other": {"color": "#6e7781", "width": 1.5, "dash": "dashdot", "label": "simultaneous open / close, other"},
    "abort": {"color": "#bbbbbb", "width": 1, "dash": "dot", "label": "RST, abort, timeout"},
}


def edge_kind(src: str, event: str) -> str:
    """client / server / abort / other, for coloring an edge."""
    if (src, event) in CLIENT_PATH:
        return "client"
    if (src, event) in SERVER_PATH:
        return "server"
    if event in ("rcv_rst", "app_abort", "timeout", "timeout_fin_wait2") or (event == "app_close" and src in
                                                                              ("LISTEN", "SYN_SENT")):
        return "abort"
    return "other"


#: axis units per pixel of the diagram at its usual size (about 900 x 500 px of plot area), to
#: keep edge labels (10 px font) off the state boxes
_UNIT_X, _UNIT_Y = 4.2 / 900, 8.0 / 500


def _label_half_size(text: str) -> tuple[float, float]:
    rows = text.split("<br>")
    return (max(map(len, rows)) * 5.6 + 8) / 2 * _UNIT_X, (19 * len(rows) - 3 * (len(rows) - 1)) / 2 * _UNIT_Y


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    w = min(a[1], b[1]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[2], b[2])
    return w * h if w > 0 and h > 0 else 0.0


def _place_label(text: str, sx: float, sy: float, ex: float, ey: float,
                 boxes: list[tuple[float, float, float, float]], nodes: int = 0) -> tuple[float, float]:
    """A point on the arrow (or just beside it) where the label covers the least of ``boxes``."""
    hw, hh = _label_half_size(text)
    best, best_cost = ((sx + ex) / 2, (sy + ey) / 2), math.inf
    shifts = [(0.0, 0.0), (0.0, 0.16), (0.0, -0.16), (0.0, 0.3), (0.0, -0.3),
              (0.25, 0.0), (-0.25, 0.0), (0.25, 0.16), (-0.25, 0.16), (0.25, -0.16), (-0.25, -0.16)]
    for shx, shy in shifts:
        for t in (0.5, 0.4, 0.6, 0.3, 0.7, 0.22, 0.78):
            x, y = sx + (ex - sx) * t + shx, sy + (ey - sy) * t + shy
            lab = (x - hw, x + hw, y - hh, y + hh)
            # covering a state box is worse than touching another label
            cost = sum(_overlap(lab, bx) * (2 if i < nodes else 1) for i, bx in enumerate(boxes))
            cost += (abs(shx) + abs(shy)) * 1e-3 + abs(t - 0.5) * 1e-4     # prefer the middle of the arrow
            if cost < best_cost:
                best, best_cost = (x, y), cost
            if cost < 1e-3:
                return best
    return best


def _node(state: TcpState, src: TcpState | None = None) -> str:
    """The drawn node of ``state`` (CLOSE reached from the lower half goes to the bottom copy)."""
    if state is S.CLOSE and src is not None and src not in _TOP:
        return "CLOSE_end"
    return state.name


def state_diagram(*, show_aborts: bool = False, highlight: list[str] | tuple[str, ...] | None = None,
                  title: str = "The 11 TCP states, drawn from tcplab.model.states.TRANSITIONS") -> go.Figure:
    """Nodes and labelled arrows, one per (state, event) row of the table.

    ``show_aborts`` adds the RST / abort / timeout arrows (dotted grey). ``highlight`` is a
    sequence of state names (e.g. a lifecycle result's ``client_states``) drawn larger.
    Traces: one line trace per edge kind shown (name = legend label), one text trace with
    the edge labels (``customdata`` = (src, event, dst)), and last the nodes (text = state names).
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    pairs: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)  # (a,b) -> [(event, kind)]
    for e in edges():
        kind = edge_kind(e.src.name, e.event)
        if kind == "abort" and not show_aborts:
            continue
        pairs[(_node(e.src), _node(e.dst, e.src))].append((e.event, kind))
    lines: dict[str, tuple[list[Any], list[Any]]] = defaultdict(lambda: ([], []))
    lab_x, lab_y, lab_t, lab_h = [], [], [], []
    rank = ["client", "server", "other", "abort"]
    geometry = []
    for (a, b), evs in pairs.items():
        kind = min((k for _, k in evs), key=rank.index)
        (x0, y0), (x1, y1) = POSITIONS[a], POSITIONS[b]
        dx, dy = x1 - x0, y1 - y0
        n = math.hypot(dx, dy) or 1.0
        off = 0.07 if (b, a) in pairs else 0.0   # two-way pairs: shift each arrow sideways
        ox, oy = -dy / n * off * 3, dx / n * off
        # trim each end to the node's box (half sizes _BW x _BH, plus a small gap)
        tt = min(_BW / abs(dx) if dx else 1e9, _BH / abs(dy) if dy else 1e9)
        sx, sy = x0 + ox + dx * tt, y0 + oy + dy * tt
        ex, ey = x1 + ox - dx * tt, y1 + oy - dy * tt
        xs, ys = lines[kind]
        xs += [sx, ex, None]
        ys += [sy, ey, None]
        st = KIND_STYLE[kind]
        fig.add_annotation(x=ex, y=ey, ax=sx, ay=sy, xref="x", yref="y", axref="x", ayref="y", text="",
                           showarrow=True, arrowhead=2, arrowsize=1.2, arrowwidth=max(1.0, st["width"] - 1),
                           arrowcolor=st["color"])
        geometry.append((rank.index(kind), a, b, evs, kind, sx, sy, ex, ey))
    # labels: the main paths first, each at the first spot along its arrow that covers no state
    # box and no label already placed
    boxes = [(x - _BW, x + _BW, y - _BH, y + _BH) for x, y in POSITIONS.values()]
    for _, a, b, evs, kind, sx, sy, ex, ey in sorted(geometry, key=lambda g: g[0]):
        st = KIND_STYLE[kind]
        text = " / ".join(ev for ev, _ in evs)
        if len(text) > 26:   # long lists of events: one line each, a narrower label
            text = "<br>".join(ev for ev, _ in evs)
        lx, ly = _place_label(text, sx, sy, ex, ey, boxes, nodes=len(POSITIONS))
        hw, hh = _label_half_size(text)
        boxes.append((lx - hw, lx + hw, ly - hh, ly + hh))
        fig.add_annotation(x=lx, y=ly, text=text, showarrow=False, font={"size": 10, "color": st["color"]},
                           bgcolor="rgba(255,255,255,0.9)", xref="x", yref="y", borderpad=1)
        lab_x.append(lx)
        lab_y.append(ly)
        lab_t.append(" / ".join(ev for ev, _ in evs))
        lab_h.append("<br>".join(f"{a.replace('_end', '')} → {b.replace('_end', '')}: <b>{ev}</b> — {EVENTS[ev]}"
                                 for ev, _ in evs))
    for kind in rank:
        if kind in lines:
            st = KIND_STYLE[kind]
            xs, ys = lines[kind]
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=st["label"], hoverinfo="skip",
                                     line={"color": st["color"], "width": st["width"],
                                           # a dash per kind: the paths are told apart without colour
                                           "dash": st["dash"]}))
    fig.add_trace(go.Scatter(x=lab_x, y=lab_y, mode="markers", text=lab_t, marker={"size": 14, "opacity": 0},
                             hovertext=lab_h, hoverinfo="text", showlegend=False, name="events"))
    hl = set(highlight or ())
    names = list(POSITIONS)
    shown = [n.replace("_end", "") for n in names]
    for n, sname in zip(names, shown, strict=True):
        x, y = POSITIONS[n]
        fig.add_shape(type="rect", x0=x - _BW + 0.03, x1=x + _BW - 0.03, y0=y - _BH + 0.05, y1=y + _BH - 0.05,
                      fillcolor=STATE_COLORS[sname], line={"width": 4 if sname in hl else 0, "color": "#000000"},
                      layer="below")
    fig.add_trace(go.Scatter(
        x=[POSITIONS[n][0] for n in names], y=[POSITIONS[n][1] for n in names], mode="text",
        # black or white by the box's colour (white on the palette's yellow or orange is unreadable)
        text=shown, textfont={"size": [15 if s in hl else 13 for s in shown],
                              "color": [text_on(STATE_COLORS[s]) for s in shown]},
        hovertext=[f"{s} (Linux state {TcpState[s].value})" for s in shown], hoverinfo="text",
        name="states", showlegend=False))
    fig.update_xaxes(visible=False, range=[-0.1, 4.1])
    fig.update_yaxes(visible=False, range=[-0.5, 7.5])
    titled(fig, title, "model", "hover an arrow for what the event means")
    style(fig, height=720)
    return described(fig, diagram_text(show_aborts=show_aborts, highlight=highlight))


def _walk(path: set[tuple[str, str]], start: str) -> list[str]:
    """The states of a usual path (a set of (state, event) rows), in order from ``start``."""
    from tcplab.model.states import TRANSITIONS

    out, state = [start], start
    for _ in range(len(path)):
        step = next((ev for st, ev in path if st == state), None)
        if step is None:
            break
        state = TRANSITIONS[TcpState[state]][step].name
        out.append(state)
    return out


def diagram_text(*, show_aborts: bool = False, highlight: list[str] | tuple[str, ...] | None = None) -> str:
    """The state diagram in words: how many states and arrows, the client's and the server's usual paths.

    >>> diagram_text()  # doctest: +ELLIPSIS
    'The 11 TCP states and the arrows of the model. The client (solid line): CLOSE → SYN_SENT → ESTABLISHED → ...'
    """
    client = " → ".join(_walk(CLIENT_PATH, "CLOSE"))
    server = " → ".join(_walk(SERVER_PATH, "CLOSE"))
    hl = f" Highlighted: {', '.join(highlight)}." if highlight else ""
    aborts = " RST, abort and timeout arrows shown (dotted)." if show_aborts else ""
    return (f"The 11 TCP states and the arrows of the model. The client (solid line): {client}; "
            f"the server (dashed line): {server}.{hl}{aborts}")


def _states_of(sockets: pd.DataFrame | Result) -> list[str]:
    df = sockets
    if hasattr(sockets, "tables"):
        df = sockets.tables.get("sockets")  # type: ignore[union-attr]
    if df is None or len(df) == 0:
        return []
    return [str(s) for s in df["state"]]


def state_count_table(sockets: pd.DataFrame | Result, *, all_states: bool = False) -> pd.DataFrame:
    """``ss -tan | awk '{print $1}' | sort | uniq -c`` as a DataFrame (state, count), in Linux order.

    >>> import pandas as pd
    >>> state_count_table(pd.DataFrame({"state": ["LISTEN", "ESTABLISHED", "ESTABLISHED"]})).values.tolist()
    [['ESTABLISHED', 2], ['LISTEN', 1]]
    """
    import pandas as pd

    states = _states_of(sockets)
    counts = {s: states.count(s) for s in STATE_ORDER}
    rows = [{"state": s, "count": c} for s, c in counts.items() if c or all_states]
    return pd.DataFrame(rows, columns=["state", "count"])


def state_counts(sockets: pd.DataFrame | Result, *, source: Result | str = "REAL",
                 title: str = "Sockets per state (ss -tan | uniq -c)") -> go.Figure:
    """Bar chart of sockets per state, all 11 states in Linux order (zeros included).

    ``sockets`` is ``tcplab.sockets()`` or a Result with a ``sockets`` table. ``source``
    labels the mode (a Result, or a string such as ``"REAL: this host"``).
    Trace 0: x = the 11 state names, y = counts.
    """
    import plotly.graph_objects as go

    if hasattr(sockets, "tables") and source == "REAL":
        source = sockets  # type: ignore[assignment]
    t = state_count_table(sockets, all_states=True)
    fig = go.Figure(go.Bar(x=list(t["state"]), y=list(t["count"]), text=list(t["count"]), textposition="outside",
                           cliponaxis=False, marker_color=[STATE_COLORS[s] for s in t["state"]], name="sockets"))
    fig.update_yaxes(title_text="sockets", rangemode="tozero")
    fig.update_yaxes(range=[0, max(1, int(t["count"].max() or 0)) * 1.2])
    fig.update_xaxes(tickangle=-30)
    titled(fig, title, source, f"{int(t['count'].sum())} sockets")
    return style(fig, height=400, legend=False)
