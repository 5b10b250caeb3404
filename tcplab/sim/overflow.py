"""The ack_overflow scenario (docs/kernel-facts.md case 2): a burst of handshakes on a slowed loopback
against a listener whose accept queue has room for one more connection.

The protocol of the run, shared with the real runner (``tcplab.experiments.ack_overflow``):

1. ``listen(backlog)``; ``backlog`` clients connect and are not accepted (queue: room for one).
2. The loopback is slowed down; ``burst`` clients connect at once. Their SYNs all reach the
   listener before any ACK (:meth:`~tcplab.model.listen.Listener.on_syn_burst`).
3. Until the snapshot at :data:`SNAPSHOT_S`, timers run: the SYN-ACK retransmit of every
   request (1 s), answered by the client's ACK; and the SYN retries of clients whose SYN was
   dropped (:func:`~tcplab.model.retries.syn_schedule`; retries due together are one burst).
4. Phase 2: the application drains the accept queue; each ESTABLISHED client sends one byte, one
   after the other, which completes its SYN_RECV request (``tcp_check_req()``) or its cookie
   (``cookie_v4_check()``); the application accepts for :data:`DRAIN_FOR_S` more seconds.

>>> from tcplab.model.profiles import get_profile
>>> o = ack_overflow(dict(abort_on_overflow=True, syncookies=1, backlog=4, burst=6, slow_motion=6.0),
...                  get_profile(None))
>>> o.summary["reset_clients"], o.summary["EmbryonicRsts"], o.summary["ListenOverflows"]
(4, 4, 5)
>>> o.summary["completed_later"]     # the cookie connection, revived by its data
1
"""

from __future__ import annotations

import math
from typing import Any

from tcplab.model.listen import Listener
from tcplab.model.outcome import Outcome
from tcplab.model.profiles import KernelProfile
from tcplab.model.retries import syn_schedule
from tcplab.sim.engine import Engine, Rng

__all__ = ["ack_overflow", "SNAPSHOT_S", "DRAIN_FOR_S", "SUMMARY_COUNTERS", "SAMPLE_S"]

#: the snapshot, seconds after the burst (after the 1 s SYN-ACK and SYN retransmits, as docs/kernel-facts.md)
SNAPSHOT_S = 1.5
#: phase 2: the application accepts for this long after the snapshot (the 2 s SYN retry lands in it)
DRAIN_FOR_S = 2.5
#: counters reported in the summary, read at the snapshot (Result.counters covers the whole run)
SUMMARY_COUNTERS = ("ListenOverflows", "ListenDrops", "EmbryonicRsts", "TCPReqQFullDoCookies",
                    "TCPReqQFullDrop", "SyncookiesSent", "SyncookiesRecv")
#: the real runner samples its timeline every 50 ms
SAMPLE_S = 0.05

SERVER_PORT = 5000

# what the client and the server have for one burst client
_CLIENT_AND_SERVER = {          # Listener.on_ack() result -> (client state, server side, error)
    "child": ("ESTABLISHED", "ESTABLISHED", None),
    "overflow": ("ESTABLISHED", "SYN_RECV", None),      # ACK dropped, request kept (acked)
    "reset": ("CLOSE", None, "ECONNRESET"),              # abort_on_overflow: RST
    "discarded": ("ESTABLISHED", None, None),           # cookie ACK, queue full: nothing kept
}


class _Run:
    """One run's mutable state: the listener, each burst client, and the app's accepts."""

    def __init__(self, params: dict[str, Any], profile: KernelProfile) -> None:
        self.L = Listener(backlog=params["backlog"], profile=profile, syncookies=params["syncookies"],
                          abort_on_overflow=params["abort_on_overflow"])
        for i in range(params["backlog"]):                  # step 1: the queue holds `backlog`
            self.L.connect(0.0, ("prefill", i))
        n = params["burst"]
        self.state = ["SYN_SENT"] * n
        self.side: list[str | None] = [None] * n
        self.error: list[str | None] = [None] * n
        self.syns = [0] * n
        self.accepted: list[Any] = []
        self.schedule = syn_schedule(profile.syn_retries, profile.syn_linear_timeouts)

    def syn_burst(self, now: float, clients: list[int]) -> None:
        for i, verdict, result in self.L.on_syn_burst(now, clients):
            self.syns[i] += 1
            if verdict != "dropped":
                self.state[i], self.side[i], self.error[i] = _CLIENT_AND_SERVER[result]

    def synack_timers(self, now: float) -> None:
        """Fire due reqsk timers; each retransmitted SYN-ACK is answered by the client's ACK."""
        while (due := self.L.next_timer()) is not None and due <= now:
            for what, peer in self.L.on_timer(due):
                if what == "synack":
                    result = self.L.on_ack(due, peer)
                    if result != "overflow":
                        self.state[peer], self.side[peer], self.error[peer] = _CLIENT_AND_SERVER[result]
                elif what == "expired":
                    self.side[peer] = None

    def drain(self) -> int:
        n = 0
        while (child := self.L.accept(0.0)) is not None:
            self.accepted.append(child.peer)
            n += 1
        return n

    def counts(self) -> dict[str, int]:
        return {"recv_q": self.L.recv_q,
                "syn_recv": sum(1 for p in self.L.syn_queue if isinstance(p, int)),
                "established_clients": self.state.count("ESTABLISHED"),
                "syn_sent_clients": self.state.count("SYN_SENT"),
                "reset_clients": self.error.count("ECONNRESET"),
                "accepted": len(self.accepted)}


