"""Both ends of a connection, state by state: Gantt-like lanes from a ``lifecycle`` Result.

One lane per side (client, server); a bar per state from when the side entered it to when it
left it. Several results (four-way close vs RST vs half-close) stack their lanes, so the
difference is visible at a glance: TIME_WAIT on the closer, CLOSE_WAIT that never ends, RST
that ends both at once.

The lifecycle timeline may come in two shapes and both are read:

* long:  columns ``t``, ``side`` ("client"/"server"), ``state`` (one row per transition);
* wide:  columns ``t``, ``client``, ``server`` (what the lifecycle runners, real and simulated,
  return) or ``client_state``, ``server_state``.

Without a timeline, the ordered ``client_states`` / ``server_states`` of the summary are drawn
one step each (x = step number).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from tcplab.viz.diagnose import STATE_COLORS, STATE_ORDER, titled
from tcplab.viz.common import described

if TYPE_CHECKING:
    from tcplab.experiments.result import Result

__all__ = ["state_segments", "state_timeline", "compare_closes", "SIDES"]

SIDES = ("client", "server")


def _side_of(value: Any) -> str:
    v = str(value).lower()
    return "client" if v.startswith("c") else "server" if v.startswith("s") else v


def _wide_columns(tl: Any) -> dict[str, str]:
    """side -> column of a wide timeline: ``client``/``server`` or ``client_state``/``server_state``."""
    cols = list(tl.columns)
    out = {}
    for side in SIDES:
        for c in (side, f"{side}_state"):
            if c in cols:
                out[side] = c
                break
    return out


def state_segments(result: Result) -> tuple[list[dict[str, Any]], bool]:
    """``([{side, state, start, end}], timed)`` for one lifecycle result.

    ``timed`` is False when the result has no timeline and steps stand in for seconds.
    A side's last state runs to the end of the run (the last timeline time, or +10% of it).
    """
    tl = result.timeline
    rows: list[tuple[float, str, str]] = []
    if tl is not None and len(tl) and "t" in tl.columns:
        cols = set(tl.columns)
        if {"side", "state"} <= cols:
            rows = [(float(t), _side_of(s), str(st)) for t, s, st in zip(tl["t"], tl["side"], tl["state"])]
        else:
            colmap = _wide_columns(tl)
            for side in SIDES:
                col = colmap.get(side)
                if col is None:
                    continue
                rows += [(float(t), side, str(st)) for t, st in zip(tl["t"], tl[col]) if st == st and st]
    if rows:
        rows.sort(key=lambda r: r[0])
        end_t = max(r[0] for r in rows)
        end_t = end_t + max(0.1 * end_t, 0.05)
        segs: list[dict[str, Any]] = []
        for side in SIDES:
            mine = [r for r in rows if r[1] == side]
            # keep transitions only (a wide timeline repeats the current state every sample)
            trans = [r for i, r in enumerate(mine) if i == 0 or r[2] != mine[i - 1][2]]
            for i, (t, _, st) in enumerate(trans):
                stop = trans[i + 1][0] if i + 1 < len(trans) else end_t
                segs.append({"side": side, "state": st, "start": t, "end": stop})
        return segs, True
    segs = []
    for side in SIDES:
        states = list(result.summary.get(f"{side}_states") or [])
        segs += [{"side": side, "state": str(st), "start": float(i), "end": float(i + 1)}
                 for i, st in enumerate(states)]
    return segs, False


def _lane(result: Result, side: str, many: bool) -> str:
    if not many:
        return side
    scen = result.params.get("scenario", result.name)
    return f"{scen} · {side}"


def compare_closes(results: list[Result], *, title: str = "how the connection ends, both sides") -> go.Figure:
    """Lanes for every side of every result, top to bottom in the order given; one legend
    entry per state (same colours everywhere in the course)."""
    many = len(results) > 1
    lanes: list[str] = []
    by_state: dict[str, dict[str, list[Any]]] = {}
    timed_all = True
    for r in results:
        segs, timed = state_segments(r)
        timed_all &= timed
        for side in SIDES:
            lanes.append(_lane(r, side, many))
        for s in segs:
            d = by_state.setdefault(s["state"], {"x": [], "base": [], "y": [], "text": [], "hover": []})
            d["x"].append(s["end"] - s["start"])
            d["base"].append(s["start"])
            d["y"].append(_lane(r, s["side"], many))
            d["text"].append(s["state"])
            d["hover"].append(f"{s['side']}: {s['state']}<br>{s['start']:.3f} → {s['end']:.3f}"
                              + (" s" if timed else " (step)"))
    order = sorted(by_state, key=lambda st: STATE_ORDER.index(st) if st in STATE_ORDER else 99)
    fig = go.Figure()
    for st in order:
        d = by_state[st]
        fig.add_trace(go.Bar(name=st, orientation="h", x=d["x"], base=d["base"], y=d["y"], text=d["text"],
                             textposition="inside", insidetextanchor="middle", hovertext=d["hover"],
                             hoverinfo="text", marker_color=STATE_COLORS.get(st, "#0072B2"),
                             marker_line={"color": "white", "width": 1}))
    plot_h = 55 * len(lanes)
    fig.update_layout(barmode="overlay", height=plot_h + 230, template="plotly_white", font={"size": 13},
                      margin={"l": 60, "r": 30, "t": 90, "b": 140},
                      # the legend in one row under the axis title (a side legend scrolls when lanes are few)
                      legend={"orientation": "h", "yanchor": "top", "y": -62 / plot_h, "xanchor": "left", "x": 0.0,
                              "title": {"text": "state"}},
                      xaxis_title="seconds since the connection opened" if timed_all else "step (no timestamps)",
                      bargap=0.25,
                      uniformtext={"minsize": 9, "mode": "hide"})
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(lanes)))
    titled(fig, title, list(results))
    # the lanes in words: each run's states, both ends, in order (its Result's sentences)
    return described(fig, " ".join(r.alt_text for r in results))


def state_timeline(result: Result) -> go.Figure:
    """Both ends' states over time for one lifecycle result (scenario in the title)."""
    scen = result.params.get("scenario", "")
    fig = compare_closes([result], title=f"both ends' states — {scen}" if scen else "both ends' states")
    return fig
