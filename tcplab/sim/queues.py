"""Scenarios for the listen-queue experiments: accept_queue, syn_queue, syn_retries, load.

Each function takes the validated ``params`` dict, a profile and an rng and returns an
:class:`~tcplab.model.outcome.Outcome` with the summary keys of docs/experiments.md.

Simulation choices where the kernel shows nothing (also written into ``notes``):
clients start 0.1 ms apart (a connect() loop on loopback), the loopback RTT is 0
(the handshake runs inside connect()), and the spoofed flood sends each SYN once.

>>> from tcplab.model.profiles import get_profile
>>> o = accept_queue(dict(backlog=5, somaxconn=None, clients=20, abort_on_overflow=False,
...                       accept_after=None, settle=1.5), get_profile(None))
>>> o.summary["established_clients"], o.summary["ListenOverflows"]
(6, 28)
"""

from __future__ import annotations

import math
from bisect import bisect_right
from itertools import compress, count, filterfalse, repeat
from typing import Any

from tcplab.sim.ladder import Ladder
from tcplab.model.listen import Listener, new_counters
from tcplab.model.outcome import Outcome
from tcplab.model.profiles import KernelProfile
from tcplab.model.retries import syn_schedule
from tcplab.sim.engine import Rng
from tcplab.sim.listenq import ESTAB, FAILED, OUTCOME_NAMES, PENDING, RESET, STATE_NAMES, run_listen_world

__all__ = ["accept_queue", "syn_queue", "syn_retries", "load", "CLIENT_SPACING"]

#: seconds between two clients' connect() calls ("at once" in a connect loop)
CLIENT_SPACING = 1e-4
LOOPBACK_NOTE = ("simulated loopback: RTT 0, so the handshake completes inside connect() and a full "
                 "accept queue drops the SYN (docs/kernel-facts.md case 1); clients start 0.1 ms apart")


def _counters(c: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in c.items() if v}


#: the simulated loopback addresses (the real runners use an ephemeral server port)
SERVER_PORT = 5000
SAMPLE_S = 0.05   # the real runners sample their timelines every 50 ms


def _addr(port: int, ip: str = "127.0.0.1") -> str:
    return f"{ip}:{port}"


def client_port(profile: KernelProfile, i: int) -> int:
    """Local port of the ``i``-th client: ``__inet_hash_connect()`` scans ports of ``low``'s
    parity first (``offset &= ~1U``), then the others."""
    lo, hi = profile.port_range
    n = hi - lo + 1
    evens = (n + 1) // 2
    i %= n
    return lo + 2 * i if i < evens else lo + 1 + 2 * (i - evens)


def proc_row(state: str, local: str, remote: str, recv_q: int = 0, send_q: int = 0,
             timer: str = "off", retransmits: int = 0) -> dict[str, Any]:
    """One /proc/net/tcp row, as the real runners tabulate it (``tables["sockets"]``)."""
    return {"state": state, "local": local, "remote": remote, "recv_q": recv_q, "send_q": send_q,
            "timer": timer, "retransmits": retransmits}


def _synack_retransmits(age: float, limit: int, rto: float = 1.0) -> int:
    """SYN-ACK retransmissions of a request ``age`` s old (RTO 1 s, doubling), at most ``limit``."""
    n, due = 0, rto
    while n < limit and due <= age:
        n += 1
        rto *= 2
        due += rto
    return n


#: the real syn_queue runner samples SYN_RECV every 100 ms
SYNQ_EVERY_S = 0.1
#: a deferred request (TCP_DEFER_ACCEPT 30 s = 5 timeouts) lives 1+2+4+8+16 = 31 s
DEFER_LIFETIME_S = 31.0


