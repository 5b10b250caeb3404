"""time_wait and rebind: TIME_WAIT piling up, ephemeral ports running out, and restarting
a server over a port held by TIME_WAIT (KERNEL.md cases 5 and 7).

>>> r = time_wait(connections=30, port_range=(40000, 40009), tw_reuse=0)   # doctest: +SKIP
>>> r.summary["connections_made"], r.summary["error"]                      # doctest: +SKIP
(10, 'EADDRNOTAVAIL')
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from tcplab._validate import (check_bool, check_choice, check_float, check_int, check_optional_int,
                              check_port_range)
from tcplab.experiments import _mode
from tcplab.experiments._common import Clock, counters_now, delta, proc_sockets
from tcplab.experiments.result import Result
from tcplab.kernel.loopback import SocketSet
from tcplab.model.outcome import Outcome


__all__ = ["time_wait", "rebind"]

RECORD_TW = ("net.ipv4.ip_local_port_range", "net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_tw_reuse_delay",
             "net.ipv4.tcp_timestamps", "net.ipv4.tcp_max_tw_buckets", "net.ipv4.tcp_fin_timeout")
SERVER_PORT = 5000  # only inside a private namespace (port_range set): keeps the listener out of the range
PACE_S = 0.01  # one connect attempt every 10 ms, as KERNEL.md case 5 measured
TW_COUNTERS = ("TW", "TWRecycled", "TCPTimeWaitOverflow")


def time_wait(connections: int = 20, port_range: tuple[int, int] | None = None, tw_reuse: int | None = None,
              timestamps: bool | None = None, max_tw_buckets: int | None = None, closer: str = "client",
              duration: float = 3.0, *, mode: str = "auto", seed: int = 0, profile: str | None = None) -> Result:
    """Connect, exchange nothing, close — ``connections`` times, one attempt every 10 ms, for at most
    ``duration`` s. The side that closes first (``closer``) keeps TIME_WAIT for 60 s
    (TCP_TIMEWAIT_LEN). With a small ``port_range`` (ip_local_port_range) and the client closing,
    connect() fails with EADDRNOTAVAIL once every port is in TIME_WAIT, unless ``tw_reuse``
    (tcp_tw_reuse, which needs ``timestamps`` and waits tcp_tw_reuse_delay = 1 s,
    ``tcp_twsk_unique()``) lets a port be reused, or ``max_tw_buckets`` is so small that
    TIME_WAIT is skipped (``inet_twsk_alloc()``: TCPTimeWaitOverflow). Failed attempts are retried
    until ``connections`` succeeded or ``duration`` passed.

    Table ``attempts``: t, ok, local_port, reused (port seen before in this run), error.

    >>> time_wait(connections=5).summary["time_wait"]     # doctest: +SKIP
    5
    """
    mode, seed, profile = _mode.check_mode(mode, seed, profile)
    params = {
        "connections": check_int("connections", connections, 1, 5000),
        "port_range": check_port_range("port_range", port_range),
        "tw_reuse": check_optional_int("tw_reuse", tw_reuse, 0, 2),
        "timestamps": None if timestamps is None else check_bool("timestamps", timestamps),
        "max_tw_buckets": check_optional_int("max_tw_buckets", max_tw_buckets, 0, 2**31 - 1),
        "closer": check_choice("closer", closer, ("client", "server")),
        "duration": check_float("duration", duration, 0.1, 120),
    }
    sysctls: dict[str, Any] = {}
    for key, name in (("port_range", "net.ipv4.ip_local_port_range"), ("tw_reuse", "net.ipv4.tcp_tw_reuse"),
                      ("timestamps", "net.ipv4.tcp_timestamps"), ("max_tw_buckets", "net.ipv4.tcp_max_tw_buckets")):
        if params[key] is not None:
            v = params[key]
            sysctls[name] = int(v) if isinstance(v, bool) else v
    return _mode.run("time_wait", params, mode=mode, seed=seed, profile=profile, real=_real_time_wait,
                     sysctls=sysctls, record=RECORD_TW, timeout=params["duration"] + 20)


def _one_connection(ss: Any, lst: socket.socket, addr: tuple, closer: str) -> int:
    """Open, accept and close one connection, ``closer`` first; return the client's port."""
    c = ss.socket()
    c.settimeout(2.0)
    c.connect(addr)
    port = c.getsockname()[1]
    s, _ = lst.accept()
    ss.adopt(s)
    first, second = (c, s) if closer == "client" else (s, c)
    first.close()
    second.settimeout(2.0)
    second.recv(1)  # b'': the FIN arrived, so the other side is now CLOSE_WAIT
    second.close()
    return port


