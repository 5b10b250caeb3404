"""Keepalive timing: when ``tcp_keepalive_timer()`` probes an idle connection and when it gives up.

The rules (net/ipv4/tcp_timer.c, ``tcp_keepalive_timer()``), written once here:

* The timer skips only CLOSE and SYN_SENT sockets: ``if (!sock_flag(sk, SOCK_KEEPOPEN) || ((1 <<
  sk->sk_state) & (TCPF_CLOSE | TCPF_SYN_SENT))) goto out;``. A CLOSE_WAIT socket probes too.
* ``elapsed = keepalive_time_elapsed(tp)`` (time since the last segment received). Below
  ``keepalive_time_when(tp)`` (TCP_KEEPIDLE) the timer re-arms for the rest of the idle time.
* Otherwise: if ``icsk_probes_out >= keepalive_probes(tp)`` (TCP_KEEPCNT) the socket is reset and
  closed with ``tcp_write_err()``: ``sk->sk_err = sk->sk_err_soft ? : ETIMEDOUT``. That is the rule
  only *without* TCP_USER_TIMEOUT: with it set, the timer gives up on elapsed time instead and
  ignores TCP_KEEPCNT: ``(user_timeout != 0 && elapsed >= msecs_to_jiffies(user_timeout) &&
  icsk_probes_out > 0) || (user_timeout == 0 && icsk_probes_out >= keepalive_probes(tp))``
  (the same in 6.1, 6.12 and 6.18; since 2.6.37, dca43c75e7e5 "tcp: Add TCP_USER_TIMEOUT socket
  option"). So it ends at the first expiry, at least one probe sent, whose idle time reached the
  user timeout: more probes than TCP_KEEPCNT when the user timeout is longer, fewer when shorter. Else a probe is
  sent (``tcp_write_wakeup(sk, LINUX_MIB_TCPKEEPALIVE)``), ``icsk_probes_out++``, and the timer
  re-arms for ``keepalive_intvl_when(tp)`` (TCP_KEEPINTVL).
* An answer (the peer's ACK) goes through ``tcp_ack()``, which sets ``icsk_probes_out = 0`` and
  ``rcv_tstamp = tcp_jiffies32``: the next probe comes a whole idle time later. A RST instead ends
  the socket in ``tcp_reset()``, with ``EPIPE`` in CLOSE_WAIT and ``ECONNRESET`` otherwise.

Timers are jiffies on the timer wheel, which rounds each expiry up to its level's granularity so a
timer never fires early (kernel/time/timer.c, ``calc_index()``: ``expires = (expires >>
LVL_SHIFT(lvl)) + 1``): a 1 s keepalive timer at HZ=250 (level 1, 8 jiffies) fires up to 32 ms late,
and these delays add up: KEEPIDLE 2, KEEPINTVL 1, KEEPCNT 3 ends at 5.088 s, not 5 s (measured: 5.08-5.10).

>>> s = keepalive_schedule(2, 1, 3, "silent", tick=0.004)
>>> s.probe_times, s.ended_at, s.error
([2.016, 3.04, 4.064], 5.088, 'ETIMEDOUT')
>>> keepalive_schedule(2, 1, 1, "silent", tick=0.004, user_timeout_ms=4000).probe_times   # KEEPCNT 1 ignored
[2.016, 3.04]
>>> keepalive_schedule(2, 1, 1, "silent", tick=0.004, user_timeout_ms=4000).ended_at
4.064
>>> keepalive_schedule(2, 1, 3, "close_wait_rst", tick=0.004).error
'EPIPE'
>>> keepalive_schedule(1, 1, 4, "alive", tick=0.004).probe_times
[1.024, 2.048, 3.072, 4.096]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["PEERS", "MAX_TCP_KEEPIDLE", "MAX_TCP_KEEPINTVL", "MAX_TCP_KEEPCNT", "wheel_fires_at",
           "KeepaliveSchedule", "keepalive_schedule"]

#: what the peer does when a probe reaches it
PEERS = ("silent", "alive", "close_wait_rst")

# include/net/tcp.h: the limits do_tcp_setsockopt() accepts
MAX_TCP_KEEPIDLE = 32767
MAX_TCP_KEEPINTVL = 32767
MAX_TCP_KEEPCNT = 127

# kernel/time/timer.c: 8 levels of 64 buckets, each level 8 times coarser
_LVL_CLK_SHIFT = 3
_LVL_SIZE = 64
_LVL_DEPTH = 9


def _lvl_start(n: int) -> int:
    """``LVL_START(n)``: the smallest delay (jiffies) that goes to level ``n``."""
    return (_LVL_SIZE - 1) << ((n - 1) * _LVL_CLK_SHIFT)


def wheel_fires_at(now: int, delay: int) -> int:
    """The jiffy at which a timer armed at jiffy ``now`` for ``delay`` jiffies runs.

    ``calc_wheel_index()`` picks the level from the delay, ``calc_index()`` rounds the expiry up
    to that level's granularity (``+ 1`` bucket, so never early).

    >>> wheel_fires_at(0, 10), wheel_fires_at(0, 250), wheel_fires_at(0, 500), wheel_fires_at(0, 1000)
    (11, 256, 504, 1024)
    """
    expires = now + delay
    lvl = 0
    while lvl < _LVL_DEPTH - 1 and delay >= _lvl_start(lvl + 1):
        lvl += 1
    shift = lvl * _LVL_CLK_SHIFT
    return ((expires >> shift) + 1) << shift


def wheel_slack(delay: int) -> int:
    """The most jiffies the wheel adds to a timer armed ``delay`` jiffies out: its level's granularity
    (``calc_index()`` rounds up to the next bucket whatever the phase).

    >>> wheel_slack(52), wheel_slack(102), wheel_slack(600)
    (1, 8, 64)
    """
    lvl = 0
    while lvl < _LVL_DEPTH - 1 and delay >= _lvl_start(lvl + 1):
        lvl += 1
    return 1 << (lvl * _LVL_CLK_SHIFT)


@dataclass
class KeepaliveSchedule:
    """What the keepalive timer does: probe send times (s after the connection went idle), the
    answer each got ("ACK", "RST" or None), when the socket ended (None: still open when we stopped
    watching) with which error, and its final state."""

    probe_times: list[float] = field(default_factory=list)
    answers: list[str | None] = field(default_factory=list)
    ended_at: float | None = None
    error: str | None = None
    end_state: str = "ESTABLISHED"


def keepalive_schedule(idle: int, interval: int, count: int, peer: str, *, tick: float,
                       watch_probes: int | None = None, user_timeout_ms: int | None = None) -> KeepaliveSchedule:
    """Run ``tcp_keepalive_timer()`` from the moment the connection went idle (jiffy 0).

    idle, interval, count: TCP_KEEPIDLE (s), TCP_KEEPINTVL (s), TCP_KEEPCNT.
    peer: "silent" (no probe reaches anyone), "alive" (each probe is ACKed at once),
    "close_wait_rst" (our socket is in CLOSE_WAIT and the peer's host answers with RST).
    tick: one jiffy in seconds (1/HZ). An alive peer keeps the connection forever: we stop after
    ``watch_probes`` answered probes (default ``count``). ``user_timeout_ms``: TCP_USER_TIMEOUT
    (None or 0: not set), which replaces the TCP_KEEPCNT rule by an elapsed-time rule.
    """
    if peer not in PEERS:
        raise ValueError(f"peer must be one of {', '.join(PEERS)}, not {peer!r}")
    hz = round(1 / tick)
    idle_j, intvl_j = idle * hz, interval * hz
    watch = count if watch_probes is None else watch_probes
    out = KeepaliveSchedule(end_state="CLOSE_WAIT" if peer == "close_wait_rst" else "ESTABLISHED")
    last_rcv, probes_out = 0, 0
    ut_j = math.ceil(round(user_timeout_ms / 1000 * hz, 9)) if user_timeout_ms else 0   # msecs_to_jiffies()
    bound = 10 * (count + watch) + 10 + (2 * ut_j // max(intvl_j, 1) if ut_j else 0)
    fire = wheel_fires_at(0, idle_j)  # armed when the connection was set up (tcp_finish_connect)
    for _ in range(bound):  # bounded: each round sends a probe or ends
        elapsed = fire - last_rcv
        if elapsed < idle_j:
            fire = wheel_fires_at(fire, idle_j - elapsed)
            continue
        t = round(fire * tick, 6)
        if (ut_j and elapsed >= ut_j and probes_out > 0) or (not ut_j and probes_out >= count):
            out.ended_at, out.error, out.end_state = t, "ETIMEDOUT", "CLOSE"
            return out
        out.probe_times.append(t)
        if peer == "alive":
            out.answers.append("ACK")          # tcp_ack(): icsk_probes_out = 0, rcv_tstamp = now
            last_rcv, probes_out = fire, 0
            if len(out.probe_times) >= watch:
                return out
        elif peer == "close_wait_rst":
            out.answers.append("RST")          # tcp_reset() in CLOSE_WAIT: EPIPE
            out.ended_at, out.error, out.end_state = t, "EPIPE", "CLOSE"
            return out
        else:
            out.answers.append(None)
            probes_out += 1
        fire = wheel_fires_at(fire, intvl_j)
    raise AssertionError("keepalive_schedule did not end")  # pragma: no cover - the loop is bounded above