def _walk_requests(L: Listener, until: float, every: float = SYNQ_EVERY_S) -> list[dict[str, Any]]:
    """Fire the SYN queue's timers up to ``until`` and sample it every ``every`` s from 0 (what the
    real runner's sampler sees: SYN_RECV requests and ESTABLISHED children)."""
    rows = []
    for k in range(int(until / every + 1e-9) + 1):
        t = min(k * every, until)
        while (due := L.next_timer()) is not None and due <= t:
            L.on_timer(due)
        rows.append({"t": round(t, 3), "syn_recv": L.syn_recv, "server_children": L.recv_q})
    if rows[-1]["t"] < until:
        while (due := L.next_timer()) is not None and due <= until:
            L.on_timer(due)
        rows.append({"t": round(until, 3), "syn_recv": L.syn_recv, "server_children": L.recv_q})
    return rows


class _ClientCounts:
    """Clients of a finished :class:`ListenWorld` by time, one bisect per count (timelines are
    built after the run; a scan of every client per sample cost O(clients x samples))."""

    def __init__(self, w: Any) -> None:
        fail = w.schedule.fail_after
        self.arrivals = w.arrivals                                    # sorted
        self.connected = list(filterfalse(math.isnan, w.connected_at))
        self.connected.sort()
        failed = list(compress(w.arrivals, map(FAILED.__eq__, w.state)))   # ETIMEDOUT, when it comes
        reset = list(compress(w.arrivals, map(RESET.__eq__, w.state)))
        self.failed = sorted(a + fail for a in failed)
        self.reset_at = sorted(a + fail for a in reset)
        self.reset_started = sorted(reset)

    def started(self, t: float) -> int:
        return bisect_right(self.arrivals, t)

    def established(self, t: float) -> int:
        return bisect_right(self.connected, t)

    def failed_or_reset(self, t: float) -> int:
        """Failed clients whose ``arrival + fail_after`` has come (as the load runner counts)."""
        return bisect_right(self.failed, t) + bisect_right(self.reset_at, t)

    def syn_sent(self, t: float) -> int:
        """Started, not connected, not timed out yet, not reset."""
        return (self.started(t) - self.established(t) - bisect_right(self.failed, t)
                - bisect_right(self.reset_started, t))


