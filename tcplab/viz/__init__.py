"""Figures: pure functions from a :class:`~tcplab.experiments.Result` (or model tables)
to a plotly Figure. Every title says REAL (kernel) or SIMULATED (profile).

>>> from tcplab import experiments, viz
>>> fig = viz.accept_queue_fill(experiments.accept_queue(backlog=3, clients=8, mode="sim"))
>>> list(fig.data[0].y)
[4, 4, 4]

Names load on first use, so ``import tcplab.viz`` does not import plotly.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "state_diagram": "states", "state_count_table": "states", "state_counts": "states",
    "sequence_diagram": "handshake",
    "accept_queue_fill": "queues", "ack_overflow_fates": "queues", "syn_queue_fill": "queues", "backlog_sweep": "queues",
    "syn_timeline": "retries", "failure_curve": "retries",
    "state_timeline": "closing", "compare_closes": "closing",
    "pile_up": "time_wait", "compare_runs": "time_wait", "rebind_matrix": "time_wait",
    "dashboard": "load", "connect_latency": "load",
    "counter_table": "diagnose", "counters_figure": "diagnose", "state_summary": "diagnose",
    "mode_tag": "common", "alt_text": "common", "described": "common", "experiment_figure": "generic",
    "cubic_figure": "cubic", "cubic_epoch_table": "cubic",
    "sliding_window_figure": "flow_control",
    "watch_figure": "watch", "WatchFigure": "watch",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tcplab.viz' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tcplab.viz.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
