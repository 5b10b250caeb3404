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

from typing import Any

from tcplab.model.listen import Listener, new_counters
from tcplab.model.outcome import Outcome
from tcplab.model.profiles import KernelProfile
from tcplab.model.retries import syn_schedule
from tcplab.sim.engine import Rng, SplitMix64, poisson_times
from tcplab.sim.listenq import run_listen_world

__all__ = ["accept_queue", "syn_queue", "syn_retries", "load", "CLIENT_SPACING"]

#: seconds between two clients' connect() calls ("at once" in a connect loop)
CLIENT_SPACING = 1e-4
LOOPBACK_NOTE = ("simulated loopback: RTT 0, so the handshake completes inside connect() and a full "
                 "accept queue drops the SYN (KERNEL.md case 1); clients start 0.1 ms apart")


def _counters(c: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in c.items() if v}


def _socket_rows(listener: Listener, port: int = 5000) -> list[dict[str, Any]]:
    rows = [{"state": "LISTEN", "local_port": port, "remote_port": 0,
             "recv_q": listener.recv_q, "send_q": listener.send_q}]
    rows += [{"state": "SYN_RECV", "local_port": port, "remote_port": 40000 + int(p) if isinstance(p, int) else 0,
              "recv_q": 0, "send_q": 0} for p in listener.syn_queue]
    rows += [{"state": "ESTABLISHED", "local_port": port,
              "remote_port": 40000 + int(ch.peer) if isinstance(ch.peer, int) else 0,
              "recv_q": 0, "send_q": 0} for ch in listener.accept_queue]
    return rows


def accept_queue(params: dict[str, Any], profile: KernelProfile, rng: Rng | None = None) -> Outcome:
    """KERNEL.md case 1 (and case 2's loopback reading of tcp_abort_on_overflow)."""
    L = Listener(backlog=params["backlog"], profile=profile, somaxconn=params["somaxconn"],
                 abort_on_overflow=params["abort_on_overflow"])
    n = params["clients"]
    settle = params["settle"]
    w = run_listen_world(L, [CLIENT_SPACING * i for i in range(n)], until=settle,
                         accept_start=params["accept_after"], accept_service=0.0,
                         sample_every=0.1)
    c = L.counters
    summary = {
        "established_clients": w.established,
        "syn_sent_clients": w.syn_sent,
        "server_children": L.recv_q + w.accepted,
        "recv_q": L.recv_q,
        "send_q": L.send_q,
        "ListenOverflows": c["ListenOverflows"],
        "ListenDrops": c["ListenDrops"],
        "reset_clients": w.reset,
        "phantom_clients": w.phantom,
        "accepted": w.accepted,
    }
    notes = [LOOPBACK_NOTE, f"snapshot at {settle:g} s; kernel profile {profile.name}"]
    if params["abort_on_overflow"]:
        notes.append("tcp_abort_on_overflow changes nothing here: on loopback the SYN is dropped before "
                     "any ACK can overflow (KERNEL.md case 2 needs a slowed link)")
    return Outcome(summary=summary, counters=_counters(c),
                   tables={"clients": w.client_rows(), "sockets": _socket_rows(L)},
                   timeline=w.timeline,
                   sysctls=profile.sysctls(somaxconn=params["somaxconn"],
                                           abort_on_overflow=int(params["abort_on_overflow"])),
                   notes=notes)