def accept_queue(params: dict[str, Any], profile: KernelProfile, rng: Rng | None = None) -> Outcome:
    """docs/kernel-facts.md case 1 (and case 2's loopback reading of tcp_abort_on_overflow)."""
    L = Listener(backlog=params["backlog"], profile=profile, somaxconn=params["somaxconn"],
                 abort_on_overflow=params["abort_on_overflow"])
    n = params["clients"]
    settle = params["settle"]
    arrivals = [CLIENT_SPACING * i for i in range(n)]
    # like the real runner: the snapshot is ``settle`` s after the last connect() returned, and
    # accept() starts ``accept_after`` s after the first connect()
    until = arrivals[-1] + settle
    # the real server drains the accept queue (non-blocking accept() until EAGAIN) in its 50 ms
    # sampling loop, at the first sample at or after accept_after and at every sample after it
    acc = params["accept_after"]
    acc_start = None if acc is None else math.ceil(acc / SAMPLE_S - 1e-9) * SAMPLE_S
    w = run_listen_world(L, arrivals, until=until, accept_start=acc_start, accept_service=0.0,
                         accept_every=SAMPLE_S, sample_every=SAMPLE_S)
    c = L.counters
    ports = [client_port(profile, i) for i in range(n)]
    requests = {p for p in L.syn_queue if isinstance(p, int)}
    rows = []
    for i, st in enumerate(w.state):
        server_side = None
        if st == ESTAB:
            if i in requests:
                server_side = "SYN_RECV"
            elif i not in w.phantom_ids:
                server_side = "ESTABLISHED"   # queued, or accepted (the app keeps it open)
        rows.append({"client": i, "port": ports[i], "state": STATE_NAMES[st],
                     "error": OUTCOME_NAMES[st] if st in (FAILED, RESET) else None,
                     "server_side": server_side})
    srv = _addr(SERVER_PORT)
    sockets = [proc_row("LISTEN", srv, "0.0.0.0:0", recv_q=L.recv_q)]
    for i, r in enumerate(rows):
        if r["server_side"] is not None:
            age = until - arrivals[i]
            sockets.append(proc_row(r["server_side"], srv, _addr(ports[i]),
                                    timer="retransmit" if r["server_side"] == "SYN_RECV" else "off",
                                    retransmits=_synack_retransmits(age, profile.synack_retries)
                                    if r["server_side"] == "SYN_RECV" else 0))
    for i, r in enumerate(rows):
        if r["state"] in ("ESTABLISHED", "SYN_SENT"):
            syn = r["state"] == "SYN_SENT"
            sockets.append(proc_row(r["state"], _addr(ports[i]), srv, timer="retransmit" if syn else "off",
                                    retransmits=w.syns[i] - 1 if syn else 0))
    timeline = []
    counts = _ClientCounts(w)
    for s in w.timeline:
        t = s["t"]
        timeline.append({"t": t, "recv_q": s["recv_q"], "accepted": s["accepted"],
                         "established_clients": counts.established(t), "syn_sent_clients": counts.syn_sent(t)})
    summary = {
        "established_clients": w.established,
        "syn_sent_clients": w.syn_sent,
        "server_children": sum(1 for r in rows if r["server_side"] == "ESTABLISHED"),
        "recv_q": L.recv_q,
        "send_q": L.send_q,
        "ListenOverflows": c["ListenOverflows"],
        "ListenDrops": c["ListenDrops"],
        "reset_clients": w.reset,
        "phantom_clients": w.phantom,
        "accepted": w.accepted,
    }
    notes = [LOOPBACK_NOTE, f"snapshot at {until:g} s ({settle:g} s after the last connect); "
             f"kernel profile {profile.name}"]
    if w.phantom:
        notes.append(f"{w.phantom} phantom clients: SYN retransmissions due in the same {profile.timer_tick * 1000:g} ms "
                     "timer tick reach the listener as a burst (all SYNs before their ACKs); the SYN queue admits "
                     "backlog+1 requests, the rest get syncookies, and the cookie ACKs that find the accept queue "
                     "full are dropped silently (tcp_get_cookie_sock(): no RST, ListenOverflows): the client is "
                     "ESTABLISHED, the server has nothing")
    if params["abort_on_overflow"] and not w.reset:
        notes.append("tcp_abort_on_overflow changed nothing here: no request's ACK found the accept queue "
                     "full (on loopback a full queue drops the SYN; a cookie connection is never RST)")
    return Outcome(summary=summary, counters=_counters(c),
                   tables={"clients": rows, "sockets": sockets},
                   timeline=timeline,
                   sysctls=profile.sysctls(somaxconn=params["somaxconn"],
                                           abort_on_overflow=int(params["abort_on_overflow"])),
                   notes=notes)


