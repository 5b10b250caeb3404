"""One function per experiment, each returning a :class:`Result`, real or simulated.

Each experiment is declared once, as data (``SPEC`` in ``tcplab/experiments/<name>.py``); the
functions below, their parameters and docstrings, the simulator's dispatch, the CLI and
docs/experiments.md are derived from those specs (:mod:`tcplab.experiments.registry`). Every
function takes ``mode="auto"|"real"|"sim"``, ``seed`` and ``profile`` (both for the simulator only).

>>> from tcplab import experiments
>>> r = experiments.accept_queue(backlog=5, clients=20)   # doctest: +SKIP
>>> r.mode, r.summary["established_clients"]               # doctest: +SKIP
('real', 6)
>>> experiments.simulate("accept_queue", {"backlog": 5}).summary["established_clients"]
6
"""

from __future__ import annotations

from tcplab.experiments.registry import functions as _functions
from tcplab.experiments.registry import simulate
from tcplab.experiments.result import Result

globals().update(_functions())

__all__ = ["Result", "simulate", *sorted(_functions())]
