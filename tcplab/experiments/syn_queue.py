"""syn_queue: fill the half-open (SYN) queue and watch syncookies take over
(docs/kernel-facts.md cases 4 and 8).

Two ways to fill it:

* ``flood=False`` (works unprivileged): the listener sets TCP_DEFER_ACCEPT, clients connect
  and send nothing, so ``tcp_check_req()`` drops their bare final ACK and every request stays
  SYN_RECV (TCPDeferAcceptDrop).
* ``flood=True``: ``clients`` crafted SYNs from 127.0.0.2 through a raw socket (what
  ``hping3 -S --flood`` does), with 127/8 routed so that the SYN-ACKs vanish. Needs a private
  namespace (it changes routes) and raw sockets in it.

After a flood's snapshot (counters are taken there) a legitimate client tries to connect:
``legit_client_connected`` is whether its handshake completed (client ESTABLISHED) within
3.5 s; without a flood there is no legitimate client and it is None.

>>> r = syn_queue(backlog=4, clients=60, syncookies=0)     # doctest: +SKIP
>>> r.summary["syn_recv"], r.summary["TCPReqQFullDrop"]    # doctest: +SKIP
(5, 55)
"""

from __future__ import annotations

import math

import random
import time
from typing import Any

from collections.abc import Mapping

from tcplab.errors import KernelUnavailable, RealModeUnavailable
from tcplab.experiments._common import Clock, counters_now, delta, pick, proc_sockets
from tcplab.experiments.registry import make_function
from tcplab.experiments.spec import Experiment, GridPoint, Key, Param, Plot, Slider, Table
from tcplab.experiments.spec import Exact, When
from tcplab.kernel.capture import craft_syn, open_raw_sender
from tcplab.kernel.loopback import SocketSet, tcp_state
from tcplab.kernel.qdisc import blackhole_loopback_peers
from tcplab.model.outcome import Outcome, Timing
from tcplab.sim.queues import syn_queue as sim_syn_queue


__all__ = ["syn_queue", "SPEC"]

RECORD = ("net.ipv4.tcp_syncookies", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_synack_retries",
          "net.core.somaxconn")
COUNTERS = ("SyncookiesSent", "SyncookiesRecv", "TCPReqQFullDrop", "TCPReqQFullDoCookies", "ListenDrops",
            "ListenOverflows")
DEFER_ACCEPT_S = 30
LEGIT_WAIT_S = {True: 3.5, False: 1.5}
#: how often the real run samples SYN_RECV for its timeline (s)
TIMELINE_EVERY_S = 0.1


def _needs_namespace(p: Mapping[str, Any]) -> str | None:
    return ("flood=True changes the routes of 127/8 and sends crafted SYNs through a raw socket, "
            "which is only done in a private namespace") if p["flood"] else None


SPEC = Experiment(
    name="syn_queue",
    title="Fill the SYN (half-open) queue and watch syncookies take over.",
    doc="""Fill the SYN queue of a listener with ``listen(backlog)``; snapshot after ``settle`` s.
    ``flood=False`` (unprivileged): the listener sets TCP_DEFER_ACCEPT and the clients send
    nothing, so every request stays SYN_RECV. ``flood=True``: ``clients`` crafted SYNs from
    127.0.0.2 whose SYN-ACKs vanish (a private namespace), then a legitimate client tries for
    3.5 s. Rules (6.18, ``tcp_conn_request()``): the SYN queue is full when it holds more than
    ``min(backlog, somaxconn)`` requests (so backlog+1 fit); then syncookies=1 answers with
    cookies, syncookies=0 drops (TCPReqQFullDrop). With syncookies=0, requests from unproven
    peers also stop at 3/4 of ``max_syn_backlog`` (+1), counted only in ListenDrops (docs/kernel-facts.md
    cases 4 and 8).""",
    params=(
        Param("backlog", "int", 4, lo=0, hi=65535, help="listen() backlog", slider=Slider(0, 4096, scale="log")),
        Param("clients", "int", 60, lo=1, hi=1000, help="clients (or spoofed SYNs with flood)",
              slider=Slider(1, 200)),
        Param("syncookies", "choice", 1, choices=(0, 1, 2), sysctl="net.ipv4.tcp_syncookies",
              help="0 off, 1 when the SYN queue is full, 2 always"),
        Param("max_syn_backlog", "int", None, lo=1, hi=65535, optional=True, sysctl="net.ipv4.tcp_max_syn_backlog",
              help="only used by the 3/4 rule with syncookies=0", slider=Slider(1, 4096, scale="log")),
        Param("synack_retries", "int", None, lo=0, hi=255, optional=True, sysctl="net.ipv4.tcp_synack_retries",
              help="SYN-ACK retransmissions of a request before it is dropped", slider=Slider(0, 10)),
        Param("flood", "bool", False, help="spoofed SYNs from 127.0.0.2 instead of silent clients"),
        Param("settle", "float", 0.5, lo=0.1, hi=30, unit="s", help="wait before the snapshot"),
    ),
    summary=(
        Key("syn_recv", "requests (SYN_RECV) on the listener at the snapshot"),
        Key("server_children", "ESTABLISHED children (cookie connections) at the snapshot"),
        *[Key(c, "counter delta at the snapshot") for c in COUNTERS],
        Key("legit_client_connected", "with flood: did a normal client get in within 3.5 s (None without flood)",
            rule=When(lambda p: p["flood"], Exact(), name="flood_only",
                      meaning="equal, compared only when the run had a flood")),
    ),
    tables=(
        Table("sockets", ("state", "remote", "timer", "retransmits"), "a connection of the listener (not the listener)"),
        Table("clients", ("client", "port", "state"), "one client (flood=False only)",
              present=lambda p: not p["flood"]),
    ),
    timeline=("t", "syn_recv", "server_children"),
    grid=(
        # docs/kernel-facts.md case 8 (TCP_DEFER_ACCEPT, 60 clients) for both max_syn_backlog values
        *[GridPoint(dict(backlog=b, syncookies=ck, max_syn_backlog=m), quick=(b, ck, m) in ((4, 1, 16), (100, 0, 16)))
          for ck in (1, 0) for m in (16, 2048) for b in (0, 1, 4, 8, 100)],
        # docs/kernel-facts.md case 4 (spoofed flood), two rows
        GridPoint(dict(backlog=128, syncookies=0, max_syn_backlog=8, flood=True, clients=200)),
        GridPoint(dict(backlog=4, syncookies=1, max_syn_backlog=8, flood=True, clients=200)),
    ),
    smoke=(dict(backlog=2, clients=6, settle=0.2),
           dict(backlog=4, clients=20, syncookies=1, max_syn_backlog=8, flood=True, settle=0.2)),
    real=lambda p: _real(p),
    sim=sim_syn_queue,
    record=RECORD,
    needs_namespace=_needs_namespace,
    timeout=lambda p: p["settle"] + LEGIT_WAIT_S[p["flood"]] + p["clients"] * 0.02 + 15,
    plot=Plot(y=("syn_recv", "server_children"), kind="step", title="the SYN queue over time", y_title="count"),
)

