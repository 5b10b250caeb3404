"""accept_queue: a listener that does not accept (or starts late) and ``clients``
non-blocking connects. Shows the ``min(backlog, somaxconn) + 1`` rule (KERNEL.md case 1).

>>> r = accept_queue(backlog=5, clients=20)          # doctest: +SKIP
>>> r.summary["established_clients"], r.summary["send_q"], r.summary["ListenOverflows"]  # doctest: +SKIP
(6, 5, 28)
"""

from __future__ import annotations

import time
from typing import Any

from tcplab._validate import check_bool, check_float, check_int, check_optional_int
from tcplab.experiments import _mode
from tcplab.experiments._common import Clock, counters_now, delta, listener_queues, pick, proc_sockets
from tcplab.experiments.result import Result
from tcplab.kernel.loopback import SocketSet, connect_error, socket_inode, tcp_state
from tcplab.kernel.sysctl import read_sysctl
from tcplab.model.outcome import Outcome


__all__ = ["accept_queue"]

NAME = "accept_queue"
RECORD = ("net.core.somaxconn", "net.ipv4.tcp_abort_on_overflow", "net.ipv4.tcp_syncookies",
          "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_syn_retries")


def accept_queue(backlog: int = 5, somaxconn: int | None = None, clients: int = 20,
                 abort_on_overflow: bool = False, accept_after: float | None = None, settle: float = 1.5,
                 *, mode: str = "auto", seed: int = 0, profile: str | None = None) -> Result:
    """Fill the accept queue of a listener that does not call accept().

    ``clients`` non-blocking connects go to a listener with ``listen(backlog)``; ``settle``
    seconds after the last connect both ends are inspected. With ``accept_after`` the server
    starts accepting (everything that arrives) that many seconds after the first connect;
    ``accepted`` counts what it got before the snapshot.

    On loopback the handshake completes inside connect(), so an overflow drops the *SYN*
    (``tcp_conn_request()`` -> ListenOverflows) and the client stays SYN_SENT, retrying at 1 s, 2 s...

    Tables: ``clients`` (one row per client: index, local port, state, error, server side),
    ``sockets`` (/proc/net/tcp snapshot). Timeline: every 50 ms ``recv_q``, ``established_clients``,
    ``syn_sent_clients``, ``accepted``.

    >>> accept_queue(backlog=0, clients=5).summary["established_clients"]   # doctest: +SKIP
    1
    """
    mode, seed, profile = _mode.check_mode(mode, seed, profile)
    params = {
        "backlog": check_int("backlog", backlog, 0, 65535),
        "somaxconn": check_optional_int("somaxconn", somaxconn, 1, 65535),
        "clients": check_int("clients", clients, 1, 1000),
        "abort_on_overflow": check_bool("abort_on_overflow", abort_on_overflow),
        "accept_after": check_float("accept_after", accept_after, 0, 30, optional=True),
        "settle": check_float("settle", settle, 0.1, 30),
    }
    sysctls: dict[str, Any] = {"net.ipv4.tcp_abort_on_overflow": int(params["abort_on_overflow"])}
    if params["somaxconn"] is not None:
        sysctls["net.core.somaxconn"] = params["somaxconn"]
    timeout = params["settle"] + (params["accept_after"] or 0) + params["clients"] * 0.02 + 15
    return _mode.run(NAME, params, mode=mode, seed=seed, profile=profile, real=_real, sysctls=sysctls,
                     record=RECORD, timeout=timeout)


def _real(p: dict[str, Any]) -> Outcome:

    somaxconn = int(read_sysctl("net.core.somaxconn"))
    out = Outcome()
    before = counters_now()
    with SocketSet() as ss:
        lst = ss.listener(p["backlog"])
        lst.setblocking(False)
        inode = socket_inode(lst)
        addr = lst.getsockname()
        clock = Clock()
        clients = [ss.connect(addr) for _ in range(p["clients"])]
        connected_at = clock()
        accepted: list[Any] = []
        snapshot_at = connected_at + p["settle"]
        acc_at = p["accept_after"]

        def drain() -> None:
            ss.accept_all(lst, accepted)

        while True:
            now = clock()
            if acc_at is not None and now >= acc_at:
                drain()
            states = [tcp_state(c) for c in clients]
            rq, _, _ = listener_queues(inode)
            out.timeline.append({"t": round(now, 4), "recv_q": rq, "accepted": len(accepted),
                                 "established_clients": states.count("ESTABLISHED"),
                                 "syn_sent_clients": states.count("SYN_SENT")})
            if now >= snapshot_at:
                break
            time.sleep(min(0.05, max(0.0, snapshot_at - clock())))

        # the snapshot
        counters = delta(before)
        recv_q, send_q, note = listener_queues(inode)
        if note:
            out.notes.append(note)
        port = addr[1]
        # only this experiment's sockets: in the host namespace (no private one possible) other
        # programs' sockets are in /proc too
        socks = [r for r in proc_sockets() if port in (r.local_port, r.remote_port)]
        server_side = {r.remote_port: r.state for r in socks if r.local_port == port and r.state != "LISTEN"}
        rows = []
        for i, c in enumerate(clients):
            st = tcp_state(c)
            err = connect_error(c) if st in ("CLOSE", "CLOSED") else None
            cport = c.getsockname()[1]
            rows.append({"client": i, "port": cport, "state": st, "error": err,
                         "server_side": server_side.get(cport)})
        states = [r["state"] for r in rows]
        out.tables["clients"] = rows
        out.tables["sockets"] = [{"state": r.state, "local": f"{r.local_address}:{r.local_port}",
                                  "remote": f"{r.remote_address}:{r.remote_port}", "recv_q": r.recv_q,
                                  "send_q": r.send_q, "timer": r.timer, "retransmits": r.retransmits}
                                 for r in socks]
        out.counters = counters
        out.summary = {
            "established_clients": states.count("ESTABLISHED"),
            "syn_sent_clients": states.count("SYN_SENT"),
            "server_children": sum(1 for s in server_side.values() if s == "ESTABLISHED"),
            "recv_q": recv_q,
            "send_q": send_q,
            **pick(counters, "ListenOverflows", "ListenDrops"),
            "reset_clients": sum(1 for r in rows if r["error"] == "ECONNRESET"),
            # the articles' "client thinks it is connected": ESTABLISHED with no server child
            # (at most a SYN_RECV request whose final ACK was dropped, tcp_check_req())
            "phantom_clients": sum(1 for r in rows if r["state"] == "ESTABLISHED"
                                   and r["server_side"] in (None, "SYN_RECV")),
            "accepted": len(accepted),
        }
        out.sysctls["net.core.somaxconn"] = somaxconn
    return out
