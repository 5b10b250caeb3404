"""The delay line's own bottleneck: a rate, a queue in userspace, drop-tail or CoDel, and ECN marks.

This kernel builds no codel, fq_codel or pie qdisc (only tbf, htb and pfifo), so for the AQM
experiment the bottleneck itself moves into the delay line of :mod:`tcplab.kernel.bottleneck`: the
packets the sender sends (read from tunR at once) wait in a FIFO here, leave it one at a time at
``rate_mbit`` (each takes ``size x 8 / rate`` of the link), and only then start their one-way delay.
Both disciplines run here, so both runs measure the queue the same way:

- ``droptail``: a packet that finds ``limit`` packets waiting is dropped (pfifo's rule).
- ``codel``: the same limit, and :class:`tcplab.model.codel.CoDel` decides at each dequeue from the
  packet's **sojourn time** (dequeue time less the time it was read from tunR); with ``ecn`` it sets
  CE (IP ECN bits 11, header checksum fixed) on an ECT packet instead of dropping it.
- ``fq_codel``: :class:`tcplab.model.fq_codel.FqCoDel` (RFC 8290, ``sch_fq_codel.c``): each packet is
  hashed by its 5-tuple into one of 1024 buckets (CRC-32 here; Linux's ``skb_get_hash()`` is a seeded
  jhash, so which flows share a bucket differs, not how), each bucket has its own FIFO and CoDel, and the
  link serves them by deficit round robin, new flows first. Over ``limit`` packets the fattest flow loses
  packets from its head.

With ``kernel_qdisc`` the queue is the kernel's own qdisc (``sch_codel`` or ``sch_fq_codel`` under tbf on tunR,
where the running kernel has it: :func:`kernel_qdisc_args`) and the link here only reads what leaves it, as a
capture would (no rate, no queue of its own).

With ``sparse_port``, the packets to that receiver port (a second, sparse flow: the experiment's pings)
have their own sojourn list, so the two flows' waits can be compared.

The link is served in virtual time: a packet's service starts at ``max(link free, its arrival)``, so
a late wakeup of the delay line does not slow the link (it shows as lateness, as before).

It also reads, as a capture at the router would (no CAP_NET_RAW needed), the ECN bits and flags of
the connection: the SYN's ECE+CWR (ECN asked), the SYN-ACK's ECE (accepted), ECT(0) on data, CWR on
the sender's segments and ECE on the receiver's ACKs.

>>> from tcplab.kernel.droprule import tcp_packet
>>> pkt = set_ect0(tcp_packet(seq=1, payload=100))
>>> ecn_bits(pkt), ecn_bits(set_ce(pkt)), ip_checksum_ok(set_ce(pkt))
(2, 3, True)
"""

from __future__ import annotations

import array
import struct
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tcplab.model.codel import INTERVAL_S, TARGET_S, CoDel, Fifo, Packet
from tcplab.model.fq_codel import FLOWS, FqCoDel

__all__ = ["Aqm", "Link", "LinkStats", "ecn_bits", "set_ce", "set_ect0", "ip_checksum_ok", "flow_bucket",
           "kernel_qdisc_args", "QUEUES"]

QUEUES = ("droptail", "codel", "fq_codel")
_FIN, _SYN, _ACK, _ECE, _CWR = 0x01, 0x02, 0x10, 0x40, 0x80
#: how many queue rows a run keeps (one per ``row_period_s`` at most)
ROW_LIMIT = 20_000


@dataclass(frozen=True)
class Aqm:
    """What the delay line's bottleneck does: ``queue`` (``droptail``, ``codel`` or ``fq_codel``), CE
    marking instead of dropping (``ecn``, CoDel's), CoDel's ``target`` and ``interval`` (s), the
    receiver port of a sparse flow whose packets' sojourns are kept apart (``sparse_port``), and whether the
    kernel's own qdisc holds the queue (``kernel_qdisc``, codel and fq_codel only).

    >>> Aqm("red")
    Traceback (most recent call last):
    ValueError: queue must be one of droptail, codel, fq_codel, not 'red'
    >>> Aqm("droptail", kernel_qdisc=True)
    Traceback (most recent call last):
    ValueError: kernel_qdisc is for codel and fq_codel (drop-tail runs in the delay line), not 'droptail'
    """

    queue: str = "codel"
    ecn: bool = False
    target_s: float = TARGET_S
    interval_s: float = INTERVAL_S
    sparse_port: int | None = None
    kernel_qdisc: bool = False

    def __post_init__(self) -> None:
        if self.queue not in QUEUES:
            raise ValueError(f"queue must be one of {', '.join(QUEUES)}, not {self.queue!r}")
        if self.kernel_qdisc and self.queue == "droptail":
            raise ValueError(f"kernel_qdisc is for codel and fq_codel (drop-tail runs in the delay line), not "
                             f"{self.queue!r}")


