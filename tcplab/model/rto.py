"""Retransmission timeout of an ESTABLISHED socket whose peer went silent: when each
retransmission leaves, and when (and why) the kernel gives up.

The rules, one place (``net/ipv4/tcp_timer.c``, ``net/ipv4/tcp_output.c``, ``include/net/tcp.h``;
Linux 6.x, measured on 6.18 — docs/data-transfer.md):

1. **Initial RTO.** ``tcp_set_rto()``: ``rto = srtt + rttvar`` with rttvar floored at
   ``TCP_RTO_MIN`` (200 ms, ``net.ipv4.tcp_rto_min_us``), rounded *up* to a jiffy
   (``usecs_to_jiffies``). On loopback srtt is ~30 µs, so 200.03 ms becomes 51 jiffies = 204 ms
   at HZ=250 (what ``tcp_info.rto`` shows): :func:`initial_rto`.
2. **Tail loss probe first.** With one segment unacknowledged, ``tcp_schedule_loss_probe()`` arms
   the probe timeout (PTO ~ 2·srtt + TCP_RTO_MIN, clamped to the time left before the RTO), so the
   first retransmission is a TLP one RTO after the write; ``tcp_rearm_rto()`` then restarts the RTO
   timer from the probe. It counts in RetransSegs and TCPLossProbes, not in TCPTimeouts.
3. **Backoff.** Each RTO expiry (``tcp_retransmit_timer()``; TCPTimeouts + 1) first asks
   ``tcp_write_timeout()`` whether to give up, else retransmits the head segment, sets
   ``icsk_backoff++`` and ``icsk_rto = min(icsk_rto << 1, TCP_RTO_MAX)`` (120 s).
4. **Giving up.** ``retransmits_timed_out()`` is false before the first RTO retransmission
   (``icsk_retransmits == 0``); after it, the time since ``retrans_stamp`` — the first RTO
   retransmission, the TLP does not set it — is compared with a *time* limit, checked only when the
   timer fires:
   ``tcp_model_timeout(tcp_retries2, TCP_RTO_MIN)`` = ``((2 << n) - 1) * 0.2 s`` while the doubled
   RTO stays under TCP_RTO_MAX, then ``+ 120 s`` per further retry (:func:`model_timeout`), or
   TCP_USER_TIMEOUT when the socket set it — which then *replaces* the tcp_retries2 budget, longer
   or shorter (``expired = retransmits_timed_out(sk, retry_until, icsk->icsk_user_timeout)``).
5. **Orphans.** Once the application close()s the socket (``SOCK_DEAD``), ``tcp_write_timeout()``
   takes the retry count from ``tcp_orphan_retries(sk, alive)`` instead of tcp_retries2, with
   ``alive = icsk_rto < TCP_RTO_MAX``: the sysctl ``net.ipv4.tcp_orphan_retries``, but 0 means **8**
   while alive ("8 corresponds to >100 seconds with minimal RTO of 200msec"), and an ICMP error
   (``sk_err_soft``) on a socket that is not alive makes it 0 (:func:`orphan_retries`). The same
   ``retransmits_timed_out()`` time budget follows; TCP_USER_TIMEOUT still replaces it.
   ``tcp_out_of_resources()`` may kill an orphan earlier (too many orphans, memory pressure: the
   TCPAbortOnMemory counter), never the case for one orphan here. The close() also sends a FIN
   behind the data, so two segments are in flight: ``tcp_schedule_loss_probe()`` then arms the
   probe at ``2·srtt + TCP_TIMEOUT_MIN_US`` (2 ms, one jiffy) instead of ``+ TCP_RTO_MIN``, the probe
   retransmits the *last* segment (the FIN), and — as after every probe that leaves —
   ``tcp_send_loss_probe()`` clears ``icsk_pending`` ("Reset s.t. tcp_rearm_rto will restart timer
   from now"), so the first RTO expiry comes one RTO after the *probe*, not after the write
   (measured: probe at 7-17 ms, first RTO 201-212 ms after it, on 6.12 and 6.18; docs/kernel-facts.md).
   The RTO retransmission carries data and FIN in one segment (``tcp_retrans_try_collapse()``).
6. **User-timeout clamp.** ``tcp_clamp_rto_to_user_timeout()`` arms the next expiry at
   ``min(rto, user_timeout - elapsed)``, so the connection dies at ``retrans_stamp + user_timeout``
   rather than at the next doubled RTO.

The SYN schedule (SYN_SENT, ``TCP_TIMEOUT_INIT`` 1 s, a *count* limit plus the same
``tcp_model_timeout()`` with a 1 s base) is :mod:`tcplab.model.retries`; :func:`model_timeout`
with ``rto_base=1.0`` gives its budget too.

>>> model_timeout(3), model_timeout(5), model_timeout(15)
(3.0, 12.6, 924.6)
>>> initial_rto()
0.204
>>> s = retransmit_schedule(retries2=3)
>>> s.retransmit_times, s.fail_after, s.gave_up_because
((0.204, 0.408, 0.816, 1.632, 3.264), 6.528, 'tcp_retries2')
>>> s.timeouts, s.retrans_segs
(5, 5)
>>> retransmit_schedule(retries2=15, user_timeout_ms=1500).fail_after
1.908
>>> o = retransmit_schedule(orphan=2)                     # close() after the write, tcp_orphan_retries=2
>>> o.retransmit_times, o.fail_after, o.gave_up_because, o.limit_s
((0.004, 0.208, 0.616, 1.432), 3.064, 'tcp_orphan_retries', 1.4)
>>> retransmit_schedule(orphan=0).limit_s, retransmit_schedule(orphan=0).fail_after   # 0 means 8: 102.2 s
(102.2, 104.248)
"""

