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
           "probe0_base", "probe0_when", "probe_times", "ReceiveCapacity", "receive_capacity"]

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
