"""Figures of a live watch (:func:`tcplab.watch`): per connection cwnd, srtt, retransmissions and
queue bytes, and each listener's accept queue against its limit, on one time axis.

Two forms from the same panels: :func:`watch_figure` draws a finished watch's DataFrame, and
:class:`WatchFigure` is a ``plotly`` FigureWidget that grows sample by sample (pass its
``update`` as ``on_sample``). Always REAL: a watch reads the live kernel.

>>> import pandas as pd
>>> df = pd.DataFrame({"time": [0.0, 1.0], "conn": ["a->b", "a->b"], "state": ["ESTABLISHED"] * 2,
...                    "cwnd": [10, 12], "srtt_ms": [0.1, 0.1], "total_retrans": [0, 1],
...                    "recv_q": [0, 5], "send_q": [0, 0], "accept_queue": [None, None],
...                    "accept_limit": [None, None]})
>>> [t.name for t in watch_figure(df).data][:2]
['a->b', 'a->b']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tcplab._validate import check_int

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

__all__ = ["watch_figure", "WatchFigure", "WATCH_PANELS"]

#: (row title, column, unit) of the panels of a connection; the accept queue is the last row
WATCH_PANELS: tuple[tuple[str, str, str], ...] = (
    ("cwnd", "cwnd", "segments"),
    ("srtt", "srtt_ms", "ms"),
    ("retransmitted (total)", "total_retrans", "segments"),
    ("Recv-Q (unread)", "recv_q", "bytes"),
    ("Send-Q (unacknowledged)", "send_q", "bytes"),
)
_ROWS = len(WATCH_PANELS) + 1


def _empty_figure(title: str, widget: bool) -> go.Figure:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = [f"{name} ({unit})" for name, _, unit in WATCH_PANELS] + ["accept queue (listeners; dashed: limit)"]
    fig = make_subplots(rows=_ROWS, cols=1, shared_xaxes=True, vertical_spacing=0.03, subplot_titles=titles)
    fig.update_layout(title=title, height=170 * _ROWS, template="plotly_white", legend={"orientation": "h"},
                      margin={"t": 70, "l": 60, "r": 20, "b": 40})
    fig.update_xaxes(title_text="time since the watch began (s)", row=_ROWS, col=1)
    return go.FigureWidget(fig) if widget else fig


def _values(series: Any) -> list[float | None]:
    """A column as JSON-safe numbers: NA and NaN become None (a gap), which a FigureWidget can send."""
    out: list[float | None] = []
    for v in series:
        try:
            f = float(v)
        except (TypeError, ValueError):
            out.append(None)
            continue
        out.append(None if math.isnan(f) else f)
    return out


def _conns(df: pd.DataFrame, max_conns: int) -> tuple[list[str], list[str], int]:
    """(connections, listeners) to draw, in first-seen order, and how many were left out."""
    seen = df.drop_duplicates("conn")
    listen = seen["state"].astype(str) == "LISTEN"
    conns = [str(c) for c in seen.loc[~listen, "conn"]]
    listeners = [str(c) for c in seen.loc[listen, "conn"]]
    left = max(0, len(conns) - max_conns)
    return conns[:max_conns], listeners[:max_conns], left


def watch_figure(df: pd.DataFrame, *, max_conns: int = 20, title: str | None = None) -> go.Figure:
    """The panels of a finished watch: one line per connection (its 4-tuple), per panel.

    At most ``max_conns`` connections (first seen first) are drawn; the title says how many
    were left out. Every row of the table is still in ``df``.
    """
    max_conns = check_int("max_conns", max_conns, 1, 500)
    conns, listeners, left = _conns(df, max_conns) if len(df) else ([], [], 0)
    head = title or "REAL (live kernel, sock_diag): a watch"
    if left:
        head += f" — {len(conns)} connections drawn, {left} more in the table"
    fig = _empty_figure(head, widget=False)
    groups = dict(tuple(df.groupby("conn", observed=True, sort=False))) if len(df) else {}
    for i, conn in enumerate(conns):
        g = groups[conn]
        for row, (_, col, _) in enumerate(WATCH_PANELS, start=1):
            fig.add_scatter(x=list(g["time"]), y=_values(g[col]), name=conn, legendgroup=conn,
                            showlegend=row == 1, mode="lines+markers", row=row, col=1,
                            line={"color": _color(i)})
    for j, conn in enumerate(listeners):
        g = groups[conn]
        fig.add_scatter(x=list(g["time"]), y=_values(g["accept_queue"]), name=conn, mode="lines+markers",
                        row=_ROWS, col=1, line={"color": _color(len(conns) + j)})
        fig.add_scatter(x=list(g["time"]), y=_values(g["accept_limit"]), name=f"{conn} limit", mode="lines",
                        row=_ROWS, col=1, line={"color": _color(len(conns) + j), "dash": "dash"})
    return fig


_PALETTE = ("#0969da", "#2da44e", "#cf222e", "#8250df", "#fb8500", "#1b7c83", "#bf3989", "#6e7781")


def _color(i: int) -> str:
    return _PALETTE[i % len(_PALETTE)]


class WatchFigure:
    """A FigureWidget that grows as samples arrive: ``update(sample)`` appends one sample's rows.

    Traces are made the first time a connection or listener is seen (up to ``max_conns`` of
    each); each keeps its last ``max_points`` points, so a long watch stays responsive.

    >>> import tcplab                                                        # doctest: +SKIP
    >>> fig = tcplab.viz.WatchFigure(); fig.widget                           # doctest: +SKIP
    >>> df = tcplab.watch(port=8080, duration=60, interval=0.5, on_sample=fig.update)   # doctest: +SKIP
    """

    def __init__(self, *, max_conns: int = 20, max_points: int = 2000, title: str | None = None) -> None:
        self.max_conns = check_int("max_conns", max_conns, 1, 500)
        self.max_points = check_int("max_points", max_points, 10, 1_000_000)
        self.widget = _empty_figure(title or "REAL (live kernel, sock_diag): watching…", widget=True)
        self._traces: dict[tuple[str, str], int] = {}   # (conn, column) -> trace index
        self._conns: list[str] = []
        self._listeners: list[str] = []
        self.left_out: set[str] = set()
        self.samples = 0

    def _trace(self, conn: str, column: str, row: int, color: str, name: str, dash: str | None = None,
               legend: bool = True) -> int:
        key = (conn, column)
        if key not in self._traces:
            self.widget.add_scatter(x=[], y=[], name=name, legendgroup=conn, showlegend=legend,
                                    mode="lines+markers" if dash is None else "lines", row=row, col=1,
                                    line={"color": color, **({"dash": dash} if dash else {})})
            self._traces[key] = len(self.widget.data) - 1
        return self._traces[key]

    def _append(self, index: int, xs: Sequence[float], ys: Sequence[float | None]) -> None:
        trace = self.widget.data[index]
        trace.x = (tuple(trace.x or ()) + tuple(xs))[-self.max_points:]
        trace.y = (tuple(trace.y or ()) + tuple(ys))[-self.max_points:]

    def update(self, sample: pd.DataFrame) -> None:
        """Add one sample (a DataFrame from :func:`tcplab.watch_samples`, or ``on_sample``)."""
        self.samples += 1
        if not len(sample):
            return
        with self.widget.batch_update():
            for conn, g in sample.groupby("conn", observed=True, sort=False):
                conn = str(conn)
                listen = str(g["state"].iloc[-1]) == "LISTEN"
                group = self._listeners if listen else self._conns
                if conn not in group:
                    if len(group) >= self.max_conns:
                        self.left_out.add(conn)
                        continue
                    group.append(conn)
                color = _color(group.index(conn) + (self.max_conns if listen else 0))
                xs = list(g["time"])
                if listen:
                    self._append(self._trace(conn, "accept_queue", _ROWS, color, conn), xs, _values(g["accept_queue"]))
                    self._append(self._trace(conn, "accept_limit", _ROWS, color, f"{conn} limit", dash="dash"),
                                 xs, _values(g["accept_limit"]))
                    continue
                for row, (_, col, _) in enumerate(WATCH_PANELS, start=1):
                    self._append(self._trace(conn, col, row, color, conn, legend=row == 1), xs, _values(g[col]))
            if self.left_out:
                self.widget.layout.title.text = (f"REAL (live kernel, sock_diag): {len(self._conns)} connections "
                                                 f"drawn, {len(self.left_out)} more in the table")
