"""Plain SimPy models of the listen-queue scenarios, the reference the simulator is timed against.

One SimPy world (:func:`simpy_world`) runs the clients of ``load``, ``accept_queue`` and
``syn_queue`` against a listener whose Linux rules are written inline here, independently of
``tcplab.model`` (``tcp_conn_request()``: the SYN-queue test, the accept-queue test, the 3/4
rule; the handshake ACK; the request's SYN-ACK timer): SimPy's event queue holds every SYN
retransmission, give-up, SYN-ACK timer, FIN and accept(). Ordering at equal times follows the
runner the simulator models: an accept() first, then a client's first SYN, then timers in the
order they were armed (SimPy's event priority, then its event id). Retransmissions whose RTO
fires within one timer tick are one softirq: the first one takes every SYN due in the tick
from a side index of armed timers, all SYNs before their ACKs.

The scenario functions return the summary the public call returns, computed from the SimPy
world; :mod:`bench.bench_sim` checks it equals tcplab's before timing anything.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

import simpy

from tcplab.model.profiles import get_profile
from tcplab.model.retries import syn_schedule

ACCEPT, ARRIVAL, TIMER = 0, 1, 2          # SimPy event priorities at equal times
FIN_SENDS = 7


def simpy_world(arrivals: list[float], *, backlog: int, until: float, profile: Any = None,
                syncookies: int | None = None, somaxconn: int | None = None, max_syn_backlog: int | None = None,
                abort: bool = False, defer: bool = False, syn_retries: int | None = None,
                accept_start: float | None = None, accept_service: float = 0.0, accept_every: float | None = None,
                gran: float = 0.0, phase: float = 0.0, fin_rto: float = 0.0) -> dict[str, Any]:
    """Run the clients; returns per-client ``connected_at``/``outcome``, counters and queue sizes."""
    prof = get_profile(profile)
    cookies = prof.syncookies if syncookies is None else syncookies
    mab = min(backlog, prof.somaxconn if somaxconn is None else somaxconn)
    mx = prof.max_syn_backlog if max_syn_backlog is None else max_syn_backlog
    strict = prof.synq_full_strict
    tick = prof.timer_tick
    sched = syn_schedule(prof.syn_retries if syn_retries is None else syn_retries, prof.syn_linear_timeouts,
                         prof.rto_initial, prof.rto_max)
    offsets = (*sched.send_times, sched.fail_after)
    nsends = len(sched.send_times)
    env = simpy.Environment()
    n = len(arrivals)
    connected_at = [math.nan] * n
    outcome = ["pending"] * n
    cnt = dict.fromkeys(("ListenOverflows", "ListenDrops", "TCPReqQFullDrop", "TCPReqQFullDoCookies",
                         "SyncookiesSent", "SyncookiesRecv", "PassiveOpens", "TCPDeferAcceptDrop"), 0)
    aq: list[tuple[float, int]] = []      # (created, client); head at aq[head]
    st = {"head": 0, "max_q": 0, "accepted": 0, "free_at": math.inf if accept_start is None else accept_start,
          "seq": 0}
    synq: dict[int, list[Any]] = {}       # client -> [num_timeout, next_timer, acked]
    phantoms: set[int] = set()
    armed: list[tuple[float, int, int, int]] = []   # (time, seq, client, n) of armed RTO timers
    done: set[int] = set()                # seqs already taken by a burst
    wake = [env.event()]                  # the server waits on this while the queue is empty

    def at(when: float, priority: int, fn: Any = None) -> simpy.Event:
        """An event at the absolute time ``when`` (SimPy's schedule() takes a delay, and
        ``now + (when - now)`` is not always ``when`` in floats: ties must stay ties)."""
        ev = simpy.Event(env)
        ev._ok = True
        ev._value = None
        if fn is not None:
            ev.callbacks.append(fn)
        heapq.heappush(env._queue, (when, priority, next(env._eid), ev))
        return ev

    def qlen_aq() -> int:
        return len(aq) - st["head"]

    def poll(x: float) -> float:
        if accept_every is None or accept_start is None:
            return x
        k = math.ceil((x - accept_start) / accept_every - 1e-9)
        return accept_start + (k if k > 0 else 0) * accept_every

    def syn(q: int, qlen: int) -> str:    # tcp_conn_request()
        want = False
        if cookies == 2 or (qlen > mab if strict else qlen >= mab):
            if not cookies:
                cnt["TCPReqQFullDrop"] += 1
                cnt["ListenDrops"] += 1
                return "drop"
            cnt["TCPReqQFullDoCookies"] += 1
            want = True
        if q > mab:
            cnt["ListenOverflows"] += 1
            cnt["ListenDrops"] += 1
            return "drop"
        if want:
            cnt["SyncookiesSent"] += 1
            return "cookie"
        if not cookies and mx - qlen < (mx >> 2):
            cnt["ListenDrops"] += 1
            return "drop"
        return "request"

    def ack(cl: int, cookie: bool, now: float, bare: bool = True) -> str:   # tcp_check_req() / cookie check
        full = qlen_aq() > mab
        if cookie:
            cnt["SyncookiesRecv"] += 1
            if full:
                cnt["ListenOverflows"] += 1
                cnt["ListenDrops"] += 1
                return "discarded"
        else:
            if defer and bare:
                synq[cl][2] = True
                cnt["TCPDeferAcceptDrop"] += 1
                return "deferred"
            if full:
                cnt["ListenOverflows"] += 1
                cnt["ListenDrops"] += 1
                if abort:
                    del synq[cl]
                    return "reset"
                synq[cl][2] = True
                return "overflow"
            del synq[cl]
        cnt["PassiveOpens"] += 1
        aq.append((now, cl))
        q = qlen_aq()
        if q > st["max_q"]:
            st["max_q"] = q
        if q == 1 and not wake[0].triggered:     # wake the server before anything else due now
            wake[0]._ok = True
            wake[0]._value = None
            heapq.heappush(env._queue, (now, ACCEPT, next(env._eid), wake[0]))
        return "child"

    def later(when: float, fn: Any, *args: Any) -> None:
        st["seq"] += 1
        at(when, TIMER, lambda _e: fn(*args))

    def arm(cl: int, k: int, now: float) -> None:   # the RTO after SYN k-1 was dropped
        when = arrivals[cl] + offsets[k] if not gran else \
            phase + (math.floor((now + offsets[k] - offsets[k - 1] - phase) / gran + 1e-9) + 1) * gran
        st["seq"] += 1
        s = st["seq"]
        heapq.heappush(armed, (when, s, cl, k))
        at(when, TIMER, lambda _e: fire(s))

    def after_ack(cl: int, res: str, now: float) -> None:
        if res == "reset":
            outcome[cl] = "ECONNRESET"
            return
        if res in ("overflow", "discarded"):
            phantoms.add(cl)
            if res == "overflow":
                later(synq[cl][1], synack_timer, cl)
            if fin_rto:
                later(now, fin, cl, 0)
        outcome[cl] = "established"
        connected_at[cl] = now

    def request(cl: int, now: float) -> None:
        synq[cl] = [0, now + prof.rto_initial, False]

    def lone(cl: int, k: int) -> None:   # one SYN, then (loopback) its ACK at once
        now = env.now
        v = syn(qlen_aq(), len(synq))
        if v == "drop":
            arm(cl, k + 1, now)
            return
        if v == "request":
            request(cl, now)
        after_ack(cl, ack(cl, v == "cookie", now), now)

    def fire(s: int) -> None:
        if s in done:
            return
        now = env.now
        when, s0, cl, k = heapq.heappop(armed)
        assert s0 == s
        if give_up(cl, k):                   # a give-up alone is no softirq of SYNs
            return
        burst = [(cl, k)]
        while armed and armed[0][0] < now + tick:
            e = heapq.heappop(armed)
            done.add(e[1])
            burst.append((e[2], e[3]))
        burst = [b for b in burst if not give_up(*b)]
        if not burst:
            return
        if len(burst) == 1:
            lone(*burst[0])
            return
        verdicts = []
        for b, kb in burst:                  # every SYN of the softirq first ...
            v = syn(qlen_aq(), len(synq))
            if v == "request":
                request(b, now)
            verdicts.append(v)
        for (b, kb), v in zip(burst, verdicts):
            if v == "drop":
                arm(b, kb + 1, now)
        for (b, kb), v in zip(burst, verdicts):   # ... then their ACKs
            if v != "drop":
                after_ack(b, ack(b, v == "cookie", now), now)

    def give_up(cl: int, k: int) -> bool:
        if k < nsends:
            return False
        outcome[cl] = "ETIMEDOUT"
        return True

    def synack_timer(cl: int) -> None:
        r = synq.get(cl)
        if r is None:
            return
        if r[0] >= prof.synack_retries:
            del synq[cl]
            return
        r[0] += 1
        r[1] = env.now + min(prof.rto_initial * (1 << r[0]), prof.rto_max)
        res = ack(cl, False, env.now)
        if res == "child":
            phantoms.discard(cl)
        elif res == "overflow":
            later(r[1], synack_timer, cl)

    def fin(cl: int, k: int) -> None:
        if cl not in phantoms:
            return
        res = ack(cl, cl not in synq, env.now, bare=False)
        if res == "child":
            phantoms.discard(cl)
        elif k + 1 < FIN_SENDS:
            later(env.now + fin_rto * (1 << k), fin, cl, k + 1)

    def spawner():
        for i, a in enumerate(arrivals):
            yield at(a, ARRIVAL)
            lone(i, 0)

    def server():
        if accept_start is None:
            return
        while True:
            if qlen_aq() == 0:
                wake[0] = env.event()
                yield wake[0]
            when = max(aq[st["head"]][0], st["free_at"])
            when = poll(when)
            yield at(when, ACCEPT)
            st["head"] += 1
            st["accepted"] += 1
            st["free_at"] = when + accept_service

    env.process(spawner())
    env.process(server())
    env.run(until=math.nextafter(until, math.inf))
    return {"connected_at": connected_at, "outcome": outcome, "counters": cnt, "max_q": st["max_q"],
            "recv_q": qlen_aq(), "accepted": st["accepted"], "syn_recv": len(synq), "phantoms": len(phantoms)}


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return round(v[lo] + (v[hi] - v[lo]) * (k - lo), 4)


def load(rate: float, accept_rate: float, duration: float, backlog: int, syn_retries: int | None = None,
         phase: float = 0.016) -> dict[str, Any]:
    """load()'s summary: client i at i/rate, one accept() per 1/accept_rate tick (the first 0.1 ms
    after the first tick), SYN retransmissions on the 32 ms timer wheel, clients close at once."""
    arrivals = [i / rate for i in range(int(round(rate * duration)))]
    per = 1.0 / accept_rate
    w = simpy_world(arrivals, backlog=backlog, until=duration, syn_retries=syn_retries,
                    accept_start=per + 1e-4, accept_service=per, accept_every=per,
                    gran=0.032, phase=phase, fin_rto=0.2)
    lat = [c - a for a, c in zip(arrivals, w["connected_at"]) if c == c]
    return {"attempts": len(arrivals), "established": w["outcome"].count("established"),
            "failed": w["outcome"].count("ETIMEDOUT") + w["outcome"].count("ECONNRESET"),
            "max_recv_q": w["max_q"], "p50_connect_s": _percentile(lat, 0.5),
            "p99_connect_s": _percentile(lat, 0.99), "ListenOverflows": w["counters"]["ListenOverflows"]}


def accept_queue(backlog: int = 5, clients: int = 20, settle: float = 1.5,
                 accept_after: float | None = None) -> dict[str, Any]:
    """accept_queue()'s summary (abort_on_overflow 0, somaxconn default): clients 0.1 ms apart,
    the server drains the queue at its 50 ms samples from ``accept_after`` on."""
    arrivals = [1e-4 * i for i in range(clients)]
    start = None if accept_after is None else math.ceil(accept_after / 0.05 - 1e-9) * 0.05
    w = simpy_world(arrivals, backlog=backlog, until=arrivals[-1] + settle, accept_start=start,
                    accept_every=0.05)
    out = w["outcome"]
    est = out.count("established")
    return {"established_clients": est, "syn_sent_clients": out.count("pending"),
            "server_children": est - w["phantoms"], "recv_q": w["recv_q"], "send_q": backlog,
            "ListenOverflows": w["counters"]["ListenOverflows"], "ListenDrops": w["counters"]["ListenDrops"],
            "reset_clients": out.count("ECONNRESET"), "phantom_clients": w["phantoms"], "accepted": w["accepted"]}


def syn_queue(backlog: int = 4, clients: int = 60, syncookies: int = 1, settle: float = 0.5) -> dict[str, Any]:
    """syn_queue()'s summary without a flood: a TCP_DEFER_ACCEPT listener that never accepts."""
    arrivals = [1e-4 * i for i in range(clients)]
    w = simpy_world(arrivals, backlog=backlog, until=arrivals[-1] + settle, syncookies=syncookies, defer=True)
    c = w["counters"]
    return {"syn_recv": w["syn_recv"], "server_children": w["recv_q"], "SyncookiesSent": c["SyncookiesSent"],
            "SyncookiesRecv": c["SyncookiesRecv"], "TCPReqQFullDrop": c["TCPReqQFullDrop"],
            "TCPReqQFullDoCookies": c["TCPReqQFullDoCookies"], "ListenDrops": c["ListenDrops"],
            "ListenOverflows": c["ListenOverflows"], "legit_client_connected": None}
