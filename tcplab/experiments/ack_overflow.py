"""ack_overflow: what ``tcp_abort_on_overflow`` does when a handshake's final ACK finds the
accept queue full (docs/kernel-facts.md case 2).

On plain loopback the whole handshake runs inside connect(), so a full accept queue drops the
*SYN* and tcp_abort_on_overflow never matters (see :func:`accept_queue`). Here the loopback is
slowed down (a qdisc in the private namespace, ``slow_motion`` ms per packet), as on a real
network: a burst of clients' SYNs all reach the listener before any of their ACKs. The accept
queue already holds ``backlog`` connections (room for exactly one more), so the SYN queue admits
``backlog + 1`` requests, but only one of their ACKs finds room:

* ``abort_on_overflow=False``: the other ACKs are dropped (``tcp_check_req()`` sets ``acked``);
  the requests stay SYN_RECV while the clients believe they are connected, and every one of them
  completes once the application accepts (phase 2: it drains the queue, each client sends a byte).
* ``abort_on_overflow=True``: each of them gets a RST (EmbryonicRsts), the client ECONNRESET.
* A SYN beyond the SYN queue gets a syncookie (``syncookies=1``) or is dropped (``0``: the client
  stays SYN_SENT and retries). A cookie connection whose ACK finds the queue full is discarded
  silently, never reset (``tcp_get_cookie_sock()`` has no abort branch).

>>> r = ack_overflow(abort_on_overflow=True)                          # doctest: +SKIP
>>> r.summary["reset_clients"], r.summary["EmbryonicRsts"]           # doctest: +SKIP
(4, 4)
"""

from __future__ import annotations

import time
from typing import Any

from tcplab.experiments._common import (Clock, counters_now, delta, listener_queues, pick, proc_sockets,
                                        wait_accept_queue)
from tcplab.experiments.registry import make_function
from tcplab.experiments.spec import Experiment, GridPoint, Key, Param, Plot, Slider, Table
from tcplab.kernel.loopback import SocketSet, connect_error, socket_inode, tcp_state
from tcplab.kernel.qdisc import add_delay
from tcplab.model.outcome import Outcome, Timing
from tcplab.sim.overflow import DRAIN_FOR_S, SAMPLE_S, SNAPSHOT_S, SUMMARY_COUNTERS
from tcplab.sim.overflow import ack_overflow as sim_ack_overflow

__all__ = ["ack_overflow", "max_burst", "SPEC"]

RECORD = ("net.ipv4.tcp_abort_on_overflow", "net.ipv4.tcp_syncookies", "net.core.somaxconn",
          "net.ipv4.tcp_synack_retries", "net.ipv4.tcp_syn_retries")


def max_burst(backlog: int) -> int:
    """Largest burst for ``backlog``: every SYN-ACK and ACK of the burst passes the slowed
    loopback before the 1 s retransmit timers, and at most backlog+1 SYNs are left to retry, so
    they all fit the drained queue at once (the regime the real run is built for).

    >>> max_burst(4), max_burst(8)
    (10, 12)
    """
    return min(12, 2 * (backlog + 1))


def _check(p: dict[str, Any]) -> None:
    hi = max_burst(p["backlog"])
    if p["burst"] > hi:
        raise ValueError(f"burst must be an int in 1..{hi} for backlog {p['backlog']} "
                         f"(at most 2 x (backlog + 1), at most 12), not {p['burst']}")