def ack_overflow(params: dict[str, Any], profile: KernelProfile, rng: Rng | None = None) -> Outcome:
    """Simulate the run described in the module docstring (``rng`` is unused: it is deterministic)."""
    run = _Run(params, profile)
    n = params["burst"]
    run.syn_burst(0.0, list(range(n)))                      # step 2
    end = SNAPSHOT_S + DRAIN_FOR_S
    timeline: list[dict[str, Any]] = []
    state: dict[str, Any] = {"snapshot": None, "draining": False}

    def tick(t: float) -> None:
        """Everything due at ``t``: timers, the SYN retries due together (one timer tick), the
        app's accepts, the snapshot, a timeline sample."""
        snapshot, draining = state["snapshot"], state["draining"]
        run.synack_timers(t)
        waiting = [i for i in range(n) if run.state[i] == "SYN_SENT" and run.syns[i] < len(run.schedule.send_times)
                   and math.isclose(run.schedule.send_times[run.syns[i]], t)]
        if waiting:                                         # retries due together: one timer tick
            run.syn_burst(t, waiting)
        if draining:
            run.drain()
        if math.isclose(t, SNAPSHOT_S):
            snapshot = _snapshot(run, params, profile)
            run.drain()                                     # step 4
            for i in range(n):
                if run.state[i] == "ESTABLISHED" and run.side[i] != "ESTABLISHED":
                    cookie = run.side[i] is None
                    if run.L.on_ack(t, i, cookie=cookie, bare=False) == "child":
                        run.side[i] = "ESTABLISHED"
                    run.drain()
            draining = True
        timeline.append({"t": round(t, 4), **run.counts()})
        state["snapshot"], state["draining"] = snapshot, draining

    # time advances through the engine: one event per instant something is due (the SYN retries'
    # send times, the snapshot, every SAMPLE_S), in time order
    eng = Engine()
    for t in sorted({*run.schedule.send_times[1:], SNAPSHOT_S, *(k * SAMPLE_S for k in range(int(end / SAMPLE_S) + 1))}):
        eng.schedule(t, tick, t)
    eng.run(until=end + 1e-9)
    snapshot = state["snapshot"]
    assert snapshot is not None
    later = set(run.accepted)
    rows = snapshot["rows"]
    for r in rows:
        r["accepted_later"] = r["client"] in later and r["server_side"] != "ESTABLISHED"
    summary = snapshot["summary"]
    summary["completed_later"] = sum(1 for r in rows if r["accepted_later"])
    notes = [f"simulated slowed loopback ({params['slow_motion']:g} ms per packet): the burst's SYNs all reach "
             f"the listener before any ACK; kernel profile {profile.name}"]
    return Outcome(summary=summary, counters={k: v for k, v in run.L.counters.items() if v},
                   tables={"clients": rows, "sockets": snapshot["sockets"]},
                   timeline=timeline,
                   sysctls=profile.sysctls(abort_on_overflow=int(params["abort_on_overflow"]),
                                           syncookies=params["syncookies"]),
                   notes=notes)


def _snapshot(run: _Run, params: dict[str, Any], profile: KernelProfile) -> dict[str, Any]:
    """Summary, client rows and a /proc-like socket table at the snapshot."""
    lo = profile.port_range[0]
    srv = f"127.0.0.1:{SERVER_PORT}"
    n = params["burst"]
    prefill = params["backlog"]
    rows = [{"client": i, "port": lo + 2 * (prefill + i), "state": run.state[i], "error": run.error[i],
             "server_side": run.side[i], "data_sent": run.state[i] == "ESTABLISHED", "accepted_later": False}
            for i in range(n)]
    sockets = [{"state": "LISTEN", "local": srv, "remote": "0.0.0.0:0", "recv_q": run.L.recv_q,
                "send_q": 0, "timer": "off", "retransmits": 0}]
    for r in rows:
        if r["server_side"]:
            sockets.append({"state": r["server_side"], "local": srv, "remote": f"127.0.0.1:{r['port']}",
                            "recv_q": 0, "send_q": 0, "timer": "retransmit" if r["server_side"] == "SYN_RECV"
                            else "off", "retransmits": 1 if r["server_side"] == "SYN_RECV" else 0})
        if r["state"] in ("ESTABLISHED", "SYN_SENT"):
            sockets.append({"state": r["state"], "local": f"127.0.0.1:{r['port']}", "remote": srv,
                            "recv_q": 0, "send_q": 0, "timer": "retransmit" if r["state"] == "SYN_SENT" else "off",
                            "retransmits": run.syns[r["client"]] - 1 if r["state"] == "SYN_SENT" else 0})
    c = run.L.counters
    summary = {
        "established_clients": run.state.count("ESTABLISHED"),
        "syn_sent_clients": run.state.count("SYN_SENT"),
        "reset_clients": run.error.count("ECONNRESET"),
        "phantom_clients": sum(1 for r in rows if r["state"] == "ESTABLISHED" and r["server_side"] != "ESTABLISHED"),
        "server_children": sum(1 for r in rows if r["server_side"] == "ESTABLISHED"),
        "syn_recv": sum(1 for r in rows if r["server_side"] == "SYN_RECV"),
        "recv_q": run.L.recv_q,
        "send_q": run.L.send_q,
        **{k: c.get(k, 0) for k in SUMMARY_COUNTERS},
        "completed_later": 0,
    }
    return {"summary": summary, "rows": rows, "sockets": sockets}
