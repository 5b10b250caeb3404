"""TCP's own pacing for a Reno/CUBIC sender that set ``SO_MAX_PACING_RATE`` (no fq qdisc needed).

Since Linux 4.13 (commit 218af599fa63, "tcp: internal implementation for pacing") a socket option
``SO_MAX_PACING_RATE`` other than ~0 moves ``sk_pacing_status`` from ``SK_PACING_NONE`` to
``SK_PACING_NEEDED`` (``sk_setsockopt()``, net/core/sock.c); ``tcp_needs_internal_pacing()`` is then
true, and ``tcp_write_xmit()`` stops at ``tcp_pacing_check()`` until ``tcp_wstamp_ns`` (an hrtimer
wakes it; net/ipv4/tcp_output.c). The rate is what ``tcp_update_pacing_rate()`` (net/ipv4/tcp_input.c)
sets on every ACK: ``max(cwnd, packets_out) x mss / srtt`` times ``tcp_pacing_ss_ratio`` (200 %) while
``cwnd < ssthresh / 2`` and ``tcp_pacing_ca_ratio`` (120 %) after, capped at ``sk_max_pacing_rate``.
After each burst ``tcp_update_skb_after_send()`` moves ``tcp_wstamp_ns`` on by its length at that
rate, less up to half for the time the sender was late, and does not pace the first 10 segments;
a burst is ``tcp_tso_autosize()``'s ~1 ms of the rate (``>> sk_pacing_shift``), at least
``tcp_min_tso_segs`` (2). :mod:`tcplab.sim.bottleneck` drives a :class:`Pacer` exactly as it drives
BBR's (:meth:`tcplab.model.bbr.Bbr.after_burst`).

>>> p = Pacer(max_rate=19e6 / 8)
>>> p.update(cwnd=100, ssthresh=10**9, packets_out=0, srtt=0.04)   # 200 % of 100 x 1448 B / 40 ms > max
2375000.0
>>> p.update(cwnd=20, ssthresh=30, packets_out=0, srtt=0.04)       # 120 %: 20 x 1448 / 0.04 x 1.2
868800.0
>>> p.tso_segs()
2
"""

from __future__ import annotations

from tcplab.model.bbr import GSO_MAX_BYTES, PACING_SHIFT
from tcplab.model.cc import MSS

__all__ = ["Pacer", "SS_RATIO", "CA_RATIO", "UNPACED_SEGMENTS"]

#: net.ipv4.tcp_pacing_ss_ratio and tcp_pacing_ca_ratio's defaults, percent
SS_RATIO, CA_RATIO = 200, 120
#: tcp_update_skb_after_send(): "Original sch_fq does not pace first 10 MSS"
UNPACED_SEGMENTS = 10
#: net.ipv4.tcp_min_tso_segs (tcp_tso_autosize()'s floor without a ca_ops->min_tso_segs)
MIN_TSO_SEGS = 2


class Pacer:
    """One paced sender's state: ``max_rate`` (bytes/s, ``SO_MAX_PACING_RATE``), the current
    ``pacing_rate`` (bytes/s), ``wstamp`` (s: when the next burst may leave) and the segments sent."""

    __slots__ = ("max_rate", "pacing_rate", "wstamp", "data_segs_out")

    def __init__(self, max_rate: float) -> None:
        if not max_rate > 0:
            raise ValueError(f"max_rate must be > 0 bytes/s, not {max_rate!r}")
        self.max_rate = float(max_rate)
        self.pacing_rate = self.max_rate        # sk_pacing_rate starts at ~0, min'd with the max at setsockopt
        self.wstamp = 0.0
        self.data_segs_out = 0

    def update(self, cwnd: int, ssthresh: int, packets_out: int, srtt: float) -> float:
        """``tcp_update_pacing_rate()``: the rate after an ACK (bytes/s); ``srtt`` in seconds."""
        ratio = SS_RATIO if cwnd < ssthresh // 2 else CA_RATIO
        if srtt > 0:
            self.pacing_rate = min(ratio / 100 * max(cwnd, packets_out) * MSS / srtt, self.max_rate)
        return self.pacing_rate

    def on_send(self) -> None:
        """A data segment left (``tp->data_segs_out``)."""
        self.data_segs_out += 1

    def tso_segs(self) -> int:
        """``tcp_tso_autosize()``: segments per burst, ~1 ms of the rate, at least 2."""
        byts = min(int(self.pacing_rate) >> PACING_SHIFT, GSO_MAX_BYTES)
        return max(byts // MSS, MIN_TSO_SEGS)

    def after_burst(self, now: float, packets: int) -> None:
        """``tcp_update_skb_after_send()``: as :meth:`tcplab.model.bbr.Bbr.after_burst`."""
        prior = self.wstamp
        self.wstamp = max(self.wstamp, now)
        if self.data_segs_out >= UNPACED_SEGMENTS and self.pacing_rate > 0:
            length = packets * MSS / self.pacing_rate
            credit = self.wstamp - prior
            self.wstamp += length - min(length / 2, credit)
