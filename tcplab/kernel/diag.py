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

from tcplab.errors import ParseError, SockDiagUnavailable
from tcplab.kernel.procnet import SocketRecord

__all__ = ["DiagRecord", "parse_diag_messages", "dump_tcp", "listen_queues", "build_request", "state_mask"]

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
# inet_diag_msg in one unpack: family, state, timer, retrans, sport, dport (big endian), src, dst,
# if+cookie, expires, rqueue, wqueue, uid, inode (host order). One Struct call per socket keeps a
# 50k-socket dump fast.
_MSG = struct.Struct("=BBBB2s2s16s16s12xIIIII")
_MSG_LEN = _MSG.size  # 72
_TIMERS = {0: "off", 1: "retransmit", 2: "keepalive", 3: "time_wait", 4: "probe"}
_STATE_NAMES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
                6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}


# One record type for both sources: an inet_diag_msg carries the same fields as a
# /proc/net/tcp line (and, for a listener, the accept-queue limit as send_q).
DiagRecord = SocketRecord


_addr_cache: dict[tuple[int, bytes], str] = {}


def _address(family: int, raw: bytes) -> str:
    key = (family, raw)
    text = _addr_cache.get(key)
    if text is None:
        if family == socket.AF_INET:
            text = socket.inet_ntop(socket.AF_INET, raw[:4])
        else:
            text = socket.inet_ntop(socket.AF_INET6, raw)
        if len(_addr_cache) < 65536:  # bounded: addresses repeat, a cache this size never thrashes
            _addr_cache[key] = text
    return text


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
        (family, state, timer, retrans, sport, dport, src, dst,
         _exp, rq, wq, uid, inode) = _MSG.unpack_from(payload, 0)
        if family not in (socket.AF_INET, socket.AF_INET6) or state not in _STATE_NAMES:
            raise ParseError(f"inet_diag_msg with family {family} state {state}", source=source, lineno=index)
        records.append(DiagRecord(
            4 if family == socket.AF_INET else 6, _STATE_NAMES[state],
            _address(family, src), int.from_bytes(sport, "big"),
            _address(family, dst), int.from_bytes(dport, "big"),
            wq, rq, _TIMERS.get(timer, str(timer)), retrans, uid, inode))
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


def state_mask(state: str | None) -> int:
    """The idiag_states bit mask for one kernel state name, or all states for None."""
    if state is None:
        return ALL_STATES
    number = {v: k for k, v in _STATE_NAMES.items()}[state]
    return 1 << number


def listen_queues() -> dict[int, tuple[int, int]]:
    """``{inode: (accept queue length, accept queue limit)}`` for every listener here."""
    return {r.inode: (r.recv_q, r.send_q) for r in dump_tcp(states=1 << TCP_LISTEN)}
