"""One function per experiment, each returning a :class:`Result`, real or simulated.

Parameters, defaults and summary keys: ``docs/experiments.md``. Every function takes
``mode="auto"|"real"|"sim"``, ``seed`` and ``profile`` (both for the simulator only).

>>> from tcplab import experiments
>>> r = experiments.accept_queue(backlog=5, clients=20)   # doctest: +SKIP
>>> r.mode, r.summary["established_clients"]               # doctest: +SKIP
('real', 6)
"""

from __future__ import annotations


from tcplab.experiments.accept_queue import accept_queue
from tcplab.experiments.ack_overflow import ack_overflow
from tcplab.experiments.handshake import handshake
from tcplab.experiments.lifecycle import lifecycle
from tcplab.experiments.load import load
from tcplab.experiments.result import Result
from tcplab.experiments.syn_queue import syn_queue
from tcplab.experiments.syn_retries import syn_retries
from tcplab.experiments.time_wait import rebind, time_wait


__all__ = ["Result", "accept_queue", "ack_overflow", "handshake", "lifecycle", "load", "rebind", "syn_queue", "syn_retries", "time_wait"]