from __future__ import annotations

import math
from functools import lru_cache

from tcplab.model.profiles import DEFAULT_PROFILE, PROFILES
from typing import NamedTuple

__all__ = ["TCP_RTO_MIN", "TCP_RTO_MAX", "TCP_TIMEOUT_INIT", "HZ_TICK", "TCP_RETR2", "LOOPBACK_SRTT", "model_timeout",
           "initial_rto", "backed_off_rto", "RetransmitSchedule", "retransmit_schedule", "GAVE_UP_REASONS",
           "TCP_ORPHAN_RETRIES", "ORPHAN_ALIVE_RETRIES", "orphan_retries", "loss_probe_timeout"]

# the kernel's constants are the default profile's (written once, in tcplab.model.profiles)
_DEFAULT = PROFILES[DEFAULT_PROFILE]
TCP_RTO_MIN = _DEFAULT.rto_min            # include/net/tcp.h: HZ/5 (net.ipv4.tcp_rto_min_us since 6.11)
TCP_RTO_MAX = _DEFAULT.rto_max            # include/net/tcp.h: 120*HZ (net.ipv4.tcp_rto_max_ms since 6.15)
TCP_TIMEOUT_INIT = _DEFAULT.rto_initial   # include/net/tcp.h: the RTO before any RTT sample (SYN)
HZ_TICK = _DEFAULT.timer_tick             # one jiffy at CONFIG_HZ=250, the measured kernel
TCP_RETR2 = _DEFAULT.retries2             # net.ipv4.tcp_retries2 of a fresh namespace
TCP_ORPHAN_RETRIES = _DEFAULT.orphan_retries   # net.ipv4.tcp_orphan_retries of a fresh namespace (0)
LOOPBACK_SRTT = 30e-6    # tcp_info.rtt on loopback: ~30 µs
#: tcp_orphan_retries(): "if (retries == 0 && alive) retries = 8;" (net/ipv4/tcp_timer.c)
ORPHAN_ALIVE_RETRIES = 8
#: TCP_TIMEOUT_MIN_US (include/net/tcp.h: 2 ms), the loss probe's floor with several segments in flight
TIMEOUT_MIN = 0.002

#: why the kernel gave up: the tcp_retries2 budget, the socket's TCP_USER_TIMEOUT, or (an orphan) tcp_orphan_retries
GAVE_UP_REASONS = ("tcp_retries2", "TCP_USER_TIMEOUT", "tcp_orphan_retries")


def orphan_retries(sysctl: int, alive: bool, err_soft: bool = False) -> int:
    """``tcp_orphan_retries(sk, alive)`` (net/ipv4/tcp_timer.c): the retry count of an orphaned socket.

    ``alive`` is ``icsk_rto < TCP_RTO_MAX`` (the RTO has not backed off to the cap yet); ``err_soft``: an
    ICMP error was recorded (``sk->sk_err_soft``).

    >>> orphan_retries(0, alive=True), orphan_retries(0, alive=False), orphan_retries(3, alive=True)
    (8, 0, 3)
    >>> orphan_retries(3, alive=False, err_soft=True), orphan_retries(3, alive=True, err_soft=True)
    (0, 3)
    """
    retries = 0 if err_soft and not alive else sysctl       # "We know from an ICMP that something is wrong."
    if retries == 0 and alive:                              # "if socket sent something recently ..."
        retries = ORPHAN_ALIVE_RETRIES
    return retries


