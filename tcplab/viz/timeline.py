"""The figure of a :class:`~tcplab.experiments.timeline.Timeline`: one connection whole, on one time axis.

Panels, top to bottom, each only when the timeline has its data, all sharing the x axis (zooming or
selecting a range in one zooms all):

1. **ladder**: every segment as an arrow between the two ends (at the capture point, so on loopback
   it is vertical: a segment is seen the instant it is sent), labelled with its flags; SYN, FIN,
   RST, retransmissions and losses stand out; hovering shows seq/ack, length, window, SACK, options;
2. **sequence**: relative sequence numbers of the data each end sent (a bar from seq to seq + len),
   the ACKs the other end returned and their SACK blocks (tcptrace's time-sequence graph);
3. **states**: each end's TCP state as a band, and the script's steps (lifecycle);
4. **TCP_INFO**: cwnd / ssthresh / in flight (packets), srtt / rttvar / rto (ms), delivery and
   pacing rate (Mbit/s), retransmissions, windows (bytes) - where sampled;
5. **queues**: the bottleneck's qdisc, a listener's accept queue.

A large run is thinned for drawing only: SYNs, FINs, RSTs, retransmissions and losses are always
drawn, the other segments evenly; the title says how many segments were drawn of how many (the
table, :meth:`Timeline.table`, keeps them all).

>>> from tcplab.experiments import handshake
>>> from tcplab.experiments.timeline import timeline_of
>>> fig = timeline_figure(timeline_of(handshake(mode="sim")))
>>> [a.text for a in fig.layout.annotations][:3]
['segments (10 of 10 drawn)', 'relative sequence numbers', 'TCP states']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tcplab._validate import check_int
from tcplab.viz.common import LIMIT_COLOR, STATE_COLORS, style, titled

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from tcplab.experiments.timeline import Timeline

__all__ = ["timeline_figure", "TCP_INFO_PANELS"]

#: the TCP_INFO panels: (title, unit, columns)
TCP_INFO_PANELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("cwnd, ssthresh, in flight", "packets", ("cwnd", "ssthresh", "in_flight", "unacked")),
    ("srtt, rttvar, rto", "ms", ("srtt_ms", "rttvar_ms", "rto_ms", "min_rtt_ms")),
    ("delivery and pacing rate", "Mbit/s", ("delivery_rate_mbit", "pacing_rate_mbit")),
    ("retransmissions", "count", ("total_retrans", "retransmits", "backoff")),
    ("windows and buffers", "bytes", ("snd_wnd", "rcv_wnd", "rcv_space", "notsent_bytes")),
)
#: ssthresh before the first loss is "infinite" (TCP_INFINITE_SSTHRESH, 0x7fffffff): not drawn
_INFINITE = 1 << 30
_END_Y = {"client": 1.0, "server": 0.0}
_COLORS = {"SYN": "#8250df", "FIN": "#0969da", "RST": LIMIT_COLOR, "retransmit": LIMIT_COLOR, "lost": LIMIT_COLOR,
           "dupack": "#bc4c00", "data": "#1a7f37", "ack": "#8c959f"}
_SERIES_COLORS = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#bc4c00", "#6e7781")
#: the congestion states (enum tcp_ca_state, include/uapi/linux/tcp.h)
_CA_COLORS = {"Open": "#2da44e", "Disorder": "#d4a72c", "CWR": "#54aeff", "Recovery": "#fb8500", "Loss": "#cf222e"}
#: one color and dash per TCP_INFO column, so that a legend entry names one line across the panels
_COLUMN_STYLE = {"cwnd": ("#0969da", "solid"), "ssthresh": ("#cf222e", "solid"), "in_flight": ("#1a7f37", "dash"),
                 "unacked": ("#8250df", "dash"), "srtt_ms": ("#0550ae", "solid"), "rttvar_ms": ("#bc4c00", "solid"),
                 "rto_ms": ("#a40e26", "dash"), "min_rtt_ms": ("#6e7781", "dot"),
                 "delivery_rate_mbit": ("#116329", "solid"), "pacing_rate_mbit": ("#953800", "dash"),
                 "total_retrans": ("#cf222e", "solid"), "retransmits": ("#8250df", "dash"), "backoff": ("#6e7781", "dot"),
                 "snd_wnd": ("#0969da", "solid"), "rcv_wnd": ("#1a7f37", "dash"), "rcv_space": ("#8250df", "dot"),
                 "notsent_bytes": ("#bc4c00", "solid")}


def _kind(s: dict[str, Any]) -> str:
    f = s["flags"] or ""
    if s.get("mark") in ("lost", "retransmit", "dupack"):
        return str(s["mark"])
    if "R" in f:
        return "RST"
    if "S" in f:
        return "SYN"
    if "F" in f:
        return "FIN"
    return "data" if s["len"] else "ack"


def _thin(rows: Sequence[dict[str, Any]], budget: int, keep: Any, group: Any = None) -> list[dict[str, Any]]:
    """At most about ``budget`` rows, always with those ``keep(row)`` is true for; the others evenly spaced
    within each ``group(row)`` (e.g. data and ACKs apart), each group's share of the budget its share of
    the rows: one stride over interleaved kinds could alias and draw only one of them."""
    if len(rows) <= budget:
        return list(rows)
    must = [r for r in rows if keep(r)]
    groups: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        if not keep(r):
            groups.setdefault(group(r) if group else None, []).append(r)
    room = max(1, budget - len(must))
    total = sum(len(g) for g in groups.values())
    chosen = {id(r) for r in must}
    for g in groups.values():
        share = max(1, room * len(g) // total)
        step = -(-len(g) // share)
        chosen |= {id(r) for r in g[::step]}
    return [r for r in rows if id(r) in chosen]


def _hover(s: dict[str, Any]) -> str:
    parts = [f"{s['src_end']} → {s['dst_end']} [{s['flags']}]", f"t = {s['t']:.6f} s"]
    if s.get("rel_seq") is not None:
        parts.append(f"seq {s['rel_seq']}" + (f":{s['rel_seq'] + s['len']}" if s["len"] else ""))
    if s.get("rel_ack") is not None:
        parts.append(f"ack {s['rel_ack']}")
    parts.append(f"len {s['len']}")
    if s.get("window") is not None:
        parts.append(f"win {s['window']}")
    if s.get("sack"):
        parts.append("SACK " + " ".join(f"{a}-{b}" for a, b in s["sack"]))
    opts = s.get("options") or {}
    if opts and ("S" in (s["flags"] or "")):
        parts.append(", ".join(k if v is True else f"{k}={v}" for k, v in opts.items() if k != "sack_blocks"))
    if s.get("mark"):
        parts.append(str(s["mark"]).upper())
    return "<br>".join(parts)


def timeline_figure(timeline: Timeline, *, conn: int | None = None, max_segments: int = 3000,
                    max_points: int = 5000) -> go.Figure:
    """The timeline as stacked panels with one shared time axis (module doc). ``conn``: the connection to
    draw when there are several (default: the one with the most segments; the title names it).
    ``max_segments`` / ``max_points``: drawing budgets for segments and for each sampled series."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from tcplab.experiments.timeline import Timeline

    if not isinstance(timeline, Timeline):
        raise TypeError(f"timeline must be a Timeline (tcplab.timeline_of(result)), not {type(timeline).__name__}")
    max_segments = check_int("max_segments", max_segments, 10, 1_000_000)
    max_points = check_int("max_points", max_points, 10, 1_000_000)
    counts: dict[int, int] = {}
    for s in timeline.segments:
        counts[s["conn"]] = counts.get(s["conn"], 0) + 1
    if conn is None:
        conn = max(counts, key=lambda c: counts[c]) if counts else 0
    elif counts and conn not in counts:
        raise ValueError(f"conn must be one of {sorted(counts)}, not {conn!r}")
    segs = [s for s in timeline.segments if s["conn"] == conn]
    states = [r for r in timeline.states if r.get("conn", 0) == conn]
    drawn = _thin(segs, max_segments, lambda s: _kind(s) in ("SYN", "FIN", "RST", "retransmit", "lost"),
                  lambda s: (_kind(s), s["src_end"]))
    # the sequence panel shows data and what acknowledged it: none without data
    with_seq = ([s for s in drawn if s.get("rel_seq") is not None or s.get("rel_ack") is not None]
                if any(s["len"] for s in segs) else [])

    panels: list[tuple[str, str, float]] = []     # (key, title, relative height)
    if segs:
        panels.append(("ladder", f"segments ({len(drawn)} of {len(segs)} drawn)", 1.0))
    if with_seq:
        panels.append(("sequence", "relative sequence numbers", 1.6))
    # the congestion state (tcpi_ca_state: Open, Disorder, CWR, Recovery, Loss) where TCP_INFO was sampled
    ca_rows: dict[str, list[tuple[float, str]]] = {}
    for x in timeline.tcp_info:
        if x.get("ca_state") and x.get("conn", conn) == conn:
            band = ca_rows.setdefault(f"ca: {x['end']}", [])
            if not band or band[-1][1] != x["ca_state"]:
                band.append((x["t"], x["ca_state"]))
    if len(ca_rows) > 4:      # many flows: the first four
        ca_rows = dict(list(ca_rows.items())[:4])
    if states or timeline.events or ca_rows:
        panels.append(("states", "TCP states" + (" and congestion states" if ca_rows else ""),
                       0.7 + 0.25 * len(ca_rows)))
    info_cols = {k for r in timeline.tcp_info for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for title, unit, cols in TCP_INFO_PANELS:
        if info_cols & set(cols):
            panels.append((f"info:{title}", f"{title} ({unit})", 1.0))
    if timeline.queues:
        panels.append(("queues", "queue lengths", 1.0))
    if not panels:
        raise ValueError("timeline must have segments, states, TCP_INFO or queue samples to draw; this one is empty")

    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.045,
                        subplot_titles=[p[1] for p in panels], row_heights=[p[2] for p in panels])
    row = {p[0]: i + 1 for i, p in enumerate(panels)}
    ends = sorted({s["src_end"] for s in segs} | {s["dst_end"] for s in segs} | {r["end"] for r in states},
                  key=lambda e: (e != "client", e))
    thinned_series = 0

    if "ladder" in row:
        r = row["ladder"]
        y_of = {e: _END_Y.get(e, 0.5) for e in ends}
        for kind, color in _COLORS.items():
            mine = [s for s in drawn if _kind(s) == kind]
            if not mine:
                continue
            xs: list[Any] = []
            ys: list[Any] = []
            for s in mine:
                a, b = y_of[s["src_end"]], y_of[s["dst_end"]]
                if a == b:            # a socket connected to itself: a short tick
                    b = a - 0.3
                xs += [s["t"], s["t"], None]
                ys += [a, b, None]
            fig.add_scatter(x=xs, y=ys, mode="lines", line={"color": color, "width": 1.5 if kind != "ack" else 1},
                            hoverinfo="skip", showlegend=False, legendgroup=kind, row=r, col=1)
            heads = [y_of[s["dst_end"]] if y_of[s["dst_end"]] != y_of[s["src_end"]] else y_of[s["src_end"]] - 0.3
                     for s in mine]
            symbols = ["triangle-up" if h > y_of[s["src_end"]] else "triangle-down" for h, s in zip(heads, mine)]
            if kind == "lost":
                symbols = ["x-thin-open"] * len(mine)
            fig.add_scatter(x=[s["t"] for s in mine], y=heads, mode="markers+text" if kind in ("SYN", "FIN", "RST") else "markers",
                            text=[s["flags"] for s in mine], textposition="middle right",
                            marker={"symbol": symbols, "color": color, "size": 9, "line": {"width": 2, "color": color}},
                            hovertext=[_hover(s) for s in mine], hoverinfo="text", name=kind, legendgroup=kind,
                            row=r, col=1)
        fig.update_yaxes(tickvals=[y_of[e] for e in ends], ticktext=ends, range=[-0.4, 1.4], row=r, col=1)

    if "sequence" in row:
        r = row["sequence"]
        for i, end in enumerate(ends):
            color = _SERIES_COLORS[i % len(_SERIES_COLORS)]
            data = [s for s in with_seq if s["src_end"] == end and s["len"] and s.get("rel_seq") is not None]
            if data:
                xs, ys = [], []
                for s in data:
                    xs += [s["t"], s["t"], None]
                    ys += [s["rel_seq"], s["rel_seq"] + s["len"], None]
                fig.add_scatter(x=xs, y=ys, mode="lines", line={"color": color, "width": 3}, name=f"data {end} sent",
                                hoverinfo="skip", row=r, col=1)
                bad = [s for s in data if s.get("mark") in ("lost", "retransmit")]
                if bad:
                    fig.add_scatter(x=[s["t"] for s in bad], y=[s["rel_seq"] for s in bad], mode="markers",
                                    marker={"symbol": ["x-thin-open" if s["mark"] == "lost" else "diamond" for s in bad],
                                            "color": LIMIT_COLOR, "size": 10, "line": {"width": 2, "color": LIMIT_COLOR}},
                                    hovertext=[_hover(s) for s in bad], hoverinfo="text",
                                    name=f"lost / retransmitted ({end})", row=r, col=1)
            # the ACKs and SACK blocks the other end returned for this end's data
            acks = [s for s in with_seq if s["dst_end"] == end and s["src_end"] != end and s.get("rel_ack") is not None]
            if acks and data:
                fig.add_scatter(x=[s["t"] for s in acks], y=[s["rel_ack"] for s in acks], mode="lines+markers",
                                line={"shape": "hv", "color": color, "width": 1, "dash": "dot"},
                                marker={"size": 4, "color": ["#bc4c00" if s.get("mark") == "dupack" else color for s in acks]},
                                hovertext=[_hover(s) for s in acks], hoverinfo="text", name=f"ACK of {end}'s data",
                                row=r, col=1)
                sx, sy = [], []
                for s in acks:
                    for a, b in s.get("sack") or ():
                        sx += [s["t"], s["t"], None]
                        sy += [a, b, None]
                if sx:
                    fig.add_scatter(x=sx, y=sy, mode="lines", line={"color": "#bc4c00", "width": 5},
                                    opacity=0.5, name=f"SACK blocks (of {end}'s data)", hoverinfo="skip", row=r, col=1)
        fig.update_yaxes(title_text="bytes", row=r, col=1)

    t_end = max([0.0] + [x["t"] for part in (timeline.segments, timeline.states, timeline.events, timeline.tcp_info,
                                             timeline.queues) for x in part])
    t_start = min([t_end] + [x["t"] for part in (timeline.segments, timeline.states, timeline.events, timeline.tcp_info,
                                                 timeline.queues) for x in part])
    if "states" in row:
        r = row["states"]
        seen_states: set[str] = set()
        for end in ends:
            mine = [x for x in states if x["end"] == end]
            for i, x in enumerate(mine):
                # the last state lasts past the record's end: drawn a little beyond it, so that it shows
                stop = mine[i + 1]["t"] if i + 1 < len(mine) else t_end + 0.04 * (t_end - t_start or 1e-3)
                st = x["state"]
                fig.add_bar(x=[max(stop - x["t"], t_end * 1e-3)], base=[x["t"]], y=[end], orientation="h",
                            marker={"color": STATE_COLORS.get(st, "#afb8c1")}, name=st, legendgroup=f"state {st}",
                            showlegend=st not in seen_states, text=[st], textposition="inside", insidetextanchor="start",
                            hovertext=f"{end}: {st} from {x['t']:.6f} s ({x.get('why', '')})", hoverinfo="text",
                            row=r, col=1)
                seen_states.add(st)
        for band_name, band in ca_rows.items():
            for i, (t, st) in enumerate(band):
                stop = band[i + 1][0] if i + 1 < len(band) else t_end
                fig.add_bar(x=[max(stop - t, t_end * 1e-3)], base=[t], y=[band_name], orientation="h",
                            marker={"color": _CA_COLORS.get(st, "#afb8c1")}, name=f"ca {st}", legendgroup=f"ca {st}",
                            showlegend=f"ca {st}" not in seen_states, text=[st], textposition="inside",
                            insidetextanchor="start", hovertext=f"{band_name}: {st} from {t:.6f} s", hoverinfo="text",
                            row=r, col=1)
                seen_states.add(f"ca {st}")
        if timeline.events:
            fig.add_scatter(x=[e["t"] for e in timeline.events], y=["steps"] * len(timeline.events), mode="markers",
                            marker={"symbol": "line-ns-open", "size": 14, "color": "#24292f"},
                            hovertext=[e["event"] for e in timeline.events], hoverinfo="text+x", name="script step",
                            row=r, col=1)
        # plotly lists categories from the bottom: the client on top, the script's steps below the ends
        fig.update_yaxes(categoryorder="array", categoryarray=(["steps"] if timeline.events else [])
                         + list(ca_rows)[::-1] + ends[::-1],
                         row=r, col=1)
        fig.update_layout(barmode="overlay")

    for title, unit, cols in TCP_INFO_PANELS:
        key = f"info:{title}"
        if key not in row:
            continue
        for end in sorted({x["end"] for x in timeline.tcp_info}):
            rows_end = [x for x in timeline.tcp_info if x["end"] == end]
            thin = _thin(rows_end, max_points, lambda x: False)
            thinned_series += len(thin) < len(rows_end)
            first = end == min(x["end"] for x in timeline.tcp_info)
            for col in (c for c in cols if c in info_cols):
                pts = [(x["t"], x[col]) for x in thin if isinstance(x.get(col), (int, float)) and x[col] < _INFINITE]
                if not pts:
                    continue
                color, dash = _COLUMN_STYLE.get(col, ("#24292f", "solid"))
                fig.add_scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines",
                                line={"shape": "hv", "color": color, "dash": dash if first else "dot",
                                      "width": 2 if first else 1},
                                name=f"{col} ({end})" if len({x['end'] for x in timeline.tcp_info}) > 1 else col,
                                row=row[key], col=1)
        fig.update_yaxes(title_text=unit, row=row[key], col=1)

    if "queues" in row:
        for j, name in enumerate(sorted({q["queue"] for q in timeline.queues})):
            mine = [q for q in timeline.queues if q["queue"] == name]
            thin = _thin(mine, max_points, lambda q: False)
            thinned_series += len(thin) < len(mine)
            fig.add_scatter(x=[q["t"] for q in thin], y=[q["length"] for q in thin], mode="lines",
                            line={"shape": "hv", "color": _SERIES_COLORS[(j + 3) % len(_SERIES_COLORS)]},
                            name=f"{name} ({mine[0]['unit']})", row=row["queues"], col=1)
        fig.update_yaxes(title_text="length", row=row["queues"], col=1)

    # SI-prefixed ticks ("52.05ms", "20µs", "1.5s"): a loopback handshake spans microseconds, a loss recovery
    # milliseconds, a close seconds; plain seconds would print "0.05205" on all of them
    fig.update_xaxes(tickformat="~s", ticksuffix="s")
    fig.update_xaxes(title_text="time", row=len(panels), col=1)
    sub = [timeline.source]
    if len(counts) > 1:
        sub.append(f"connection {conn} of {len(counts)}")
    if len(drawn) < len(segs):
        sub.append(f"{len(drawn)} of {len(segs)} segments drawn (every SYN/FIN/RST/loss/retransmission kept; the "
                   "table has all)")
    if thinned_series:
        sub.append(f"{thinned_series} sampled series thinned to {max_points} points for drawing")
    titled(fig, "One connection whole: segments, states, TCP_INFO and queues on one time axis",
           timeline.badge or None, "; ".join(sub))
    height = max(460, 200 + sum(int(190 * p[2]) for p in panels))
    style(fig, height=height, legend=True)
    # the legend 70 px below the plot, whatever the figure's height (style() places it for a 420 px figure)
    fig.update_layout(legend={"y": -70 / (height - 220)})
    return fig