_SNAP = "at the 1.5 s snapshot"
SPEC = Experiment(
    name="ack_overflow",
    title="tcp_abort_on_overflow: a burst of final ACKs finds the accept queue full (slowed loopback).",
    doc="""A burst of ``burst`` clients against a listener whose accept queue has room for one.
    The queue is pre-filled with ``backlog`` connections; ``slow_motion`` ms per packet on the
    namespace's lo (a netem delay, or a tbf token bucket where netem is missing; the Result's
    notes say which) makes every SYN arrive before any ACK. Snapshot at 1.5 s; then phase 2: the
    app drains the queue, each ESTABLISHED client sends one byte, and the app accepts for 2.5 s.
    abort_on_overflow=False: the other ACKs are dropped and complete later; True: each gets a RST
    (EmbryonicRsts). A cookie connection is never reset (docs/kernel-facts.md case 2).""",
    params=(
        Param("abort_on_overflow", "bool", False, sysctl="net.ipv4.tcp_abort_on_overflow",
              help="RST a final ACK that finds the accept queue full (else drop it)"),
        Param("syncookies", "choice", 1, choices=(0, 1, 2), sysctl="net.ipv4.tcp_syncookies",
              help="0 off, 1 when the SYN queue is full, 2 always"),
        Param("backlog", "int", 4, lo=0, hi=8, help="listen() backlog; the queue is pre-filled with this many",
              slider=Slider(0, 8)),
        Param("burst", "int", 6, lo=1, hi=12, help="clients at once (at most min(12, 2 x (backlog+1)))",
              slider=Slider(1, 12)),
        Param("slow_motion", "float", 6.0, lo=2, hi=20, unit="ms", help="delay per packet on the namespace's lo",
              slider=Slider(2, 20, 1)),
    ),
    summary=(
        Key("established_clients", f"clients ESTABLISHED {_SNAP}"),
        Key("syn_sent_clients", f"clients still SYN_SENT {_SNAP}"),
        Key("reset_clients", f"clients reset (ECONNRESET) {_SNAP}"),
        Key("phantom_clients", f"clients ESTABLISHED whose server side is a SYN_RECV request or nothing {_SNAP}"),
        Key("server_children", f"ESTABLISHED children on the server {_SNAP}"),
        Key("syn_recv", f"SYN_RECV requests on the server {_SNAP}"),
        Key("recv_q", f"accept-queue length {_SNAP}"),
        Key("send_q", "accept-queue limit (ss Send-Q)"),
        *[Key(c, f"counter delta {_SNAP}") for c in SUMMARY_COUNTERS],
        Key("completed_later", "burst connections the app got in phase 2 that were not children at the snapshot"),
    ),
    tables=(
        Table("clients", ("client", "port", "state", "error", "server_side", "data_sent", "accepted_later"),
              "one burst client"),
        Table("sockets", ("state", "local", "remote", "recv_q", "send_q", "timer", "retransmits"),
              "a /proc/net/tcp row at the snapshot"),
    ),
    timeline=("t", "recv_q", "syn_recv", "established_clients", "syn_sent_clients", "reset_clients", "accepted"),
    grid=(
        # docs/kernel-facts.md case 2 (slowed loopback, accept queue with room for one): its four rows,
        # cookies=2, and the rule at other backlogs and bursts
        *[GridPoint(dict(syncookies=ck, abort_on_overflow=ab), quick=(ck, ab) in ((1, False), (0, True)))
          for ck in (1, 0, 2) for ab in (False, True)],
        GridPoint(dict(backlog=0, burst=2)),
        GridPoint(dict(backlog=8, burst=12, abort_on_overflow=True)),
        GridPoint(dict(backlog=8, burst=12, syncookies=0)),
        GridPoint(dict(backlog=1, burst=4, syncookies=0, abort_on_overflow=True)),
    ),
    smoke=(dict(backlog=2, burst=6, syncookies=0),),
    real=lambda p: _real(p),
    sim=sim_ack_overflow,
    record=RECORD,
    needs_namespace="slow_motion adds a qdisc to lo, which is only done in a private namespace",
    checks=_check,
    timeout=lambda p: SNAPSHOT_S + DRAIN_FOR_S + 20,
    plot=Plot(y=("recv_q", "syn_recv", "established_clients", "reset_clients"), kind="step",
              title="the burst over time", y_title="count"),
)

ack_overflow = make_function(SPEC)


def _server_sides(port: int) -> dict[int, str]:
    """Client port -> state of the server's socket for it (a request shows as SYN_RECV)."""
    return {r.remote_port: r.state for r in proc_sockets() if r.local_port == port and r.state != "LISTEN"}


