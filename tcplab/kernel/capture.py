"""Packets on loopback: capture with AF_PACKET and decode TCP; craft raw SYNs.

Both need CAP_NET_RAW, which the owner of a private user+net namespace has inside it.
Only loopback addresses are used.

>>> seg = decode_ipv4_tcp(craft_syn("127.0.0.2", 4242, "127.0.0.1", 80, seq=7))
>>> seg["flags"], seg["src_port"], seg["seq"], seg["options"]["mss"]
('S', 4242, 7, 65495)
"""

from __future__ import annotations

import select
import socket
import struct
import time
from typing import Any

from tcplab._validate import check_loopback

__all__ = ["Capture", "decode_ipv4_tcp", "craft_syn", "open_raw_sender", "ports_filter", "ETH_P_ALL"]

ETH_P_ALL = 0x0003
_SOL_PACKET, _PACKET_STATISTICS = 263, 6  # linux/socket.h, linux/if_packet.h


def _flags(byte: int) -> str:
    # conventional reading order: S, F, R, P, A, U, E, C (what tcpdump prints as [S.])
    order = [("S", 2), ("F", 1), ("R", 4), ("P", 8), ("A", 16), ("U", 32), ("E", 64), ("C", 128)]
    return "".join(name for name, bit in order if byte & bit)


