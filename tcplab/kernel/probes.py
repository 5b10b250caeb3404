"""Small measurements the course shows as runs rather than as constants of this library.

Each probe runs in the *current* network namespace and is meant to be called through
:func:`tcplab.in_namespace` with the sysctls it needs, e.g.::

    tcplab.in_namespace(fin_timeout_probe, 3.0, sysctls={"net.ipv4.tcp_fin_timeout": 1}, timeout=30)

>>> fin_timeout_probe(-1)
Traceback (most recent call last):
...
ValueError: watch must be a number in 0.5..30, not -1
"""

from __future__ import annotations

import errno
import time
from typing import Any

from tcplab._validate import check_float
from tcplab.kernel.loopback import SocketSet, wait_for
from tcplab.kernel.procnet import read_proc_net_tcp
from tcplab.kernel.sysctl import read_sysctl

__all__ = ["fin_timeout_probe", "close_wait_probe"]


def _state_of(port: int) -> str:
    """State of the socket whose local port is ``port`` ("CLOSE" when the kernel has none)."""
    for r in read_proc_net_tcp():
        if r.local_port == port and r.state != "LISTEN":
            return str(r.state)
    return "CLOSE"


def fin_timeout_probe(watch: float = 3.0) -> dict[str, Any]:
    """Two connections whose client closes first, watched for ``watch`` s:

    * ``time_wait``: the server closes too, so the client's socket ends in TIME_WAIT;
    * ``fin_wait2``: the server never closes, so the client's closed socket is an orphan in FIN_WAIT2.

    Returns ``{"tcp_fin_timeout": s, "watch": s, "samples": [{"t", "time_wait", "fin_wait2"}, ...],
    "fin_wait2_gone_at": s or None, "time_wait_gone_at": s or None}``: the client sockets' states
    sampled every 50 ms, times in s from the ``fin_wait2`` client's close(). Sampling starts once
    both sockets are seen in their state (the first sample reads TIME_WAIT and FIN_WAIT2); a state
    not reached within 5 s raises :class:`~tcplab.errors.ExperimentError`. With ``tcp_fin_timeout`` below ``watch`` the FIN_WAIT2 orphan goes at about
    ``tcp_fin_timeout`` (``tcp_fin_time()``), the TIME_WAIT stays: it lasts TCP_TIMEWAIT_LEN whatever the sysctl.
    """
    watch = check_float("watch", watch, 0.5, 30)
    out: dict[str, Any] = {"tcp_fin_timeout": int(read_sysctl("net.ipv4.tcp_fin_timeout")), "watch": watch}
    with SocketSet() as ss:
        lst = ss.listener(backlog=4)
        lst.settimeout(_STATE_WAIT)                     # accept() gives up (socket.timeout) rather than hang
        addr = lst.getsockname()
        ports: dict[str, int] = {}
        t0 = 0.0
        for name in ("time_wait", "fin_wait2"):
            c = ss.connect(addr, wait=True)
            conn, _ = lst.accept()
            ss.adopt(conn)                              # closed when the block ends, also on error
            port = ports[name] = c.getsockname()[1]
            if name == "fin_wait2":
                # the orphan's timer starts when its FIN is ACKed, so no earlier than this close():
                # times are measured from here, the time spent waiting below included
                t0 = time.monotonic()
            c.close()                                   # the client closes first: FIN (FIN_WAIT1)
            # FIN_WAIT2 comes with the server's ACK of that FIN, which on a busy host can come
            # after close() returns (softirq deferred to ksoftirqd): wait for it, never assume it
            _wait_state(port, "FIN_WAIT2", f"the {name} client in FIN_WAIT2 after its close()")
            if name == "time_wait":
                conn.close()                            # the server closes too: the client -> TIME_WAIT
                _wait_state(port, "TIME_WAIT", "the time_wait client in TIME_WAIT after the server's FIN")
            # else: the server never closes (CLOSE_WAIT); the client's socket is an orphan in FIN_WAIT2
        samples = []
        gone: dict[str, float | None] = {"time_wait": None, "fin_wait2": None}
        while (t := time.monotonic() - t0) <= watch:
            row = {"t": round(t, 3), **{k: _state_of(p) for k, p in ports.items()}}
            samples.append(row)
            for k in gone:
                if gone[k] is None and row[k] == "CLOSE":
                    gone[k] = row["t"]
            time.sleep(0.05)                            # the sampling period, not a wait for an event
    out["samples"] = samples
    out["fin_wait2_gone_at"] = gone["fin_wait2"]
    out["time_wait_gone_at"] = gone["time_wait"]
    return out


#: bound of a wait for a state change on loopback: microseconds on a quiet host, well under a
#: second on a busy one; the wait ends at the change, so the bound only decides when to give up
_STATE_WAIT = 5.0


def _wait_state(port: int, want: str, what: str) -> None:
    wait_for(lambda: _state_of(port), lambda s: s == want, _STATE_WAIT, what)


def close_wait_probe() -> dict[str, Any]:
    """A server socket in CLOSE_WAIT (the client closed, the server did not) calls send() twice.

    CLOSE_WAIT has no timer of its own, but it is not immortal: the client's closed socket answers
    the data with a RST, and the server's socket is gone (docs/kernel-facts.md case 6). Returns the server
    socket's state before the first send, after it, and the second send's error::

        {"before": "CLOSE_WAIT", "first_send": 1, "after": "CLOSE", "second_send_error": "EPIPE"}
    """
    out: dict[str, Any] = {}
    with SocketSet() as ss:
        lst = ss.listener(backlog=1)
        c = ss.connect(lst.getsockname(), wait=True)
        conn, _ = lst.accept()
        ss.adopt(conn)
        port = conn.getsockname()[1]
        peer = c.getsockname()[1]
        c.close()
        # each state is read once its event happened (the client's FIN, then its RST), so a
        # busy host delays the probe but cannot make it read the state before
        out["before"] = wait_for(lambda: _server_state(port, peer), lambda s: s == "CLOSE_WAIT",
                                 _STATE_WAIT, "the server in CLOSE_WAIT after the client's close()")
        out["first_send"] = conn.send(b"x")
        out["after"] = wait_for(lambda: _server_state(port, peer), lambda s: s == "CLOSE",
                                _STATE_WAIT, "the server gone (CLOSE) after the client's RST")
        try:
            conn.send(b"x")
            out["second_send_error"] = None
        except OSError as e:
            out["second_send_error"] = errno.errorcode.get(e.errno or 0, str(e.errno))
    return out


def _server_state(port: int, peer: int) -> str:
    for r in read_proc_net_tcp():
        if r.local_port == port and r.remote_port == peer:
            return str(r.state)
    return "CLOSE"
