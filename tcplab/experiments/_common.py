"""Helpers shared by the real runners (they run inside the namespace child)."""

from __future__ import annotations

import time
from typing import Any

from tcplab.errors import SockDiagUnavailable
from tcplab.kernel.diag import listen_queues
from tcplab.kernel.netstat import counters_delta, read_counters
from tcplab.kernel.procnet import read_proc_net_tcp


__all__ = ["counters_now", "delta", "proc_sockets", "listener_queues", "Clock", "pick"]


def counters_now() -> dict[str, int]:
    return read_counters()


def delta(before: dict[str, int], keep: tuple[str, ...] = ("ListenOverflows", "ListenDrops")) -> dict[str, int]:
    """Nonzero counter deltas since ``before``, plus ``keep`` even when zero."""
    d = counters_delta(before, counters_now())
    return {k: v for k, v in d.items() if v or k in keep}


def pick(counters: dict[str, int], *names: str) -> dict[str, int]:
    return {n: int(counters.get(n, 0)) for n in names}


def proc_sockets() -> list[Any]:
    """/proc/net/tcp{,6} of this namespace (request sockets show as SYN_RECV)."""
    return read_proc_net_tcp()


def listener_queues(inode: int) -> tuple[int | None, int | None, str | None]:
    """(accept queue length, limit, note) of the listener with ``inode``.

    sock_diag gives both (``tcp_diag_get_info()``); /proc/net/tcp only the length, so
    without sock_diag the limit is None — the experiment measures the rule, it must not
    fill in the rule's own answer.
    """
    try:
        q = listen_queues().get(inode)
        if q is not None:
            return q[0], q[1], None
        note = "listener not found by sock_diag"
    except SockDiagUnavailable as e:
        note = f"sock_diag unavailable ({e.reason}): the listener's Send-Q (its limit) is unknown"
    for rec in proc_sockets():
        if rec.inode == inode and rec.state == "LISTEN":
            return rec.recv_q, None, note
    return None, None, note


class Clock:
    """Seconds since the run started (monotonic)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.t0

    def sleep_until(self, t: float) -> None:
        left = t - self()
        if left > 0:
            time.sleep(left)
