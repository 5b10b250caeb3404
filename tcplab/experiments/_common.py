"""Helpers shared by the real runners (they run inside the namespace child)."""

from __future__ import annotations

import threading
import time
from typing import Any

from tcplab.errors import SockDiagUnavailable
from tcplab.kernel.diag import listen_queues
from tcplab.kernel.netstat import counters_delta, read_counters
from tcplab.kernel.procnet import read_proc_net_tcp
from tcplab.model.outcome import Timing


__all__ = ["counters_now", "delta", "proc_sockets", "listener_queues", "Clock", "pick", "LagMeter", "BUSY_NOTE",
           "meters_of_this_run"]

#: how the sentence of :meth:`LagMeter.note` starts. Text only: the flag is ``Result.fidelity``
#: (``result.trusted``), which every meter of a run feeds (see :func:`meters_of_this_run`)
BUSY_NOTE = "host too busy to time this run"

_meters = threading.local()


def counters_now() -> dict[str, int]:
    return read_counters()


def delta(before: dict[str, int], keep: tuple[str, ...] = ("ListenOverflows", "ListenDrops")) -> dict[str, int]:
    """Nonzero counter deltas since ``before``, plus ``keep`` even when zero."""
    d = counters_delta(before, counters_now())
    return {k: v for k, v in d.items() if v or k in keep}


def pick(counters: dict[str, int], *names: str) -> dict[str, int]:
    return {n: int(counters.get(n, 0)) for n in names}


def proc_sockets() -> list[Any]:
    """/proc/net/tcp{,6} of this namespace (request sockets show as SYN_RECV)."""
    return read_proc_net_tcp()


def listener_queues(inode: int) -> tuple[int | None, int | None, str | None]:
    """(accept queue length, limit, note) of the listener with ``inode``.

    sock_diag gives both (``tcp_diag_get_info()``); /proc/net/tcp only the length, so
    without sock_diag the limit is None — the experiment measures the rule, it must not
    fill in the rule's own answer.
    """
    try:
        q = listen_queues().get(inode)
        if q is not None:
            return q[0], q[1], None
        note = "listener not found by sock_diag"
    except SockDiagUnavailable as e:
        note = f"sock_diag unavailable ({e.reason}): the listener's Send-Q (its limit) is unknown"
    for rec in proc_sockets():
        if rec.inode == inode and rec.state == "LISTEN":
            return rec.recv_q, None, note
    return None, None, note


class Clock:
    """Seconds since the run started (monotonic)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.t0

    def sleep_until(self, t: float) -> None:
        left = t - self()
        if left > 0:
            time.sleep(left)


class LagMeter:
    """The runner's own scheduling lag: how much later than asked it got to look again.

    A sampling loop that asks to sleep ``interval`` s calls :meth:`tick` at every sample; a gap
    much longer than ``interval`` means the process was not scheduled (a busy host), so an event
    seen at that sample happened up to ``gap`` s earlier than it was seen. ``limit`` is the lag
    above which a timing must not be presented as the kernel's without saying so.

    >>> m = LagMeter(interval=0.002, limit=0.05)
    >>> [round(m.tick(t), 3) for t in (0.0, 0.002, 0.004, 0.204)]
    [0.0, 0.002, 0.002, 0.2]
    >>> round(m.max_gap, 3), m.too_busy
    (0.2, True)
    >>> print(m.note("SYN times"))   # doctest: +ELLIPSIS
    host too busy to time this run: the sampler asked to look every 2 ms but went up to 200 ms without the CPU; SYN times may be off by that much ...
    >>> m.timing()
    Timing(name='sampler', ms=198.0, detail='the sampler asked to look every 2 ms but went up to 200 ms without the CPU', limit_ms=50.0)

    A meter reports itself: every LagMeter made during a real run becomes one of the run's
    ``Outcome.timings`` (:func:`meters_of_this_run`), which the run's fidelity verdict reads.
    """

    def __init__(self, interval: float, limit: float, name: str = "sampler") -> None:
        self.interval, self.limit, self.name = interval, limit, name
        self.last: float | None = None
        self.max_gap = 0.0
        self.samples = 0
        made = getattr(_meters, "made", None)
        if made is not None:
            made.append(self)

    def tick(self, now: float) -> float:
        """Record a sample taken at ``now`` (s); returns the gap since the previous one."""
        gap = 0.0 if self.last is None else now - self.last
        self.last = now
        self.samples += 1
        self.max_gap = max(self.max_gap, gap)
        return gap

    @property
    def too_busy(self) -> bool:
        return self.max_gap - self.interval > self.limit

    def timing(self) -> Timing:
        """What this meter measured, as a :class:`~tcplab.model.outcome.Timing`: the lag beyond
        the interval, against the meter's limit."""
        return Timing(self.name, round((self.max_gap - self.interval) * 1000, 3),
                      f"the {self.name} asked to look every {self.interval * 1000:.0f} ms but went up to "
                      f"{self.max_gap * 1000:.0f} ms without the CPU", limit_ms=round(self.limit * 1000, 3))

    def note(self, what: str) -> str:
        return (f"{BUSY_NOTE}: the sampler asked to look every {self.interval * 1000:.0f} ms but went up to "
                f"{self.max_gap * 1000:.0f} ms without the CPU; {what} may be off by that much (the kernel's timers are not, "
                "only our view of them): rerun when the host is quieter, or use mode='sim' for the schedule")


class meters_of_this_run:
    """Collect the :class:`LagMeter` objects made in this thread while the block runs (a real
    run; ``tcplab.experiments._mode`` wraps every real runner in it).

    >>> with meters_of_this_run() as made:
    ...     m = LagMeter(0.001, 0.05)
    >>> made == [m]
    True
    """

    def __enter__(self) -> list[LagMeter]:
        self.outer = getattr(_meters, "made", None)
        _meters.made = []
        return _meters.made

    def __exit__(self, *exc: Any) -> None:
        _meters.made = self.outer