def syn_queue(params: dict[str, Any], profile: KernelProfile, rng: Rng | None = None) -> Outcome:
    """docs/kernel-facts.md case 8 (TCP_DEFER_ACCEPT keeps requests in SYN_RECV) or, with ``flood``,
    case 4 (spoofed SYNs whose SYN-ACKs are never answered, then one legitimate client)."""
    counters = new_counters()
    L = Listener(backlog=params["backlog"], profile=profile, syncookies=params["syncookies"],
                 max_syn_backlog=params["max_syn_backlog"], synack_retries=params["synack_retries"],
                 defer_accept=not params["flood"], counters=counters)
    n = params["clients"]
    settle = params["settle"]
    notes = [f"kernel profile {profile.name}"]
    legit: bool | None = None
    tables: dict[str, list[dict[str, Any]]] = {}
    srv = _addr(SERVER_PORT)
    synack_limit = profile.synack_retries if params["synack_retries"] is None else params["synack_retries"]
    if params["flood"]:
        # Spoofed SYNs: each sent once; the SYN-ACKs go nowhere, so requests stay SYN_RECV until
        # their SYN-ACK retries run out (model/synack.py: tcp_synack_retries, cut down to 2 for
        # old requests while the queue is more than half full of them)
        for i in range(n):
            L.on_syn(CLIENT_SPACING * i, ("spoofed", i))
        timeline = _walk_requests(L, settle)
        snap_counters = dict(counters)
        snap = (L.syn_recv, L.recv_q)
        sockets = [proc_row("SYN_RECV", srv, _addr(1024 + p[1], "127.0.0.2"), timer="retransmit",
                            retransmits=req.num_timeout)
                   for p, req in L.syn_queue.items() if isinstance(p, tuple)]
        sockets += [proc_row("ESTABLISHED", srv, _addr(1024 + ch.peer[1], "127.0.0.2"))
                    for ch in L.accept_queue if isinstance(ch.peer, tuple)]
        # then a normal client tries for 3.5 s (SYNs at +0, 1, 2, 3 s)
        w = run_listen_world(L, [settle], until=settle + 3.5)
        legit = w.established == 1
        notes.append(f"{n} spoofed SYNs at t=0 (each sent once), snapshot at {settle:g} s, then one normal "
                     "client tries for 3.5 s; summary counters are the flood's (at the snapshot), "
                     "`counters` cover the whole run")
        syn_recv, children = snap
        summ_c = snap_counters
    else:
        arrivals = [CLIENT_SPACING * i for i in range(n)]
        until = arrivals[-1] + settle
        w = run_listen_world(L, arrivals, until=until)
        timeline = _walk_requests(L, until)
        syn_recv, children = L.syn_recv, L.recv_q
        summ_c = counters
        ports = [client_port(profile, i) for i in range(n)]
        tables["clients"] = [{"client": i, "port": ports[i], "state": STATE_NAMES[st]}
                             for i, st in enumerate(w.state)]
        sockets = [proc_row("SYN_RECV", srv, _addr(ports[p]), timer="retransmit", retransmits=req.num_timeout)
                   for p, req in L.syn_queue.items() if isinstance(p, int)]
        sockets += [proc_row("ESTABLISHED", srv, _addr(ports[ch.peer]))
                    for ch in L.accept_queue if isinstance(ch.peer, int)]
        notes.append("TCP_DEFER_ACCEPT listener that never accepts; clients send nothing (docs/kernel-facts.md case 8); "
                     f"snapshot at {until:g} s; no legitimate client (legit_client_connected is None)")
        notes.append(LOOPBACK_NOTE)
        if params["synack_retries"] is not None and until < DEFER_LIFETIME_S:
            notes.append(f"tcp_synack_retries changes nothing within {DEFER_LIFETIME_S:g} s here: the clients' bare "
                         "ACKs were deferred (TCP_DEFER_ACCEPT 30 s), and syn_ack_recalc() keeps an acked request "
                         "for the whole defer period (5 timeouts) whatever the retry limit")
    # the real runner lists the listener's connections (not the listener): state, remote, timer, retransmits
    tables["sockets"] = [{k: r[k] for k in ("state", "remote", "timer", "retransmits")} for r in sockets]
    summary = {
        "syn_recv": syn_recv,
        "server_children": children,
        "SyncookiesSent": summ_c["SyncookiesSent"],
        "SyncookiesRecv": summ_c["SyncookiesRecv"],
        "TCPReqQFullDrop": summ_c["TCPReqQFullDrop"],
        "TCPReqQFullDoCookies": summ_c["TCPReqQFullDoCookies"],
        "ListenDrops": summ_c["ListenDrops"],
        "ListenOverflows": summ_c["ListenOverflows"],
        "legit_client_connected": legit,
    }
    return Outcome(summary=summary, counters=_counters(counters), tables=tables, timeline=timeline,
                   sysctls=profile.sysctls(syncookies=params["syncookies"],
                                           max_syn_backlog=params["max_syn_backlog"],
                                           synack_retries=params["synack_retries"]),
                   notes=notes)


