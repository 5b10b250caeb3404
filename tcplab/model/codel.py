"""CoDel (RFC 8289) as Linux runs it: a sans-IO dequeue decision on a FIFO of timestamped packets.

The control loop of ``include/net/codel_impl.h`` (``codel_should_drop()``, ``codel_dequeue()``), the
reference the RFC's pseudo-code follows:

- Each packet carries its enqueue time; at dequeue its **sojourn time** is ``now - enqueued``.
- While the sojourn stays under ``target`` (5 ms), or at most one MTU is left queued, nothing happens.
- Once it has been above ``target`` for a whole ``interval`` (100 ms), CoDel enters the *dropping*
  state and drops (or, with ECN, marks CE on an ECN-capable packet) the head packet; the next drop is
  due ``interval / sqrt(count)`` later (the control law), so drops come faster while the queue stays.
- The first sojourn under ``target`` leaves the dropping state. Re-entering soon after (within 16
  intervals) resumes near the last drop rate (``count = count - lastcount``).
- With ``ecn``, a packet that can carry CE (ECT(0)/ECT(1)) is marked and *sent* instead of dropped
  (``INET_ECN_set_ce()`` succeeds); a not-ECT packet (a retransmission, a SYN) is dropped as without ECN.

Linux computes ``1/sqrt(count)`` by Newton steps in fixed point (``codel_Newton_step()``); this
model uses the exact value the RFC writes. Times are seconds (floats); the caller owns the clock.

>>> q = Fifo()
>>> for i in range(30):
...     q.push(Packet(enqueued=0.0, size=1500, ect=False, data=i))
>>> c = CoDel()
>>> c.dequeue(0.010, q).packet.data           # 10 ms above target: the clock starts, no drop
0
>>> c.dequeue(0.111, q).dropped[0].data        # above target for a whole interval: drop the head
1
>>> c.dropping, c.count, round(c.drop_next, 3)  # the next drop is due interval / sqrt(1) later
(True, 1, 0.211)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CoDel", "Fifo", "Packet", "Dequeued", "TARGET_S", "INTERVAL_S"]

#: RFC 8289 section 4.3/4.4 and sch_codel's defaults (codel_params_init(): MS2TIME(5), MS2TIME(100))
TARGET_S = 0.005
INTERVAL_S = 0.100


@dataclass
class Packet:
    """One queued packet: when it was enqueued (s), its size on the wire (bytes), whether it is
    ECN-capable (ECT(0) or ECT(1)), and the caller's own data (the bytes, an id...)."""

    enqueued: float
    size: int
    ect: bool
    data: Any = None


class Fifo:
    """The queue CoDel serves: packets in arrival order and their bytes (the ``backlog``).

    >>> q = Fifo(); q.push(Packet(0.0, 1500, False)); len(q), q.backlog
    (1, 1500)
    """

    __slots__ = ("items", "backlog")

    def __init__(self) -> None:
        self.items: deque[Packet] = deque()
        self.backlog = 0

    def __len__(self) -> int:
        return len(self.items)

    def push(self, p: Packet) -> None:
        self.items.append(p)
        self.backlog += p.size

    def pop(self) -> Packet | None:
        if not self.items:
            return None
        p = self.items.popleft()
        self.backlog -= p.size
        return p


@dataclass
class Dequeued:
    """What one dequeue gave: the packet to send (None: the queue ran empty), whether CoDel marked
    it CE, the packets it dropped on the way, and the sojourn time of the packet sent (s)."""

    packet: Packet | None
    marked: bool = False
    dropped: list[Packet] = field(default_factory=list)
    sojourn: float | None = None


class CoDel:
    """The CoDel state (``struct codel_vars``) and its dequeue (``codel_dequeue()``).

    ``mtu``: a backlog of at most this many bytes never counts as a standing queue
    (``params->mtu``, ``psched_mtu()``: 1500 on the path's TUN device).
    """

    __slots__ = ("target", "interval", "mtu", "ecn", "count", "lastcount", "dropping", "first_above_time",
                 "drop_next", "drops", "marks")

    def __init__(self, target: float = TARGET_S, interval: float = INTERVAL_S, mtu: int = 1500,
                 ecn: bool = False) -> None:
        if not 0 < target < interval:
            raise ValueError(f"target must be in (0, interval), not {target!r}")
        self.target, self.interval, self.mtu, self.ecn = target, interval, mtu, ecn
        self.count = self.lastcount = 0
        self.dropping = False
        self.first_above_time = 0.0          # 0: the sojourn is under target (codel_vars' 0)
        self.drop_next = 0.0
        self.drops = self.marks = 0

    def control_law(self, t: float) -> float:
        """``codel_control_law()``: the next drop ``interval / sqrt(count)`` after ``t``."""
        return t + self.interval / math.sqrt(self.count)

    def _should_drop(self, p: Packet | None, now: float, backlog: int) -> bool:
        """``codel_should_drop()``: the sojourn has been above target for at least an interval."""
        if p is None:
            self.first_above_time = 0.0
            return False
        if now - p.enqueued < self.target or backlog <= self.mtu:
            self.first_above_time = 0.0
            return False
        if self.first_above_time == 0.0:
            self.first_above_time = now + self.interval
            return False
        return now > self.first_above_time

    def dequeue(self, now: float, q: Fifo, backlog: Callable[[], int] | None = None) -> Dequeued:
        """The next packet to send at ``now`` (``codel_dequeue()``), dropping or marking on the way.

        ``backlog``: the bytes that count as queued (default ``q.backlog``). fq_codel runs one CoDel per
        flow on that flow's queue but passes the whole qdisc's ``sch->qstats.backlog``
        (``fq_codel_dequeue()``), so a flow is never spared as "at most one MTU queued" while others wait.
        """
        return self._dequeue(now, q, backlog or (lambda: q.backlog))

    def _dequeue(self, now: float, q: Fifo, backlog: Callable[[], int]) -> Dequeued:
        p = q.pop()
        out = Dequeued(None)
        if p is None:
            self.dropping = False
            return out
        drop = self._should_drop(p, now, backlog())
        if self.dropping:
            if not drop:
                self.dropping = False           # sojourn under target: leave the dropping state
            elif now >= self.drop_next:
                while self.dropping and now >= self.drop_next:
                    self.count += 1
                    if self.ecn and p is not None and p.ect:
                        self.marks += 1
                        out.marked = True
                        self.drop_next = self.control_law(self.drop_next)
                        break
                    if p is not None:
                        out.dropped.append(p)
                        self.drops += 1
                    p = q.pop()
                    if not self._should_drop(p, now, backlog()):
                        self.dropping = False
                    else:
                        self.drop_next = self.control_law(self.drop_next)
        elif drop:
            if self.ecn and p.ect:
                self.marks += 1
                out.marked = True
            else:
                out.dropped.append(p)
                self.drops += 1
                p = q.pop()
                self._should_drop(p, now, backlog())
            self.dropping = True
            # re-entering soon after leaving: start near the drop rate that controlled the last cycle
            delta = self.count - self.lastcount
            if delta > 1 and now - self.drop_next < 16 * self.interval:
                self.count = delta
            else:
                self.count = 1
            self.lastcount = self.count
            self.drop_next = self.control_law(now)
        out.packet = p
        if p is not None:
            out.sojourn = now - p.enqueued
        return out