def syn_queue(params: dict[str, Any], profile: KernelProfile, rng: Rng | None = None) -> Outcome:
    """KERNEL.md case 8 (TCP_DEFER_ACCEPT keeps requests in SYN_RECV) or, with ``flood``,
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
    if params["flood"]:
        # Spoofed SYNs: each sent once; the SYN-ACKs go nowhere, so requests stay SYN_RECV
        # (they would expire after tcp_synack_retries, ~63 s with 5, far beyond this run).
        for i in range(n):
            L.on_syn(CLIENT_SPACING * i, ("spoofed", i))
        snap_counters = dict(counters)
        snap = (L.syn_recv, L.recv_q)
        # then a normal client tries for 3.5 s (SYNs at +0, 1, 2, 3 s)
        w = run_listen_world(L, [settle], until=settle + 3.5)
        legit = w.established == 1
        tables["clients"] = w.client_rows()
        notes.append(f"{n} spoofed SYNs at t=0 (each sent once), snapshot at {settle:g} s, then one normal "
                     "client tries for 3.5 s; summary counters are the flood's (at the snapshot), "
                     "`counters` cover the whole run")
        syn_recv, children = snap
        summ_c = snap_counters
    else:
        w = run_listen_world(L, [CLIENT_SPACING * i for i in range(n)], until=settle, sample_every=0.1)
        syn_recv, children = L.syn_recv, L.recv_q
        summ_c = counters
        tables["clients"] = w.client_rows()
        notes.append("TCP_DEFER_ACCEPT listener that never accepts; clients send nothing (KERNEL.md case 8); "
                     f"snapshot at {settle:g} s")
        notes.append(LOOPBACK_NOTE)
    tables["sockets"] = _socket_rows(L)
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
    return Outcome(summary=summary, counters=_counters(counters), tables=tables,
                   timeline=[] if params["flood"] else w.timeline,
                   sysctls=profile.sysctls(syncookies=params["syncookies"],
                                           max_syn_backlog=params["max_syn_backlog"],
                                           synack_retries=params["synack_retries"]),
                   notes=notes)


def syn_retries(params: dict[str, Any], profile: KernelProfile, rng: Rng | None = None) -> Outcome:
    """KERNEL.md case 3: a client whose every SYN is dropped (listener backlog 0, already full)."""
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
    sysctls = profile.sysctls(syn_linear_timeouts=lt)
    return Outcome(
        summary={"retransmit_times": list(sched.send_times[1:]), "failed_after": sched.fail_after,
                 "error": "ETIMEDOUT", "retransmissions": nsyn - 1, "syns_sent": nsyn},
        counters=counters,
        tables={"syns": [{"syn": i, "t": t, "retransmission": i > 0} for i, t in enumerate(sched.send_times)]},
        timeline=[{"t": t, "event": "SYN", "syn": i} for i, t in enumerate(sched.send_times)]
        + [{"t": sched.fail_after, "event": "ETIMEDOUT", "syn": None}],
        sysctls=sysctls, notes=notes)


def _percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (no numpy in the sim)."""
    if not sorted_values:
        return None
    idx = max(0, min(len(sorted_values) - 1, int(-(-q * len(sorted_values) // 1)) - 1))
    return sorted_values[idx]


def load(params: dict[str, Any], profile: KernelProfile, rng: Rng | None = None, *,
         arrivals: list[float] | None = None, table_limit: int = 10_000) -> Outcome:
    """Poisson clients at ``rate``/s for ``duration`` s against a server that accept()s
    ``accept_rate`` connections/s (0 = never). Clients still in SYN_SENT at the end are
    neither established nor failed."""
    rng = rng if rng is not None else SplitMix64(0)
    dur = params["duration"]
    if arrivals is None:
        arrivals = poisson_times(rng, params["rate"], dur)
    L = Listener(backlog=params["backlog"], profile=profile, somaxconn=params["somaxconn"],
                 syncookies=params["syncookies"])
    ar = params["accept_rate"]
    w = run_listen_world(L, arrivals, until=dur, syn_retries=params["syn_retries"],
                         accept_start=0.0 if ar > 0 else None,
                         accept_service=1.0 / ar if ar > 0 else 0.0,
                         sample_every=max(dur / 200.0, 0.01))
    times = sorted(c - a for c, a in zip(w.connected_at, arrivals) if c == c)
    summary = {
        "attempts": len(arrivals), "established": w.established, "failed": w.failed,
        "max_recv_q": w.max_recv_q, "p50_connect_s": _percentile(times, 0.50),
        "p99_connect_s": _percentile(times, 0.99), "ListenOverflows": L.counters["ListenOverflows"],
    }
    tables = {"sockets": _socket_rows(L)}
    notes = [LOOPBACK_NOTE.replace("; clients start 0.1 ms apart", ""),
             f"Poisson arrivals (seeded), accept() takes 1/accept_rate s each; kernel profile {profile.name}"]
    if len(arrivals) <= table_limit:
        tables["clients"] = w.client_rows()
    else:
        notes.append(f"per-client table omitted ({len(arrivals)} clients > {table_limit})")
    return Outcome(summary=summary, counters=_counters(L.counters), tables=tables, timeline=w.timeline,
                   sysctls=profile.sysctls(somaxconn=params["somaxconn"], syncookies=params["syncookies"],
                                           syn_retries=params["syn_retries"]),
                   notes=notes)