def syn_retries(params: dict[str, Any], profile: KernelProfile, rng: Rng | None = None) -> Outcome:
    """docs/kernel-facts.md case 3: a client whose every SYN is dropped (listener backlog 0, already full).

    Table ``syns`` and the TCP_INFO timeline as the real runner records them: after the j-th
    retransmission ``icsk_backoff`` is ``max(0, j - tcp_syn_linear_timeouts)`` and the RTO
    ``rto_initial * 2**backoff`` (``tcp_retransmit_timer()``)."""
    k = params["retries"]
    lt = params["linear_timeouts"]
    if lt is None:
        lt = profile.syn_linear_timeouts
    elif not profile.has_syn_linear_timeouts:
        lt = 0
    sched = syn_schedule(k, lt, profile.rto_initial, profile.rto_max)
    nsyn = len(sched.send_times)
    counters = {"ListenOverflows": nsyn, "ListenDrops": nsyn, "TCPTimeouts": nsyn,
                "TCPSynRetrans": nsyn - 1, "RetransSegs": nsyn - 1, "ActiveOpens": 1,
                "AttemptFails": 1, "TCPAbortOnTimeout": 1}
    notes = [f"kernel profile {profile.name}: tcp_syn_linear_timeouts={lt}; no RTO jitter "
             "(a real kernel drifts by ~0.2-0.4 s at later retries)"]
    if sched.fail_after > params["max_seconds"]:
        notes.append(f"a real run would take {sched.fail_after:g} s > max_seconds={params['max_seconds']:g}; "
                     "simulated time costs nothing")
    if params["linear_timeouts"] is not None and not profile.has_syn_linear_timeouts:
        notes.append(f"{profile.name} has no tcp_syn_linear_timeouts; the value was ignored")

    def rto_ms(backoff: int) -> float:
        return min(profile.rto_initial * 2 ** backoff, profile.rto_max) * 1000

    syns: list[dict[str, Any]] = [{"n": 1, "sent_at_s": 0.0, "predicted_s": 0.0}]
    timeline = [{"t": 0.0, "state": "SYN_SENT", "retransmits": 0, "total_retrans": 0, "backoff": 0,
                 "rto_ms": rto_ms(0)}]
    for j, t in enumerate(sched.send_times[1:], start=1):
        b = max(0, j - lt)
        syns.append({"n": j + 1, "sent_at_s": t, "rto_ms": rto_ms(b), "backoff": b, "predicted_s": t})
        timeline.append({"t": t, "state": "SYN_SENT", "retransmits": j, "total_retrans": j, "backoff": b,
                         "rto_ms": rto_ms(b)})
    # the SYNs as a capture on lo would show them (each dropped by the full listener: no answer)
    ladder = Ladder()
    for t in sched.send_times:
        ladder.syn(t)
    last = timeline[-1]
    timeline.append({"t": sched.fail_after, "state": "CLOSE", "retransmits": last["retransmits"],
                     "total_retrans": last["total_retrans"], "backoff": 0, "rto_ms": last["rto_ms"]})
    sysctls = profile.sysctls(syn_linear_timeouts=lt)
    return Outcome(
        summary={"retransmit_times": list(sched.send_times[1:]), "failed_after": sched.fail_after,
                 "error": "ETIMEDOUT", "retransmissions": nsyn - 1, "syns_sent": nsyn},
        counters=counters, tables={"syns": syns, "packets": ladder.rows}, timeline=timeline, sysctls=sysctls,
        notes=notes)


