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
"""

from __future__ import annotations

from tcplab.model.profiles import DEFAULT_PROFILE, PROFILES

__all__ = ["delack_jiffies", "delayed_ack_delay", "TCP_DELACK_MIN", "TCP_DELACK_MAX"]

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
