"""Listener queue lengths and limits through NETLINK_SOCK_DIAG (what ``ss`` uses).

/proc/net/tcp does not carry a listener's accept-queue *limit*; sock_diag does:
``tcp_diag_get_info()`` (net/ipv4/tcp_diag.c) sets, for a LISTEN socket,
``idiag_rqueue = sk_ack_backlog`` (current length) and
``idiag_wqueue = sk_max_ack_backlog`` (the limit, min(backlog, somaxconn)).

Written with the standard library (``socket.AF_NETLINK`` + ``struct``): one
request, one message layout, ~100 lines; pyroute2 would add a large dependency
to every learner's install for this one query.

>>> queues = listen_queues()          # doctest: +SKIP
>>> queues[inode]                     # doctest: +SKIP
(0, 7)
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from tcplab.errors import ParseError, SockDiagUnavailable

__all__ = ["DiagRecord", "parse_diag_messages", "dump_tcp", "listen_queues", "build_request"]

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
TCP_LISTEN = 10
ALL_STATES = 0xFFF

_NLMSGHDR = struct.Struct("=IHHII")            # len, type, flags, seq, pid
_REQ_V2 = struct.Struct("=BBBxI")              # family, protocol, ext, pad, states
_SOCKID = struct.Struct(">HH16s16s4s8s")      # sport, dport (network order), src, dst, if, cookie
_MSG_HEAD = struct.Struct("=BBBB")             # family, state, timer, retrans
_MSG_TAIL = struct.Struct("=IIIII")            # expires, rqueue, wqueue, uid, inode
_MSG_LEN = _MSG_HEAD.size + _SOCKID.size + _MSG_TAIL.size  # 72


@dataclass(frozen=True, slots=True)
class DiagRecord:
    """One inet_diag_msg: for LISTEN, ``recv_q``/``send_q`` are the accept queue length/limit."""

    family: int
    state: int
    local_port: int
    remote_port: int
    recv_q: int
    send_q: int
    uid: int
    inode: int


def build_request(family: int, states: int = ALL_STATES, seq: int = 1) -> bytes:
    """The bytes of one SOCK_DIAG_BY_FAMILY dump request for TCP sockets of ``family``."""
    body = _REQ_V2.pack(family, socket.IPPROTO_TCP, 0, states) + bytes(_SOCKID.size)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP,
                          seq, 0) + body


def parse_diag_messages(data: bytes, source: str = "sock_diag") -> tuple[list[DiagRecord], bool]:
    """Parse a buffer of netlink messages. Returns (records, done).

    Malformed input raises :class:`~tcplab.errors.ParseError` (lineno = message index).
    """
    records: list[DiagRecord] = []
    offset, index = 0, 0
    while offset < len(data):
        index += 1
        if len(data) - offset < _NLMSGHDR.size:
            raise ParseError("truncated netlink header", source=source, lineno=index)
        length, mtype, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            raise ParseError(f"netlink message length {length} out of bounds", source=source, lineno=index)
        payload = data[offset + _NLMSGHDR.size: offset + length]
        if mtype == NLMSG_DONE:
            return records, True
        if mtype == NLMSG_ERROR:
            errno = -struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else 0
            raise SockDiagUnavailable(f"sock_diag answered with error {errno}")
        if mtype != SOCK_DIAG_BY_FAMILY:
            raise ParseError(f"unexpected netlink message type {mtype}", source=source, lineno=index)
        if len(payload) < _MSG_LEN:
            raise ParseError(f"inet_diag_msg of {len(payload)} bytes, need {_MSG_LEN}", source=source,
                             lineno=index)
        family, state, _timer, _retrans = _MSG_HEAD.unpack_from(payload, 0)
        sport, dport, _src, _dst, _if, _cookie = _SOCKID.unpack_from(payload, _MSG_HEAD.size)
        _exp, rq, wq, uid, inode = _MSG_TAIL.unpack_from(payload, _MSG_HEAD.size + _SOCKID.size)
        records.append(DiagRecord(family, state, sport, dport, rq, wq, uid, inode))
        offset += (length + 3) & ~3  # NLMSG_ALIGN
    return records, False


def dump_tcp(states: int = ALL_STATES, timeout: float = 2.0) -> list[DiagRecord]:
    """Dump TCP sockets of both families in the caller's network namespace."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    except (OSError, AttributeError) as e:
        raise SockDiagUnavailable(f"cannot open NETLINK_SOCK_DIAG: {e}") from None
    records: list[DiagRecord] = []
    with sock:
        sock.settimeout(timeout)
        for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), start=1):
            try:
                sock.send(build_request(family, states, seq))
                # A dump ends with NLMSG_DONE; the bound keeps a broken kernel from looping us forever.
                for _ in range(100_000):
                    chunk, done = parse_diag_messages(sock.recv(1 << 16))
                    records.extend(chunk)
                    if done:
                        break
            except SockDiagUnavailable:
                if family == socket.AF_INET6:
                    continue  # no IPv6 diag module: IPv4 alone is still right
                raise
            except OSError as e:
                raise SockDiagUnavailable(f"sock_diag request failed: {e}") from None
    return records


def listen_queues() -> dict[int, tuple[int, int]]:
    """``{inode: (accept queue length, accept queue limit)}`` for every listener here."""
    return {r.inode: (r.recv_q, r.send_q) for r in dump_tcp(states=1 << TCP_LISTEN)}
