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
from tcplab.kernel.tcpinfo import TcpInfo, decode_tcp_info
from tcplab.model.states import STATE_NAMES, TIMER_NAMES, TcpState

__all__ = ["DiagRecord", "parse_diag_messages", "dump_tcp", "dump_tcp_rows", "listen_queues", "build_request", "state_mask",
           "tcp_info_of"]

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
TCP_LISTEN = int(TcpState.LISTEN)
ALL_STATES = 0xFFF

_NLMSGHDR = struct.Struct("=IHHII")            # len, type, flags, seq, pid
_REQ_V2 = struct.Struct("=BBBxI")              # family, protocol, ext, pad, states
_SOCKID = struct.Struct(">HH16s16s4s8s")      # sport, dport (network order), src, dst, if, cookie
# inet_diag_msg in one unpack: family, state, timer, retrans, sport, dport (big endian), src, dst,
# if+cookie, expires, rqueue, wqueue, uid, inode (host order). One Struct call per socket keeps a
# 50k-socket dump fast.
_MSG = struct.Struct("=BBBB2s2s16s16s12xIIIII")
_MSG_LEN = _MSG.size  # 72


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


# nlmsghdr + inet_diag_msg in one unpack (we ask for no attributes, so a message is 88 bytes
# plus nothing); ports come out in host order and are swapped with ntohs.
_HDR_MSG = struct.Struct("=IHHIIBBBBHH16s16s12xIIIII")
_STATE_BY_NUMBER = tuple(STATE_NAMES.get(i) for i in range(16))
_TIMER_BY_NUMBER = tuple(TIMER_NAMES.get(i, str(i)) for i in range(256))


def _parse_rows(data: bytes, source: str) -> tuple[list[tuple], bool]:
    """Rows as tuples in :class:`SocketRecord` field order. The hot path of sockets()."""
    rows: list[tuple] = []
    append = rows.append
    ntohs = socket.ntohs
    cache4: dict[bytes, str] = {}
    cache6: dict[bytes, str] = {}
    offset, index, size = 0, 0, len(data)
    hdr_size, full = _NLMSGHDR.size, _HDR_MSG.size
    while offset < size:
        index += 1
        if size - offset < hdr_size:
            raise ParseError("truncated netlink header", source=source, lineno=index)
        length, mtype = _NLMSGHDR.unpack_from(data, offset)[:2]
        if length < hdr_size or offset + length > size:
            raise ParseError(f"netlink message length {length} out of bounds", source=source, lineno=index)
        if mtype == NLMSG_DONE:
            return rows, True
        if mtype == NLMSG_ERROR:
            payload = data[offset + hdr_size: offset + length]
            errno = -struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else 0
            raise SockDiagUnavailable(f"sock_diag answered with error {errno}")
        if mtype != SOCK_DIAG_BY_FAMILY:
            raise ParseError(f"unexpected netlink message type {mtype}", source=source, lineno=index)
        if length < full:
            raise ParseError(f"inet_diag_msg of {length - hdr_size} bytes, need {_MSG_LEN}", source=source,
                             lineno=index)
        (_l, _t, _f, _s, _p, family, state, timer, retrans, sport, dport, src, dst,
         _exp, rq, wq, uid, inode) = _HDR_MSG.unpack_from(data, offset)
        state_name = _STATE_BY_NUMBER[state] if state < 16 else None
        if state_name is None or family not in (socket.AF_INET, socket.AF_INET6):
            raise ParseError(f"inet_diag_msg with family {family} state {state}", source=source, lineno=index)
        if family == socket.AF_INET:
            local = cache4.get(src) or cache4.setdefault(src, _address(family, src))
            remote = cache4.get(dst) or cache4.setdefault(dst, _address(family, dst))
            fam = 4
        else:
            local = cache6.get(src) or cache6.setdefault(src, _address(family, src))
            remote = cache6.get(dst) or cache6.setdefault(dst, _address(family, dst))
            fam = 6
        append((fam, state_name, local, ntohs(sport), remote, ntohs(dport), wq, rq,
                _TIMER_BY_NUMBER[timer], retrans, uid, inode))
        offset += (length + 3) & ~3  # NLMSG_ALIGN
    return rows, False


def parse_diag_messages(data: bytes, source: str = "sock_diag") -> tuple[list[DiagRecord], bool]:
    """Parse a buffer of netlink messages. Returns (records, done).

    Malformed input raises :class:`~tcplab.errors.ParseError` (lineno = message index).
    """
    rows, done = _parse_rows(data, source)
    return [SocketRecord(*row) for row in rows], done


