"""Panels for the course: sliders and a FigureWidget built once, experiments re-run on
change, the REAL/SIMULATED header on every result, and self-check quizzes.

>>> from tcplab.widgets import AcceptQueuePanel
>>> panel = AcceptQueuePanel(mode="sim", backlog=3, clients=10)
>>> panel.controls["backlog"].value = 5          # as a learner moving the slider
>>> panel.result.summary["established_clients"]
6

Names load on first use, so ``import tcplab.widgets`` does not import ipywidgets. The
module's own helpers are private: its public namespace is ``__all__`` and its submodules.
"""

import importlib as _importlib
import typing as _typing

_EXPORTS = {
    "ExperimentPanel": "generic", "A11y": "a11y",
    "Panel": "common", "SelfCheck": "common", "ProgressBar": "common", "mode_toggle": "common",
    "result_header": "common", "run_button": "common",
    "AcceptQueuePanel": "queues", "AckOverflowPanel": "queues", "SynQueuePanel": "queues", "SynRetriesPanel": "retries",
    "StateDiagramPanel": "states", "Prediction": "predict", "Attempts": "predict",
    "ClosingPanel": "closing", "CloseWaitLeak": "closing",
    "TimeWaitPanel": "time_wait", "RebindPanel": "time_wait",
    "TuningLab": "load", "MysteryServer": "diagnose",
    "accept_queue_quiz": "quiz", "ack_overflow_quiz": "quiz", "syn_queue_quiz": "quiz", "syn_retries_quiz": "quiz",
    "closing_quiz": "closing", "port_range_quiz": "time_wait", "queue_quiz": "load",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> _typing.Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tcplab.widgets' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f"tcplab.widgets.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
