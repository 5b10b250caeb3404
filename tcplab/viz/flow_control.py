"""The flow-control figure (notebook 10): the sender's queue on its own axis above, the advertised
window and the receiver's queue below (bytes the size of one MSS would lie flat at zero on Send-Q's
200 kB scale), the zero window shaded and every zero-window probe marked.

>>> from tcplab.experiments import flow_control
>>> r = flow_control(rcvbuf=4096, bytes=200_000, reader="stalled", stall_s=2.0, mode="sim")
>>> fig = flow_control_figure(r)
>>> [t.name for t in fig.data]
['Send-Q (sender, kB)', 'advertised window (B)', 'Recv-Q (receiver, B)', 'zero-window probes (3)']
>>> list(flow_control_events(r)["event"])[:3]
['start: the writer fills Send-Q', 'zero window: the receiver is full', 'probe 1 (backoff 1)']
>>> [t.name for t in sliding_window_figure(r).data]
['left edge (snd_una)', 'snd_nxt', 'right edge (snd_una + window)', 'window', 'in flight']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tcplab.viz.common import LIMIT_COLOR, style, titled

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from tcplab.experiments.result import Result

__all__ = ["flow_control_figure", "flow_control_events", "sliding_window_figure", "window_spans"]

_SEND = "#0072B2"
_WINDOW = "#009E73"
_RECV = "#CC79A7"


def _zero_spans(tl: pd.DataFrame, t: str = "t", window: str = "snd_wnd") -> list[tuple[float, float]]:
    """Time spans where the advertised window (column ``window``) was zero: from the first zero sample
    to the next non-zero one (or the last sample)."""
    spans: list[tuple[float, float]] = []
    start = None
    for when, w in zip(tl[t], tl[window], strict=True):
        if w == 0 and start is None:
            start = float(when)
        elif w != 0 and start is not None:
            spans.append((start, float(when)))
            start = None
    if start is not None:
        spans.append((start, float(tl[t].iloc[-1])))
    return spans


def flow_control_figure(result: Result) -> go.Figure:
    """Two panels on one time axis: Send-Q (kB) above; the advertised window and Recv-Q (bytes)
    below, zero-window spans shaded red, probes as red triangles on the window's zero line."""
    from plotly.subplots import make_subplots

    tl = result.timeline
    s = result.summary
    p = result.params
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1, row_heights=[0.4, 0.6],
                        subplot_titles=("sender: bytes written, not yet acknowledged (Send-Q)",
                                        "receiver: the window it advertises, and the bytes it holds unread"))
    # a run whose window the simulator does not model has only its start and end: points, not lines
    modelled = not (s.get("probes") is None and result.mode == "sim")
    how = "lines" if modelled else "markers"
    if tl is not None and len(tl):
        t = list(tl["t"])
        fig.add_scatter(x=t, y=list(tl["send_q"] / 1000), mode=how, name="Send-Q (sender, kB)",
                        line={"color": _SEND, "shape": "hv"}, row=1, col=1)
        fig.add_scatter(x=t, y=list(tl["snd_wnd"]), mode=how, name="advertised window (B)",
                        line={"color": _WINDOW, "shape": "hv", "width": 3}, row=2, col=1)
        fig.add_scatter(x=t, y=list(tl["recv_q"]), mode=how, name="Recv-Q (receiver, B)",
                        line={"color": _RECV, "shape": "hv", "dash": "dot"}, row=2, col=1)
        spans = _zero_spans(tl)
        zw0 = s.get("zero_window_after_s")
        if spans and zw0 is not None and zw0 < spans[0][0]:
            # the timeline is sampled (every 50 ms from /proc where ioctls are not allowed); the zero
            # window's own time comes from the wire: the first span starts there
            spans[0] = (float(zw0), spans[0][1])
        for a, b in spans:
            fig.add_vrect(x0=a, x1=b, fillcolor=LIMIT_COLOR, opacity=0.08, line_width=0, row=2, col=1)
    probes = [float(x) for x in (s.get("probe_times") or [])]
    fig.add_scatter(x=probes, y=[0] * len(probes), mode="markers+text", name=f"zero-window probes ({len(probes)})",
                    text=[f"probe {i + 1}" for i in range(len(probes))], textposition="top center",
                    marker={"symbol": "triangle-up", "size": 13, "color": LIMIT_COLOR},
                    hovertemplate="zero-window probe at %{x:.3f} s<extra></extra>", row=2, col=1)
    zw = s.get("zero_window_after_s")
    if zw is not None:
        fig.add_annotation(x=zw, y=0, xref="x2", yref="y2", text=f"window 0 at {zw * 1000:.0f} ms", showarrow=True,
                           arrowhead=2, ax=70, ay=-45, font={"color": LIMIT_COLOR})
    if not modelled:
        fig.add_annotation(x=0.5, y=0.25, xref="paper", yref="paper", showarrow=False,
                           text=f"the simulator does not model the {p.get('reader')} reader's window "
                                f"(only the stalled one): run it for real",
                           font={"color": "#57606a", "size": 13})
    fig.update_yaxes(title_text="kB", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="bytes", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="time (s)", row=2, col=1)
    reader = p.get("reader")
    how = f"stalls {p.get('stall_s'):g} s" if reader == "stalled" else f"is {reader}"
    n = s.get("probes")
    sub = (f"window 0 after {zw * 1000:.0f} ms; {n} probe{'s' if n != 1 else ''}; all read after "
           f"{s.get('done_after_s')} s" if zw is not None else f"all read after {s.get('done_after_s')} s")
    titled(fig, f"Flow control: SO_RCVBUF={p.get('rcvbuf')}, {p.get('bytes'):,} B written, the reader {how}",
           result, sub)
    style(fig, height=560)
    fig.update_layout(margin={"t": 120})
    return fig


