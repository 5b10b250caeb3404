"""Sample TCP sockets with their tcp_info through NETLINK_SOCK_DIAG, as ``ss -ti`` does.

One dump request per address family with ``idiag_ext = 1 << (INET_DIAG_INFO - 1)``: the kernel
answers one ``inet_diag_msg`` per socket plus attributes; ``tcp_diag_get_info()``
(net/ipv4/tcp_diag.c) fills INET_DIAG_INFO with ``tcp_get_info()``, the struct TCP_INFO
returns, and sets ``idiag_rqueue``/``idiag_wqueue`` to the bytes not yet read / not yet
acknowledged (``rcv_nxt - copied_seq``, ``write_seq - snd_una``), or, for a listener, to the
accept queue's length and limit (``sk_ack_backlog``, ``sk_max_ack_backlog``). The states are
filtered in the kernel by the request's ``idiag_states`` mask, ports and addresses by an
``INET_DIAG_REQ_BYTECODE`` program (:mod:`tcplab.kernel.diag_filter`).

Who sees what: a sock_diag dump needs no privilege and shows every socket of the caller's
*network namespace*, with tcp_info, whoever owns it: CAP_NET_ADMIN only adds extras we do not use
(INET_DIAG_MARK and CLASS_ID in ``inet_diag_msg_attrs_fill()``, MD5 keys in ``tcp_diag_get_aux()``);
tests/test_watch_real.py runs it as uid 65534. An unprivileged user on the host sees the host's sockets; one in its own namespace
(``unshare -Urn``) sees only that namespace's.

Decoding is the hot path: per socket one ``struct.unpack_from`` of header and message, a walk
over a few attributes, and one ``unpack_from`` of the 168 bytes of tcp_info we use (not the
whole struct). A TIME_WAIT or SYN_RECV (request) socket has no tcp_info: its row carries
:data:`NO_INFO` (``tcpi_state`` 0; a real one is 1..12).

>>> with DiagSampler(states=1 << 10) as sampler:     # doctest: +SKIP
...     rows = sampler.sample()
"""

from __future__ import annotations

import socket
import struct

from tcplab.errors import ParseError, SockDiagUnavailable

__all__ = ["DiagSampler", "parse_info_messages", "build_info_request", "endpoints", "INFO_FIELDS", "ROW_FIELDS",
           "NO_INFO"]

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
INET_DIAG_INFO = 2
INET_DIAG_REQ_BYTECODE = 1
_NLA_HDRLEN = 4

_NLMSGHDR = struct.Struct("=IHHII")
_REQ_V2 = struct.Struct("=BBBxI")
_SOCKID_LEN = 48
# nlmsghdr (16) + inet_diag_msg (72): len, type, family, state, timer, retrans, sport, dport (network
# order: swapped with ntohs), src, dst, if, cookie (two u32 = one native u64), expires, rqueue, wqueue, uid, inode
_HDR_MSG = struct.Struct("=IH10xBBBBHH16s16s4xQIIIII")
assert _HDR_MSG.size == 88
_HDR_MSG_LEN = 16 + 72
_RTA = struct.Struct("=HH")

#: the tcp_info fields we decode, at their offsets in ``struct tcp_info`` (include/uapi/linux/tcp.h):
#: state 0, ca_state 1, retransmits 2, backoff 4, rto 8, snd_mss 16, unacked 24, lost 32, retrans 36,
#: rtt 68, rttvar 72, snd_ssthresh 76, snd_cwnd 80, total_retrans 100, bytes_acked 120,
#: bytes_received 128, notsent_bytes 144, min_rtt 148, delivery_rate 160 (present since 4.9).
_INFO = struct.Struct("=BBBxB3xI4xI4xI4xII28xIIII16xI16xQQ8xII8xQ")
INFO_FIELDS = ("tcpi_state", "ca_state", "retransmits", "backoff", "rto_us", "snd_mss", "unacked", "lost",
               "retrans", "rtt_us", "rttvar_us", "ssthresh", "cwnd", "total_retrans", "bytes_acked",
               "bytes_received", "notsent_bytes", "min_rtt_us", "delivery_rate")
assert _INFO.size == 168 and len(INFO_FIELDS) == 19
NO_INFO = (0,) * len(INFO_FIELDS)      # tcpi_state 0: "no tcp_info" (a real one is 1..12)

#: one row per socket: identity, the inet_diag_msg fields, then INFO_FIELDS
ROW_FIELDS = ("family", "state", "src", "sport", "dst", "dport", "cookie", "timer", "idiag_retrans", "rqueue",
              "wqueue", "uid", "inode") + INFO_FIELDS


def build_info_request(family: int, states: int, bytecode: bytes = b"", seq: int = 1) -> bytes:
    """One dump request for TCP sockets of ``family`` in ``states`` with tcp_info, and the filter
    program as an INET_DIAG_REQ_BYTECODE attribute when given."""
    body = _REQ_V2.pack(family, socket.IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1), states) + bytes(_SOCKID_LEN)
    if bytecode:
        alen = _NLA_HDRLEN + len(bytecode)
        body += _RTA.pack(alen, INET_DIAG_REQ_BYTECODE) + bytecode + bytes(-alen % 4)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP,
                          seq, 0) + body