def _parse_options(data: bytes) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    i = 0
    while i < len(data):
        kind = data[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(data) or data[i + 1] < 2:
            opts["malformed"] = True
            break
        length = data[i + 1]
        body = data[i + 2:i + length]
        if kind == 2 and len(body) == 2:
            opts["mss"] = struct.unpack("!H", body)[0]
        elif kind == 3 and len(body) == 1:
            opts["wscale"] = body[0]
        elif kind == 4:
            opts["sack_perm"] = True
        elif kind == 5:
            opts["sack"] = len(body) // 8
            # the blocks themselves (absolute left, right edges): loss recovery reads the scoreboard
            opts["sack_blocks"] = [struct.unpack_from("!II", body, j) for j in range(0, len(body) - 7, 8)]
        elif kind == 8 and len(body) == 8:
            opts["ts_val"], opts["ts_ecr"] = struct.unpack("!II", body)
        else:
            opts[f"kind{kind}"] = body.hex()
        i += length
    return opts


def decode_ipv4_tcp(packet: bytes) -> dict[str, Any] | None:
    """Decode an IPv4 packet carrying TCP; None for anything else (or truncated)."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if packet[9] != socket.IPPROTO_TCP or len(packet) < ihl + 20:
        return None
    total = struct.unpack("!H", packet[2:4])[0]
    tcp = packet[ihl:total if total >= ihl + 20 else len(packet)]
    sport, dport, seq, ack, off, flags, window = struct.unpack("!HHIIBBH", tcp[:16])
    doff = (off >> 4) * 4
    # the payload's length from the IP header: a capture with a snap length (Capture(snaplen=...)) keeps
    # only the headers; a GSO packet larger than 64 KiB (BIG TCP) carries tot_len 0: its captured length
    length = total - ihl - doff if total >= ihl + 20 else len(packet) - ihl - doff
    return {"src": socket.inet_ntoa(packet[12:16]), "dst": socket.inet_ntoa(packet[16:20]),
            "src_port": sport, "dst_port": dport, "seq": seq, "ack": ack, "flags": _flags(flags),
            "window": window, "options": _parse_options(tcp[20:doff]), "payload": max(0, length)}


class Capture:
    """AF_PACKET capture on one interface (lo). Use as a context manager.

    On lo every packet is seen once, as outgoing (PACKET_OUTGOING) and once as incoming:
    only outgoing copies are kept, so each segment counts once.

    ``kernel_time``: stamp each segment with the time the kernel handed it to the capture
    (SO_TIMESTAMPNS), not when this process read it: a reader descheduled on a busy host
    would otherwise see a probe tens of ms late. Each segment's ``mono`` is that instant on
    ``time.monotonic()``'s clock, ``t`` the seconds since the capture opened.

    ``incoming``: keep what the interface received too (each segment's ``out`` says which way it
    went); on a device other than lo (a veth) every packet is seen once.

    ``snaplen``: keep only the first ``snaplen`` bytes of each packet (a BPF return value, so the kernel
    copies no more): the headers are all a timeline needs, and a bulk transfer's 64 KiB GSO packets would
    otherwise cost the reader a copy each.
    """

    def __init__(self, ifname: str = "lo", rcvbuf: int | None = None,
                 ports: tuple[int, int] | None = None, kernel_time: bool = False, incoming: bool = False,
                 snaplen: int | None = None) -> None:
        if snaplen is not None and (isinstance(snaplen, bool) or not isinstance(snaplen, int)
                                    or not 60 <= snaplen <= 65535):
            raise ValueError(f"snaplen must be an int in 60..65535 or None, not {snaplen!r}")
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        self.kernel_time = kernel_time
        self.incoming = incoming
        try:
            if ports is not None or snaplen is not None:
                # in the kernel, before the receive buffer: on a busy lo (the host namespace) other
                # traffic can neither fill the buffer nor make this connection's packets drop
                prog = ports_filter(*ports) if ports is not None else [(0x06, 0, 0, 0xFFFF)]
                if snaplen is not None:
                    prog = [(c, jt, jf, snaplen if (c, k) == (0x06, 0xFFFF) else k) for c, jt, jf, k in prog]
                self.sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, _bpf_program(prog))
            if rcvbuf is not None:
                # room for a burst while the reader is descheduled: SO_RCVBUFFORCE passes
                # net.core.rmem_max where the namespace's owner may (CAP_NET_ADMIN), SO_RCVBUF is capped by it
                try:
                    self.sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, rcvbuf)
                except OSError:
                    self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if kernel_time:
                self.sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            self.sock.bind((ifname, ETH_P_ALL))
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise
        self.t0 = time.monotonic()
        # the kernel stamps in CLOCK_REALTIME; this converts to the monotonic clock runs are timed on
        self._mono_minus_real = time.monotonic() - time.time()

    @classmethod
    def try_open(cls, ifname: str = "lo", **options: Any) -> tuple[Capture | None, str]:
        """``(capture, "")``, or ``(None, why not)`` where AF_PACKET is not allowed (no CAP_NET_RAW)."""
        try:
            return cls(ifname, **options), ""
        except PermissionError as e:
            return None, f"no packet capture here ({e.strerror}: AF_PACKET needs CAP_NET_RAW in the namespace)"

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def read(self, timeout: float = 0.05) -> list[dict[str, Any]]:
        """Decoded TCP segments that arrived so far (waits up to ``timeout`` for the first;
        returns by ``timeout`` even while packets keep coming, e.g. on a busy host lo)."""
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if not select.select([self.sock], [], [], max(0.0, left))[0]:
                return out
            for _ in range(10_000):
                try:
                    data, anc, _flags, addr = self.sock.recvmsg(65536, 64)
                except BlockingIOError:
                    break
                out_going = addr[2] == socket.PACKET_OUTGOING
                if not out_going and not (self.incoming and addr[2] == socket.PACKET_HOST):
                    continue
                seg = decode_ipv4_tcp(data)
                if seg is not None:
                    seg["out"] = out_going
                    stamp = next((struct.unpack("ll", d[:16]) for _, kind, d in anc if kind == _SO_TIMESTAMPNS), None)
                    mono = stamp[0] + stamp[1] / 1e9 + self._mono_minus_real if stamp else time.monotonic()
                    seg["mono"] = mono
                    seg["t"] = round(mono - self.t0, 6)
                    out.append(seg)
            if time.monotonic() >= deadline:
                return out

    def drops(self) -> int:
        """Packets the kernel dropped for this socket (receive buffer full) since the last call
        (PACKET_STATISTICS, which resets on read): a capture with drops is incomplete."""
        packets_and_drops = self.sock.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, 8)
        return struct.unpack("II", packets_and_drops)[1]


_SO_ATTACH_FILTER = 26  # asm-generic/socket.h
_SO_RCVBUFFORCE = 33
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def ports_filter(a: int, b: int) -> list[tuple[int, int, int, int]]:
    """A classic BPF program (code, jt, jf, k) that keeps IPv4 TCP segments between ports ``a``
    and ``b`` (either direction, any address) and drops everything else. An AF_PACKET
    SOCK_DGRAM socket's filter sees the packet from its IP header.

    >>> len(ports_filter(80, 4242)), ports_filter(80, 4242)[-2:]
    (14, [(6, 0, 0, 65535), (6, 0, 0, 0)])
    """
    for name, port in (("a", a), ("b", b)):
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port {name} must be an int in 0..65535, not {port!r}")
    accept, drop = 12, 13                       # indexes of the two return instructions
    prog = [
        (0x30, 0, 0, 0),                        # 0  A = ip[0]
        (0x54, 0, 0, 0xF0),                     # 1  A &= 0xf0
        (0x15, 0, drop - 3, 0x40),              # 2  IPv4?
        (0x30, 0, 0, 9),                        # 3  A = ip[9] (protocol)
        (0x15, 0, drop - 5, socket.IPPROTO_TCP),  # 4  TCP?
        (0xB1, 0, 0, 0),                        # 5  X = 4 * (ip[0] & 0xf): the IP header length
        (0x48, 0, 0, 0),                        # 6  A = tcp source port
        (0x15, 9 - 8, 0, a),                    # 7  == a -> 9
        (0x15, 0, drop - 9, b),                 # 8  == b -> 9, else drop
        (0x48, 0, 0, 2),                        # 9  A = tcp destination port
        (0x15, accept - 11, 0, a),              # 10 == a -> accept
        (0x15, 0, drop - 12, b),                # 11 == b -> accept, else drop
        (0x06, 0, 0, 0xFFFF),                   # 12 accept (up to 64 KiB)
        (0x06, 0, 0, 0),                        # 13 drop
    ]
    return prog


def _bpf_program(prog: list[tuple[int, int, int, int]]) -> bytes:
    """struct sock_fprog for setsockopt(SO_ATTACH_FILTER): length, then a pointer to the code
    (kept alive on the function object until the next call; the kernel copies it at once)."""
    import ctypes

    code = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(code, len(code))
    _bpf_program.keep = buf  # type: ignore[attr-defined]
    return struct.pack("HL", len(prog), ctypes.addressof(buf))


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def craft_syn(src: str, sport: int, dst: str, dport: int, seq: int, mss: int = 65495) -> bytes:
    """An IPv4 packet with a TCP SYN (MSS option), checksums filled in. Loopback only."""
    check_loopback("src", src)
    check_loopback("dst", dst)
    opts = struct.pack("!BBH", 2, 4, mss)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, (5 + len(opts) // 4) << 4, 0x02, 65535, 0, 0) + opts
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, socket.IPPROTO_TCP, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return ip + tcp


def open_raw_sender() -> socket.socket:
    """A raw IPPROTO_TCP socket with IP_HDRINCL, for :func:`craft_syn` packets."""
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    try:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    except BaseException:
        s.close()
        raise
    return s
