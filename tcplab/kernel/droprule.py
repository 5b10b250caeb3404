"""What the bottleneck path's delay line drops and records: chosen data segments, by sequence number.

The delay line (:mod:`tcplab.kernel.bottleneck`) reads raw IPv4 packets from its TUN devices
(IFF_NO_PI: no packet-information header, the IP header first). A :class:`DropRule` says which
data-bearing TCP segments of the sender -> receiver direction never reach the receiver; a
:class:`SegmentFilter` applies it packet by packet. Segments are counted by **first transmission**:
each new sequence range is the next segment (1, 2, 3, ...), and a later packet starting inside a
range already seen is a retransmission of that segment, so "drop the 5th segment twice" drops its
original and its first retransmission and lets the second through. Deterministic loss, unlike
netem's random loss (which this kernel does not have anyway).

With ``trace=True`` the filter also records every TCP packet of both directions (time, direction,
relative sequence and ACK numbers, payload length, flags, SACK blocks): a capture at the router,
which needs no CAP_NET_RAW.

>>> f = SegmentFilter(DropRule(segments=(2,)))
>>> syn = tcp_packet(seq=1000, flags=0x02)
>>> [f.forward(p, 0.0) for p in (syn, tcp_packet(seq=1001, payload=100), tcp_packet(seq=1101, payload=100),
...                              tcp_packet(seq=1101, payload=100))]
[True, True, False, True]
>>> f.dropped
[Dropped(t=0.0, seq=100, length=100, segment=2, transmission=1)]
"""

from __future__ import annotations

import bisect
import socket
import struct
from dataclasses import dataclass
from typing import NamedTuple

from tcplab.kernel.capture import _parse_options  # one TCP option parser (the SACK blocks of the trace)

__all__ = ["DropRule", "Dropped", "TraceRow", "SegmentFilter", "parse_tcp", "tcp_packet"]

_TCP = socket.IPPROTO_TCP
_SYN, _ACK = 0x02, 0x10
#: how many packets a trace keeps (a bounded list: a long run keeps its start)
TRACE_LIMIT = 50_000


@dataclass(frozen=True)
class DropRule:
    """Which data segments (sender -> receiver) the delay line drops.

    segments:    1-based indexes of data segments, counted by first transmission.
    last_offset: also drop the data segment that ends at this byte offset of the stream (the last
                 segment of a transfer of that many bytes), whatever its index.
    times:       transmissions of each chosen segment to drop: 1 the original only, 2 the original
                 and its first retransmission (a lost retransmission), ...

    >>> DropRule(segments=(5, 6, 7)).times
    1
    >>> DropRule(segments=(0,))
    Traceback (most recent call last):
    ValueError: segments must be indexes in 1..1000000, not (0,)
    """

    segments: tuple[int, ...] = ()
    last_offset: int | None = None
    times: int = 1

    def __post_init__(self) -> None:
        if not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 1_000_000 for n in self.segments):
            raise ValueError(f"segments must be indexes in 1..1000000, not {self.segments!r}")
        if self.last_offset is not None and not (isinstance(self.last_offset, int) and self.last_offset > 0):
            raise ValueError(f"last_offset must be a positive int or None, not {self.last_offset!r}")
        if not (isinstance(self.times, int) and not isinstance(self.times, bool) and 1 <= self.times <= 10):
            raise ValueError(f"times must be an int in 1..10, not {self.times!r}")


class Dropped(NamedTuple):
    """One dropped packet: when (the delay line's time.monotonic()), its stream offset (sequence
    number relative to the SYN's), payload length, segment index and which transmission it was."""

    t: float
    seq: int
    length: int
    segment: int
    transmission: int


class TraceRow(NamedTuple):
    """One TCP packet the delay line saw. ``to_receiver``: the sender -> receiver direction.
    ``seq``/``ack`` relative to the sender's (resp. receiver's) initial sequence number, so data
    offsets and the ACKs for them read alike; ``sack``: SACK blocks as relative (start, end)."""

    t: float
    to_receiver: bool
    seq: int
    length: int
    ack: int
    flags: int
    sack: tuple[tuple[int, int], ...]
    dropped: bool