def kernel_qdisc_args(aqm: Aqm, limit: int) -> list[str]:
    """The ``tc qdisc`` arguments of the kernel's own CoDel or fq_codel, as the delay line's runs it: the same
    limit, target, interval and ECN choice (fq_codel's default is ``ecn``, so ``noecn`` is said), 1024 flows,
    a 1500-byte quantum (``psched_mtu()`` of the TUN device).

    >>> kernel_qdisc_args(Aqm("fq_codel", kernel_qdisc=True), 400)
    ['fq_codel', 'limit', '400', 'target', '5000us', 'interval', '100000us', 'noecn', 'flows', '1024', 'quantum', '1500']
    >>> kernel_qdisc_args(Aqm("codel", ecn=True, kernel_qdisc=True), 400)
    ['codel', 'limit', '400', 'target', '5000us', 'interval', '100000us', 'ecn']
    """
    args = [aqm.queue, "limit", str(limit), "target", f"{round(aqm.target_s * 1e6)}us",
            "interval", f"{round(aqm.interval_s * 1e6)}us", "ecn" if aqm.ecn else "noecn"]
    if aqm.queue == "fq_codel":
        args += ["flows", str(FLOWS), "quantum", "1500"]
    return args


@dataclass
class LinkStats:
    """What the link measured. ``sojourn_ms``: each sent packet's wait in the queue; ``rows``: (t,
    queue packets, sojourn ms of the packet just sent, drops so far, marks so far); ECN counts from
    the packets themselves."""

    sojourn_ms: array.array = field(default_factory=lambda: array.array("f"))
    sparse_sojourn_ms: array.array = field(default_factory=lambda: array.array("f"))
    buckets: dict[int, int] = field(default_factory=dict)     # fq_codel: data packets per bucket
    new_flow_count: int = 0                                   # fq_codel: flows (re)entering new_flows
    rows: list[tuple[float, int, float, int, int]] = field(default_factory=list)
    sent: int = 0
    tail_drops: int = 0
    aqm_drops: int = 0
    marks: int = 0
    syn_flags: int | None = None            # the sender's SYN: TCP flags
    synack_flags: int | None = None         # the receiver's SYN-ACK
    syn_ecn_bits: int | None = None
    data_ecn: dict[int, int] = field(default_factory=lambda: {0: 0, 1: 0, 2: 0, 3: 0})
    data_cwr: int = 0                       # the sender's segments with CWR (it reduced cwnd)
    acks: int = 0
    acks_ece: int = 0                       # the receiver's ACKs with ECE (it saw CE)
    first_ce_t: float | None = None
    first_cwr_t: float | None = None

    def summary(self) -> dict[str, Any]:
        """A picklable digest (the sojourn samples as a list of floats)."""
        return {"sojourn_ms": list(self.sojourn_ms), "sparse_sojourn_ms": list(self.sparse_sojourn_ms),
                "buckets": dict(self.buckets), "new_flow_count": self.new_flow_count, "rows": self.rows, "sent": self.sent,
                "tail_drops": self.tail_drops, "aqm_drops": self.aqm_drops, "marks": self.marks,
                "syn_flags": self.syn_flags, "synack_flags": self.synack_flags, "syn_ecn_bits": self.syn_ecn_bits,
                "data_ecn": dict(self.data_ecn), "data_cwr": self.data_cwr, "acks": self.acks,
                "acks_ece": self.acks_ece, "first_ce_t": self.first_ce_t, "first_cwr_t": self.first_cwr_t}


def ecn_bits(pkt: bytes) -> int:
    """The IPv4 ECN field (the low 2 bits of the TOS byte): 0 not-ECT, 2 ECT(0), 1 ECT(1), 3 CE."""
    return pkt[1] & 0x03


def _with_tos(pkt: bytes, tos: int) -> bytes:
    ihl = (pkt[0] & 0x0F) * 4
    hdr = bytearray(pkt[:ihl])
    hdr[1] = tos
    hdr[10:12] = b"\0\0"
    hdr[10:12] = struct.pack("!H", _checksum(bytes(hdr)))
    return bytes(hdr) + pkt[ihl:]


