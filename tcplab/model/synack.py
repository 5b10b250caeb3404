"""How long a request sock (SYN_RECV) lives: the SYN-ACK retransmission rules of
``reqsk_timer_handler()`` and ``syn_ack_recalc()`` (``net/ipv4/inet_connection_sock.c``).

Every request has a timer: it fires 1 s after the SYN (``TCP_TIMEOUT_INIT``), then after 2, 4, 8 …
s (``TCP_TIMEOUT_INIT << num_timeout``, at most ``TCP_RTO_MAX``). Each time it either resends the
SYN-ACK or, once ``num_timeout`` reached the limit, drops the request. The articles' limit is
``tcp_synack_retries`` (5: the request goes at 1+2+4+8+16+32 = 63 s). But when the SYN queue is
more than half full of *old* requests (that already timed out once), the kernel cuts the limit of
old ones, down to 2, "without pity" (the source's words), to keep half of the queue for young
ones. In a spoofed SYN flood every request is old after 1 s, so a full queue loses most of its
requests at 1+2+4 = 7 s, not at 63 s. Measured on 6.18 (``syn_queue(flood=True, backlog=128,
syncookies=1, clients=200, settle=16)``): 129 SYN_RECV; with synack_retries 1 all gone at 3 s,
2 at 7 s; with 3, 4 and 5 65 leave at 7 s and 64 stay (half of 128 is no longer "more than half").

>>> synack_retry_limit(5, qlen=129, young=0, max_ack_backlog=128)   # a full, all-old flood queue
2
>>> synack_retry_limit(5, qlen=64, young=0, max_ack_backlog=128)    # half full: no cut
5
>>> synack_retry_limit(5, qlen=129, young=20, max_ack_backlog=128)  # 8*20 > 129 >= 4*20: cut twice
3
>>> syn_ack_recalc(num_timeout=2, limit=2)                          # (expire, resend)
(True, True)
"""

from __future__ import annotations

from tcplab.model.rto import TCP_RTO_MAX, TCP_TIMEOUT_INIT

__all__ = ["synack_retry_limit", "syn_ack_recalc", "defer_accept_retrans", "synack_timeout"]

#: the cut never goes below this many retransmissions (``while (max_syn_ack_retries > 2)``)
MIN_CUT_LIMIT = 2


def synack_retry_limit(synack_retries: int, qlen: int, young: int, max_ack_backlog: int) -> int:
    """The retransmission limit ``reqsk_timer_handler()`` applies to the request whose timer fires.

    ``qlen``: requests in the SYN queue now; ``young``: those that never timed out
    (``num_timeout == 0``); ``max_ack_backlog``: the listener's ``min(backlog, somaxconn)``.

    Kernel::

        if ((qlen << 1) > max(8U, sk_max_ack_backlog)) {
            int young = reqsk_queue_len_young(queue) << 1;
            while (max_syn_ack_retries > 2) {
                if (qlen < young) break;
                max_syn_ack_retries--;
                young <<= 1;
            }
        }

    >>> [synack_retry_limit(r, qlen=9, young=0, max_ack_backlog=8) for r in (0, 1, 2, 3, 5)]
    [0, 1, 2, 2, 2]
    >>> synack_retry_limit(5, qlen=4, young=0, max_ack_backlog=3)     # 2*4 > max(8, 3) is false
    5
    """
    limit = synack_retries
    if (qlen << 1) > max(8, max_ack_backlog):
        y = young << 1
        while limit > MIN_CUT_LIMIT:
            if qlen < y:
                break
            limit -= 1
            y <<= 1
    return limit


def syn_ack_recalc(num_timeout: int, limit: int, defer_retrans: int = 0, acked: bool = False) -> tuple[bool, bool]:
    """``syn_ack_recalc()``: (expire, resend) for a request whose timer fires.

    ``defer_retrans``: TCP_DEFER_ACCEPT of the listener in retransmissions
    (:func:`defer_accept_retrans`), 0 without it. ``acked``: the client's bare ACK came and was
    ignored (deferred). A deferred request lives at least ``defer_retrans`` timeouts and is not
    resent until the last one.

    >>> syn_ack_recalc(1, limit=2)
    (False, True)
    >>> syn_ack_recalc(2, limit=2, defer_retrans=5, acked=True)      # waits for data
    (False, False)
    >>> syn_ack_recalc(5, limit=2, defer_retrans=5, acked=True)
    (True, True)
    """
    if not defer_retrans:
        return num_timeout >= limit, True
    expire = num_timeout >= limit and (not acked or num_timeout >= defer_retrans)
    resend = not acked or num_timeout >= defer_retrans - 1
    return expire, resend


def defer_accept_retrans(seconds: int, timeout: float = TCP_TIMEOUT_INIT, rto_max: float = TCP_RTO_MAX) -> int:
    """``secs_to_retrans()``: TCP_DEFER_ACCEPT seconds as a number of SYN-ACK timeouts.

    >>> defer_accept_retrans(30), defer_accept_retrans(1), defer_accept_retrans(0)
    (5, 1, 0)
    """
    if seconds <= 0:
        return 0
    res, period = 1, timeout
    while seconds > period and res < 255:
        res += 1
        timeout = min(timeout * 2, rto_max)
        period += timeout
    return res


def synack_timeout(num_timeout: int, rto_initial: float = TCP_TIMEOUT_INIT, rto_max: float = TCP_RTO_MAX) -> float:
    """Seconds until the next timer of a request that timed out ``num_timeout`` times.

    >>> [synack_timeout(n) for n in range(1, 5)]
    [2.0, 4.0, 8.0, 16.0]
    """
    return min(rto_initial * (1 << num_timeout), rto_max)
