"""The watch figures from synthetic samples (no socket): one trace per connection and panel, the
listener's queue and limit, bounds on connections and points, JSON-safe gaps."""

from __future__ import annotations

import json

import pytest

from tcplab.viz.watch import WATCH_PANELS, WatchFigure, watch_figure
from tcplab.watching import _Columns, _frame
from tests.test_watch_filter import _rows


def _sample(t: float):
    cols = _Columns()
    cols.add(t, _rows())
    frame = _frame(cols)
    frame.attrs["t"] = t
    return frame


def _watch(samples: int = 3):
    cols = _Columns()
    for k in range(samples):
        cols.add(float(k), _rows())
    return _frame(cols)


def test_watch_figure_draws_each_connection_in_every_panel_and_the_listener_queue():
    df = _watch()
    fig = watch_figure(df)
    names = [t.name for t in fig.data]
    conns = [c for c in df.conn.astype(str).unique() if "(listen)" not in c]
    assert len(fig.data) == len(conns) * len(WATCH_PANELS) + 2
    assert names[-2:] == ["127.0.0.1:80 (listen)", "127.0.0.1:80 (listen) limit"]
    assert list(fig.data[-2].y) == [3, 3, 3] and list(fig.data[-1].y) == [128, 128, 128]
    assert fig.layout.title.text.startswith("REAL")
    json.loads(fig.to_json())                          # NA and NaN went out as gaps (null)
    tw = next(t for t in fig.data if t.yaxis == "y" and t.name.endswith(":5001"))
    assert list(tw.y) == [None, None, None]            # TIME_WAIT: no cwnd, a gap not a 0


def test_watch_figure_says_how_many_connections_were_left_out():
    fig = watch_figure(_watch(), max_conns=1)
    assert "1 connections drawn, 1 more in the table" in fig.layout.title.text
    with pytest.raises(ValueError, match="max_conns must be an int in 1..500"):
        watch_figure(_watch(), max_conns=0)


def test_watch_figure_grows_and_keeps_the_last_points():
    fig = WatchFigure(max_points=10)
    for k in range(12):
        fig.update(_sample(float(k)))
    listen = [t for t in fig.widget.data if t.name == "127.0.0.1:80 (listen)"][0]
    assert fig.samples == 12 and len(listen.x) == 10 and listen.x[0] == 2.0 and listen.x[-1] == 11.0
    assert len(fig.widget.data) == 2 * len(WATCH_PANELS) + 2
    json.loads(fig.widget.to_json())
    small = WatchFigure(max_conns=1)
    small.update(_sample(0.0))
    assert len(small.left_out) == 1 and "1 more in the table" in small.widget.layout.title.text
    with pytest.raises(ValueError, match="max_points must be an int in 10..1000000"):
        WatchFigure(max_points=1)