def parse_info_messages(data: bytes, rows: list[tuple], source: str = "sock_diag") -> bool:
    """Append one row (:data:`ROW_FIELDS` order) per inet_diag_msg in ``data`` to ``rows``;
    return True at NLMSG_DONE. Addresses stay raw bytes (16, IPv4 in the first 4): the caller
    formats each connection once, not each sample. Malformed input raises ParseError.

    The hot path (about a µs a socket): one unpack of nlmsghdr + inet_diag_msg, a walk over the
    attributes to INET_DIAG_INFO (``inet_sk_diag_fill()`` puts shutdown, mark, cgroup id... before
    it; a ULP's info may follow it, so guessing its place from the end would not be safe), one
    unpack of the tcp_info fields used.
    """
    append = rows.append
    unpack_msg, unpack_rta, unpack_info = _HDR_MSG.unpack_from, _RTA.unpack_from, _INFO.unpack_from
    info_size = _INFO.size
    ntohs = socket.ntohs
    offset, size, index = 0, len(data), 0
    while offset < size:
        index += 1
        if size - offset >= _HDR_MSG_LEN:
            (length, mtype, family, state, timer, retrans, sport, dport, src, dst, cookie,
             _exp, rq, wq, uid, inode) = unpack_msg(data, offset)
        elif size - offset >= _NLMSGHDR.size:
            length, mtype = _NLMSGHDR.unpack_from(data, offset)[:2]
        else:
            raise ParseError("truncated netlink header", source=source, lineno=index)
        if length < _NLMSGHDR.size or offset + length > size:
            raise ParseError(f"netlink message length {length} out of bounds", source=source, lineno=index)
        if mtype != SOCK_DIAG_BY_FAMILY or length < _HDR_MSG_LEN:
            if mtype == NLMSG_DONE:
                return True
            if mtype == NLMSG_ERROR:
                errno = -struct.unpack_from("=i", data, offset + _NLMSGHDR.size)[0] if length >= 20 else 0
                raise SockDiagUnavailable(f"sock_diag answered with error {errno}")
            raise ParseError(f"unexpected netlink message type {mtype} of {length} bytes", source=source,
                             lineno=index)
        info = NO_INFO
        at, end = offset + _HDR_MSG_LEN, offset + length
        while at + 4 <= end:                              # walk the attributes to INET_DIAG_INFO
            alen, atype = unpack_rta(data, at)
            if alen < 4 or at + alen > end:
                raise ParseError(f"attribute of length {alen} at {at - offset} of a {length}-byte message",
                                 source=source, lineno=index)
            if atype == INET_DIAG_INFO:
                if alen - 4 >= info_size:
                    info = unpack_info(data, at + 4)
                else:                                     # a kernel older than 4.9: decode what is there
                    info = _short_info(data[at + 4: at + alen])
                break
            at += (alen + 3) & ~3
        append((family, state, src, ntohs(sport), dst, ntohs(dport), cookie, timer, retrans, rq, wq, uid,
                inode) + info)
        offset += (length + 3) & ~3
    return False


def endpoints(row: tuple) -> tuple[int, str, int, str, int]:
    """(4 or 6, local address, local port, remote address, remote port) of a row, as text.

    >>> endpoints((2, 1, bytes([127, 0, 0, 1]) + bytes(12), 80, bytes([127, 0, 0, 2]) + bytes(12), 5000))
    (4, '127.0.0.1', 80, '127.0.0.2', 5000)
    """
    family = row[0]
    if family == socket.AF_INET:
        return 4, socket.inet_ntop(family, row[2][:4]), row[3], socket.inet_ntop(family, row[4][:4]), row[5]
    return 6, socket.inet_ntop(socket.AF_INET6, row[2]), row[3], socket.inet_ntop(socket.AF_INET6, row[4]), row[5]


def _short_info(raw: bytes) -> tuple:
    """INFO_FIELDS from a tcp_info shorter than 168 bytes (a kernel before 4.9, which tcplab does
    not support otherwise): the fields it lacks read 0."""
    return _INFO.unpack(raw[:_INFO.size] + bytes(_INFO.size - len(raw)))


class DiagSampler:
    """A netlink socket kept open across samples (one socket per watch, not per sample).

    ``states``: idiag_states bit mask; ``bytecode``: a :mod:`~tcplab.kernel.diag_filter` program.
    ``sample()`` returns rows in :data:`ROW_FIELDS` order, IPv4 then IPv6.
    """

    def __init__(self, states: int = 0xFFF, bytecode: bytes = b"", timeout: float = 2.0) -> None:
        try:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
        except (OSError, AttributeError) as e:
            raise SockDiagUnavailable(f"cannot open NETLINK_SOCK_DIAG: {e}") from None
        self._sock.settimeout(timeout)
        self._requests = [(f, build_info_request(f, states, bytecode, seq=i))
                          for i, f in enumerate((socket.AF_INET, socket.AF_INET6), start=1)]
        self._no_ipv6 = False

    def sample(self) -> list[tuple]:
        rows: list[tuple] = []
        for family, request in self._requests:
            if family == socket.AF_INET6 and self._no_ipv6:
                continue
            try:
                self._sock.send(request)
                # a dump ends with NLMSG_DONE; the bound keeps a broken kernel from looping us forever
                for _ in range(1_000_000):
                    if parse_info_messages(self._sock.recv(1 << 17), rows):
                        break
            except SockDiagUnavailable:
                if family == socket.AF_INET6:
                    self._no_ipv6 = True          # no IPv6 diag module: IPv4 alone is still right
                    continue
                raise
            except OSError as e:
                raise SockDiagUnavailable(f"sock_diag request failed: {e}") from None
        return rows

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> DiagSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
