"""syn_queue: fill the half-open (SYN) queue and watch syncookies take over
(KERNEL.md cases 4 and 8).

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

import random
import time
from typing import Any

from tcplab._validate import check_bool, check_choice, check_float, check_int, check_optional_int
from tcplab.errors import KernelUnavailable, RealModeUnavailable
from tcplab.experiments import _mode
from tcplab.experiments._common import Clock, counters_now, delta, pick, proc_sockets
from tcplab.experiments.result import Result
from tcplab.kernel.capture import craft_syn, open_raw_sender
from tcplab.kernel.loopback import SocketSet, tcp_state
from tcplab.kernel.qdisc import blackhole_loopback_peers
from tcplab.model.outcome import Outcome


__all__ = ["syn_queue"]

RECORD = ("net.ipv4.tcp_syncookies", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_synack_retries",
          "net.core.somaxconn")
COUNTERS = ("SyncookiesSent", "SyncookiesRecv", "TCPReqQFullDrop", "TCPReqQFullDoCookies", "ListenDrops",
            "ListenOverflows")
DEFER_ACCEPT_S = 30
LEGIT_WAIT_S = {True: 3.5, False: 1.5}
#: how often the real run samples SYN_RECV for its timeline (s)
TIMELINE_EVERY_S = 0.1


def syn_queue(backlog: int = 4, clients: int = 60, syncookies: int = 1, max_syn_backlog: int | None = None,
              synack_retries: int | None = None, flood: bool = False, settle: float = 0.5, *,
              mode: str = "auto", seed: int = 0, profile: str | None = None) -> Result:
    """Fill the SYN queue of a listener with ``listen(backlog)``; snapshot after ``settle`` s.

    Rules (6.18, ``tcp_conn_request()``): the SYN queue is full when it holds more than
    ``min(backlog, somaxconn)`` requests (so backlog+1 fit); then syncookies=1 answers with
    cookies, syncookies=0 drops (TCPReqQFullDrop). With syncookies=0, requests from unproven
    peers also stop at 3/4 of ``max_syn_backlog`` (+1), counted only in ListenDrops.

    Tables: ``sockets`` (server-side /proc rows), ``clients`` (flood=False: state per client).

    >>> syn_queue(backlog=4).summary["syn_recv"]      # doctest: +SKIP
    5
    """
    mode, seed, profile = _mode.check_mode(mode, seed, profile)
    params = {
        "backlog": check_int("backlog", backlog, 0, 65535),
        "clients": check_int("clients", clients, 1, 1000),
        "syncookies": check_choice("syncookies", syncookies, (0, 1, 2)),
        "max_syn_backlog": check_optional_int("max_syn_backlog", max_syn_backlog, 1, 65535),
        "synack_retries": check_optional_int("synack_retries", synack_retries, 0, 255),
        "flood": check_bool("flood", flood),
        "settle": check_float("settle", settle, 0.1, 30),
    }
    sysctls: dict[str, Any] = {"net.ipv4.tcp_syncookies": params["syncookies"]}
    if params["max_syn_backlog"] is not None:
        sysctls["net.ipv4.tcp_max_syn_backlog"] = params["max_syn_backlog"]
    if params["synack_retries"] is not None:
        sysctls["net.ipv4.tcp_synack_retries"] = params["synack_retries"]
    needs = ("flood=True changes the routes of 127/8 and sends crafted SYNs through a raw socket, "
             "which is only done in a private namespace") if params["flood"] else None
    timeout = params["settle"] + LEGIT_WAIT_S[params["flood"]] + params["clients"] * 0.02 + 15
    return _mode.run("syn_queue", params, mode=mode, seed=seed, profile=profile, real=_real, sysctls=sysctls,
                     record=RECORD, needs_namespace=needs, timeout=timeout)


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