def _real_time_wait(p: dict[str, Any]) -> Outcome:

    out = Outcome()
    before = counters_now()
    with SocketSet() as ss:
        # In a namespace with a tiny port range, a fixed server port keeps the listener out of it.
        lst = ss.listener(4096, port=SERVER_PORT if p["port_range"] is not None else 0)
        lst.settimeout(2.0)
        addr = lst.getsockname()
        clock = Clock()
        made, seen, first_fail, error, reused = 0, set(), None, None, 0
        n = 0
        while made < p["connections"] and clock() < p["duration"]:
            clock.sleep_until(n * PACE_S)
            t = round(clock(), 4)
            n += 1
            try:
                port = _one_connection(ss, lst, addr, p["closer"])
            except OSError as e:
                name = errno.errorcode.get(e.errno, str(e)) if e.errno else type(e).__name__
                out.tables.setdefault("attempts", []).append({"t": t, "ok": False, "local_port": None,
                                                               "reused": False, "error": name})
                if first_fail is None:
                    first_fail, error = t, name
                continue
            again = port in seen
            seen.add(port)
            reused += again
            made += 1
            out.tables.setdefault("attempts", []).append({"t": t, "ok": True, "local_port": port,
                                                           "reused": again, "error": None})
        ss.close_all()  # drop our own fds; TIME_WAIT mini-sockets stay in the kernel
        tw = [r for r in proc_sockets() if r.state == "TIME_WAIT"]
    out.counters = delta(before, keep=("ListenOverflows", "ListenDrops", *TW_COUNTERS))
    out.summary = {"time_wait": len(tw), "connections_made": made, "first_failure_at": first_fail,
                   "error": error, "reused_ports": reused}
    out.tables["time_wait_sockets"] = [{"local": f"{r.local_address}:{r.local_port}",
                                        "remote": f"{r.remote_address}:{r.remote_port}"} for r in tw]
    return out


def rebind(old_reuseaddr: bool = True, new_reuseaddr: bool = True, closer: str = "server",
           old_listener_open: bool = False, *, mode: str = "auto", seed: int = 0,
           profile: str | None = None) -> Result:
    """Restart a server on the port its previous incarnation used, with a connection just closed.

    The old listener (SO_REUSEADDR=``old_reuseaddr``) accepts one connection; ``closer`` closes it
    first, so TIME_WAIT sits on the server's port (closer="server") or the client's ephemeral port.
    The old listener is closed (unless ``old_listener_open``) and a new socket with
    SO_REUSEADDR=``new_reuseaddr`` binds the same port and listens. Per ``inet_bind_conflict()``
    only old *and* new SO_REUSEADDR pass a server-side TIME_WAIT; a live listener always blocks.

    >>> rebind(old_reuseaddr=False).summary["error"]    # doctest: +SKIP
    'EADDRINUSE'
    """
    mode, seed, profile = _mode.check_mode(mode, seed, profile)
    params = {
        "old_reuseaddr": check_bool("old_reuseaddr", old_reuseaddr),
        "new_reuseaddr": check_bool("new_reuseaddr", new_reuseaddr),
        "closer": check_choice("closer", closer, ("client", "server")),
        "old_listener_open": check_bool("old_listener_open", old_listener_open),
    }
    return _mode.run("rebind", params, mode=mode, seed=seed, profile=profile, real=_real_rebind,
                     sysctls={}, record=("net.ipv4.ip_local_port_range",), timeout=20)


def _real_rebind(p: dict[str, Any]) -> Outcome:

    out = Outcome()
    before = counters_now()
    with SocketSet() as ss:
        old = ss.listener(8, reuseaddr=p["old_reuseaddr"])
        old.settimeout(2.0)
        addr = old.getsockname()
        _one_connection(ss, old, addr, p["closer"])
        if not p["old_listener_open"]:
            old.close()
        tw = [r for r in proc_sockets() if r.state == "TIME_WAIT"]
        tw_on_port = sum(1 for r in tw if r.local_port == addr[1])
        new = ss.socket()
        if p["new_reuseaddr"]:
            new.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        bound, error = True, None
        try:
            new.bind(addr)
            new.listen(8)
        except OSError as e:
            bound, error = False, errno.errorcode.get(e.errno, str(e))
        if bound:  # and it serves
            new.settimeout(2.0)
            c = ss.connect(addr, wait=True)  # not create_connection: no getaddrinfo/idna for an IP
            ss.adopt(new.accept()[0])
            out.notes.append(f"the new listener accepted a connection from port {c.getsockname()[1]}")
    out.counters = delta(before, keep=("TW",))
    out.summary = {"bound": bound, "error": error, "time_wait": len(tw)}
    out.tables["time_wait_sockets"] = [{"local": f"{r.local_address}:{r.local_port}",
                                        "remote": f"{r.remote_address}:{r.remote_port}",
                                        "on_server_port": r.local_port == addr[1]} for r in tw]
    out.notes.append(f"TIME_WAIT on the server's port {addr[1]}: {tw_on_port}")
    return out