def _percentile(values: list[float], q: float, presorted: bool = False) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), as the real runner."""
    if not values:
        return None
    v = values if presorted else sorted(values)
    k = (len(v) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return round(v[lo] + (v[hi] - v[lo]) * (k - lo), 4)


# SYN retransmit timers sit on the timer wheel: an RTO of 1-2 s (250-500 jiffies at HZ=250) is
# level 1, granularity 8 jiffies = 32 ms (kernel/time/timer.c calc_index()). Measured: the real
# runner's retried clients complete on a 32 ms lattice (load(), Linux 6.18, CONFIG_HZ=250).
RTO_WHEEL_GRAN = 0.032
# the runner starts the clients due at a time before it accept()s at that time (one loop pass)
ACCEPT_AFTER = 1e-4
# the runner close()s each client once connected; a phantom's FIN is retransmitted from
# TCP_RTO_MIN (200 ms: loopback RTT ~0), and each copy retries the child (ListenOverflows)
FIN_RTO = 0.2


def load(params: dict[str, Any], profile: KernelProfile, rng: Rng | None = None, *,
         arrivals: list[float] | None = None) -> Outcome:
    """Clients at ``rate``/s for ``duration`` s (client i starts at i/rate, as the real runner:
    ``round(rate * duration)`` of them) against a server that accept()s as the real runner does:
    at most one connection per tick ``k / accept_rate`` (k = 1, 2, ...; a tick that finds the queue
    empty is lost; 0 = never), just after the clients due at that time have connected.
    A dropped SYN is retransmitted by the RTO timer on the timer wheel (``RTO_WHEEL_GRAN``, phase
    drawn from ``rng``), so retransmissions come in bursts (``Listener.on_syn_burst``).
    A client is established when its connect() completes (phantom clients included: the
    client cannot tell), failed on a connect error; latency is completion minus its start.
    Clients still in SYN_SENT at the end are neither established nor failed ("pending")."""
    dur = params["duration"]
    rate = params["rate"]
    if arrivals is None:
        arrivals = [i / rate for i in range(int(round(rate * dur)))]
    L = Listener(backlog=params["backlog"], profile=profile, somaxconn=params["somaxconn"],
                 syncookies=params["syncookies"])
    ar = params["accept_rate"]
    phase = (rng.random() if rng is not None else 0.5) * RTO_WHEEL_GRAN
    w = run_listen_world(L, arrivals, until=dur, syn_retries=params["syn_retries"],
                         accept_start=1.0 / ar + ACCEPT_AFTER if ar > 0 else None,
                         accept_service=1.0 / ar if ar > 0 else 0.0,
                         accept_every=1.0 / ar if ar > 0 else None,
                         sample_every=SAMPLE_S, timer_gran=RTO_WHEEL_GRAN, timer_phase=phase,
                         fin_rto=FIN_RTO)
    # one pass per column (C-level map where it can), then the rows: ~3x cheaper than one
    # Python-level pass per client at 1M clients (most latencies are 0.0: no round() needed)
    lats = [c - a if c == c else None for a, c in zip(arrivals, w.connected_at)]
    latencies = sorted(x for x in lats if x is not None)
    rows = [{"client": i, "started_s": a, "connect_s": None if x is None else round(x, 4) if x else 0.0, "outcome": o}
            for i, a, x, o in zip(count(), map(round, arrivals, repeat(4)), lats,
                                  map(OUTCOME_NAMES.__getitem__, w.state))]
    timeline = []
    counts = _ClientCounts(w)
    for s in w.timeline:
        t = s["t"]
        started, est, failed = counts.started(t), counts.established(t), counts.failed_or_reset(t)
        timeline.append({"t": t, "recv_q": s["recv_q"], "attempts": started, "established": est,
                         "failed": failed, "pending": started - est - failed, "accepted": s["accepted"],
                         "ListenOverflows": s.get("ListenOverflows", 0)})
    pending = w.state.count(PENDING)
    summary = {
        "attempts": len(arrivals), "established": w.established, "failed": w.failed + w.reset,
        "max_recv_q": w.max_recv_q, "p50_connect_s": _percentile(latencies, 0.50, presorted=True),
        "p99_connect_s": _percentile(latencies, 0.99, presorted=True), "ListenOverflows": L.counters["ListenOverflows"],
    }
    notes = [LOOPBACK_NOTE.replace("; clients start 0.1 ms apart", ""),
             f"client i starts at i/rate; at most one accept() per 1/accept_rate s tick (idle ticks lost); "
             f"SYN retransmits on a {RTO_WHEEL_GRAN * 1000:g} ms timer wheel; kernel profile {profile.name}",
             f"{pending} clients were still connecting when the run stopped at {dur:g} s; "
             f"the server accepted {w.accepted}"]
    return Outcome(summary=summary, counters=_counters(L.counters), tables={"clients": rows},
                   timeline=timeline,
                   sysctls=profile.sysctls(somaxconn=params["somaxconn"], syncookies=params["syncookies"],
                                           syn_retries=params["syn_retries"]),
                   notes=notes)
