"""The simulator: a discrete-event engine over the model's kernel rules, and one pure runner per
experiment (``queues``, ``overflow``, ``sockets``). Each runner takes the validated ``params`` of
its experiment, a :class:`~tcplab.model.profiles.KernelProfile` and an rng, and returns an
:class:`~tcplab.model.outcome.Outcome`; the experiment specs (``tcplab.experiments``) name them,
and ``tcplab.experiments.simulate(name, params)`` runs one.

One generator per run: ``simulate`` seeds a :class:`SplitMix64` from the run's ``seed`` and every
random draw of the run comes from it. One clock: scenarios advance time through
:class:`Engine` (the congestion path too, :mod:`tcplab.sim.bottleneck`, which drives the sans-IO
:class:`tcplab.model.cc.CongestionControl` a real trace can drive as well), except the listen-queue
loop (:mod:`tcplab.sim.listenq`, whose docstring gives the measured reason).

>>> from tcplab.sim.queues import accept_queue
>>> from tcplab.model.profiles import get_profile
>>> p = {"backlog": 5, "somaxconn": None, "clients": 20, "abort_on_overflow": False,
...      "accept_after": None, "settle": 1.5}
>>> accept_queue(p, get_profile(None), SplitMix64(0)).summary["established_clients"]
6
"""

from __future__ import annotations

from tcplab.model.profiles import PROFILES
from tcplab.sim.engine import Engine, SplitMix64

__all__ = ["PROFILES", "Engine", "SplitMix64"]
