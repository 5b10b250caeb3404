"""Classic libpcap files of IPv4 TCP segments: write what a capture decoded, read a file taken elsewhere.

The format is the one tcpdump, Wireshark and libpcap read and write
(https://www.tcpdump.org/manpages/pcap-savefile.5.txt): a 24-byte file header (magic, version 2.4,
snaplen, link type), then per packet a 16-byte record header (seconds, micro- or nanoseconds,
captured and original length) and the bytes. Written with :mod:`struct`: no dependency.

Writing uses LINKTYPE_RAW (101: each packet starts at its IP header), which is what an AF_PACKET
SOCK_DGRAM capture hands over. Reading accepts LINKTYPE_RAW (101 and DLT_RAW 12/14), LINKTYPE_IPV4
(228), LINKTYPE_ETHERNET (1, with 802.1Q tags), LINKTYPE_LINUX_SLL (113, ``tcpdump -i any``) and
LINKTYPE_NULL/LOOP (0, 108: BSD loopback), in either byte order, with micro- or nanosecond stamps;
anything but IPv4 TCP is skipped (counted).

A segment as :func:`tcplab.kernel.capture.decode_ipv4_tcp` decodes it is encoded back by
:func:`encode_ipv4_tcp` with its options (MSS, window scale, SACK-permitted, SACK blocks,
timestamps) and checksums; the payload bytes are not kept by a capture, so they are written as
zeros of the segment's length.

>>> seg = {"src": "127.0.0.1", "dst": "127.0.0.1", "src_port": 40000, "dst_port": 80, "seq": 7, "ack": 0,
...        "flags": "S", "window": 65495, "options": {"mss": 65495, "sack_perm": True, "wscale": 7}, "payload": 0}
>>> from tcplab.kernel.capture import decode_ipv4_tcp
>>> back = decode_ipv4_tcp(encode_ipv4_tcp(seg))
>>> {k: back[k] for k in seg} == seg
True
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterable, Mapping
from typing import Any

from tcplab.kernel.capture import decode_ipv4_tcp

__all__ = ["encode_ipv4_tcp", "write_pcap", "read_pcap", "LINKTYPE_RAW", "MAX_PCAP_BYTES"]

LINKTYPE_RAW = 101
_LINKTYPE_ETHERNET = 1
_LINKTYPE_NULL = 0
_LINKTYPE_LOOP = 108
_LINKTYPE_LINUX_SLL = 113
_LINKTYPE_IPV4 = 228
_DLT_RAW = (12, 14)               # the value some BSDs wrote for raw IP before LINKTYPE_RAW
_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D
_SNAPLEN = 262144
#: the largest file :func:`read_pcap` reads (a bound: a capture of a course's connection is far smaller)
MAX_PCAP_BYTES = 512 * 1024 * 1024
_FLAG_BITS = {"F": 1, "S": 2, "R": 4, "P": 8, "A": 16, "U": 32, "E": 64, "C": 128}


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _options(opts: Mapping[str, Any]) -> bytes:
    """The TCP options in the order Linux sends them on a SYN (``tcp_options_write()``, net/ipv4/tcp_output.c):
    MSS, SACK-permitted + timestamps, window scale; SACK blocks after the timestamps. Padded to 4 bytes."""
    out = b""
    if "mss" in opts:
        out += struct.pack("!BBH", 2, 4, int(opts["mss"]))
    if opts.get("sack_perm"):
        out += struct.pack("!BB", 4, 2)
    if "ts_val" in opts:
        out += struct.pack("!BBII", 8, 10, int(opts["ts_val"]) & 0xFFFFFFFF, int(opts.get("ts_ecr", 0)) & 0xFFFFFFFF)
    if "wscale" in opts:
        out += struct.pack("!BBB", 3, 3, int(opts["wscale"]))
    blocks = list(opts.get("sack_blocks") or [])[:4]
    if blocks:
        out += struct.pack("!BB", 5, 2 + 8 * len(blocks))
        out += b"".join(struct.pack("!II", int(a) & 0xFFFFFFFF, int(b) & 0xFFFFFFFF) for a, b in blocks)
    out += b"\1" * (-len(out) % 4)      # NOPs to the 32-bit boundary
    if len(out) > 40:
        raise ValueError(f"options must fit TCP's 40 bytes, these take {len(out)}: {dict(opts)!r}")
    return out


def encode_ipv4_tcp(seg: Mapping[str, Any]) -> bytes:
    """An IPv4 packet carrying the TCP segment ``seg`` (keys as :func:`decode_ipv4_tcp` gives them: src,
    dst, src_port, dst_port, seq, ack, flags, window, options, payload), checksums filled in; the
    payload is ``payload`` zero bytes (a capture keeps its length, not its bytes)."""
    missing = [k for k in ("src", "dst", "src_port", "dst_port", "seq", "ack", "flags", "window") if seg.get(k) is None]
    if missing:
        raise ValueError(f"a segment needs {', '.join(missing)} to be written as a packet; this one has "
                         f"{sorted(k for k, v in seg.items() if v is not None)}")
    flags = 0
    for ch in str(seg["flags"]):
        if ch not in _FLAG_BITS:
            raise ValueError(f"flags must be letters of {''.join(_FLAG_BITS)}, not {seg['flags']!r}")
        flags |= _FLAG_BITS[ch]
    length = int(seg.get("payload") or 0)
    if not 0 <= length <= 65495:
        raise ValueError(f"payload must be in 0..65495 bytes, not {length}")
    opts = _options(seg.get("options") or {})
    src, dst = socket.inet_aton(seg["src"]), socket.inet_aton(seg["dst"])
    tcp = struct.pack("!HHIIBBHHH", int(seg["src_port"]), int(seg["dst_port"]), int(seg["seq"]) & 0xFFFFFFFF,
                      int(seg["ack"]) & 0xFFFFFFFF, (5 + len(opts) // 4) << 4, flags, int(seg["window"]), 0, 0)
    tcp += opts + bytes(length)
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, socket.IPPROTO_TCP, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return ip + tcp


def write_pcap(path: str | os.PathLike[str], packets: Iterable[tuple[float, bytes]]) -> int:
    """Write ``(unix time in s, IPv4 packet)`` pairs as a classic pcap file (LINKTYPE_RAW, microsecond
    stamps) and return how many were written."""
    n = 0
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", _MAGIC_US, 2, 4, 0, 0, _SNAPLEN, LINKTYPE_RAW))
        for t, data in packets:
            sec = int(t // 1)
            usec = int(round((t - sec) * 1e6))
            if usec >= 1_000_000:
                sec, usec = sec + 1, usec - 1_000_000
            f.write(struct.pack("<IIII", sec, usec, len(data), len(data)) + data)
            n += 1
    return n


def _ip_start(linktype: int, data: bytes) -> int | None:
    """Where the IPv4 header starts in one frame of ``linktype`` (None: not IPv4)."""
    if linktype in (LINKTYPE_RAW, _LINKTYPE_IPV4, *_DLT_RAW):
        return 0
    if linktype == _LINKTYPE_ETHERNET:
        at, etype = 14, struct.unpack_from("!H", data, 12)[0] if len(data) >= 14 else 0
        while etype in (0x8100, 0x88A8) and len(data) >= at + 4:   # VLAN tags
            etype = struct.unpack_from("!H", data, at + 2)[0]
            at += 4
        return at if etype == 0x0800 else None
    if linktype == _LINKTYPE_LINUX_SLL:
        return 16 if len(data) >= 16 and struct.unpack_from("!H", data, 14)[0] == 0x0800 else None
    if linktype in (_LINKTYPE_NULL, _LINKTYPE_LOOP):
        # the address family in the capturing host's byte order (NULL) or network order (LOOP)
        if len(data) < 4:
            return None
        fam = {struct.unpack_from("<I", data)[0], struct.unpack_from(">I", data)[0]}
        return 4 if 2 in fam else None
    raise ValueError(f"path: link type {linktype} is not supported (allowed: 0 NULL, 1 Ethernet, 12/14/101 raw IP, "
                     "108 LOOP, 113 Linux cooked, 228 IPv4)")


def read_pcap(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], int]:
    """The IPv4 TCP segments of a classic pcap file, decoded, each with ``time`` (unix seconds), and
    how many packets were skipped (not IPv4 TCP, or truncated by the snap length below the TCP header).
    pcapng (Wireshark's default format) is refused with a hint: save as "pcap" or ``tcpdump -w``."""
    size = os.path.getsize(path)
    if size > MAX_PCAP_BYTES:
        raise ValueError(f"path must be a pcap file of at most {MAX_PCAP_BYTES} bytes, this one has {size}")
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise ValueError(f"path must be a pcap file (24-byte header at least), {os.fspath(path)!r} has {len(data)} bytes")
    magic = data[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        raise ValueError(f"path must be a classic pcap file, {os.fspath(path)!r} is pcapng: save it as pcap "
                         "(Wireshark: File > Save As > pcap; editcap -F pcap in.pcapng out.pcap)")
    for endian in ("<", ">"):
        m = struct.unpack(endian + "I", magic)[0]
        if m in (_MAGIC_US, _MAGIC_NS):
            break
    else:
        raise ValueError(f"path must be a classic pcap file (magic a1b2c3d4 or a1b23c4d), "
                         f"{os.fspath(path)!r} starts with {magic.hex()}")
    scale = 1e-9 if m == _MAGIC_NS else 1e-6
    linktype = struct.unpack_from(endian + "I", data, 20)[0] & 0x0FFFFFFF
    _ip_start(linktype, b"")   # refuses an unsupported link type before reading any record
    segs: list[dict[str, Any]] = []
    skipped = 0
    at = 24
    rec = struct.Struct(endian + "IIII")
    while at + 16 <= len(data):
        sec, frac, caplen, _orig = rec.unpack_from(data, at)
        at += 16
        frame = data[at:at + caplen]
        at += caplen
        start = _ip_start(linktype, frame)
        seg = decode_ipv4_tcp(frame[start:]) if start is not None else None
        if seg is None:
            skipped += 1
            continue
        # the length on the wire from the IP and TCP headers: a snap length shorter than the
        # packet keeps only its headers, and the capture's own length would understate the payload
        ihl = (frame[start] & 0x0F) * 4
        seg["payload"] = max(0, struct.unpack_from("!H", frame, start + 2)[0] - ihl - (frame[start + ihl + 12] >> 4) * 4)
        seg["time"] = sec + frac * scale
        segs.append(seg)
    return segs, skipped
