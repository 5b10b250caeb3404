"""Flow control: the receive window a small SO_RCVBUF gives on loopback, the zero window, and the
persist (zero-window probe) timer. Pure; the timer constants come from :mod:`tcplab.model.rto`.

Rules (Linux 6.x, measured on 6.18 loopback — docs/data-transfer.md):

1. **Persist timer.** When the peer's window is closed and nothing is in flight,
   ``tcp_check_probe_timer()`` arms ICSK_TIME_PROBE0 at ``tcp_probe0_base() = max(icsk_rto,
   TCP_RTO_MIN)`` (204 ms on loopback). Each expiry (``tcp_probe_timer()`` -> ``tcp_send_probe0()``)
   sends a zero-window probe — ``tcp_xmit_probe_skb()``: an ACK with ``seq = snd_una - 1`` and no
   data, counted in TCPWinProbe — then ``icsk_backoff++`` (up to tcp_retries2) and re-arms at
   ``tcp_probe0_when() = min(base << backoff, TCP_RTO_MAX)``. The peer answers every probe with
   its (still zero) window; ``tcp_ack()`` resets ``icsk_probes_out`` but not the backoff, so a live
   peer is probed forever at 0.2, 0.6, 1.4, 3.0 ... s after the window closed, the gap capped at
   120 s (RFC 1122 4.2.2.17): :func:`probe_times`.
2. **Reopening.** When the application reads, ``tcp_cleanup_rbuf()`` sends a window update at once
   if the new window is at least twice the advertised one (from zero: any window
   ``__tcp_select_window()`` will offer, i.e. at least one MSS); ``tcp_ack_probe()`` on the sender
   clears the backoff. The counters are the receiver's TCPToZeroWindowAdv / TCPFromZeroWindowAdv.
3. **The zero window is advertised by a delayed ACK.** The segment that fills the buffer would make
   ``__tcp_select_window()`` shrink the window, so ``__tcp_ack_snd_check()`` does not ACK it at
   once; the delayed-ACK timer (TCP_DELACK_MIN 40 ms, plus the jiffy it is rounded to) sends the
   ACK that carries window 0: :data:`ZERO_WINDOW_DELAY`.
4. **How much the receiver holds** (:func:`receive_capacity`): SO_RCVBUF is doubled
   (``sk_rcvbuf``, at least 2304); the first advertised window is half of it (the initial
   ``scaling_ratio`` is 50 %), the sender's MSS becomes half that window
   (``tcp_bound_to_half_wnd()``), and the receiver takes whole segments while their truesize fits
   ``sk_rcvbuf`` — at least the two of the first window. A loopback skb's truesize is its payload
   plus about :data:`SKB_OVERHEAD` bytes: a *fitted* figure (measured Recv-Q maxima 1152, 2304,
   3000, 4096, 9000, 12288, 18000, 24576, 49152 for SO_RCVBUF 1, 2304, 3000, 4096, 6000, 8192,
   12000, 16384, 32768); sizes whose window is not a whole number of segments (24576, >= 49152)
   land between two segment counts. That is 6.6+ (dfa2f0483360: the receiver's window follows the
   measured ``scaling_ratio``). Before it, ``tcp_adv_win_scale`` (1) keeps the window at half of
   ``sk_rcvbuf``, and the receiver holds exactly that window: ``receive_capacity(rcvbuf,
   scaling_ratio=False)`` (measured on 6.1: Recv-Q maxima 2304, 4096, 6000, 8192, 16384, 32768 for
   those SO_RCVBUF, docs/kernels.md).

5. **When the sender gives up** (:func:`probe_run`; ``tcp_probe_timer()``, net/ipv4/tcp_timer.c,
   the same in 6.1, 6.12 and 6.18). "Forever while the peer answers" holds only by default:

   * ``TCP_USER_TIMEOUT`` set: the first expiry stamps ``icsk_probes_tstamp``; a later expiry at
     least the user timeout after it aborts (``tcp_write_err()``: ETIMEDOUT) *even while the peer
     answers every probe* (since 5.11, 9d9b1ee0b2d1 "tcp: fix TCP_USER_TIMEOUT with zero window").
     ``tcp_clamp_probe0_to_user_timeout()`` shortens the last wait to end at that moment.
   * ``tcp_retries2`` is a **count** here, not the time budget of the retransmission timer
     (``tcp_write_timeout()``'s ``retransmits_timed_out()``): the expiry that finds
     ``icsk_probes_out >= tcp_retries2`` aborts. Every answer resets ``icsk_probes_out``
     (``tcp_ack()``), so only a silent peer reaches it; and ``tcp_send_probe0()`` stops doubling
     the gap once ``icsk_backoff`` reaches tcp_retries2.
   * An orphaned socket (closed by the application, ``SOCK_DEAD``) uses ``tcp_orphan_retries()``
     instead (not run here).
   * 6.1, 6.12 and 6.18 differ only in the gap's cap: ``tcp_probe0_when(sk, TCP_RTO_MAX)`` until 6.15,
     then ``tcp_rto_max(sk)`` (net.ipv4.tcp_rto_max_ms, 1280c26228bd; the profile's ``rto_max``).

>>> probe_times(0.044, until=2.0)
(0.248, 0.656, 1.472)
>>> receive_capacity(4096), receive_capacity(8192)
(ReceiveCapacity(sk_rcvbuf=8192, window=4096, mss=2048, max_recv_q=4096), ReceiveCapacity(sk_rcvbuf=16384, window=8192, mss=4096, max_recv_q=12288))
"""

