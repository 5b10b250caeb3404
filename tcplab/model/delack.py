"""The delayed-ACK timer, written once (nagle's stall and flow_control's zero-window ACK use it).

``tcp_send_delayed_ack()`` (net/ipv4/tcp_output.c) arms the timer ``ato`` jiffies ahead, at
least ``TCP_ATO_MIN`` = ``TCP_DELACK_MIN`` (include/net/tcp.h: ``HZ/25``, 40 ms; 4 jiffies below
HZ=100). The timer wheel then rounds the expiry *up* (kernel/time/timer.c ``calc_index()``): at
level 0 (under 63 jiffies) by one jiffy, so that no timer fires early. At HZ=250 a delayed ACK
therefore leaves 11 jiffies = 44 ms after the jiffy the data arrived in.

>>> delack_jiffies(250), delack_jiffies(1000), delack_jiffies(100)
(10, 40, 4)
>>> round(delayed_ack_delay(0.004), 6)
0.044

**ato adapts** (:func:`unread_waits`). 40 ms is the *floor*, not the rule: ``tcp_event_data_recv()``
(net/ipv4/tcp_input.c) moves ``icsk_ack.ato`` with the gaps between arriving segments
(``m <= TCP_ATO_MIN/2``: ``ato = ato/2 + TCP_ATO_MIN/2``; ``m < ato``: ``ato = ato/2 + m``, at most the
RTO), and ``tcp_delack_timer_handler()`` (net/ipv4/tcp_timer.c) doubles it, up to the RTO, each time
the timer fires outside pingpong (interactive) mode - in pingpong mode it leaves that mode and
resets ato to TCP_ATO_MIN. ``tcp_send_delayed_ack()`` then bounds an ato above TCP_DELACK_MIN by the
smoothed RTT (``max(srtt, TCP_DELACK_MIN)``), by TCP_DELACK_MAX (200 ms) for pushed or interactive
data (HZ/2 otherwise), and by ``icsk_delack_max`` (TCP_DELACK_MAX unless a BPF program or the route
lowers it). On loopback the RTT is microseconds, so the bound holds every delayed ACK at 40 ms; over
a path with an RTT, a receiver that is not interactive waits up to min(SRTT, 200 ms). The same code
in 6.1, 6.12 and 6.18 (``icsk_delack_max`` since 5.10).

>>> [round(w * 1000) for w in unread_waits(0.100, 5, tick=0.004)]     # measured: 42, 84, 112, 112, 108
[44, 84, 104, 104, 104]
>>> [round(w * 1000) for w in unread_waits(0.250, 5, tick=0.004)]     # measured: 44, 82, 162, 198, 198
[44, 84, 164, 204, 204]
>>> [round(w * 1000) for w in unread_waits(0.0, 3, tick=0.004)]       # loopback: the floor
[44, 44, 44]
"""

from __future__ import annotations

import math

from tcplab.model.keepalive import wheel_fires_at
from tcplab.model.profiles import DEFAULT_PROFILE, PROFILES

__all__ = ["delack_jiffies", "delayed_ack_delay", "unread_waits", "TCP_DELACK_MIN", "TCP_DELACK_MAX"]

#: include/net/tcp.h: ``#define TCP_DELACK_MIN ((unsigned)(HZ/25))``, in seconds (the default profile's)
TCP_DELACK_MIN = PROFILES[DEFAULT_PROFILE].delack_min
#: include/net/tcp.h: ``#define TCP_DELACK_MAX ((unsigned)(HZ/5))``: the longest a delayed ACK waits
TCP_DELACK_MAX = PROFILES[DEFAULT_PROFILE].delack_max


def delack_jiffies(hz: int) -> int:
    """``TCP_DELACK_MIN`` = ``TCP_ATO_MIN`` in jiffies: HZ/25 (4 below HZ=100), include/net/tcp.h."""
    return hz // 25 if hz >= 100 else 4


def delayed_ack_delay(tick: float) -> float:
    """Seconds from the jiffy the data arrived in to the delayed ACK leaving, with one jiffy of
    ``tick`` seconds: the minimum ``ato`` plus the jiffy the timer wheel rounds it up by."""
    return (delack_jiffies(round(1 / tick)) + 1) * tick


def unread_waits(rtt: float, messages: int, *, tick: float, rto_min: float | None = None) -> list[float]:
    """How long each delayed ACK waits (s) at a receiver that is not interactive (never replies) and
    has not read the data, over a path of round-trip time ``rtt`` (s): the sender sends one small
    segment, waits for its ACK, sends the next. Starts when the quick ACKs of the connection's start
    are used up (``icsk_ack.ato = TCP_ATO_MIN``).

    The receiver's SRTT is its handshake sample, ``rtt``; its RTO ``rtt + max(2 x rtt, rto_min)``
    (``tcp_rtt_estimator()``'s first sample: ``mdev = 2m``, rttvar at least tcp_rto_min). A gap
    longer than the RTO would restart quick ACKs: never reached here (a gap is ``rtt`` + a wait of at
    most 200 ms).
    """
    if rto_min is None:
        rto_min = PROFILES[DEFAULT_PROFILE].rto_min
    hz = round(1 / tick)
    ato_min = delack_jiffies(hz)
    delack_max = hz // 5                                    # TCP_DELACK_MAX = HZ/5
    r = rtt * hz                                            # jiffies (fractional: the path's RTT)
    srtt = math.ceil(round(r, 9))                           # usecs_to_jiffies() rounds up
    rto = math.ceil(round(r + max(2 * r, rto_min * hz), 9))
    ato = float(ato_min)
    prev_wait = 0.0
    out = []
    for _ in range(messages):
        m = r + prev_wait                                   # gap since the previous segment arrived
        if m <= ato_min / 2:
            ato = ato / 2 + ato_min / 2
        elif m < ato:
            ato = min(ato / 2 + m, rto)
        wait = ato
        if wait > ato_min:                                  # tcp_send_delayed_ack(): "slow path"
            wait = min(wait, delack_max, max(srtt, ato_min))
        wait = min(math.floor(wait), delack_max)            # icsk_delack_max
        fired = wheel_fires_at(0, wait)
        out.append(round(fired * tick, 6))
        prev_wait = fired
        ato = min(ato * 2, rto)                             # tcp_delack_timer_handler(), not pingpong
    return out
