"""Ephemeral ports, TIME_WAIT, tcp_tw_reuse, tcp_max_tw_buckets and the SO_REUSEADDR rule.

* TIME_WAIT lasts ``TCP_TIMEWAIT_LEN`` (60 s, include/net/tcp.h) whatever tcp_fin_timeout says.
* ``inet_twsk_alloc()``: ``if (tw_refcount - 1 >= sysctl_max_tw_buckets) return NULL`` ->
  the socket closes without TIME_WAIT (TCPTimeWaitOverflow). "TW" counts TIME_WAITs *entered*.
* ``tcp_twsk_unique()``: a connect() may take over a TIME_WAIT 4-tuple only with timestamps
  and ``tw_reuse`` (1, or 2 on loopback) after ``tw_entry_stamp + tcp_tw_reuse_delay``
  (strictly later, ``time_after32``; 6.14+). Before 6.14 the stamp is in whole seconds
  (``time_after32(ktime_get_seconds(), tw_ts_recent_stamp)``): the port is reusable once the
  seconds clock ticks, 0 to 1 s after the TIME_WAIT began (``seconds_phase``). That counts TWRecycled.
* ``inet_bind_conflict()``: no conflict only if ``sk->sk_reuse && sk2->sk_reuse &&
  sk2->sk_state != TCP_LISTEN``; the TIME_WAIT mini-socket keeps the old ``sk_reuse``.

>>> t = PortTable(port_range=(40000, 40001), tw_reuse=0)
>>> t.connect(0.0), t.connect(0.0), t.connect(0.0)
(40000, 40001, None)
>>> t.close(0.1, 40000); t.time_wait_count(0.1)
1
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tcplab.model.listen import new_counters

__all__ = ["PortTable", "bind_conflict", "TIMEWAIT_LEN"]

TIMEWAIT_LEN = 60.0


@dataclass
class PortTable:
    """The client's ephemeral ports towards one server ``(address, port)`` on loopback."""

    port_range: tuple[int, int] = (32768, 60999)
    tw_reuse: int = 2                 # 2 = loopback only, and this is loopback
    timestamps: bool = True
    tw_reuse_delay: float = 1.0
    #: None: the 6.14+ rule (``tw_reuse_delay`` after the stamp). A float in [0, 1): the older rule,
    #: the seconds clock's phase at time 0 (the port is reusable once that clock ticks past the stamp)
    seconds_phase: float | None = None
    max_tw_buckets: int = 262144
    timewait_len: float = TIMEWAIT_LEN
    counters: dict[str, int] = field(default_factory=new_counters)

    def __post_init__(self) -> None:
        self.in_use: set[int] = set()
        self.time_wait: dict[int, float] = {}   # port -> tw_entry_stamp
        self._next = 0

    def _expire(self, now: float) -> None:
        for port, stamp in list(self.time_wait.items()):
            if now >= stamp + self.timewait_len:
                del self.time_wait[port]

    def time_wait_count(self, now: float) -> int:
        self._expire(now)
        return len(self.time_wait)

    def connect(self, now: float) -> int | None:
        """Pick a local port like ``__inet_hash_connect()``: a free port, else a TIME_WAIT
        port that ``tcp_twsk_unique()`` lets us reuse; None means EADDRNOTAVAIL.

        The scan starts at an offset of ``low``'s parity (``offset &= ~1U``, since Linux 4.6)
        and tries those ports, step 2, before the others — so connect() uses half of the
        range first and leaves the other half to bind().
        """
        self._expire(now)
        lo, hi = self.port_range
        same_parity = list(range(lo, hi + 1, 2))
        other_parity = list(range(lo + 1, hi + 1, 2))
        start = self._next % max(1, len(same_parity))
        order = same_parity[start:] + same_parity[:start] + other_parity[start:] + other_parity[:start]
        reusable = None
        for port in order:
            if port in self.in_use:
                continue
            stamp = self.time_wait.get(port)
            if stamp is None:
                self.in_use.add(port)
                self._next = (port - lo) // 2 + 1
                return port
            if reusable is None and self.tw_reuse and self.timestamps and self._aged(stamp, now):
                reusable = port
        if reusable is not None:
            del self.time_wait[reusable]
            self.counters["TWRecycled"] += 1
            self.in_use.add(reusable)
            self._next = (reusable - lo) // 2 + 1
            return reusable
        return None

    def _aged(self, stamp: float, now: float) -> bool:
        """Whether a TIME_WAIT stamped at ``stamp`` may be reused at ``now`` (``tcp_twsk_unique()``).

        >>> PortTable(seconds_phase=0.25)._aged(0.5, 0.8), PortTable(seconds_phase=0.25)._aged(0.5, 0.76)
        (True, True)
        >>> PortTable()._aged(0.5, 1.5), PortTable()._aged(0.5, 1.51)
        (False, True)
        """
        if self.seconds_phase is None:
            return now > stamp + self.tw_reuse_delay
        return math.floor(now + self.seconds_phase) > math.floor(stamp + self.seconds_phase)

    def close(self, now: float, port: int, *, time_wait: bool = True) -> None:
        """Close the connection on ``port``; the active closer enters TIME_WAIT unless the
        bucket limit is reached (then it just closes: TCPTimeWaitOverflow)."""
        self.in_use.discard(port)
        if not time_wait:
            return
        self._expire(now)
        if len(self.time_wait) >= self.max_tw_buckets:
            self.counters["TCPTimeWaitOverflow"] += 1
            return
        self.time_wait[port] = now
        self.counters["TW"] += 1


def bind_conflict(new_reuse: bool, other_reuse: bool, other_state: str) -> bool:
    """``inet_bind_conflict()`` for one other socket on the same port.

    >>> bind_conflict(True, True, "TIME_WAIT"), bind_conflict(True, False, "TIME_WAIT")
    (False, True)
    >>> bind_conflict(True, True, "LISTEN")
    True
    """
    return not (new_reuse and other_reuse and other_state != "LISTEN")