from __future__ import annotations

import math
from typing import NamedTuple

from tcplab.model.delack import TCP_DELACK_MIN, delayed_ack_delay
from tcplab.model.keepalive import wheel_fires_at
from tcplab.model.rto import HZ_TICK, TCP_RETR2, TCP_RTO_MAX, TCP_RTO_MIN, initial_rto

__all__ = ["TCP_DELACK_MIN", "ZERO_WINDOW_DELAY", "SKB_OVERHEAD", "SOCK_MIN_RCVBUF", "LOOPBACK_MSS",
           "probe0_base", "probe0_when", "probe_times", "ProbeRun", "probe_run", "ReceiveCapacity",
           "receive_capacity"]

ZERO_WINDOW_DELAY = round(delayed_ack_delay(HZ_TICK), 6)   # rule 3: TCP_DELACK_MIN + the wheel's jiffy
SKB_OVERHEAD = 800             # rule 4: fitted, bytes of truesize beyond the payload of a loopback skb
SOCK_MIN_RCVBUF = 2304         # sk_rcvbuf floor seen on 6.18 (2 * (2048 + the sk_buff struct), rounded)
LOOPBACK_MSS = 65483           # lo's MTU 65536 - 40 - 12 (timestamps)
_MAX_PROBES = 100_000


def probe0_base(rto: float | None = None) -> float:
    """``tcp_probe0_base()``: ``max(icsk_rto, TCP_RTO_MIN)``; ``rto`` None: loopback's initial RTO."""
    return max(initial_rto() if rto is None else rto, TCP_RTO_MIN)


def probe0_when(base: float, backoff: int, rto_max: float = TCP_RTO_MAX) -> float:
    """``tcp_probe0_when()``: ``min(base << backoff, TCP_RTO_MAX)``.

    >>> probe0_when(0.204, 3), probe0_when(0.204, 15)
    (1.632, 120.0)
    """
    return min(base * 2 ** min(backoff, 64), rto_max)


def probe_times(zero_at: float, until: float, base: float | None = None, *, retries2: int = TCP_RETR2,
                rto_max: float = TCP_RTO_MAX, tick: float | None = None) -> tuple[float, ...]:
    """When zero-window probes leave, the window having closed at ``zero_at`` and reopening at
    ``until`` (rule 1; the backoff stops growing at ``retries2``).

    ``tick`` (one jiffy, 1/HZ): each probe timer fires when the timer wheel runs it
    (:func:`tcplab.model.keepalive.wheel_fires_at`): one jiffy late below 63 jiffies, then at the
    next 8-jiffy bucket (32 ms at HZ=250) and coarser for longer timers. That, not the RTO, is why a
    real run's gaps looked ~7 % longer than ``base x 2^n``.

    >>> probe_times(0.0, 1000.0, 0.2)[-3:]       # the gap is capped at TCP_RTO_MAX
    (684.6, 804.6, 924.6)
    >>> probe_times(0.0434, 2.0, 0.208, tick=0.004)   # measured on 6.18: 0.259, 0.703, 1.567
    (0.256, 0.704, 1.568)
    """
    if base is None:
        base = probe0_base()
    out: list[float] = []
    backoff = 0
    if tick:
        now = round(zero_at / tick)
        while len(out) < _MAX_PROBES:
            now = wheel_fires_at(now, math.ceil(round(probe0_when(base, backoff, rto_max) / tick, 9)))
            if now * tick >= until:
                break
            out.append(round(now * tick, 6))
            backoff = min(backoff + 1, retries2)
        return tuple(out)
    t = zero_at + base
    while t < until and len(out) < _MAX_PROBES:
        out.append(round(t, 6))
        backoff = min(backoff + 1, retries2)
        t += probe0_when(base, backoff, rto_max)
    return tuple(out)


class ProbeRun(NamedTuple):
    """What the persist timer does (rule 5): probe send times, and when and why it gave up."""

    probes: tuple[float, ...]
    aborted_at: float | None       # None: still probing when the window reopened (``until``)
    why: str | None                # "TCP_USER_TIMEOUT", "tcp_retries2" or None


