"""Clients against one listening socket on loopback: the engine behind accept_queue,
syn_queue and load.

Each client sends its first SYN at its arrival time. On loopback the whole handshake
runs inside connect() (KERNEL.md case 1), so a SYN is either dropped by the
:class:`~tcplab.model.listen.Listener` rules or the client is ESTABLISHED at once.
A dropped client retransmits on the :func:`~tcplab.model.retries.syn_schedule` and gives
up (ETIMEDOUT) when that schedule says so. The application accept()s from ``accept_start``
on, one connection per ``accept_service`` seconds (0 = drains the queue instantly), or never.

Events live in one heap of ``(time, seq, client, attempt)`` (seq breaks ties in
scheduling order); arrivals come from a sorted list merged with the heap, and accepts are
computed lazily between events, so the heap only ever holds clients waiting to retransmit
and a run costs O(SYNs · log(waiting)) time and O(clients) memory.

Speed (bench/bench_sim.py): the specialised loop spends ~0.4-0.5 µs of CPU per SYN (CPython
3.11), about half of it in the heap sift; a plain SimPy model of the same scenario spends
~5-6 µs per SYN (a Timeout event, a generator resume and its callbacks).

>>> from tcplab.model.listen import Listener
>>> w = run_listen_world(Listener(backlog=5), arrivals=[0.001 * i for i in range(20)], until=1.5)
>>> w.established, w.syn_sent, w.listener.recv_q, w.listener.counters["ListenOverflows"]
(6, 14, 6, 28)

The common case (no TCP_DEFER_ACCEPT) runs a specialised loop (:func:`_run_fast`); the
generic loop through ``Listener.on_syn``/``on_ack`` stays the reference
(``reference=True``) and both give the same world:

>>> def run(ref, backlog=3, prof=None, cookies=None, msb=None, spoofed=0):
...     L = Listener(backlog=backlog, profile=prof, syncookies=cookies, max_syn_backlog=msb)
...     for j in range(spoofed):
...         L.on_syn(0.0, ("spoofed", j))
...     w = run_listen_world(L, [0.01 * (i // 2) for i in range(50)], until=40.0, syn_retries=2,
...                          accept_start=2.0, accept_service=0.3, sample_every=1.0, reference=ref)
...     return (w.state, w.syns, [x for x in w.connected_at if x == x], w.accepted, w.max_recv_q,
...             w.timeline, L.counters, L.syn_recv,
...             [(ch.peer, ch.created, ch.via_cookie) for ch in L.accept_queue])
>>> cases = [{}, {"backlog": 0, "prof": "linux-5.15"}, {"cookies": 0, "msb": 8, "spoofed": 7},
...          {"cookies": 2}, {"backlog": 4, "cookies": 0, "spoofed": 5}, {"backlog": 4, "spoofed": 5}]
>>> all(run(True, **kw) == run(False, **kw) for kw in cases)
True
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tcplab.model.listen import Child, Listener
from tcplab.model.retries import SynSchedule, syn_schedule

__all__ = ["ListenWorld", "run_listen_world"]

PENDING, ESTAB, FAILED, RESET = 0, 1, 2, 3
STATE_NAMES = {PENDING: "SYN_SENT", ESTAB: "ESTABLISHED", FAILED: "CLOSE", RESET: "CLOSE"}
OUTCOME_NAMES = {PENDING: "pending", ESTAB: "established", FAILED: "ETIMEDOUT", RESET: "ECONNRESET"}


@dataclass
class ListenWorld:
    """State of a finished run (plain data; the scenario turns it into an Outcome)."""

    listener: Listener
    arrivals: list[float]
    schedule: SynSchedule
    state: list[int]                     # per client: PENDING / ESTAB / FAILED / RESET
    connected_at: list[float]            # per client: time ESTABLISHED (nan if not)
    syns: list[int]                      # per client: SYNs sent
    accepted: int = 0
    max_recv_q: int = 0
    timeline: list[dict[str, Any]] = field(default_factory=list)
    phantom: int = 0                     # client ESTABLISHED, server has no child for it

    @property
    def established(self) -> int:
        return self.state.count(ESTAB)

    @property
    def syn_sent(self) -> int:
        return self.state.count(PENDING)

    @property
    def failed(self) -> int:
        return self.state.count(FAILED)

    @property
    def reset(self) -> int:
        return self.state.count(RESET)

    def client_rows(self) -> list[dict[str, Any]]:
        return [{"client": i, "state": STATE_NAMES[s], "outcome": OUTCOME_NAMES[s],
                 "first_syn": a, "syns": n,
                 "connect_s": (c - a) if c == c else None}
                for i, (s, a, c, n) in enumerate(zip(self.state, self.arrivals, self.connected_at, self.syns))]


def run_listen_world(listener: Listener, arrivals: list[float], *, until: float,
                     syn_retries: int | None = None, linear_timeouts: int | None = None,
                     accept_start: float | None = None, accept_service: float = 0.0,
                     sample_every: float | None = None, reference: bool = False) -> ListenWorld:
    """Run clients (sorted ``arrivals``) against ``listener`` up to time ``until``.

    ``accept_start=None`` means the application never calls accept().
    ``sample_every`` adds timeline rows (t, recv_q, syn_recv, established, syn_sent, ...).
    ``reference=True`` forces the generic loop (for cross-checks of the specialised one).
    """
    prof = listener.profile
    k = prof.syn_retries if syn_retries is None else syn_retries
    lt = prof.syn_linear_timeouts if linear_timeouts is None else linear_timeouts
    sched = syn_schedule(k, lt, prof.rto_initial, prof.rto_max)
    if not reference and _fast_ok(listener):
        return _run_fast(listener, arrivals, sched, until, accept_start, accept_service, sample_every)
    return _run_generic(listener, arrivals, sched, until, accept_start, accept_service, sample_every)


def _fast_ok(listener: Listener) -> bool:
    """The specialised loop applies when nothing can make the SYN queue change for good:
    no TCP_DEFER_ACCEPT (so every request becomes a child at once on loopback), an empty
    accept queue at the start, and no request keyed by a client index."""
    return (not listener.defer_accept and not listener.accept_queue
            and not any(isinstance(p, int) for p in listener.syn_queue))


def _run_fast(listener: Listener, arrivals: list[float], sched: SynSchedule, until: float,
              accept_start: float | None, accept_service: float,
              sample_every: float | None) -> ListenWorld:
    """The same run as :func:`_run_generic`, specialised for the loopback common case.

    With RTT 0 and no TCP_DEFER_ACCEPT a request is created and turned into a child inside
    the same connect(), so the SYN-queue length ``qlen`` never changes during the run and
    every rule of ``tcp_conn_request()`` that depends on it is a constant:

    * ``reqdrop``: SYN queue "full" and no cookies -> every SYN is TCPReqQFullDrop;
    * ``drop34``: the 3/4-of-tcp_max_syn_backlog rule drops every (non-cookie) SYN;
    * ``want_cookie``: every SYN that gets past the accept-queue test is a cookie.

    What is left per SYN is one comparison, ``len(accept queue) > cap`` (``cap`` is
    ``sk_max_ack_backlog``, or -1 when every SYN is dropped anyway). Counters are kept in
    local ints and written into the Listener's dict at the end; the accept queue holds
    client indices and becomes :class:`Child` records at the end. Events are plain tuples
    ``(time, seq, client, attempt)`` in one heap (seq is the running drop count: one entry is
    pushed per dropped SYN), ordered as in the generic loop, so ties resolve identically
    (the module doctest compares both loops). Retry times are ``arrival + offsets[attempt]``
    with the give-up time as the last offset. A retransmission due before both the next
    arrival and the next accept()/sample/end (``lim``) takes the hot lane: a re-drop is one
    ``heapreplace``. Accepts are not events: ``next_acc`` is when the app takes the head of
    the accept queue, and only events at or after it leave the hot lane.
    """
    c = listener.counters
    prof = listener.profile
    mab = listener.max_ack_backlog
    qlen = len(listener.syn_queue)
    cookies = listener.syncookies
    qfull = cookies == 2 or (qlen > mab if prof.synq_full_strict else qlen >= mab)
    reqdrop = qfull and not cookies
    want_cookie = qfull and bool(cookies)
    mx = listener.max_syn_backlog
    drop34 = not reqdrop and not want_cookie and not cookies and mx - qlen < (mx >> 2)
    cap = -1 if (reqdrop or drop34) else mab

    sends = sched.send_times
    nsends = len(sends)
    fail_after = sched.fail_after
    n = len(arrivals)
    state = [PENDING] * n
    connected_at = [math.nan] * n
    syns = [0] * n
    world = ListenWorld(listener, arrivals, sched, state, connected_at, syns)
    timeline = world.timeline
    inf = math.inf
    aq: deque[int] = deque()          # client indices; created = connected_at[client]
    aq_append, aq_popleft = aq.append, aq.popleft
    q = 0                             # len(aq)
    # the heap always holds a sentinel at +inf, so the loop never tests it for emptiness
    heap: list[tuple[float, int, int, int]] = [(inf, -1, -1, -1)]
    push, pop, replace = heapq.heappush, heapq.heappop, heapq.heapreplace
    # attempt index -> offset from the client's first SYN; index nsends is the ETIMEDOUT time
    offsets = (*sends, fail_after)
    accepted = 0
    max_q = 0
    est = 0            # SYNs that became children (== established clients)
    drops = 0          # SYNs dropped; also the tie-breaking seq of the entry each one pushes
    fails = 0          # connect() timeouts
    free_at = inf if accept_start is None else accept_start
    next_acc = inf     # when the app takes the head of the accept queue (inf: empty or never)
    next_sample = 0.0 if sample_every else inf
    # the loop only leaves its fast lane when an event reaches ``special``:
    # the next accept(), the next timeline sample, or the end of the run
    special = min(next_sample, until)
    lo0, ld0 = c["ListenOverflows"], c["ListenDrops"]
    lo_per_drop = 1 if cap >= 0 else 0
    i = 0
    ta = arrivals[0] if n else inf
    lim = ta if ta < special else special     # heap events before lim take the hot lane
    while True:
        head = heap[0]
        th = head[0]
        if th >= lim:
            # not the hot lane: a client's first SYN (ties: arrivals first), or an accept(),
            # a sample or the end of the run is due first
            t = th if th < ta else ta
            if t >= special:
                last = t > until
                if last:
                    t = until
                # lazy accept() and samples, in time order (an accept due at a sample's time
                # comes first, as the real runner drains before it samples)
                while next_acc <= t or next_sample <= t:
                    if next_acc <= next_sample:
                        aq_popleft()
                        q -= 1
                        accepted += 1
                        free_at = next_acc + accept_service
                        if q:
                            when = connected_at[aq[0]]
                            next_acc = when if when > free_at else free_at
                        else:
                            next_acc = inf
                    else:
                        timeline.append({"t": round(next_sample, 9), "recv_q": q, "syn_recv": qlen,
                                         "established": est, "accepted": accepted,
                                         "ListenOverflows": lo0 + drops * lo_per_drop,
                                         "ListenDrops": ld0 + drops})
                        next_sample += sample_every  # type: ignore[operator]
                if last:
                    break
                special = next_acc if next_acc < next_sample else next_sample
                if until < special:
                    special = until
                lim = ta if ta < special else special
            if th >= ta:                       # a client's first SYN
                cl = i
                i += 1
                ta = arrivals[i] if i < n else inf
                lim = ta if ta < special else special
                if q > cap:                    # dropped: accept queue full (or every SYN is)
                    drops += 1
                    push(heap, (arrivals[cl] + offsets[1], drops, cl, 1))
                    continue
                aq_append(cl)                  # established (same as below, attempt 0)
                q += 1
                state[cl] = ESTAB
                connected_at[cl] = t
                syns[cl] = 1
                est += 1
                if q > max_q:
                    max_q = q
                if q == 1:                     # the app may take this one next
                    next_acc = t if t > free_at else free_at
                    if next_acc < special:
                        special = next_acc
                        if special < lim:
                            lim = special
                continue
        # the hot lane: a retransmission (or the give-up timer) at th
        cl = head[2]
        attempt = head[3]
        if attempt == nsends:                  # the RTO fired with the budget spent
            pop(heap)
            fails += 1
            state[cl] = FAILED
            syns[cl] = nsends
            continue
        if q > cap:                            # dropped again: one sift replaces pop + push
            drops += 1
            attempt += 1
            replace(heap, (arrivals[cl] + offsets[attempt], drops, cl, attempt))
            continue
        pop(heap)
        aq_append(cl)
        q += 1
        state[cl] = ESTAB
        connected_at[cl] = th
        syns[cl] = attempt + 1
        est += 1
        if q > max_q:
            max_q = q
        if q == 1:
            next_acc = th if th > free_at else free_at
            if next_acc < special:
                special = next_acc
                if special < lim:
                    lim = special
    heap.remove((inf, -1, -1, -1))
    retrans = drops - len(heap) - fails        # every drop pushed one entry; pops are retransmits or failures
    lo = drops * lo_per_drop
    # SYNs of clients still waiting (or failed-at-the-end markers): attempt = SYNs sent
    for _, _, cl, attempt in heap:
        syns[cl] = nsends if attempt == nsends else attempt
    # counters, where tcp_conn_request()/tcp_retransmit_timer() count them
    c["ActiveOpens"] += i
    c["TCPTimeouts"] += retrans + fails
    c["TCPSynRetrans"] += retrans
    c["RetransSegs"] += retrans
    c["TCPAbortOnTimeout"] += fails
    c["AttemptFails"] += fails
    c["ListenDrops"] += drops
    c["ListenOverflows"] += lo
    if reqdrop:
        c["TCPReqQFullDrop"] += drops
    if want_cookie:
        c["TCPReqQFullDoCookies"] += lo + est
        c["SyncookiesSent"] += est
        c["SyncookiesRecv"] += est
    c["PassiveOpens"] += est
    listener.accept_queue.extend(Child(cl, connected_at[cl], via_cookie=want_cookie) for cl in aq)
    world.accepted = accepted
    world.max_recv_q = max_q
    return world


def _run_generic(listener: Listener, arrivals: list[float], sched: SynSchedule, until: float,
                 accept_start: float | None, accept_service: float,
                 sample_every: float | None) -> ListenWorld:
    """The reference loop: every SYN goes through :class:`Listener` ``on_syn``/``on_ack``."""
    sends = sched.send_times
    nsends = len(sends)
    fail_after = sched.fail_after
    n = len(arrivals)
    state = [PENDING] * n
    connected_at = [math.nan] * n
    syns = [0] * n
    c = listener.counters
    aq = listener.accept_queue
    on_syn = listener.on_syn
    on_ack = listener.on_ack
    heap: list[tuple[float, int, int, int]] = []
    push, pop = heapq.heappush, heapq.heappop
    seq = 0
    world = ListenWorld(listener, arrivals, sched, state, connected_at, syns)
    accepted = 0
    max_q = 0
    free_at = math.inf if accept_start is None else accept_start
    next_sample = 0.0 if sample_every else math.inf
    timeline = world.timeline
    est_count = 0

    def sample(t: float) -> None:
        timeline.append({"t": round(t, 9), "recv_q": len(aq), "syn_recv": listener.syn_recv,
                         "established": est_count, "accepted": accepted,
                         "ListenOverflows": c["ListenOverflows"], "ListenDrops": c["ListenDrops"]})

    i = 0
    inf = math.inf
    while True:
        ta = arrivals[i] if i < n else inf
        th = heap[0][0] if heap else inf
        t = ta if ta <= th else th
        if t > until:
            t = until
            last = True
        else:
            last = False
        # lazy accept() and samples, in time order (accept first at equal times)
        while True:
            when = inf
            if aq and free_at <= t:
                when = aq[0].created
                if when < free_at:
                    when = free_at
            if when <= t and when <= next_sample:
                aq.popleft()
                accepted += 1
                free_at = when + accept_service
            elif next_sample <= t:
                sample(next_sample)
                next_sample += sample_every  # type: ignore[operator]
            else:
                break
        if last:
            break
        if ta <= th:
            cl, attempt = i, 0
            i += 1
            c["ActiveOpens"] += 1
        else:
            _, _, cl, attempt = pop(heap)
            if attempt < 0:                      # the RTO fired with the budget spent
                c["TCPTimeouts"] += 1
                c["AttemptFails"] += 1
                c["TCPAbortOnTimeout"] += 1
                state[cl] = FAILED
                continue
            c["TCPTimeouts"] += 1                # tcp_retransmit_timer()
            c["TCPSynRetrans"] += 1
            c["RetransSegs"] += 1
        syns[cl] += 1
        verdict = on_syn(t, cl)
        if verdict == "dropped":
            seq += 1
            nxt = attempt + 1
            if nxt < nsends:
                push(heap, (arrivals[cl] + sends[nxt], seq, cl, nxt))
            else:
                push(heap, (arrivals[cl] + fail_after, seq, cl, -1))
            continue
        result = on_ack(t, cl, cookie=verdict == "cookie")
        if result == "reset":
            state[cl] = RESET
            c["AttemptFails"] += 1
            continue
        if result in ("discarded", "overflow"):
            world.phantom += 1
        state[cl] = ESTAB
        connected_at[cl] = t
        est_count += 1
        if len(aq) > max_q:
            max_q = len(aq)
    world.accepted = accepted
    world.max_recv_q = max_q
    return world