def _event(prev: Any, row: Any, first: bool) -> str | None:
    if first:
        return "start: the writer fills Send-Q"
    if row.snd_wnd == 0 and prev.snd_wnd != 0:
        return "zero window: the receiver is full"
    if row.backoff > prev.backoff:
        return f"probe {int(row.backoff)} (backoff {int(row.backoff)})"
    if row.snd_wnd != 0 and prev.snd_wnd == 0:
        return "window reopened (window update)"
    if row.send_q == 0 and prev.send_q != 0:
        return "all sent and acknowledged"
    return None


def flow_control_events(result: Result) -> pd.DataFrame:
    """What happened, one row per event (start, zero window, each probe, window reopened, all
    sent), read from the timeline: the table under the panel's figure."""
    import pandas as pd

    tl = result.timeline
    rows: list[dict[str, Any]] = []
    prev = None
    if tl is not None:
        for row in tl.itertuples(index=False):
            ev = _event(prev, row, prev is None)
            if ev is not None:
                rows.append({"t (s)": round(float(row.t), 3), "event": ev, "window (B)": int(row.snd_wnd),
                             "Recv-Q (B)": int(row.recv_q), "Send-Q (B)": int(row.send_q)})
            prev = row
    if tl is not None and len(tl) and rows and rows[-1]["t (s)"] != round(float(tl["t"].iloc[-1]), 3):
        last = tl.iloc[-1]
        rows.append({"t (s)": round(float(last["t"]), 3), "event": "end of the run", "window (B)": int(last["snd_wnd"]),
                     "Recv-Q (B)": int(last["recv_q"]), "Send-Q (B)": int(last["send_q"])})
    return pd.DataFrame(rows, columns=["t (s)", "event", "window (B)", "Recv-Q (B)", "Send-Q (B)"])


_EDGE = "#24292f"


def window_spans(window: pd.DataFrame) -> list[tuple[float, float]]:
    """Time spans of table ``window`` where the window was zero (right edge == left edge), each
    from its first row to the next row with a window.

    >>> import pandas as pd
    >>> window_spans(pd.DataFrame({"t_s": [0.0, 0.04, 2.0, 2.1], "window": [4096, 0, 0, 4096]}))
    [(0.04, 2.1)]
    """
    return _zero_spans(window, t="t_s", window="window")