def _real(p: dict[str, Any]) -> Outcome:
    out = Outcome()
    before = counters_now()
    with SocketSet() as ss:
        lst = ss.listener(p["backlog"])
        lst.setblocking(False)
        inode, addr = socket_inode(lst), lst.getsockname()
        port = addr[1]
        # the accept queue holds `backlog` connections: room for exactly one more (N admits N+1)
        for _ in range(p["backlog"]):
            ss.connect(addr, wait=True)
        # the clients are ESTABLISHED before the listener has queued them (their ACKs may still be
        # in a backlog): the burst must find exactly one free place, so wait for the queue itself
        wait_accept_queue(inode, p["backlog"], f"the {p['backlog']} prefill connections in the accept queue")
        out.notes.append(add_delay(p["slow_motion"]))
        clock = Clock()
        clients = [ss.connect(addr) for _ in range(p["burst"])]
        # the story needs every SYN at the listener before the first client's ACK: that ACK leaves
        # after two delayed packets (SYN, SYN-ACK), so the connects must fit in 2 x slow_motion
        # (a TCG guest's Python took longer: 3 SYNs found the queue full again, docs/kernels.md)
        took_ms = clock() * 1000
        out.timings.append(Timing(
            "connects", round(took_ms, 3),
            f"the {p['burst']} connects took {took_ms:.0f} ms, so their SYNs did not all reach the listener "
            f"before the first client's ACK ({2 * p['slow_motion']:g} ms at slow_motion={p['slow_motion']:g})",
            limit_ms=2 * p["slow_motion"]))
        ports = [c.getsockname()[1] for c in clients]
        accepted: list[Any] = []
        errors: dict[int, str] = {}

        def drain() -> None:
            ss.accept_all(lst, accepted)

        def states() -> list[str]:
            sts = [tcp_state(c) for c in clients]
            for i, st in enumerate(sts):
                if st == "CLOSE" and i not in errors:
                    errors[i] = connect_error(clients[i]) or "closed"   # SO_ERROR reads once
            return sts

        def sample() -> None:
            sts = states()
            sides = _server_sides(port)
            out.timeline.append({"t": round(clock(), 4), "recv_q": listener_queues(inode)[0],
                                 "syn_recv": sum(1 for s in sides.values() if s == "SYN_RECV"),
                                 "established_clients": sts.count("ESTABLISHED"),
                                 "syn_sent_clients": sts.count("SYN_SENT"),
                                 "reset_clients": sum(1 for e in errors.values() if e == "ECONNRESET"),
                                 "accepted": len(accepted)})

        while clock() < SNAPSHOT_S:
            sample()
            time.sleep(min(SAMPLE_S, max(0.0, SNAPSHOT_S - clock())))

        # the snapshot
        snap_counters = delta(before)
        sts = states()
        sides = _server_sides(port)
        recv_q, send_q, note = listener_queues(inode)
        if note:
            out.notes.append(note)
        socks = [r for r in proc_sockets() if port in (r.local_port, r.remote_port)]
        rows = [{"client": i, "port": ports[i], "state": st, "error": errors.get(i),
                 "server_side": sides.get(ports[i]), "data_sent": False, "accepted_later": False}
                for i, st in enumerate(sts)]

        # phase 2: the app drains the queue; each ESTABLISHED client sends one byte, one after the
        # other, and the app accepts what that completes (a SYN_RECV request or a cookie child)
        drain()
        for row, c in zip(rows, clients):
            if row["state"] != "ESTABLISHED":
                continue
            try:
                c.send(b"x")
                row["data_sent"] = True
            except OSError:
                continue
            if row["server_side"] != "ESTABLISHED":
                n = len(accepted)
                deadline = clock() + 0.5
                while len(accepted) == n and clock() < deadline:
                    drain()
                    time.sleep(0.005)
        end = clock() + DRAIN_FOR_S
        while clock() < end:
            drain()
            sample()
            time.sleep(SAMPLE_S)
        drain()
        # accepted now but not a child at the snapshot: completed by phase 2 (the prefill
        # connections and the burst's first child were children already)
        accepted_ports = {conn.getpeername()[1] for conn in accepted}
        for row in rows:
            row["accepted_later"] = row["port"] in accepted_ports and row["server_side"] != "ESTABLISHED"

        out.tables["clients"] = rows
        out.tables["sockets"] = [{"state": r.state, "local": f"{r.local_address}:{r.local_port}",
                                  "remote": f"{r.remote_address}:{r.remote_port}", "recv_q": r.recv_q,
                                  "send_q": r.send_q, "timer": r.timer, "retransmits": r.retransmits}
                                 for r in socks]
        states_ = [r["state"] for r in rows]
        out.summary = {
            "established_clients": states_.count("ESTABLISHED"),
            "syn_sent_clients": states_.count("SYN_SENT"),
            "reset_clients": sum(1 for r in rows if r["error"] == "ECONNRESET"),
            "phantom_clients": sum(1 for r in rows if r["state"] == "ESTABLISHED"
                                   and r["server_side"] != "ESTABLISHED"),
            "server_children": sum(1 for r in rows if r["server_side"] == "ESTABLISHED"),
            "syn_recv": sum(1 for r in rows if r["server_side"] == "SYN_RECV"),
            "recv_q": recv_q,
            "send_q": send_q,
            **pick(snap_counters, *SUMMARY_COUNTERS),
            "completed_later": sum(1 for r in rows if r["accepted_later"]),
        }
        # Result.counters: the whole run (both phases); _mode fills it when left empty
    return out