#: include/net/tcp.h ``TCP_TIMEOUT_MIN`` (2 jiffies): the shortest wait the clamp leaves
_TIMEOUT_MIN_JIFFIES = 2


def probe_run(zero_at: float, until: float, base: float | None = None, *, retries2: int = TCP_RETR2,
              user_timeout_ms: int | None = None, peer_answers: bool = True, tick: float = HZ_TICK,
              rto_max: float = TCP_RTO_MAX) -> ProbeRun:
    """``tcp_probe_timer()`` expiry by expiry, on the timer wheel of one jiffy ``tick`` (rule 5).

    The window closed at ``zero_at``; it reopens at ``until`` (a silent peer's update never comes:
    pass ``until=math.inf``). ``peer_answers`` False: no probe is answered, ``icsk_probes_out``
    counts up to ``retries2``.

    >>> probe_run(0.044, 2.0, 0.204, user_timeout_ms=1000, tick=0.004)      # measured: 0.257, 0.684, 1.288
    ProbeRun(probes=(0.252, 0.672), aborted_at=1.28, why='TCP_USER_TIMEOUT')
    >>> probe_run(0.047, math.inf, 0.212, retries2=3, peer_answers=False, tick=0.004)  # measured: 3 probes, 3.265
    ProbeRun(probes=(0.264, 0.704, 1.568), aborted_at=3.296, why='tcp_retries2')
    >>> probe_run(0.044, 4.0, 0.204, retries2=2, tick=0.004).probes      # the gap stops doubling at 2
    (0.252, 0.672, 1.504, 2.336, 3.168)
    """
    if base is None:
        base = probe0_base()
    ut_j = math.ceil(round(user_timeout_ms / 1000 / tick, 9)) if user_timeout_ms else 0   # msecs_to_jiffies()
    now = round(zero_at / tick)
    stamp: int | None = None          # icsk_probes_tstamp
    probes_out = backoff = 0
    out: list[float] = []
    wait = math.ceil(round(probe0_when(base, 0, rto_max) / tick, 9))
    for _ in range(_MAX_PROBES):
        now = wheel_fires_at(now, wait)
        t = round(now * tick, 6)
        if t >= until:
            return ProbeRun(tuple(out), None, None)
        if stamp is None:
            stamp = now
        elif ut_j and now - stamp >= ut_j:
            return ProbeRun(tuple(out), t, "TCP_USER_TIMEOUT")
        if probes_out >= retries2:
            return ProbeRun(tuple(out), t, "tcp_retries2")
        out.append(t)                                   # tcp_send_probe0()
        probes_out = 0 if peer_answers else probes_out + 1
        if backoff < retries2:
            backoff += 1
        wait = math.ceil(round(probe0_when(base, backoff, rto_max) / tick, 9))
        if ut_j:                                        # tcp_clamp_probe0_to_user_timeout()
            wait = min(wait, max(ut_j - (now - stamp), _TIMEOUT_MIN_JIFFIES))
    return ProbeRun(tuple(out), None, None)


class ReceiveCapacity(NamedTuple):
    """What SO_RCVBUF=``rcvbuf`` gives a loopback receiver (rule 4)."""

    sk_rcvbuf: int     # SO_RCVBUF doubled (getsockopt shows it)
    window: int        # the first advertised window
    mss: int           # the sender's segment size (half the window, at most lo's MSS)
    max_recv_q: int    # bytes the receiver holds before it advertises a zero window


def receive_capacity(rcvbuf: int, scaling_ratio: bool = True) -> ReceiveCapacity:
    """Rule 4 for a receiver with ``setsockopt(SO_RCVBUF, rcvbuf)`` set before listen().
    ``scaling_ratio`` False: a kernel before 6.6 (``tcp_adv_win_scale``), which holds one window.

    >>> receive_capacity(1)
    ReceiveCapacity(sk_rcvbuf=2304, window=1152, mss=576, max_recv_q=1152)
    >>> receive_capacity(8192, scaling_ratio=False)
    ReceiveCapacity(sk_rcvbuf=16384, window=8192, mss=4096, max_recv_q=8192)
    """
    if rcvbuf < 1:
        raise ValueError(f"rcvbuf must be an int >= 1, not {rcvbuf}")
    sk = max(2 * rcvbuf, SOCK_MIN_RCVBUF)
    window = sk // 2
    mss = min(max(window // 2, 1), LOOPBACK_MSS)
    if not scaling_ratio:
        return ReceiveCapacity(sk, window, mss, window)
    segments = max(2, sk // (mss + SKB_OVERHEAD))
    return ReceiveCapacity(sk, window, mss, segments * mss)