def loss_probe_timeout(packets_out: int, srtt: float = LOOPBACK_SRTT, rto_min: float = TCP_RTO_MIN,
                       tick: float = HZ_TICK) -> float:
    """``tcp_schedule_loss_probe()``'s PTO before the clamp to the RTO: ``usecs_to_jiffies(2·srtt +
    TCP_RTO_MIN)`` with one segment in flight, ``usecs_to_jiffies(2·srtt + TCP_TIMEOUT_MIN_US)`` (2 ms)
    with more (since 1c2709cfff1d, v6.6 and the 6.1 stable line; before it 2 jiffies were added after
    the rounding). A real timer wheel fires it up to one more jiffy late (``calc_index()`` rounds up),
    so on loopback at HZ=250 a two-segment probe leaves 4-8 ms after the last send.

    >>> loss_probe_timeout(1), loss_probe_timeout(2)      # loopback: one segment; data + FIN
    (0.204, 0.004)
    """
    floor = rto_min if packets_out == 1 else TIMEOUT_MIN
    if tick <= 0:
        return round(2 * srtt + floor, 6)
    return round(math.ceil(round((2 * srtt + floor) / tick, 9)) * tick, 6)


def model_timeout(boundary: int, rto_base: float = TCP_RTO_MIN, rto_max: float = TCP_RTO_MAX) -> float:
    """``tcp_model_timeout()``: the time ``boundary`` backed-off retransmissions take from an RTO
    of ``rto_base``, the doubling capped at ``rto_max``.

    ``linear_backoff_thresh = ilog2(TCP_RTO_MAX / rto_base)`` (9 for 200 ms); up to it the sum is
    ``((2 << boundary) - 1) * rto_base``, beyond it each retry adds ``TCP_RTO_MAX``.

    >>> model_timeout(9), model_timeout(10)
    (204.6, 324.6)
    >>> model_timeout(2, rto_base=1.0)   # the SYN budget of syn_retries=2 (tcp_syn_retries)
    7.0
    """
    if boundary < 0:
        raise ValueError(f"boundary must be an int >= 0, not {boundary}")
    thresh = int(math.log2(rto_max / rto_base))     # ilog2 rounds down
    if boundary <= thresh:
        return round(((2 << boundary) - 1) * rto_base, 6)
    return round(((2 << thresh) - 1) * rto_base + (boundary - thresh) * rto_max, 6)


def initial_rto(srtt: float = LOOPBACK_SRTT, rto_min: float = TCP_RTO_MIN, tick: float = HZ_TICK) -> float:
    """The RTO of a fresh loopback connection: ``srtt + max(rttvar, rto_min)`` rounded up to a jiffy
    (``__tcp_set_rto()``, ``usecs_to_jiffies()``).

    >>> initial_rto(tick=0.001)        # HZ=1000
    0.201
    """
    if tick <= 0:
        return round(srtt + rto_min, 6)
    return round(math.ceil(round((srtt + rto_min) / tick, 9)) * tick, 6)


def backed_off_rto(rto0: float, backoff: int, rto_max: float = TCP_RTO_MAX) -> float:
    """The RTO after ``backoff`` doublings (``tcp_retransmit_timer()``; ``inet_csk_rto_backoff()``)."""
    return min(rto0 * 2 ** min(backoff, 64), rto_max)


class RetransmitSchedule(NamedTuple):
    """What a silent peer costs, times in seconds after the unacknowledged write.

    retransmit_times: every retransmitted segment (the TLP first, then one per RTO expiry but the last).
    rtos:             the RTO (s) in force after each retransmission (the TLP leaves it unchanged).
    fail_after:       when ``tcp_write_timeout()`` gave up (the socket reports ETIMEDOUT).
    gave_up_because:  ``"tcp_retries2"``, ``"TCP_USER_TIMEOUT"`` or (an orphan) ``"tcp_orphan_retries"``.
    limit_s:          the elapsed-time limit compared with at the fatal expiry (model_timeout(retries2),
                      model_timeout(tcp_orphan_retries()) or the user timeout).
    first_rto_at:     ``retrans_stamp``: when the limit's clock started (the first RTO retransmission).
    timeouts:         RTO expiries (TCPTimeouts), the fatal one included.
    """

    retransmit_times: tuple[float, ...]
    rtos: tuple[float, ...]
    fail_after: float
    gave_up_because: str
    limit_s: float
    first_rto_at: float
    rto_initial: float
    tlp: bool
    timeouts: int

    @property
    def retrans_segs(self) -> int:
        """RetransSegs: one per retransmitted segment, the TLP included."""
        return len(self.retransmit_times)


