"""The receive buffer: what ``setsockopt(SO_RCVBUF)`` stores, and when autotuning may grow it.

Two kernel rules, Linux 6.x (measured on 6.18):

1. **SO_RCVBUF locks.** ``sk_setsockopt()`` -> ``__sock_set_rcvbuf()`` (net/core/sock.c) clamps the value
   to ``net.core.rmem_max``, sets ``sk->sk_userlocks |= SOCK_RCVBUF_LOCK`` and stores
   ``sk_rcvbuf = max(val * 2, SOCK_MIN_RCVBUF)`` ("We double it on the way in to account for struct
   sk_buff etc. overhead"); getsockopt(SO_RCVBUF) returns that doubled value. An accepted socket inherits
   both from the listener (``sk_clone_lock()`` copies ``sk_userlocks``). :func:`locked_rcvbuf`.
2. **Autotuning, unless locked.** Every read, ``tcp_rcv_space_adjust()`` (net/ipv4/tcp_input.c) looks at
   what the application copied during the last receiver RTT; when it beat the previous RTT's
   ``rcvq_space.space`` and ``sysctl_tcp_moderate_rcvbuf && !(sk->sk_userlocks & SOCK_RCVBUF_LOCK)``,
   it raises ``sk_rcvbuf`` to ``min(tcp_space_from_win(rcvwin), tcp_rmem[2])``, ``rcvwin`` being twice
   the copied bytes plus 16 segments, more while the sender is still speeding up. A socket starts at
   ``tcp_rmem[1]`` (``tcp_init_sock()``). How far it grows depends on the reader's pace per RTT, which
   the model does not predict: :func:`autotuning` gives the start, whether it may grow, and the ceiling.

>>> locked_rcvbuf(32768), locked_rcvbuf(1), locked_rcvbuf(1_000_000, rmem_max=212992)
(65536, 2304, 425984)
>>> autotuning(None)
Autotuning(at_start=131072, may_grow=True, ceiling=6291456)
>>> autotuning(32768)
Autotuning(at_start=65536, may_grow=False, ceiling=65536)
"""

from __future__ import annotations

from typing import NamedTuple

from tcplab.model.persist import SOCK_MIN_RCVBUF
from tcplab.model.profiles import DEFAULT_PROFILE, PROFILES

__all__ = ["Autotuning", "locked_rcvbuf", "autotuning", "TCP_RMEM", "RMEM_MAX_DEFAULT"]

_DEFAULT = PROFILES[DEFAULT_PROFILE]
TCP_RMEM = _DEFAULT.tcp_rmem                  # net.ipv4.tcp_rmem of a default kernel (min, default, max)
RMEM_MAX_DEFAULT = _DEFAULT.rmem_max          # net.core.rmem_max of a default kernel


class Autotuning(NamedTuple):
    """A receiving socket's buffer: ``at_start`` (getsockopt(SO_RCVBUF) before any data), whether
    ``tcp_rcv_space_adjust()`` may grow it, and the most it may become (``tcp_rmem[2]``; locked: itself)."""

    at_start: int
    may_grow: bool
    ceiling: int


def locked_rcvbuf(requested: int, rmem_max: int = RMEM_MAX_DEFAULT) -> int:
    """``sk_rcvbuf`` after ``setsockopt(SO_RCVBUF, requested)``: clamped to rmem_max, doubled, floored."""
    if requested < 0:
        raise ValueError(f"requested must be an int >= 0, not {requested}")
    return max(2 * min(requested, rmem_max), SOCK_MIN_RCVBUF)


def autotuning(rcvbuf: int | None, tcp_rmem: tuple[int, int, int] = TCP_RMEM, rmem_max: int = RMEM_MAX_DEFAULT,
               moderate_rcvbuf: bool = True) -> Autotuning:
    """Rule 1 or 2 for a receiver that set ``SO_RCVBUF=rcvbuf`` (None: never set it)."""
    if rcvbuf is not None:
        sk = locked_rcvbuf(rcvbuf, rmem_max)
        return Autotuning(sk, False, sk)
    return Autotuning(tcp_rmem[1], moderate_rcvbuf, tcp_rmem[2] if moderate_rcvbuf else tcp_rmem[1])
