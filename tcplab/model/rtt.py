"""Where an RTO comes from: Linux's RTT estimator and its RTO, integer for integer.

The rules, one place (Linux 6.x; ``net/ipv4/tcp_input.c``, ``include/net/tcp.h``, ``include/net/dst.h``):

1. **A sample** (``tcp_ack_update_rtt()``): the time from sending a segment to the ACK that first
   covers it, from the skb's own send stamp (``tcp_clean_rtx_queue()``: ``first_ackt`` of a
   never-retransmitted skb). **Karn's rule**: an ACK that covers retransmitted data gives no such
   sample (``seq_rtt_us = -1``, "Karn's algorithm forbids taking RTT if some retransmitted data is
   acked", RFC 6298). With timestamps the echoed TSval still gives one (``tcp_rtt_tsopt_us()``:
   ``now - tsecr`` in TCP_TS_HZ = 1000 ticks, at least one): :func:`karn_sample`.
2. **The estimator** (``tcp_rtt_estimator()``, Jacobson's SIGCOMM '88 in fixed point): ``srtt_us``
   is kept x8, ``mdev_us`` (the mean deviation) x4. The first sample sets srtt = m, mdev = 2m
   ("make sure rto = 3*rtt") and ``rttvar_us = max(mdev, tcp_rto_min_us)``. Each later sample:
   ``srtt += (m - srtt/8)`` (gain 1/8), ``mdev += (|err| - mdev/4)`` (gain 1/4; a *falling* RTT
   moves it with gain 1/32: "similar to one of Eifel findings"). ``rttvar_us`` follows the largest
   mdev of the current round trip (``mdev_max_us``) up at once, and down by a quarter of the gap once
   per round trip (when ``snd_una`` passes ``rtt_seq``), after which ``mdev_max_us`` restarts at
   ``tcp_rto_min_us``: so rttvar never decays below the RTO floor: :class:`RttEstimator`.
3. **The RTO** (``tcp_set_rto()``, ``__tcp_set_rto()``): ``usecs_to_jiffies(srtt/8 + rttvar_us)``,
   rounded *up* to a jiffy, then ``tcp_bound_rto()``: at most TCP_RTO_MAX (120 s, or
   net.ipv4.tcp_rto_max_ms since 6.15). ``tcp_info`` shows ``rtt = srtt_us >> 3``,
   ``rttvar = mdev_us >> 2`` (the mean deviation, *not* rttvar_us) and ``rto = jiffies_to_usecs(icsk_rto)``.
4. **The floor** (``tcp_rto_min()``): the route's ``rto_min`` metric when it is locked (``ip route
   ... rto_min 10ms`` locks it), converted by ``dst_metric_rtt()`` = ``msecs_to_jiffies()`` (up to a
   jiffy); else the socket's ``icsk_rto_min``, from net.ipv4.tcp_rto_min_us (``tcp_init_sock()``,
   since 6.11, commit f086edef71be) or the constant TCP_RTO_MIN (HZ/5, 200 ms) before:
   :func:`rto_min_us`.

So at a steady 40 ms RTT the RTO is 40 ms + 200 ms, rounded up to a jiffy: the floor adds 200 ms
whatever the RTT, and an RTT change moves the RTO only through srtt unless the deviation of a round
trip exceeds the floor.

>>> e = RttEstimator(rto_min_us(None))                  # HZ=250, no route rto_min: 200 ms
>>> e.sample(40_000, snd_una=1, snd_nxt=1)              # the handshake's sample: srtt 40, mdev 80, rttvar 200
>>> e.srtt_us, e.rttvar_us, e.mdev_us, e.rto_us
(40000, 200000, 80000, 240000)
>>> for i in range(50):                                 # steady 40 ms: mdev decays, rttvar stays at the floor
...     e.sample(40_000, snd_una=2 + i, snd_nxt=6 + i)
>>> e.info_rtt_us, e.info_rttvar_us, e.rto_us
(40000, 0, 240000)
>>> f = RttEstimator(rto_min_us(None, route_ms=10))     # a route's rto_min 10 ms: 3 jiffies = 12 ms
>>> f.sample(40_000, 1, 1); f.rto_us                    # rttvar = mdev = 80 ms (above the floor)
120000
>>> for i in range(200):
...     f.sample(40_000, snd_una=2 + i, snd_nxt=6 + i)
>>> f.rttvar_us, f.rto_us        # rttvar decays to 3 us above the 12 ms floor ((gap >> 2) is 0 below 4): 13.0008 jiffies
(12003, 56000)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tcplab.model.profiles import DEFAULT_PROFILE, PROFILES

__all__ = ["RttEstimator", "rto_min_us", "karn_sample", "usecs_to_jiffies", "TCP_TS_HZ"]

_DEFAULT = PROFILES[DEFAULT_PROFILE]
#: include/net/tcp.h: TCP timestamps tick at 1 kHz (TCP_TS_HZ)
TCP_TS_HZ = 1000


def usecs_to_jiffies(us: int, tick_us: int) -> int:
    """``usecs_to_jiffies()``: rounded *up* to a whole jiffy.

    >>> usecs_to_jiffies(240_001, 4000), usecs_to_jiffies(240_000, 4000)
    (61, 60)
    """
    return -(-int(us) // tick_us)


def rto_min_us(sysctl_us: int | None = None, route_ms: int | None = None,
               tick: float = _DEFAULT.timer_tick) -> int:
    """``tcp_rto_min_us(sk)``: the RTO floor in µs, a whole number of jiffies.

    ``route_ms``: the route's locked ``rto_min`` metric (``dst_metric_rtt()`` =
    ``msecs_to_jiffies()``, which rounds up); it wins over the socket's own floor. ``sysctl_us``:
    net.ipv4.tcp_rto_min_us (6.11+; None: 200000, TCP_RTO_MIN of older kernels), which
    ``tcp_init_sock()`` turns into ``icsk_rto_min = usecs_to_jiffies(...)``.

    >>> rto_min_us(None), rto_min_us(None, route_ms=10), rto_min_us(None, route_ms=1), rto_min_us(5000)
    (200000, 12000, 4000, 8000)
    >>> rto_min_us(None, route_ms=10, tick=0.001)          # HZ=1000
    10000
    >>> rto_min_us(None, route_ms=0)
    Traceback (most recent call last):
    ValueError: route_ms must be None or an int in 1..10000, not 0
    """
    tick_us = round(tick * 1e6)
    if route_ms is not None:
        if isinstance(route_ms, bool) or not isinstance(route_ms, int) or not 1 <= route_ms <= 10_000:
            raise ValueError(f"route_ms must be None or an int in 1..10000, not {route_ms!r}")
        return usecs_to_jiffies(route_ms * 1000, tick_us) * tick_us
    floor = round(_DEFAULT.rto_min * 1e6) if sysctl_us is None else sysctl_us
    if isinstance(floor, bool) or not isinstance(floor, int) or not 1 <= floor <= 120_000_000:
        raise ValueError(f"sysctl_us must be None or an int in 1..120000000, not {sysctl_us!r}")
    return usecs_to_jiffies(floor, tick_us) * tick_us


def karn_sample(rtt_us: int, retransmitted: bool, timestamps: bool, ts_rtt_us: int | None = None) -> int | None:
    """The RTT sample an ACK gives (``tcp_clean_rtx_queue()`` then ``tcp_ack_update_rtt()``), or None.

    ``rtt_us``: from the first transmission's send stamp. ``retransmitted``: the ACK covers a
    retransmitted segment, so that stamp is ambiguous and not used (Karn). ``timestamps``: both SYNs
    carried the option; then the echoed TSval gives ``ts_rtt_us`` (default ``rtt_us``: the ACK
    echoes the transmission it answers), counted in whole 1 ms ticks (at least one).

    >>> karn_sample(40_300, False, True), karn_sample(40_300, True, False), karn_sample(40_300, True, True)
    (40300, None, 40000)
    >>> karn_sample(300, True, True)                       # under a tick: one tick
    1000
    """
    if not retransmitted:
        return rtt_us
    if not timestamps:
        return None
    tick_us = 1_000_000 // TCP_TS_HZ
    ticks = max(1, int(rtt_us if ts_rtt_us is None else ts_rtt_us) // tick_us)
    return ticks * tick_us


@dataclass
class RttEstimator:
    """One socket's ``tcp_sock`` RTT fields and its ``icsk_rto``, updated as the kernel does.

    ``floor_us``: :func:`rto_min_us` (the route's or the socket's floor). Sequence numbers are in any
    unit that only grows (segments will do): ``rtt_seq`` is compared with ``snd_una``.
    """

    floor_us: int
    tick: float = _DEFAULT.timer_tick
    rto_max: float = _DEFAULT.rto_max
    srtt_x8: int = 0
    mdev_us: int = 0          # x4
    mdev_max_us: int = 0
    rttvar_us: int = 0
    rtt_seq: int = 0
    rto_jiffies: int = 0

    def __post_init__(self) -> None:
        if self.rto_jiffies == 0:            # TCP_TIMEOUT_INIT until the first sample
            self.rto_jiffies = usecs_to_jiffies(round(_DEFAULT.rto_initial * 1e6), self._tick_us)

    @property
    def _tick_us(self) -> int:
        return round(self.tick * 1e6)

    def sample(self, mrtt_us: int, snd_una: int, snd_nxt: int) -> None:
        """``tcp_rtt_estimator(sk, mrtt_us)`` then ``tcp_set_rto(sk)``; ``snd_una``/``snd_nxt`` as
        after this ACK."""
        m = int(mrtt_us)
        srtt = self.srtt_x8
        if srtt != 0:
            m -= srtt >> 3                   # m is now the error in the estimate
            srtt += m                        # srtt = 7/8 srtt + 1/8 new
            if m < 0:
                m = -m - (self.mdev_us >> 2)
                if m > 0:                    # a falling RTT moves mdev with gain 1/32
                    m >>= 3
            else:
                m -= self.mdev_us >> 2
            self.mdev_us += m                # mdev = 3/4 mdev + 1/4 |err|
            if self.mdev_us > self.mdev_max_us:
                self.mdev_max_us = self.mdev_us
                if self.mdev_max_us > self.rttvar_us:
                    self.rttvar_us = self.mdev_max_us
            if snd_una > self.rtt_seq:       # once per round trip: decay toward this RTT's largest mdev
                if self.mdev_max_us < self.rttvar_us:
                    self.rttvar_us -= (self.rttvar_us - self.mdev_max_us) >> 2
                self.rtt_seq = snd_nxt
                self.mdev_max_us = self.floor_us
        else:                                # the first sample
            srtt = m << 3
            self.mdev_us = m << 1
            self.rttvar_us = max(self.mdev_us, self.floor_us)
            self.mdev_max_us = self.rttvar_us
            self.rtt_seq = snd_nxt
        self.srtt_x8 = max(1, srtt)
        # __tcp_set_rto() and tcp_bound_rto()
        jiffies = usecs_to_jiffies((self.srtt_x8 >> 3) + self.rttvar_us, self._tick_us)
        self.rto_jiffies = min(jiffies, round(self.rto_max / self.tick))

    @property
    def srtt_us(self) -> int:
        """The smoothed RTT, µs (``tcp_info.rtt``)."""
        return self.srtt_x8 >> 3

    info_rtt_us = srtt_us

    @property
    def info_rttvar_us(self) -> int:
        """``tcp_info.rttvar``: ``mdev_us >> 2``, the mean deviation (not ``rttvar_us``)."""
        return self.mdev_us >> 2

    @property
    def rto_us(self) -> int:
        """``tcp_info.rto``: ``jiffies_to_usecs(icsk_rto)``."""
        return self.rto_jiffies * self._tick_us
