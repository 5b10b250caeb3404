"""The receive window on a path with delay: the SYN's window scale, the most a receiver may
advertise, and the throughput cap window / RTT.

Kernel rules, Linux 6.x (net/ipv4/tcp_output.c, tcp_input.c; measured on 6.18):

1. **Window scaling is decided on the SYNs.** ``tcp_syn_options()`` puts the wscale option on a SYN
   only ``if (likely(READ_ONCE(sock_net(sk)->ipv4.sysctl_tcp_window_scaling)))`` - the *connecting*
   socket's own network namespace; the listener parses it (``tcp_parse_options()``: ``if (... th->syn
   && !estab && READ_ONCE(net->ipv4.sysctl_tcp_window_scaling))`` -> ``wscale_ok``) with *its* namespace's
   value, and ``tcp_synack_options()`` answers with its own shift only if ``wscale_ok``. Off at either
   end: no scaling in either direction (RFC 7323 2.2), and the window field tops out at 65535 bytes.
2. **The shift.** ``tcp_select_initial_window()``: with scaling, ``space = max(space, tcp_rmem[2],
   rmem_max)``, cut to ``window_clamp``, and ``rcv_wscale = clamp(ilog2(space) - 15, 0, 14)``. A socket
   with a locked SO_RCVBUF has ``window_clamp = tcp_full_space()`` (``tcp_connect_init()``,
   ``tcp_openreq_init_rwin()``): the buffer at the default scaling ratio (128/256, before any data),
   i.e. the SO_RCVBUF request itself; otherwise no clamp (``U16_MAX << TCP_MAX_WSCALE``).
3. **The most it advertises.** A locked buffer: ``tcp_win_from_space(sk_rcvbuf)`` once the ratio is
   measured (:func:`tcplab.model.cc.receive_window_packets`); without scaling never more than 65535
   (``tcp_select_initial_window()``: ``space = min(U16_MAX, space)``), and the sender only sends whole
   segments into it (``tcp_snd_wnd_test()``). With a shift of 0 (or none) ``__tcp_select_window()``
   rounds the free space down to whole segments (``rounddown(free_space, mss)``), and an ACK leaves
   while the segment it acknowledges is still queued, its truesize taken from the space: a locked
   64 KB buffer offers 27 segments, not 28 (measured: 39096 bytes). Unlocked: autotuning
   (:mod:`tcplab.model.rcvbuf`) grows it toward ``tcp_win_from_space(tcp_rmem[2])``.
4. **The cap.** A flow with at most W bytes unacknowledged delivers at most W per round trip:
   ``min(rate, W x 8 / RTT)``.

>>> syn_wscale(None, 6291456, 212992), syn_wscale(None, 33554432, 4194304), syn_wscale(32768, 6291456, 212992)
(7, 10, 0)
>>> syn_wscale(None, 6291456, 212992, scaling=False) is None
True
>>> window_limit_packets(32768, True), window_limit_packets(131072, True), window_limit_packets(None, False)
(27, 113, 45)
>>> window_limit_packets(16384, True), window_limit_packets(212992, False)
(13, 45)
>>> window_cap_mbit(45, 40, 20)
13.032
"""

from __future__ import annotations

from tcplab.model.cc import MSS, SCALING_RATIO, WIRE_BYTES, receive_window_packets
from tcplab.model.rcvbuf import locked_rcvbuf

__all__ = ["MAX_UNSCALED", "TCP_MAX_WSCALE", "syn_wscale", "window_limit_packets", "window_cap_mbit",
           "autotune_cap_packets"]

MAX_UNSCALED = 65535          # U16_MAX: the window field without the option
TCP_MAX_WSCALE = 14
_DEFAULT_RATIO = 128          # TCP_DEFAULT_SCALING_RATIO: before the first data segment


def syn_wscale(rcvbuf: int | None, tcp_rmem_max: int, rmem_max: int, scaling: bool = True) -> int | None:
    """The shift a socket puts on its SYN (rule 2), or None without the option (rule 1).
    ``rcvbuf``: its SO_RCVBUF request (None: not set)."""
    if not scaling:
        return None
    space = max(tcp_rmem_max, rmem_max)
    if rcvbuf is not None:
        full = locked_rcvbuf(rcvbuf, rmem_max) * _DEFAULT_RATIO >> 8     # tcp_full_space() before data
        space = min(max(space, full), full)
    return max(0, min(space.bit_length() - 1 - 15, TCP_MAX_WSCALE))


def window_limit_packets(rcvbuf: int | None, scaling: bool, tcp_rmem_max: int = 6291456,
                         rmem_max: int = 212992) -> int:
    """The most full segments a receiver lets out at once (rule 3): its locked buffer's window,
    or what autotuning may reach; 65535 bytes' worth without scaling."""
    if rcvbuf is not None:
        sk_rcvbuf = locked_rcvbuf(rcvbuf, rmem_max)
        if not syn_wscale(rcvbuf, tcp_rmem_max, rmem_max, scaling):     # shift 0 or no option
            # rounddown(free_space, mss) with the acknowledged segment's truesize still in the queue
            w = receive_window_packets(sk_rcvbuf - (MSS * 256 + SCALING_RATIO - 1) // SCALING_RATIO)
        else:
            w = receive_window_packets(sk_rcvbuf)
    else:
        w = autotune_cap_packets(tcp_rmem_max)
    return min(w, MAX_UNSCALED // MSS) if not scaling else w


def autotune_cap_packets(tcp_rmem_max: int) -> int:
    """The window autotuning may grow to: ``tcp_win_from_space(tcp_rmem[2])`` in segments."""
    return receive_window_packets(tcp_rmem_max)


def window_cap_mbit(window_packets: int, rtt_ms: float, rate_mbit: float) -> float:
    """Rule 4 in payload Mbit/s: the link's payload rate (1448 of every 1500 bytes) or one window per RTT."""
    if rtt_ms <= 0:
        raise ValueError(f"rtt_ms must be > 0, not {rtt_ms}")
    return round(min(rate_mbit * MSS / WIRE_BYTES, window_packets * MSS * 8 / (rtt_ms / 1000) / 1e6), 3)