@lru_cache(maxsize=512)
def retransmit_schedule(retries2: int = TCP_RETR2, user_timeout_ms: int | None = None, *, rto0: float | None = None,
                        tlp: bool = True, rto_max: float = TCP_RTO_MAX, rto_min: float = TCP_RTO_MIN,
                        tick: float = HZ_TICK, orphan: int | None = None,
                        srtt: float = LOOPBACK_SRTT) -> RetransmitSchedule:
    """Replay rules 2-6 of the module docstring for one unacknowledged segment written at t=0.

    ``orphan``: the application close()d the socket right after the write, and this is
    net.ipv4.tcp_orphan_retries (rule 5); None: the application holds the socket.

    ``rto0`` defaults to :func:`initial_rto` (loopback); ``srtt`` (s) sets an orphan's probe time
    (:func:`loss_probe_timeout`: 2·srtt + 2 ms). No timer-wheel lateness is modelled: a
    real kernel fires each timer up to a jiffy late, and the lateness adds up (~3 % here).

    >>> retransmit_schedule(5).fail_after, retransmit_schedule(5).retrans_segs
    (13.056, 6)
    >>> retransmit_schedule(3, 10_000).fail_after      # TCP_USER_TIMEOUT replaces the retries2 budget
    10.408
    >>> round(retransmit_schedule(15).fail_after, 3), max(retransmit_schedule(15).rtos)
    (928.896, 120.0)
    """
    if rto0 is None:
        rto0 = initial_rto(rto_min=rto_min, tick=tick)
    ut = (user_timeout_ms or 0) / 1000.0

    def limit_at(rto: float) -> tuple[float, str]:
        """The elapsed-time limit tcp_write_timeout() applies at an expiry with ``icsk_rto`` = ``rto``."""
        if ut > 0:
            return ut, GAVE_UP_REASONS[1]
        if orphan is not None:                # rule 5: alive = icsk_rto < TCP_RTO_MAX
            return model_timeout(orphan_retries(orphan, alive=rto < rto_max), rto_min, rto_max), GAVE_UP_REASONS[2]
        return model_timeout(retries2, rto_min, rto_max), GAVE_UP_REASONS[0]

    sends: list[float] = []
    rtos: list[float] = []
    rto = rto0
    now = 0.0
    if tlp and orphan is None:                # rule 2: the probe leaves one (clamped) PTO after the write
        now = rto0
        sends.append(round(now, 6))
        rtos.append(rto)
        now += rto0                           # tcp_rearm_rto() from the probe (it retransmitted the head)
    else:
        if tlp:                               # rule 5: data + FIN in flight, the probe retransmits the FIN
            sends.append(round(min(loss_probe_timeout(2, srtt, rto_min=rto_min, tick=tick), rto0), 6))
            rtos.append(rto)
        # tcp_send_loss_probe() clears icsk_pending, so tcp_rearm_rto() restarts the RTO from the probe
        now = (sends[-1] if tlp else 0.0) + rto0
    stamp: float | None = None
    timeouts = 0
    limit, reason = limit_at(rto)
    for _ in range(10_000):                   # bounded: at most ~limit/rto_max + 64 expiries
        timeouts += 1                         # rule 3: an RTO expiry
        limit, reason = limit_at(rto)
        if stamp is not None and round(now - stamp, 9) >= round(limit, 9):   # rule 4
            return RetransmitSchedule(tuple(sends), tuple(rtos), round(now, 6), reason, limit,
                                      stamp, rto0, tlp, timeouts)
        sends.append(round(now, 6))
        if stamp is None:
            stamp = now                       # retrans_stamp: the first RTO retransmission
        rto = min(rto * 2, rto_max)
        rtos.append(rto)
        wait = rto
        if ut > 0:                            # rule 6: tcp_clamp_rto_to_user_timeout()
            remaining = ut - (now - stamp)
            wait = min(rto, remaining) if remaining > 0 else tick
        now += wait
    raise RuntimeError("retransmit_schedule did not converge")  # pragma: no cover - limits are finite
