"""Clients against one listening socket on loopback: the engine behind accept_queue,
syn_queue and load.

Each client sends its first SYN at its arrival time. On loopback the whole handshake
runs inside connect() (KERNEL.md case 1), so a SYN is either dropped by the
:class:`~tcplab.model.listen.Listener` rules or the client is ESTABLISHED at once.
A dropped client retransmits on the :func:`~tcplab.model.retries.syn_schedule` and gives
up (ETIMEDOUT) when that schedule says so. Retransmissions due within one timer tick
(``profile.timer_tick``) of each other are one burst: all their SYNs meet the SYN-queue /
cookie / accept-queue tests before any of their ACKs (:meth:`Listener.on_syn_burst`), so
cookie ACKs can find the accept queue full and leave "phantom" clients (ESTABLISHED, no server
socket, no RST). The application accept()s from ``accept_start`` on, one connection per
``accept_service`` seconds (0 = drains the queue instantly), or, with ``accept_every``, drains
the queue at each poll; or never.

Events live in one heap of ``(time, seq, client, attempt)`` (seq breaks ties in
scheduling order); arrivals come from a sorted list merged with the heap, and accepts are
computed lazily between events, so the heap only ever holds clients waiting to retransmit
and a run costs O(SYNs · log(waiting)) time and O(clients) memory.

Speed (bench/bench_sim.py, CPython 3.11, 2-core VM): with ``timer_tick`` 0 (the benchmark's
case) :func:`_run_waves` handles a window of SYNs at a time: ~0.28 µs of CPU per SYN event at
100k attempts (the heap loop :func:`_run_fast`: ~0.41 µs), ~0.3 µs at 10k (no gain there:
per-window overhead). Of that, the per-window merge sort is ~85 ns per SYN, moving dropped
SYNs to the next wave ~70 ns, building the window ~40 ns, and the accept-queue walk ~230 ns
per *connection*. A plain SimPy model of the same scenario spends ~3.5-4 µs per SYN.
The default profile (``timer_tick`` 4 ms, SYN bursts) still runs the heap loop.

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
from bisect import bisect_left, bisect_right
from collections import deque
from dataclasses import dataclass, field
from itertools import accumulate, chain, compress, islice, repeat
from operator import eq, le
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
    phantom_ids: set[int] = field(default_factory=set)   # which clients those are

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
                     sample_every: float | None = None, accept_every: float | None = None,
                     timer_gran: float = 0.0, timer_phase: float = 0.0, fin_rto: float = 0.0,
                     reference: bool = False) -> ListenWorld:
    """Run clients (sorted ``arrivals``) against ``listener`` up to time ``until``.

    ``accept_start=None`` means the application never calls accept().
    ``accept_every`` makes the application poll: it drains the whole accept queue at
    ``accept_start + k * accept_every`` only (a non-blocking accept() loop run by a sampler).
    SYN retransmissions due within ``profile.timer_tick`` of the first one are one burst
    (:meth:`Listener.on_syn_burst`: all SYNs, then all ACKs).
    ``timer_gran`` > 0 puts every SYN retransmission (and the give-up) on the timer wheel: the RTO
    armed at the previous SYN fires at the first ``timer_phase + k * timer_gran`` strictly after
    ``previous SYN + RTO`` (``calc_index()``: ``(expires + LVL_GRAN) >> LVL_SHIFT``; 1-2 s at
    HZ=250 is wheel level 1, 8 jiffies = 32 ms), so retransmissions of clients dropped within one
    granule fire together as one burst. 0 (default): exactly ``arrival + schedule offset``.
    ``fin_rto`` > 0: every client close()s as soon as it is ESTABLISHED (the load runner does).
    A phantom client's FIN (at once, then retransmitted after ``fin_rto``, 2x, 4x ..., at most
    ``FIN_SENDS`` times) carries the ACK again: ``tcp_check_req()`` / the cookie check retry the
    child, so each one that finds the accept queue full is one more ListenOverflows, and the
    first that finds room makes the child. This runs the generic loop.
    ``sample_every`` adds timeline rows (t, recv_q, syn_recv, established, syn_sent, ...).
    ``reference=True`` forces the generic loop (for cross-checks of the specialised one).
    """
    prof = listener.profile
    k = prof.syn_retries if syn_retries is None else syn_retries
    lt = prof.syn_linear_timeouts if linear_timeouts is None else linear_timeouts
    sched = syn_schedule(k, lt, prof.rto_initial, prof.rto_max)
    args = (listener, arrivals, sched, until, accept_start, accept_service, sample_every, accept_every,
            timer_gran, timer_phase)
    if fin_rto:
        return _run_generic(*args, fin_rto=fin_rto)
    if not reference and _fast_ok(listener):
        if not prof.timer_tick and not timer_gran:   # no bursts, no wheel: SYNs in windows
            return _run_waves(*args[:8])
        try:
            return _run_fast(*args)
        except _Fallback:   # a request stays in the SYN queue: the generic loop models that
            pass            # (_run_fast touches the listener only when it returns)
    return _run_generic(*args)


FIN_SENDS = 7   # a FIN and 6 retransmits (tcp_orphan_retries=0 means 8 on a live peer); ~25 s at 0.2 s


class _Fallback(Exception):
    """Raised by :func:`_run_fast` when a burst leaves a request in the SYN queue for good."""


def _poller(start: float | None, every: float | None) -> Any:
    """The first application poll at or after ``x`` (``x`` itself without polling)."""
    if every is None or start is None:
        return None

    def poll(x: float) -> float:
        k = math.ceil((x - start) / every - 1e-9)
        return start + (k if k > 0 else 0) * every
    return poll


def _wheel(gran: float, phase: float) -> Any:
    """``up(x)``: the first timer-wheel expiry ``phase + k * gran`` strictly after ``x``."""
    def up(x: float) -> float:
        return phase + (math.floor((x - phase) / gran + 1e-9) + 1) * gran
    return up


def _fast_ok(listener: Listener) -> bool:
    """The specialised loop applies when nothing can make the SYN queue change for good:
    no TCP_DEFER_ACCEPT (so every request becomes a child at once on loopback), an empty
    accept queue at the start, and no request keyed by a client index."""
    return (not listener.defer_accept and not listener.accept_queue
            and not any(isinstance(p, int) for p in listener.syn_queue))


def _run_fast(listener: Listener, arrivals: list[float], sched: SynSchedule, until: float,
              accept_start: float | None, accept_service: float,
              sample_every: float | None, accept_every: float | None = None,
              timer_gran: float = 0.0, timer_phase: float = 0.0) -> ListenWorld:
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

    Bursts (retransmissions due within ``timer_tick`` of the head, KERNEL.md case 2's
    "all SYNs before their ACKs") leave the hot lane: the SYN queue then grows during the
    burst, so each SYN takes the full ``tcp_conn_request()`` test with ``qlen + requests so
    far``; the ACKs follow. Their counts go into ``b*`` locals. A request ACK that overflows
    with tcp_abort_on_overflow=0 keeps its request: then :class:`_Fallback` hands the run to
    the generic loop.
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
    up = _wheel(timer_gran, timer_phase) if timer_gran else None
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
    tick = prof.timer_tick
    strict = prof.synq_full_strict
    abort = listener.abort_on_overflow
    poll = _poller(accept_start, accept_every)
    # burst-only counts (bdrops of the ``drops`` happened in bursts; best clients ESTABLISHED there)
    bdrops = best = b_lo = b_ld = b_reqdrop = b_docookies = b_sent = b_recv = b_rst = 0
    phantom_ids = world.phantom_ids
    cookie_kids: set[int] = set()
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
                            if poll is not None:
                                next_acc = poll(next_acc)
                        else:
                            next_acc = inf
                    else:
                        timeline.append({"t": round(next_sample, 9), "recv_q": q, "syn_recv": qlen,
                                         "established": est, "accepted": accepted,
                                         "ListenOverflows": lo0 + (drops - bdrops) * lo_per_drop + b_lo,
                                         "ListenDrops": ld0 + drops - bdrops + b_ld})
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
                    push(heap, (arrivals[cl] + offsets[1] if up is None else up(t + offsets[1]), drops, cl, 1))
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
                    if poll is not None:
                        next_acc = poll(next_acc)
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
        if tick:
            tend = th + tick
            if heap[1][0] < tend or (len(heap) > 2 and heap[2][0] < tend):
                # a burst: every SYN due in this tick, then their ACKs (Listener.on_syn_burst)
                members = []
                while heap[0][0] < tend:
                    e = pop(heap)
                    if e[3] == nsends:
                        fails += 1
                        state[e[2]] = FAILED
                        syns[e[2]] = nsends
                    else:
                        members.append(e)
                acks = []
                nreq = 0
                for e in members:
                    c2 = e[2]
                    a2 = e[3]
                    ql = qlen + nreq
                    qf = cookies == 2 or (ql > mab if strict else ql >= mab)
                    if qf and not cookies:
                        b_reqdrop += 1
                        b_ld += 1
                    elif q > mab:
                        if qf:
                            b_docookies += 1
                        b_lo += 1
                        b_ld += 1
                    elif not qf and not cookies and mx - ql < (mx >> 2):
                        b_ld += 1
                    else:
                        if qf:
                            b_docookies += 1
                            b_sent += 1
                        else:
                            nreq += 1
                        acks.append((c2, a2, qf))
                        continue
                    drops += 1                 # dropped: retry later, as in the hot lane
                    bdrops += 1
                    a2 += 1
                    push(heap, (arrivals[c2] + offsets[a2] if up is None
                                else up(th + offsets[a2] - offsets[a2 - 1]), drops, c2, a2))
                for c2, a2, ck in acks:
                    syns[c2] = a2 + 1
                    if ck:
                        b_recv += 1
                    if q > mab:                # tcp_v4_syn_recv_sock(): exit_overflow
                        b_lo += 1
                        b_ld += 1
                        if not ck:
                            if not abort:
                                raise _Fallback
                            b_rst += 1         # embryonic_reset: the client gets ECONNRESET
                            state[c2] = RESET
                            continue
                        phantom_ids.add(c2)    # tcp_get_cookie_sock(): silently discarded
                    else:
                        aq_append(c2)
                        q += 1
                        if ck:
                            cookie_kids.add(c2)
                        if q > max_q:
                            max_q = q
                        if q == 1:
                            next_acc = th if th > free_at else free_at
                            if poll is not None:
                                next_acc = poll(next_acc)
                            if next_acc < special:
                                special = next_acc
                                if special < lim:
                                    lim = special
                    state[c2] = ESTAB
                    connected_at[c2] = th
                    est += 1
                    best += 1
                continue
        if q > cap:                            # dropped again: one sift replaces pop + push
            drops += 1
            attempt += 1
            replace(heap, (arrivals[cl] + offsets[attempt] if up is None
                           else up(th + offsets[attempt] - offsets[attempt - 1]), drops, cl, attempt))
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
            if poll is not None:
                next_acc = poll(next_acc)
            if next_acc < special:
                special = next_acc
                if special < lim:
                    lim = special
    heap.remove((inf, -1, -1, -1))
    retrans = drops - len(heap) - fails        # every drop pushed one entry; pops are retransmits or failures
    plain = drops - bdrops                     # SYNs dropped outside bursts
    lo = plain * lo_per_drop
    est_plain = est - best
    # SYNs of clients still waiting (or failed-at-the-end markers): attempt = SYNs sent
    for _, _, cl, attempt in heap:
        syns[cl] = nsends if attempt == nsends else attempt
    # counters, where tcp_conn_request()/tcp_retransmit_timer() count them
    c["ActiveOpens"] += i
    c["TCPTimeouts"] += retrans + fails
    c["TCPSynRetrans"] += retrans
    c["RetransSegs"] += retrans
    c["TCPAbortOnTimeout"] += fails
    c["AttemptFails"] += fails + b_rst
    c["ListenDrops"] += plain + b_ld
    c["ListenOverflows"] += lo + b_lo
    if reqdrop:
        c["TCPReqQFullDrop"] += plain
    c["TCPReqQFullDrop"] += b_reqdrop
    if want_cookie:
        c["TCPReqQFullDoCookies"] += lo + est_plain
        c["SyncookiesSent"] += est_plain
        c["SyncookiesRecv"] += est_plain
    c["TCPReqQFullDoCookies"] += b_docookies
    c["SyncookiesSent"] += b_sent
    c["SyncookiesRecv"] += b_recv
    c["EmbryonicRsts"] += b_rst
    c["OutRsts"] += b_rst
    c["PassiveOpens"] += est - len(phantom_ids)
    world.phantom = len(phantom_ids)
    listener.accept_queue.extend(Child(cl, connected_at[cl], via_cookie=want_cookie or cl in cookie_kids)
                                 for cl in aq)
    world.accepted = accepted
    world.max_recv_q = max_q
    return world


# --- the wave loop: timer_tick 0, no timer wheel ---------------------------------------------

def _window_width(offsets: tuple[float, ...]) -> float:
    """Widest time window in which no SYN can cause another SYN: a SYN dropped at
    ``arrival + offsets[k]`` comes back at ``arrival + offsets[k + 1]``, at least the smallest
    RTO gap later (the 10% margin dwarfs the float rounding of ``arrival + offset``)."""
    return 0.9 * min(b - a for a, b in zip(offsets, offsets[1:]))


def _event_key(c: int, k: int, arrivals: list[float], offsets: tuple[float, ...]) -> tuple:
    """The heap loops' order of SYN ``k`` of client ``c`` among SYNs due at the same float
    time: a heap entry's seq is the running drop count, so a tie goes to the SYN whose
    previous SYN was processed first, recursively; an arrival beats a retransmission and
    arrivals go by index. Only windows holding equal times need it (rare with real
    arrival times)."""
    a = arrivals[c]
    key: list[float | int] = []
    for j in range(k, 0, -1):
        key += (a + offsets[j], 1)
    key += (a, 0, c)
    return tuple(key)


def _exact_order(segs: list[Any], arrivals: list[float], offsets: tuple[float, ...]) -> list[int]:
    """Positions of a window's SYNs (``segs[k]``: the clients sending SYN k, concatenated)
    in the order the heap loops process them, equal times included."""
    keys = [_event_key(cl, k, arrivals, offsets) for k, seg in enumerate(segs) for cl in seg]
    return sorted(range(len(keys)), key=keys.__getitem__)


def _run_waves(listener: Listener, arrivals: list[float], sched: SynSchedule, until: float,
               accept_start: float | None, accept_service: float,
               sample_every: float | None, accept_every: float | None) -> ListenWorld:
    """:func:`_run_fast` without bursts (``timer_tick`` 0) and without the timer wheel, done
    a window of SYNs at a time instead of one heap event per SYN. Same results, bit for bit.

    Every client retransmits on the same offsets from its arrival, so the clients waiting
    for their SYN number k form a FIFO ``waves[k]`` sorted by arrival (they were dropped at
    SYN k-1 in arrival order), with their due times in ``due[k]``. Time is cut into windows
    shorter than the smallest RTO gap, so no SYN of a window is caused by another SYN of the
    same window: a window's SYNs are the arrivals and the due prefix of every wave, known
    when it starts. One C-level sort merges them; then only the accept queue is walked:
    while it is full, every SYN before the next accept() (or sample) is dropped, one bisect
    for the whole run of drops, and the first SYN at or after it takes the slot
    (:func:`_slots_bulk` does a busy window's walk in one go). The drops move to the next
    wave in bulk (:func:`_settle`), so no Python code runs per dropped SYN. Equal float times
    next to each other (which the heap orders by its seq tie-breaker) switch the window to
    the exact order of :func:`_event_key`.
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
    cap = -1 if (reqdrop or drop34) else mab     # as in _run_fast: -1 drops every SYN
    lo_per_drop = 1 if cap >= 0 else 0

    offsets = tuple(float(x) for x in sched.send_times)
    nsends = len(offsets)
    n = len(arrivals)
    state = [PENDING] * n
    connected_at = [math.nan] * n
    syns = [0] * n
    world = ListenWorld(listener, arrivals, sched, state, connected_at, syns)
    timeline = world.timeline
    inf = math.inf
    end = math.nextafter(until, inf)     # SYNs due at or before ``until`` run
    width = _window_width(offsets)
    # waves[k] (1 <= k < nsends): clients whose next SYN is number k, due at due[k];
    # waves[nsends]: out of SYNs, waiting for the give-up timer. heads[k]: first live entry.
    waves: list[list[int]] = [[] for _ in range(nsends + 1)]
    due: list[list[float]] = [[] for _ in range(nsends + 1)]
    heads = [0] * (nsends + 1)
    poll = _poller(accept_start, accept_every)
    wt: list[float] = []           # times of the SYNs that got a slot, in accept-queue order
    wc: list[int] = []             # ... their clients (the accept queue is wc[acc:])
    wk: list[int] = []             # ... and their SYN number + 1 (= SYNs the client sent)
    acc = 0                        # accept()s so far
    q = 0                          # len(accept queue)
    max_q = 0
    free_at = inf if accept_start is None else accept_start
    na = inf                       # next accept() (inf: queue empty or no app)
    ns = 0.0 if sample_every else inf
    drops = 0
    events = 0                     # SYNs processed
    i = 0                          # arrivals processed
    lo0, ld0 = c["ListenOverflows"], c["ListenDrops"]
    t0 = arrivals[0] if n else end
    while t0 < end:
        t1 = t0 + width
        if t1 > end:
            t1 = end
        # the window's SYNs: arrivals, then each wave's due prefix
        j = bisect_left(arrivals, t1, i)
        segs: list[Any] = [range(i, j)]
        times = arrivals[i:j]
        i = j
        for k in range(1, nsends):
            h = heads[k]
            d = due[k]
            if h < len(d) and d[h] < t1:
                e = bisect_left(d, t1, h)
                segs.append(waves[k][h:e])
                times += d[h:e]
                if e > 4096 and 2 * e > len(d):    # keep the FIFO's dead prefix short
                    del d[:e], waves[k][:e]
                    e = 0
                heads[k] = e
            else:
                segs.append(())
        m = len(times)
        events += m
        if not m:                              # nothing due: jump to the next SYN
            t0 = min([arrivals[i] if i < n else end]
                     + [due[k][heads[k]] for k in range(1, nsends) if heads[k] < len(due[k])])
            if t0 < t1:
                t0 = t1
            continue
        w0 = len(wt)
        if q > cap and (na if na < ns else ns) >= t1:
            won_at: list[int] = []             # full all window long: every SYN is dropped
        else:
            order = sorted(range(m), key=times.__getitem__)
            ev = list(map(times.__getitem__, order))
            if any(map(eq, ev, islice(ev, 1, None))):   # equal times: the heap loops' order
                order = _exact_order(segs, arrivals, offsets)
                ev = [times[x] for x in order]
            won: list[int] = []                # positions in ``ev`` that took a slot
            p = 0
            # the shortcut needs the next accept() known (a head in the queue), plain
            # service times (no polling), no sample in the window, a listener that was full
            bulk = (_slots_bulk(ev, t1, q, cap, na, accept_service, wt, acc)
                    if q and max_q > cap and poll is None and ns >= t1 and accept_service > 0 else None)
            if bulk is not None:               # a busy window, solved in one go
                won, nacc, free_next = bulk
                wt += map(ev.__getitem__, won)
                acc += nacc
                q += len(won) - nacc
                if nacc:
                    free_at = free_next
                    if q:
                        h = wt[acc]
                        na = h if h > free_at else free_at
                    else:
                        na = inf
            while bulk is None:                # the walk, one slot at a time
                if q > cap:                    # full: every SYN before the next accept/sample drops
                    stop = na if na < ns else ns
                    if stop >= t1:
                        break
                    p = bisect_left(ev, stop, p)
                    if p == m:
                        break
                elif p == m:
                    break
                t = ev[p]
                while na <= t or ns <= t:      # accept() first at equal times, as the heap loops
                    if na <= ns:
                        acc += 1
                        q -= 1
                        free_at = na + accept_service
                        if q:
                            h = wt[acc]
                            na = h if h > free_at else free_at
                            if poll is not None:
                                na = poll(na)
                        else:
                            na = inf
                    else:                      # SYNs before p ran; len(wt) - w0 of them got in
                        dd = drops + p - (len(wt) - w0)
                        timeline.append({"t": round(ns, 9), "recv_q": q, "syn_recv": qlen,
                                         "established": len(wt), "accepted": acc,
                                         "ListenOverflows": lo0 + dd * lo_per_drop, "ListenDrops": ld0 + dd})
                        ns += sample_every  # type: ignore[operator]
                if q > cap:
                    continue
                wt.append(t)                   # this SYN takes the slot
                won.append(p)
                q += 1
                if q > max_q:
                    max_q = q
                if q == 1:
                    na = t if t > free_at else free_at
                    if poll is not None:
                        na = poll(na)
                p += 1
            won_at = list(map(order.__getitem__, won))
        drops += m - len(won_at)
        _settle(segs, won_at, offsets, arrivals, waves, due, wc, wk)
        t0 = t1
    # accept()s and samples due by ``until`` (none of them can change a SYN any more)
    while na <= until or ns <= until:
        if na <= ns:
            acc += 1
            q -= 1
            free_at = na + accept_service
            if q:
                h = wt[acc]
                na = h if h > free_at else free_at
                if poll is not None:
                    na = poll(na)
            else:
                na = inf
        else:
            timeline.append({"t": round(ns, 9), "recv_q": q, "syn_recv": qlen,
                             "established": len(wt), "accepted": acc,
                             "ListenOverflows": lo0 + drops * lo_per_drop, "ListenDrops": ld0 + drops})
            ns += sample_every  # type: ignore[operator]
    for cl, t, k in zip(wc, wt, wk):
        state[cl] = ESTAB
        connected_at[cl] = t
        syns[cl] = k
    fails = _waiting_syns(waves, heads, arrivals, sched.fail_after, until, state, syns)
    retrans = events - i
    est = len(wt)
    lo = drops * lo_per_drop
    # counters, where tcp_conn_request()/tcp_retransmit_timer() count them (as in _run_fast)
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
    listener.accept_queue.extend(Child(cl, connected_at[cl], via_cookie=want_cookie) for cl in wc[acc:])
    world.accepted = acc
    world.max_recv_q = max_q
    return world


def _slots_bulk(ev: list[float], t1: float, q: int, cap: int, na: float, service: float,
                wt: list[float], acc: int) -> tuple[list[int], int, float] | None:
    """The walk of one window (the accept loop in :func:`_run_waves`) for the steady state
    of a busy listener: returns the positions in ``ev`` that take a slot, the number of
    accept()s before ``t1`` and the app's free time after them, or None when the shortcut
    does not apply (the caller then walks).

    The walk's accept()s come at ``A[j] = max(created of the head, A[j-1] + service)``. If
    every head was created by ``A[j-1] + service`` (checked after the fact), the accept
    times are a plain running sum (the same float additions), known up front. Then the
    slots are tokens: the ``cap + 1 - q`` free ones now and one per accept(); the w-th SYN
    to get in is the first one at or after its token's time (bisect_left: accept() first at
    equal times, as in the walk) that comes after the (w-1)-th.
    """
    m = len(ev)
    free = cap + 1 - q
    if na < t1:
        if t1 - na > service * (q + m):        # more accept()s than heads: the queue empties
            return None
        acc_t = list(accumulate(repeat(service, int((t1 - na) / service) + 2), initial=na))
        nacc = bisect_left(acc_t, t1)          # accept()s due in the window
    else:
        acc_t, nacc = [], 0
    won = list(range(free if free < m else m))
    p = len(won)
    for t in acc_t[:nacc]:
        p = bisect_left(ev, t, p)              # first SYN at/after the token and the last winner
        if p == m:
            break
        won.append(p)
        p += 1
    if nacc > 1:                               # was each head there by its accept() time?
        heads = wt[acc + 1:acc + nacc]
        if len(heads) < nacc - 1:
            heads += map(ev.__getitem__, won[:nacc - 1 - len(heads)])
        if len(heads) < nacc - 1 or not all(map(le, heads, acc_t[1:nacc])):
            return None
    return won, nacc, acc_t[nacc] if nacc else math.nan


def _settle(segs: list[Any], won_at: list[int], offsets: tuple[float, ...], arrivals: list[float],
            waves: list[list[int]], due: list[list[float]], wc: list[int], wk: list[int]) -> None:
    """After a window: record the clients that got a slot (``won_at``: positions in the
    concatenated ``segs``, in accept-queue order) with the number of SYNs they sent, and
    move everybody else to the next wave, due at ``arrival + offsets[k + 1]``. All of it in
    C-level bulk operations: no Python code runs per dropped SYN."""
    keep = None
    if won_at:
        flat = list(chain.from_iterable(segs))
        wc += map(flat.__getitem__, won_at)
        starts = list(accumulate(map(len, segs), initial=0))
        wk += map(bisect_right, repeat(starts), won_at)   # segs[k] -> k + 1 SYNs
        keep = bytearray(b"\x01") * len(flat)
        for pos in won_at:
            keep[pos] = 0
    last = len(offsets)
    s = 0
    for k, seg in enumerate(segs):
        e = s + len(seg)
        if e > s:
            moved = seg if keep is None else list(compress(seg, keep[s:e]))
            waves[k + 1] += moved
            if k + 1 < last:                   # (a comprehension beats map(off.__add__))
                off = offsets[k + 1]
                due[k + 1] += [arrivals[cl] + off for cl in moved]
        s = e


def _waiting_syns(waves: list[list[int]], heads: list[int], arrivals: list[float], fail_after: float,
                  until: float, state: list[int], syns: list[int]) -> int:
    """At the end: a client in wave k has sent k SYNs; one out of SYNs has timed out (FAILED)
    if its give-up time is due by ``until``. Returns the number of timeouts."""
    last = len(waves) - 1
    for k in range(1, last):
        for cl in waves[k][heads[k]:]:
            syns[cl] = k
    fails = 0
    for cl in waves[last][heads[last]:]:
        syns[cl] = last
        if arrivals[cl] + fail_after <= until:
            state[cl] = FAILED
            fails += 1
    return fails


def _run_generic(listener: Listener, arrivals: list[float], sched: SynSchedule, until: float,
                 accept_start: float | None, accept_service: float,
                 sample_every: float | None, accept_every: float | None = None,
                 timer_gran: float = 0.0, timer_phase: float = 0.0, fin_rto: float = 0.0) -> ListenWorld:
    """The reference loop: every SYN goes through :class:`Listener` ``on_syn``/``on_ack``
    (a burst of retransmissions through ``on_syn_burst``).

    Heap entries are ``(time, seq, client, attempt)``; attempt -1 is the give-up timer and
    -2 the SYN-ACK retransmit timer of a request whose ACK overflowed (abort_on_overflow=0,
    ``inet_rsk(req)->acked``): the client answers the SYN-ACK with its ACK again, which
    builds the child once the accept queue has room (KERNEL.md case 2)."""
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
    tick = listener.profile.timer_tick
    poll = _poller(accept_start, accept_every)
    phantom = world.phantom_ids
    prof = listener.profile
    offsets = (*sends, fail_after)
    up = _wheel(timer_gran, timer_phase) if timer_gran else None

    def retry_at(cl: int, t: float, nxt: int) -> float:   # attempt nxt (nsends: give up)
        return arrivals[cl] + offsets[nxt] if up is None else up(t + offsets[nxt] - offsets[nxt - 1])

    def ack_result(t: float, cl: int, attempt: int, result: str) -> None:
        nonlocal est_count, max_q, seq
        if result == "reset":
            state[cl] = RESET
            c["AttemptFails"] += 1
            return
        if result in ("discarded", "overflow"):
            phantom.add(cl)
            if result == "overflow":         # the request waits for its SYN-ACK timer
                seq += 1
                push(heap, (listener.syn_queue[cl].next_timer, seq, cl, -2))
            if fin_rto:                      # the client's close(): its FIN, at once
                seq += 1
                push(heap, (t, seq, cl, -3))
        state[cl] = ESTAB
        connected_at[cl] = t
        est_count += 1
        if len(aq) > max_q:
            max_q = len(aq)

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
            if aq:
                when = aq[0].created
                if when < free_at:
                    when = free_at
                if poll is not None:
                    when = poll(when)
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
            if attempt == -1:                    # the RTO fired with the budget spent
                c["TCPTimeouts"] += 1
                c["AttemptFails"] += 1
                c["TCPAbortOnTimeout"] += 1
                state[cl] = FAILED
                continue
            if attempt <= -3:                    # a phantom client's FIN (retransmit -3 - attempt)
                if cl not in phantom:
                    continue
                if cl in listener.syn_queue:
                    result = on_ack(t, cl, bare=False)
                else:                            # a cookie phantom: the FIN's ACK is a cookie
                    result = on_ack(t, cl, cookie=True)
                if result == "child":
                    phantom.discard(cl)
                    if len(aq) > max_q:
                        max_q = len(aq)
                elif result in ("overflow", "discarded") and -attempt - 2 < FIN_SENDS:
                    seq += 1
                    push(heap, (t + fin_rto * (1 << (-3 - attempt)), seq, cl, attempt - 1))
                continue
            if attempt == -2:                    # reqsk_timer_handler() of an acked request
                req = listener.syn_queue.get(cl)
                if req is None:
                    continue
                if req.num_timeout >= listener.synack_retries:
                    del listener.syn_queue[cl]   # expired: the client stays a phantom
                    continue
                c["TCPSynRetrans"] += 1
                c["RetransSegs"] += 1
                req.num_timeout += 1
                req.next_timer = t + min(prof.rto_initial * (1 << req.num_timeout), prof.rto_max)
                result = on_ack(t, cl)           # the client re-ACKs the SYN-ACK
                if result == "child":
                    phantom.discard(cl)
                elif result == "overflow":
                    seq += 1
                    push(heap, (req.next_timer, seq, cl, -2))
                continue
            burst = [(cl, attempt)]
            held = []
            if tick:
                tend = t + tick
                while heap and heap[0][0] < tend:
                    e = pop(heap)
                    if e[3] == -1:
                        c["TCPTimeouts"] += 1
                        c["AttemptFails"] += 1
                        c["TCPAbortOnTimeout"] += 1
                        state[e[2]] = FAILED
                    elif e[3] <= -2:             # SYN-ACK timers and FINs are not SYNs
                        held.append(e)
                    else:
                        burst.append((e[2], e[3]))
            for e in held:
                push(heap, e)
            if len(burst) > 1:
                for b, _ in burst:
                    c["TCPTimeouts"] += 1        # tcp_retransmit_timer()
                    c["TCPSynRetrans"] += 1
                    c["RetransSegs"] += 1
                    syns[b] += 1
                attempts = dict(burst)
                results = listener.on_syn_burst(t, [b for b, _ in burst])
                for b, verdict, result in results:
                    if verdict == "dropped":
                        seq += 1
                        nxt = attempts[b] + 1
                        push(heap, (retry_at(b, t, nxt), seq, b, nxt if nxt < nsends else -1))
                for b, verdict, result in results:
                    if verdict != "dropped":
                        ack_result(t, b, attempts[b], result)
                continue
            c["TCPTimeouts"] += 1                # tcp_retransmit_timer()
            c["TCPSynRetrans"] += 1
            c["RetransSegs"] += 1
        syns[cl] += 1
        verdict = on_syn(t, cl)
        if verdict == "dropped":
            seq += 1
            nxt = attempt + 1
            push(heap, (retry_at(cl, t, nxt), seq, cl, nxt if nxt < nsends else -1))
            continue
        ack_result(t, cl, attempt, on_ack(t, cl, cookie=verdict == "cookie"))
    world.phantom = len(phantom)
    world.accepted = accepted
    world.max_recv_q = max_q
    return world
