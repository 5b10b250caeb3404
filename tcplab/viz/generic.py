"""The figure any experiment gets from its spec's :class:`~tcplab.experiments.spec.Plot`:
its ``y`` columns against ``x`` of the timeline or of a table, titled with the mode.

A new experiment needs no figure code to be seen; a hand-written figure in ``viz`` may still
tell its story better.

>>> from tcplab import experiments
>>> fig = experiment_figure(experiments.accept_queue(backlog=3, clients=8, mode="sim"))
>>> [t.name for t in fig.data]
['recv_q', 'established_clients', 'syn_sent_clients']

A spec's ``Plot.figure`` names a figure of its own (congestion: cwnd, sRTT and the queue); the
generic drawing of the same columns keeps a missing value (ssthresh before slow start ends) a gap:

>>> from tcplab.experiments.spec import Plot
>>> r = experiments.congestion(rate_mbit=10, rtt_ms=20, buffer_packets=20, duration=1, mode="sim")
>>> experiment_figure(r).layout.yaxis3.title.text
'queue (packets)'
>>> c = experiment_figure(r, Plot(y=("cwnd", "ssthresh")))
>>> any(v is None for v in c.data[1].y), any(isinstance(v, float) and v != v for v in c.data[1].y)
(True, False)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tcplab.experiments.registry import spec as _spec
from tcplab.viz.common import DASHES, SYMBOLS, style, titled

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from tcplab.experiments.result import Result
    from tcplab.experiments.spec import Plot

__all__ = ["experiment_figure", "experiment_table", "resolve"]


def resolve(path: str) -> Callable[[Result], Any]:
    """The function a spec's ``Plot.figure`` or ``Plot.table`` names, ``"module:function"`` under
    ``tcplab.viz``.

    >>> resolve("congestion:congestion_figure").__name__
    'congestion_figure'
    """
    import importlib

    mod, sep, fn = path.partition(":")
    if not sep or not mod or not fn:
        raise ValueError(f"a plot function is named 'module:function' under tcplab.viz, not {path!r}")
    return getattr(importlib.import_module(f"tcplab.viz.{mod}"), fn)


def experiment_table(result: Result, plot: Plot | None = None) -> Any:
    """The table a panel shows under ``result``'s figure (its spec's ``Plot.table``; default: the
    first table), a DataFrame or None.

    >>> from tcplab import experiments
    >>> list(experiment_table(experiments.accept_queue(backlog=3, clients=8, mode="sim")).columns)[:2]
    ['client', 'port']
    """
    plot = plot or _spec(result.name).plot
    name = plot.table if plot is not None else ""
    if name and ":" in name:
        return resolve(name)(result)
    if name:
        return result.tables.get(name)
    return next(iter(result.tables.values()), None)


def _frame(result: Result, plot: Plot) -> Any:
    if plot.source == "timeline":
        return result.timeline
    return result.tables.get(plot.source)


def _values(column: Any) -> list[Any]:
    """A column as a list with gaps as None: NaN (a missing value, e.g. ssthresh before slow start
    ends) and inf are not JSON, and a FigureWidget's comm message carrying them fails to serialize;
    plotly draws None as a gap."""
    return [None if isinstance(v, float) and not math.isfinite(v) else v
            for v in column.astype(object).where(column.notna(), None)]


def experiment_figure(result: Result, plot: Plot | None = None) -> go.Figure:
    """A plotly figure of ``result`` as its spec's ``plot`` (or ``plot``) says.

    Without a plot (the spec has none) it shows the summary's numeric values as bars.
    """
    import plotly.graph_objects as go

    s = _spec(result.name)
    plot = plot or s.plot
    if plot is not None and plot.figure:
        return resolve(plot.figure)(result)
    fig = go.Figure()
    if plot is None or _frame(result, plot) is None or len(_frame(result, plot)) == 0:
        nums = {k: v for k, v in result.summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        fig.add_bar(x=list(nums), y=list(nums.values()), text=[f"{v:g}" for v in nums.values()],
                    textposition="outside", name="summary")
        titled(fig, s.title if plot is None else f"{plot.title or s.title} (no rows)", result)
        return style(fig)
    df = _frame(result, plot)
    # each line its own dash, each marker series its own symbol: told apart without colour
    for i, col in enumerate(plot.y):
        if col not in df.columns:
            raise ValueError(f"plot column {col!r} is not in {plot.source} (columns: {', '.join(map(str, df.columns))})")
        x, y = _values(df[plot.x]), _values(df[col])
        if plot.kind == "bar":
            fig.add_bar(x=x, y=y, name=col, marker_pattern_shape=("", "/", "x", ".", "+", "-")[i % 6])
        elif plot.kind == "markers":
            fig.add_scatter(x=x, y=y, mode="markers", name=col, marker={"size": 9, "symbol": SYMBOLS[i % len(SYMBOLS)]})
        else:
            fig.add_scatter(x=x, y=y, mode="lines", name=col,
                            line={"shape": "hv" if plot.kind == "step" else "linear", "dash": DASHES[i % len(DASHES)]})
    fig.update_xaxes(title_text=plot.x_title)
    fig.update_yaxes(title_text=plot.y_title)
    titled(fig, plot.title or s.title, result)
    return style(fig)