def dump_tcp_rows(states: int = ALL_STATES, timeout: float = 2.0) -> list[tuple]:
    """Like :func:`dump_tcp` but plain tuples in :class:`SocketRecord` field order (faster)."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    except (OSError, AttributeError) as e:
        raise SockDiagUnavailable(f"cannot open NETLINK_SOCK_DIAG: {e}") from None
    rows: list[tuple] = []
    with sock:
        sock.settimeout(timeout)
        for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), start=1):
            try:
                sock.send(build_request(family, states, seq))
                # A dump ends with NLMSG_DONE; the bound keeps a broken kernel from looping us forever.
                for _ in range(100_000):
                    chunk, done = _parse_rows(sock.recv(1 << 17), "sock_diag")
                    rows.extend(chunk)
                    if done:
                        break
            except SockDiagUnavailable:
                if family == socket.AF_INET6:
                    continue  # no IPv6 diag module: IPv4 alone is still right
                raise
            except OSError as e:
                raise SockDiagUnavailable(f"sock_diag request failed: {e}") from None
    return rows


def dump_tcp(states: int = ALL_STATES, timeout: float = 2.0) -> list[DiagRecord]:
    """Dump TCP sockets of both families in the caller's network namespace."""
    return [SocketRecord(*row) for row in dump_tcp_rows(states, timeout)]


def state_mask(state: str | None) -> int:
    """The idiag_states bit mask for one kernel state name, or all states for None."""
    if state is None:
        return ALL_STATES
    number = {v: k for k, v in STATE_NAMES.items()}[state]
    return 1 << number


def listen_queues() -> dict[int, tuple[int, int]]:
    """``{inode: (accept queue length, accept queue limit)}`` for every listener here."""
    return {r.inode: (r.recv_q, r.send_q) for r in dump_tcp(states=1 << TCP_LISTEN)}


INET_DIAG_INFO = 2                 # include/uapi/linux/inet_diag.h: the attribute carrying struct tcp_info
INET_DIAG_NOCOOKIE = 0xFFFFFFFF
_RTATTR = struct.Struct("=HH")
_ENOENT = 2
_TCP_NEW_SYN_RECV = 12            # include/net/tcp_states.h: a request minisock (no tcp_info)


def _exact_request(local: tuple[str, int], remote: tuple[str, int]) -> bytes:
    """One non-dump SOCK_DIAG_BY_FAMILY request for the IPv4 TCP socket ``local`` -> ``remote``,
    asking for its tcp_info (``idiag_ext`` bit ``INET_DIAG_INFO - 1``)."""
    sockid = _SOCKID.pack(local[1], remote[1], socket.inet_aton(local[0]).ljust(16, b"\0"),
                          socket.inet_aton(remote[0]).ljust(16, b"\0"), bytes(4),
                          struct.pack("=II", INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE))
    body = _REQ_V2.pack(socket.AF_INET, socket.IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1), ALL_STATES) + sockid
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0) + body


def tcp_info_of(local: tuple[str, int], remote: tuple[str, int], timeout: float = 2.0) -> TcpInfo | None:
    """The tcp_info of the IPv4 TCP socket ``local`` -> ``remote`` through sock_diag, or None when the
    kernel has no such full socket (any more; a TIME_WAIT or request minisock has no tcp_info).

    Unlike ``getsockopt(TCP_INFO)`` this needs no file descriptor, so it follows a socket after the
    application closed it: an *orphan* (``SOCK_DEAD``) still retransmitting in FIN_WAIT1, until
    ``tcp_done()`` destroys it. ``inet_diag_dump_one_icsk()`` (net/ipv4/inet_diag.c) looks the socket
    up by its 4-tuple and answers ENOENT once it is gone; ``tcp_diag_get_info()`` fills the
    INET_DIAG_INFO attribute with ``tcp_get_info()``, the same struct TCP_INFO returns.

    >>> tcp_info_of(("127.0.0.1", 1), ("127.0.0.1", 2)) is None     # doctest: +SKIP
    True
    """
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    except (OSError, AttributeError) as e:
        raise SockDiagUnavailable(f"cannot open NETLINK_SOCK_DIAG: {e}") from None
    with sock:
        sock.settimeout(timeout)
        try:
            sock.send(_exact_request(local, remote))
            data = sock.recv(1 << 16)
        except OSError as e:
            raise SockDiagUnavailable(f"sock_diag request failed: {e}") from None
    if len(data) < _NLMSGHDR.size:
        raise ParseError("truncated netlink header", source="sock_diag", lineno=1)
    length, mtype = _NLMSGHDR.unpack_from(data)[:2]
    if mtype == NLMSG_ERROR:
        errno = -struct.unpack_from("=i", data, _NLMSGHDR.size)[0] if len(data) >= _NLMSGHDR.size + 4 else 0
        if errno == _ENOENT:
            return None
        raise SockDiagUnavailable(f"sock_diag answered with error {errno}")
    if mtype != SOCK_DIAG_BY_FAMILY or length > len(data) or length < _NLMSGHDR.size + _MSG_LEN:
        raise ParseError(f"unexpected netlink message type {mtype} of {length} bytes", source="sock_diag", lineno=1)
    if data[_NLMSGHDR.size + 1] in (int(TcpState.TIME_WAIT), _TCP_NEW_SYN_RECV):
        return None
    offset = _NLMSGHDR.size + _MSG_LEN
    while offset + _RTATTR.size <= length:             # the attributes after inet_diag_msg
        alen, atype = _RTATTR.unpack_from(data, offset)
        if alen < _RTATTR.size:
            break
        if atype == INET_DIAG_INFO:
            return decode_tcp_info(data[offset + _RTATTR.size: offset + alen])
        offset += (alen + 3) & ~3
    raise ParseError("sock_diag gave no INET_DIAG_INFO for a TCP socket", source="sock_diag", lineno=1)
