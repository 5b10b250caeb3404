"""Parse ``/proc/net/tcp`` and ``/proc/net/tcp6`` into socket records.

The state numbers come from ``include/net/tcp_states.h``; the line format from
``get_tcp4_sock()`` / ``get_tcp6_sock()`` in ``net/ipv4/tcp_ipv4.c`` and
``net/ipv6/tcp_ipv6.c``. For a LISTEN socket the kernel prints the current
accept-queue length as rx_queue and 0 as tx_queue: the limit is not in /proc
(see :mod:`tcplab.kernel.diag`).

>>> line = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0"
>>> rec = parse_proc_net_tcp("  sl  local_address rem_address\\n" + line)[0]
>>> rec.state, rec.local_address, rec.local_port, rec.recv_q
('LISTEN', '127.0.0.1', 8080, 3)
"""

from __future__ import annotations

import ipaddress
import os
import sys
from dataclasses import dataclass

from tcplab.errors import KernelUnavailable, ParseError
from tcplab.model.states import STATE_NAMES, TIMER_NAMES

__all__ = ["TCP_STATES", "SocketRecord", "parse_proc_net_tcp", "read_proc_net_tcp"]

#: include/net/tcp_states.h — the kernel's numbers and names (the table lives in the model).
TCP_STATES: dict[int, str] = STATE_NAMES

#: tr field of /proc/net/tcp: which timer is pending.
TIMERS: dict[int, str] = TIMER_NAMES


@dataclass(frozen=True, slots=True)
class SocketRecord:
    """One line of /proc/net/tcp{,6}. ``send_q`` of a LISTEN record is 0 here (as netstat)."""

    family: int  # 4 or 6
    state: str
    local_address: str
    local_port: int
    remote_address: str
    remote_port: int
    send_q: int  # tx_queue
    recv_q: int  # rx_queue
    timer: str
    retransmits: int
    uid: int
    inode: int


def _decode_address(hexaddr: str) -> str:
    # The kernel prints each 32-bit word of the address in host byte order.
    raw = bytes.fromhex(hexaddr)
    if len(raw) not in (4, 16):
        raise ValueError(f"address of {len(raw)} bytes")
    if sys.byteorder == "little":
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(raw))


def _endpoint(field: str) -> tuple[str, int]:
    addr, sep, port = field.partition(":")
    if not sep:
        raise ValueError(f"endpoint {field!r} has no ':'")
    return _decode_address(addr), int(port, 16)


def _parse_line(line: str) -> SocketRecord:
    fields = line.split()
    if len(fields) < 10 or not fields[0].endswith(":"):
        raise ValueError("expected at least 10 fields starting with 'sl:'")
    local, local_port = _endpoint(fields[1])
    remote, remote_port = _endpoint(fields[2])
    st = int(fields[3], 16)
    if st not in TCP_STATES:
        raise ValueError(f"unknown state 0x{fields[3]}")
    tx, sep, rx = fields[4].partition(":")
    tr, sep2, _when = fields[5].partition(":")
    if not (sep and sep2):
        raise ValueError("queue or timer field lacks ':'")
    tx_q, rx_q = int(tx, 16), int(rx, 16)
    tr_n = int(tr, 16)
    retrans = int(fields[6], 16)
    uid, inode = int(fields[7]), int(fields[9])
    if min(tx_q, rx_q, retrans, uid, inode) < 0:
        raise ValueError("negative number")
    return SocketRecord(
        family=4 if ":" not in local else 6, state=TCP_STATES[st],
        local_address=local, local_port=local_port, remote_address=remote, remote_port=remote_port,
        send_q=tx_q, recv_q=rx_q, timer=TIMERS.get(tr_n, str(tr_n)), retransmits=retrans,
        uid=uid, inode=inode)


def parse_proc_net_tcp(text: str, source: str = "/proc/net/tcp") -> list[SocketRecord]:
    """Parse the text of /proc/net/tcp or tcp6 (header line first).

    A malformed line raises :class:`~tcplab.errors.ParseError` naming ``source``,
    the line number and the line; never IndexError.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    lines = text.splitlines()
    if not lines:
        return []
    if "local_address" not in lines[0]:
        raise ParseError("first line is not the 'sl local_address ...' header", source=source, lineno=1,
                         line=lines[0])
    records = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            records.append(_parse_line(line))
        except ValueError as e:
            raise ParseError(str(e), source=source, lineno=lineno, line=line) from None
    return records


def read_proc_net_tcp(root: str = "/proc") -> list[SocketRecord]:
    """Read and parse ``<root>/net/tcp`` and ``<root>/net/tcp6`` (tcp6 may be absent)."""
    records: list[SocketRecord] = []
    for name in ("tcp", "tcp6"):
        path = os.path.join(root, "net", name)
        try:
            with open(path) as f:
                text = f.read()
        except FileNotFoundError:
            if name == "tcp6":
                continue  # kernel without IPv6
            raise KernelUnavailable(f"cannot read {path}: no such file (is /proc mounted? is this Linux?)") from None
        except OSError as e:
            raise KernelUnavailable(f"cannot read {path}: {e.strerror}") from None
        records.extend(parse_proc_net_tcp(text, source=path))
    return records