def parse_tcp(pkt: bytes) -> tuple[int, int, int, int, int, int, int, bytes] | None:
    """(src port, dst port, seq, ack, flags, payload length, header end, options) of an IPv4 TCP
    packet, or None for anything else (or a truncated one).

    >>> parse_tcp(tcp_packet(seq=7, payload=10))[:6]
    (40000, 5001, 7, 0, 16, 10)
    """
    if len(pkt) < 40 or pkt[0] >> 4 != 4 or pkt[9] != _TCP:
        return None
    ihl = (pkt[0] & 0x0F) * 4
    total = (pkt[2] << 8) | pkt[3]
    if len(pkt) < ihl + 20 or total < ihl + 20:
        return None
    sport, dport, seq, ack, off, flags = struct.unpack_from("!HHIIBB", pkt, ihl)
    doff = (off >> 4) * 4
    return sport, dport, seq, ack, flags, max(0, total - ihl - doff), ihl + doff, pkt[ihl + 20:ihl + doff]


def tcp_packet(seq: int, payload: int = 0, flags: int = _ACK, ack: int = 0, sport: int = 40000,
               dport: int = 5001, sack: tuple[tuple[int, int], ...] = ()) -> bytes:
    """An IPv4 TCP packet as the TUN device hands it over (no checksums: for tests and examples).

    >>> len(tcp_packet(seq=1, payload=100))
    140
    """
    opts = b""
    if sack:
        opts = b"\x01\x01" + struct.pack("!BB", 5, 2 + 8 * len(sack)) + b"".join(struct.pack("!II", a, b) for a, b in sack)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      (5 + len(opts) // 4) << 4, flags, 65535, 0, 0) + opts
    total = 20 + len(tcp) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, _TCP, 0, b"\x0a\x0f\x01\x01", b"\x0a\x0f\x02\x02")
    return ip + tcp + b"\0" * payload


class SegmentFilter:
    """Applies a :class:`DropRule` to the packets of one connection (the first SYN it sees, sent
    towards the receiver) and, with ``trace``, records every TCP packet (see :class:`TraceRow`).

    :meth:`forward` is called for each packet read from the sender's side (``to_receiver=True``,
    the default) or the receiver's side, and says whether to pass it on.
    """

    def __init__(self, rule: DropRule | None, trace: bool = False) -> None:
        self.rule = rule or DropRule()
        self.trace_on = trace
        self.trace: list[TraceRow] = []
        self.dropped: list[Dropped] = []
        self._ports: tuple[int, int] | None = None
        self._isn = 0                     # the sender's initial sequence number
        self._risn = 0                    # the receiver's
        self._starts: list[int] = []      # relative start of each segment, by first transmission
        self._sent: list[int] = []        # transmissions of each segment so far
        self._high = 0                    # the highest relative end sent

    def _index(self, rel: int, end: int) -> int:
        """0-based index of the segment a data packet covering rel..end belongs to (a new one if it starts
        at or past the highest byte sent so far: a first transmission)."""
        if rel >= self._high:
            self._starts.append(rel)
            self._sent.append(0)
            self._high = end
            return len(self._starts) - 1
        self._high = max(self._high, end)
        return max(0, bisect.bisect_right(self._starts, rel) - 1)

    def forward(self, pkt: bytes, now: float, to_receiver: bool = True) -> bool:
        """True to pass ``pkt`` on, False to drop it (recorded in :attr:`dropped`)."""
        h = parse_tcp(pkt)
        if h is None:
            return True
        sport, dport, seq, ack, flags, length, _hdr, opts = h
        if flags & _SYN:
            if to_receiver and not flags & _ACK and self._ports is None:
                self._ports, self._isn = (sport, dport), seq
            elif not to_receiver and self._ports == (dport, sport):
                self._risn = seq
        ours = self._ports is not None and (sport, dport) == (self._ports if to_receiver else self._ports[::-1])
        if not ours:
            return True
        keep = True
        if to_receiver:
            rel = (seq - self._isn - 1) & 0xFFFFFFFF
            if length and not flags & _SYN:
                i = self._index(rel, rel + length)
                self._sent[i] += 1
                r = self.rule
                chosen = (i + 1) in r.segments or (r.last_offset is not None and rel + length == r.last_offset)
                if chosen and self._sent[i] <= r.times:
                    keep = False
                    self.dropped.append(Dropped(now, rel, length, i + 1, self._sent[i]))
            rack = (ack - self._risn - 1) & 0xFFFFFFFF
        else:
            rel = (seq - self._risn - 1) & 0xFFFFFFFF
            rack = (ack - self._isn - 1) & 0xFFFFFFFF
        if self.trace_on and len(self.trace) < TRACE_LIMIT:
            base = self._risn if to_receiver else self._isn
            sack = tuple(((a - base - 1) & 0xFFFFFFFF, (b - base - 1) & 0xFFFFFFFF) for a, b in _parse_options(opts).get("sack_blocks", ()))
            self.trace.append(TraceRow(now, to_receiver, rel, length, rack if flags & _ACK else 0, flags, sack,
                                       not keep))
        return keep