def _checksum(hdr: bytes) -> int:
    s = sum(struct.unpack(f"!{len(hdr) // 2}H", hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip_checksum_ok(pkt: bytes) -> bool:
    """Whether the IPv4 header checksum holds (the receiver's ip_rcv_core() drops it otherwise)."""
    return _checksum(pkt[:(pkt[0] & 0x0F) * 4]) == 0


def set_ce(pkt: bytes) -> bytes:
    """The packet with ECN bits 11 (CE) and its header checksum recomputed (``INET_ECN_set_ce()``
    updates it incrementally; a full recomputation gives the same sum)."""
    return _with_tos(pkt, pkt[1] | 0x03)


def set_ect0(pkt: bytes) -> bytes:
    """The packet marked ECT(0) (for examples and tests)."""
    return _with_tos(pkt, (pkt[1] & ~0x03) | 0x02)


def _tcp(pkt: bytes) -> tuple[int, int] | None:
    """(TCP flags, payload length) of an IPv4 TCP packet, or None."""
    if len(pkt) < 40 or pkt[0] >> 4 != 4 or pkt[9] != 6:
        return None
    ihl = (pkt[0] & 0x0F) * 4
    if len(pkt) < ihl + 20:
        return None
    total = (pkt[2] << 8) | pkt[3]
    return pkt[ihl + 13], max(0, total - ihl - (pkt[ihl + 12] >> 4) * 4)


def _ports(pkt: bytes) -> tuple[int, int] | None:
    """(source port, destination port) of an IPv4 TCP or UDP packet, or None."""
    if len(pkt) < 20 or pkt[0] >> 4 != 4 or pkt[9] not in (6, 17):
        return None
    ihl = (pkt[0] & 0x0F) * 4
    if len(pkt) < ihl + 4:
        return None
    return struct.unpack_from("!HH", pkt, ihl)


def flow_bucket(pkt: bytes, flows: int = FLOWS) -> int:
    """The fq_codel bucket of an IPv4 packet: a hash of (addresses, protocol, ports) scaled to ``flows``
    (``fq_codel_hash()``: ``reciprocal_scale(skb_get_hash(skb), flows_cnt)``; CRC-32 here, unseeded, so a
    run's buckets can be recomputed; Linux seeds its hash at boot).

    >>> from tcplab.kernel.droprule import tcp_packet
    >>> a, b = tcp_packet(seq=1, payload=10), tcp_packet(seq=99, payload=1000)
    >>> flow_bucket(a) == flow_bucket(b), 0 <= flow_bucket(a) < 1024    # one flow, one bucket
    (True, True)
    """
    if len(pkt) < 20:
        return 0
    ports = _ports(pkt) or (0, 0)
    key = pkt[12:20] + bytes([pkt[9]]) + struct.pack("!HH", *ports)
    return (zlib.crc32(key) * flows) >> 32          # reciprocal_scale(): (hash * n) >> 32


class Link:
    """The bottleneck: ``enqueue()`` each packet the sender sends, ``release(now)`` the ones whose
    turn on the link has come, ``observe_ack()`` each packet of the other direction.

    >>> from tcplab.kernel.droprule import tcp_packet
    >>> link = Link(rate_mbit=12, limit=2, aqm=Aqm("droptail"))
    >>> for i in range(3):
    ...     link.enqueue(0.0, tcp_packet(seq=i * 1460, payload=1460))
    >>> link.stats.tail_drops, [round(t, 4) for t, _ in link.release(0.002)]
    (1, [0.0, 0.001])
    """

    def __init__(self, rate_mbit: float, limit: int, aqm: Aqm, mtu: int = 1500, row_period_s: float = 0.005) -> None:
        # kernel_qdisc: the kernel's qdisc held the packets and set the pace; here each passes at once
        self.bit_s = 0.0 if aqm.kernel_qdisc else 8 / (rate_mbit * 1e6)
        self.limit = 1 << 30 if aqm.kernel_qdisc else limit
        if aqm.kernel_qdisc:
            aqm = Aqm("droptail", aqm.ecn, aqm.target_s, aqm.interval_s, aqm.sparse_port)
        self.aqm = aqm
        self.codel = CoDel(aqm.target_s, aqm.interval_s, mtu, aqm.ecn) if aqm.queue == "codel" else None
        self.fq = (FqCoDel(limit, aqm.target_s, aqm.interval_s, mtu, aqm.ecn) if aqm.queue == "fq_codel"
                   else None)
        # fq_codel: packets read but not yet in the qdisc, admitted at their arrival in the link's virtual
        # time, so a late wakeup does not let a later packet be chosen for an earlier service slot
        self.arrivals: deque[tuple[Packet, int]] = deque()
        self.fifo = Fifo()
        self.free = float("-inf")             # when the link finishes the packet it is sending
        self.stats = LinkStats()
        self.row_period_s = row_period_s
        self._next_row = float("-inf")

    def enqueue(self, now: float, pkt: bytes) -> None:
        """A packet from the sender arrives: queued, or dropped if ``limit`` packets wait."""
        tcp = _tcp(pkt)
        bits = pkt[1] & 0x03 if len(pkt) > 1 else 0
        if tcp is not None:
            flags, payload = tcp
            if flags & _SYN and self.stats.syn_flags is None:
                self.stats.syn_flags, self.stats.syn_ecn_bits = flags, bits
            if payload:
                self.stats.data_ecn[bits] += 1
                if flags & _CWR:
                    self.stats.data_cwr += 1
                    if self.stats.first_cwr_t is None:
                        self.stats.first_cwr_t = now
        if self.fq is not None:
            bucket = flow_bucket(pkt)
            if tcp is not None and tcp[1]:
                self.stats.buckets[bucket] = self.stats.buckets.get(bucket, 0) + 1
            self.arrivals.append((Packet(now, len(pkt), bits in (1, 2), pkt), bucket))
            return
        if len(self.fifo) >= self.limit:
            self.stats.tail_drops += 1
            return
        self.fifo.push(Packet(now, len(pkt), bits in (1, 2), pkt))

    def _admit(self, t: float) -> None:
        """fq_codel: the packets that had arrived by ``t`` enter the qdisc (an overlimit drop counts as tail)."""
        fq = self.fq
        assert fq is not None
        while self.arrivals and self.arrivals[0][0].enqueued <= t:
            p, bucket = self.arrivals.popleft()
            self.stats.tail_drops += len(fq.enqueue(p.enqueued, bucket, p))

    def next_event(self) -> float | None:
        """When the link can send the head packet (None: nothing waits)."""
        if self.fq is not None:
            if len(self.fq):
                return max(self.free, 0.0)
            return max(self.free, self.arrivals[0][0].enqueued) if self.arrivals else None
        if not self.fifo.items:
            return None
        return max(self.free, self.fifo.items[0].enqueued)

    def release(self, now: float) -> list[tuple[float, bytes]]:
        """The packets that left the queue by ``now``: (their service start, the bytes)."""
        out: list[tuple[float, bytes]] = []
        st = self.stats
        fq = self.fq
        while True:
            if fq is not None:
                if not len(fq):
                    if not self.arrivals:
                        break
                    t = max(self.free, self.arrivals[0][0].enqueued)
                else:
                    t = self.free
                if t > now:
                    break
                self._admit(t)
            elif self.fifo.items:
                t = max(self.free, self.fifo.items[0].enqueued)
                if t > now:
                    break
            else:
                break
            if fq is not None:
                d = fq.dequeue(t)
                st.aqm_drops += len(d.dropped)
                st.new_flow_count = fq.new_flow_count
                p, marked = d.packet, d.marked
            elif self.codel is None:
                p = self.fifo.pop()
                marked = False
            else:
                d = self.codel.dequeue(t, self.fifo)
                st.aqm_drops += len(d.dropped)
                p, marked = d.packet, d.marked
            if p is None:
                if fq is not None:
                    continue            # all it held was dropped: later arrivals may still be due
                break
            pkt = p.data
            if marked:
                pkt = set_ce(pkt)
                st.marks += 1
                if st.first_ce_t is None:
                    st.first_ce_t = t
            sojourn = (t - p.enqueued) * 1000
            st.sojourn_ms.append(sojourn)
            if self.aqm.sparse_port is not None and (_ports(pkt) or (0, 0))[1] == self.aqm.sparse_port:
                st.sparse_sojourn_ms.append(sojourn)
            st.sent += 1
            self.free = t + p.size * self.bit_s
            out.append((t, pkt))
            if t >= self._next_row and len(st.rows) < ROW_LIMIT:
                st.rows.append((t, len(fq) if fq is not None else len(self.fifo), round(sojourn, 3), st.tail_drops + st.aqm_drops, st.marks))
                self._next_row = t + self.row_period_s
        return out

    def observe_ack(self, pkt: bytes) -> None:
        """A packet of the receiver -> sender direction: the SYN-ACK's flags, ECE on ACKs."""
        tcp = _tcp(pkt)
        if tcp is None:
            return
        flags = tcp[0]
        if flags & _SYN:
            if self.stats.synack_flags is None:
                self.stats.synack_flags = flags
            return
        if flags & _ACK:
            self.stats.acks += 1
            if flags & _ECE:
                self.stats.acks_ece += 1