syn_queue = make_function(SPEC)


def _flood(p: dict[str, Any], port: int, out: Outcome) -> None:

    try:
        raw = open_raw_sender()
    except PermissionError as e:
        raise RealModeUnavailable(f"flood=True needs raw sockets, refused in this namespace: {e}") from None
    with raw:
        try:
            out.notes.append(blackhole_loopback_peers())
        except KernelUnavailable as e:
            raise RealModeUnavailable(f"flood=True needs the SYN-ACKs to vanish, but {e.reason}") from None
        rng = random.Random(p["clients"])  # fixed: the same SYNs every run
        sports = rng.sample(range(1024, 65536), p["clients"])
        for sport in sports:
            raw.sendto(craft_syn("127.0.0.2", sport, "127.0.0.1", port, rng.getrandbits(32)), ("127.0.0.1", 0))
    out.notes.append(f"sent {p['clients']} crafted SYNs from 127.0.0.2 to port {port}")


def _real(p: dict[str, Any]) -> Outcome:

    out = Outcome()
    before = counters_now()
    with SocketSet() as ss:
        lst = ss.listener(p["backlog"], defer_accept=None if p["flood"] else DEFER_ACCEPT_S)
        addr = lst.getsockname()
        port = addr[1]
        clock = Clock()
        clients = []
        if p["flood"]:
            _flood(p, port, out)
        else:
            clients = [ss.connect(addr) for _ in range(p["clients"])]
        # SYN_RECV over time until the snapshot: requests leave when their SYN-ACK retries run out
        # (reqsk_timer_handler(), model/synack.py), which takes seconds, so sample every 100 ms
        timeline = []
        end = clock() + p["settle"]
        while True:
            t = clock()
            rows = [r for r in proc_sockets() if r.local_port == port and r.state != "LISTEN"]
            timeline.append({"t": round(t, 3), "syn_recv": sum(1 for r in rows if r.state == "SYN_RECV"),
                             "server_children": sum(1 for r in rows if r.state == "ESTABLISHED")})
            if t >= end:
                break
            clock.sleep_until(min(end, t + TIMELINE_EVERY_S))
        counters = delta(before, keep=COUNTERS)
        # the runner's own timing: the snapshot is meant settle s after the first SYN (connects take
        # ~ms); the SYN and SYN-ACK timers fire on whole seconds (1 s, then 1 s or 2 s more), so a
        # snapshot later than the next whole second counts their retransmissions too (measured beside
        # two CPU-bound processes and a disk writer: TCPReqQFullDoCookies 117 where the rule gives 59)
        taken = clock()
        limit_s = math.floor(p["settle"]) + 1 - p["settle"]
        out.timings.append(Timing("snapshot", round(max(0.0, taken - p["settle"]) * 1000, 3),
                                  f"the snapshot meant for {p['settle']:g} s after the first SYN was taken at "
                                  f"{taken:.3f} s, past the next SYN/SYN-ACK retransmission",
                                  limit_ms=round(limit_s * 1000, 3)))
        syn_recv = sum(1 for r in rows if r.state == "SYN_RECV")
        children = sum(1 for r in rows if r.state == "ESTABLISHED")
        out.tables["sockets"] = [{"state": r.state, "remote": f"{r.remote_address}:{r.remote_port}",
                                  "timer": r.timer, "retransmits": r.retransmits} for r in rows]
        if clients:
            out.tables["clients"] = [{"client": i, "port": c.getsockname()[1], "state": tcp_state(c)}
                                     for i, c in enumerate(clients)]
        # a legitimate client (only after a flood): does its handshake complete?
        connected: bool | None = None
        if p["flood"]:
            legit = ss.connect(addr)
            wait = LEGIT_WAIT_S[p["flood"]]
            t0 = clock()
            connected = False
            while clock() - t0 < wait:
                if tcp_state(legit) == "ESTABLISHED":
                    connected = True
                    break
                time.sleep(0.005)
            if connected:
                out.notes.append(f"the legitimate client connected after {clock() - t0:.3f} s")
            else:
                out.notes.append(f"the legitimate client was still {tcp_state(legit)} after {wait:g} s")
    out.counters = counters
    out.timeline = timeline
    out.summary = {"syn_recv": syn_recv, "server_children": children, **pick(counters, *COUNTERS),
                   "legit_client_connected": connected}
    return out