def sliding_window_figure(result: Result) -> go.Figure:
    """The sender's sliding window from table ``window`` (flow_control): above, the three edges in
    sequence space as step lines - left edge (snd_una), snd_nxt, right edge - with the window
    shaded between the left and right edges; below, the same measured from the left edge (the
    window and the bytes in flight), on a scale a 4 kB window fills. Zero-window spans (right
    edge == left edge) shaded red in both. Without the table, the figure says why (the notes)."""
    from plotly.subplots import make_subplots

    p = result.params
    w = result.tables.get("window")
    reader = p.get("reader")
    title = (f"The sliding window: SO_RCVBUF={p.get('rcvbuf')}, {p.get('bytes'):,} B, the reader "
             + (f"stalls {p.get('stall_s'):g} s" if reader == "stalled" else f"is {reader}"))
    if w is None or not len(w):
        import plotly.graph_objects as go

        why = next((n for n in result.notes if n.startswith("table window")), "no table window in this Result")
        fig = go.Figure()
        fig.add_annotation(x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, align="center",
                           text=why.replace(": ", ":<br>", 1) + ("<br>mode='sim' shows the model's zero-window stall"
                                                                 if result.mode == "real" else ""),
                           font={"color": "#57606a", "size": 14})
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        titled(fig, title, result, "not shown: the window was " +
               ("not captured" if result.mode == "real" else "not modelled by the simulator"))
        style(fig, height=280, legend=False)
        fig.update_layout(margin={"t": 110})
        return fig
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12, row_heights=[0.55, 0.45],
                        subplot_titles=("sequence space: the window slides from snd_una to the right edge",
                                        "measured from the left edge: the window and the bytes in flight"))
    t = list(w["t_s"])
    how = "lines" if len(w) > 2 or result.mode == "real" else "lines+markers"
    step = {"shape": "hv"}
    fig.add_scatter(x=t, y=list(w["snd_una"]), mode=how, name="left edge (snd_una)",
                    line={**step, "color": _EDGE, "width": 2}, row=1, col=1)
    fig.add_scatter(x=t, y=list(w["snd_nxt"]), mode=how, name="snd_nxt",
                    line={**step, "color": _SEND, "width": 2, "dash": "dot"}, row=1, col=1)
    fig.add_scatter(x=t, y=list(w["right_edge"]), mode=how, name="right edge (snd_una + window)",
                    line={**step, "color": _WINDOW, "width": 3, "dash": "longdash"}, fill="tonexty", fillcolor="rgba(0,158,115,0.10)",
                    row=1, col=1)
    fig.add_scatter(x=t, y=list(w["window"]), mode=how, name="window",
                    line={**step, "color": _WINDOW, "width": 3}, row=2, col=1)
    fig.add_scatter(x=t, y=list(w["in_flight"]), mode=how, name="in flight",
                    line={**step, "color": _SEND, "dash": "dot"}, row=2, col=1)
    spans = window_spans(w)
    for a, b in spans:
        for row in (1, 2):
            fig.add_vrect(x0=a, x1=b, fillcolor=LIMIT_COLOR, opacity=0.08, line_width=0, row=row, col=1)
    if spans:
        a, b = max(spans, key=lambda ab: ab[1] - ab[0])     # the longest stall carries the labels
        fig.add_annotation(x=(a + b) / 2, y=0, xref="x2", yref="y2", showarrow=False, yshift=14,
                           text="zero window: right edge = left edge", font={"color": LIMIT_COLOR})
        after = w[w["t_s"] >= b]
        if len(after) and int(after["window"].iloc[0]) > 0:
            fig.add_annotation(x=b, y=int(after["window"].iloc[0]), xref="x2", yref="y2", showarrow=True,
                               arrowhead=2, ax=-60, ay=-25, text=f"reopens at {b:.3f} s")
    sub = f"{len(w)} changes of the window" + (" (the capture)" if result.mode == "real" else
                                               " (the model has the zero-window stall only)")
    fig.update_yaxes(title_text="relative seq (B)", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="bytes", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="time (s)", row=2, col=1)
    titled(fig, title, result, sub)
    style(fig, height=560)
    fig.update_layout(margin={"t": 120})
    return fig
