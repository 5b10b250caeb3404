"""A small discrete-event engine: a heap of ``(time, priority, seq, action, arg)``.

Ties resolve by priority, then by the order events were scheduled (``seq``), as in
simpy's ``core.py``, so a run is exactly reproducible. The engine is bounded: it stops
at ``until`` (simulated seconds) or after ``max_events``.

>>> eng = Engine()
>>> log = []
>>> _ = eng.schedule(2.0, log.append, "b")
>>> _ = eng.schedule(1.0, log.append, "a")
>>> _ = eng.schedule(1.0, log.append, "first", priority=-1)
>>> eng.run(until=5.0)
3
>>> log, eng.now
(['first', 'a', 'b'], 5.0)

Random numbers come from a seeded :class:`SplitMix64` (or any object with ``random()``,
e.g. ``random.Random(seed)``) passed in: the sim never touches a global RNG.

>>> SplitMix64(1).random() == SplitMix64(1).random()
True
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Any, Protocol

from tcplab.errors import EventLimitExceeded  # re-exported: tcplab.sim.engine.EventLimitExceeded

__all__ = ["Engine", "SplitMix64", "Rng", "EventLimitExceeded", "poisson_times"]

_MASK = (1 << 64) - 1


class Rng(Protocol):
    def random(self) -> float: ...


class SplitMix64:
    """Seeded pseudo-random floats in [0, 1) (Steele et al., SplitMix64). Pure and fast
    enough; ``random.Random`` works too wherever an ``rng`` is accepted."""

    __slots__ = ("_x",)

    def __init__(self, seed: int = 0) -> None:
        self._x = seed & _MASK

    def random(self) -> float:
        x = self._x = (self._x + 0x9E3779B97F4A7C15) & _MASK
        z = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return ((z ^ (z >> 31)) >> 11) * (1.0 / 9007199254740992.0)


def poisson_times(rng: Rng, rate: float, duration: float, start: float = 0.0) -> list[float]:
    """Arrival times of a Poisson process of ``rate``/s in ``[start, start+duration)``.

    >>> ts = poisson_times(SplitMix64(0), 100.0, 10.0); 900 < len(ts) < 1100
    True
    """
    out: list[float] = []
    t = start
    end = start + duration
    log = math.log
    rnd = rng.random
    while True:
        t -= log(1.0 - rnd()) / rate
        if t >= end:
            return out
        out.append(t)


class Engine:
    """Event loop over simulated time. ``now`` only moves forward."""

    __slots__ = ("now", "_heap", "_seq", "events_run")

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, int, Callable[[Any], Any], Any]] = []
        self._seq = 0
        self.events_run = 0

    def schedule(self, time: float, action: Callable[[Any], Any], arg: Any = None, *,
                 priority: int = 0) -> int:
        """Run ``action(arg)`` at ``time`` (not before ``now``). Returns the event's seq."""
        if time < self.now:
            raise ValueError(f"cannot schedule in the past: {time} < now {self.now}")
        self._seq += 1
        heapq.heappush(self._heap, (time, priority, self._seq, action, arg))
        return self._seq

    def run(self, until: float = math.inf, max_events: int = 50_000_000) -> int:
        """Run events with ``time <= until``; leave ``now == until`` (if finite). Returns the
        number of events run."""
        heap = self._heap
        pop = heapq.heappop
        n = 0
        while heap and heap[0][0] <= until:
            t, _p, _s, action, arg = pop(heap)
            self.now = t
            action(arg)
            n += 1
            if n > max_events:
                raise EventLimitExceeded(f"more than {max_events} events before t={t:g} s")
        if until != math.inf:
            self.now = max(self.now, until)
        self.events_run += n
        return n
