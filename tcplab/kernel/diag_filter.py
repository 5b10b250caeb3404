"""An ``INET_DIAG_REQ_BYTECODE`` filter, so the kernel drops sockets we do not watch.

A sock_diag dump request may carry a little program (``include/uapi/linux/inet_diag.h``:
``struct inet_diag_bc_op {u8 code; u8 yes; u16 no;}`` plus operands). For each socket the
kernel runs it in ``inet_diag_bc_run()`` (net/ipv4/inet_diag.c): every op is a conditional
jump *forward*, to ``pc + yes`` when the condition holds and to ``pc + no`` when not; the
socket is dumped iff the program ends exactly at its end (``len == 0``). Jumping 4 bytes past
the end rejects it. ``inet_diag_bc_audit()`` checks the program before the dump: it walks the
``yes`` chain (so every op must be reachable by falling through), and every ``no`` must land
on an op boundary of that chain or at end/end+4. ``ss`` compiles its filters the same way
(iproute2 misc/ss.c ``ssfilter_bytecompile()``: an OR is ``a; JMP; b`` with ``a``'s failures
retargeted to ``b``).

We compile a conjunction of clauses, each a disjunction of conditions (enough for "local or
remote port P, and address A"):

    for each clause c1 | c2 | ... | ck:
        c1 (yes: fall through to JMP, no: to c2)  JMP (no: end of clause)
        c2 ...                                    JMP ...
        ck (yes: fall through to next clause, no: reject)

Conditions are ``INET_DIAG_BC_S_COND``/``D_COND`` with a ``struct inet_diag_hostcond``
(family, prefix_len, port, address), which every kernel since 2.6 runs; ``port == -1``
means any port, family ``AF_UNSPEC`` with prefix 0 means any address. The state filter
does not need bytecode: it is the request's ``idiag_states`` mask.

>>> prog = compile_filter([[Cond("src", port=80), Cond("dst", port=80)]])
>>> len(prog), run_filter(prog, src=("127.0.0.1", 80), dst=("127.0.0.1", 5000))
(28, True)
>>> run_filter(prog, src=("127.0.0.1", 81), dst=("127.0.0.1", 5000))
False
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Cond", "compile_filter", "run_filter", "audit_filter", "port_address_filter",
           "BC_JMP", "BC_S_COND", "BC_D_COND"]

# enum in include/uapi/linux/inet_diag.h
BC_NOP, BC_JMP, BC_S_COND, BC_D_COND = 0, 1, 7, 8
_OP = struct.Struct("=BBH")              # struct inet_diag_bc_op
_HOSTCOND = struct.Struct("=BBxxi")      # struct inet_diag_hostcond without addr[] (port: host-order int)


@dataclass(frozen=True)
class Cond:
    """One condition: the socket's ``side`` ("src" = local, "dst" = remote) has ``port``
    (None: any) and lies in ``network`` (an address or CIDR; None: any)."""

    side: str
    port: int | None = None
    network: str | None = None

    def encode(self) -> bytes:
        """The op and its hostcond, with ``yes`` = its own length and ``no`` left 0 (set later)."""
        if self.side not in ("src", "dst"):
            raise ValueError(f"side must be 'src' or 'dst', not {self.side!r}")
        if self.port is not None and not 0 <= self.port <= 65535:
            raise ValueError(f"port must be None or an int in 0..65535, not {self.port}")
        family, prefix, addr = socket.AF_UNSPEC, 0, b""
        if self.network is not None:
            net = ipaddress.ip_network(self.network, strict=False)
            family = socket.AF_INET if net.version == 4 else socket.AF_INET6
            prefix, addr = net.prefixlen, net.network_address.packed
        body = _HOSTCOND.pack(family, prefix, -1 if self.port is None else self.port) + addr
        code = BC_S_COND if self.side == "src" else BC_D_COND
        return _OP.pack(code, _OP.size + len(body), 0) + body


def compile_filter(clauses: Sequence[Sequence[Cond]]) -> bytes:
    """The bytecode accepting a socket iff every clause has a condition that holds (CNF).

    An empty list of clauses is no program (b""): send no INET_DIAG_REQ_BYTECODE at all.
    """
    # Lay the ops out first (offsets), then fill in each op's ``no``.
    ops: list[tuple[str, bytes, int, int]] = []     # (kind, bytes, clause index, index in clause)
    for ci, clause in enumerate(clauses):
        if not clause:
            raise ValueError("each clause needs at least one condition")
        for k, cond in enumerate(clause):
            ops.append(("cond", cond.encode(), ci, k))
            if k < len(clause) - 1:
                ops.append(("jmp", _OP.pack(BC_JMP, _OP.size, 0), ci, k))
    offsets, pos = [], 0
    for _, raw, _, _ in ops:
        offsets.append(pos)
        pos += len(raw)
    total = pos
    clause_end: dict[int, int] = {}
    cond_at: dict[tuple[int, int], int] = {}
    for (kind, raw, ci, k), off in zip(ops, offsets):
        clause_end[ci] = off + len(raw)
        if kind == "cond":
            cond_at[ci, k] = off
    out = bytearray()
    for (kind, raw, ci, k), off in zip(ops, offsets):
        if kind == "jmp":
            target = clause_end[ci]                           # a condition held: skip the rest of the clause
        elif (ci, k + 1) in cond_at:
            target = cond_at[ci, k + 1]                       # this one failed: try the next condition
        else:
            target = total + 4                                # the clause's last one failed: reject
        code, yes, _ = _OP.unpack_from(raw)
        out += _OP.pack(code, yes, target - off) + raw[_OP.size:]
    return bytes(out)


def _hostcond_matches(raw: bytes, at: int, family: int, addr: bytes, port: int) -> bool:
    cfam, prefix, cport = _HOSTCOND.unpack_from(raw, at)
    if cport != -1 and cport != port:
        return False
    if cfam == socket.AF_UNSPEC or prefix == 0:
        return cfam == socket.AF_UNSPEC or cfam == family
    if cfam != family:
        return False
    caddr = raw[at + _HOSTCOND.size: at + _HOSTCOND.size + (4 if cfam == socket.AF_INET else 16)]
    bits = prefix
    a = int.from_bytes(addr[:len(caddr)], "big") >> (len(caddr) * 8 - bits)
    b = int.from_bytes(caddr, "big") >> (len(caddr) * 8 - bits)
    return a == b


def run_filter(prog: bytes, src: tuple[str, int], dst: tuple[str, int]) -> bool:
    """Run ``prog`` as ``inet_diag_bc_run()`` does, for a socket ``src`` -> ``dst`` (a model
    for the unit tests; the kernel runs the real thing). IPv4-mapped IPv6 is not modelled."""
    fam = socket.AF_INET6 if ":" in src[0] else socket.AF_INET
    entry = {"src": (socket.inet_pton(fam, src[0]), src[1]), "dst": (socket.inet_pton(fam, dst[0]), dst[1])}
    pc, remaining = 0, len(prog)
    for _ in range(len(prog)):                 # ops jump forward only: bounded by the program length
        if remaining <= 0:
            break
        code, yes, no = _OP.unpack_from(prog, pc)
        if code == BC_NOP:
            ok = True
        elif code == BC_JMP:
            ok = False
        elif code in (BC_S_COND, BC_D_COND):
            addr, port = entry["src" if code == BC_S_COND else "dst"]
            ok = _hostcond_matches(prog, pc + _OP.size, fam, addr, port)
        else:
            raise ValueError(f"op code {code} is not modelled")
        step = yes if ok else no
        pc, remaining = pc + step, remaining - step
    return remaining == 0


def audit_filter(prog: bytes) -> None:
    """Raise ValueError where ``inet_diag_bc_audit()`` would answer EINVAL (the checks on
    S_COND/D_COND/JMP/NOP ops that this module emits)."""
    length, pc = len(prog), 0
    boundaries = set()
    while pc < length:                          # the yes chain: where ``no`` may land
        boundaries.add(pc)
        yes = _OP.unpack_from(prog, pc)[1]
        if yes < 4 or yes & 3:
            raise ValueError(f"op at {pc}: yes={yes} is not a positive multiple of 4")
        pc += yes
    if pc != length:
        raise ValueError("the yes chain does not end at the end of the program")
    for pc in sorted(boundaries):
        code, yes, no = _OP.unpack_from(prog, pc)
        remaining = length - pc
        min_len = _OP.size
        if code in (BC_S_COND, BC_D_COND):
            cfam, prefix, _ = _HOSTCOND.unpack_from(prog, pc + _OP.size)
            alen = {socket.AF_UNSPEC: 0, socket.AF_INET: 4, socket.AF_INET6: 16}.get(cfam)
            if alen is None or prefix > 8 * alen:
                raise ValueError(f"op at {pc}: bad hostcond family {cfam} prefix {prefix}")
            min_len += _HOSTCOND.size + alen
        elif code not in (BC_JMP, BC_NOP):
            raise ValueError(f"op at {pc}: code {code} not emitted here")
        if yes < min_len or yes > remaining + 4:
            raise ValueError(f"op at {pc}: yes={yes} out of {min_len}..{remaining + 4}")
        if code != BC_NOP:
            if no < min_len or no > remaining + 4 or no & 3:
                raise ValueError(f"op at {pc}: no={no} out of {min_len}..{remaining + 4}")
            if no < remaining and pc + no not in boundaries:
                raise ValueError(f"op at {pc}: no={no} lands inside an op")


def port_address_filter(port: int | None = None, local_port: int | None = None, remote_port: int | None = None,
                        address: str | None = None) -> bytes:
    """The program for watch's filter: ``port`` local or remote, ``local_port``, ``remote_port``,
    ``address`` (local or remote, an address or CIDR); all given ones must hold.

    >>> port_address_filter() == b""
    True
    >>> prog = port_address_filter(port=8080, address="127.0.0.0/8")
    >>> run_filter(prog, ("127.0.0.1", 40000), ("127.0.0.1", 8080)), run_filter(prog, ("10.0.0.1", 8080), ("10.0.0.2", 1))
    (True, False)
    """
    clauses: list[list[Cond]] = []
    if port is not None:
        clauses.append([Cond("src", port=port), Cond("dst", port=port)])
    if local_port is not None:
        clauses.append([Cond("src", port=local_port)])
    if remote_port is not None:
        clauses.append([Cond("dst", port=remote_port)])
    if address is not None:
        clauses.append([Cond("src", network=address), Cond("dst", network=address)])
    return compile_filter(clauses) if clauses else b""
