"""Clients against one listening socket on loopback: the engine behind accept_queue,
syn_queue and load.

Each client sends its first SYN at its arrival time. On loopback the whole handshake
runs inside connect() (docs/kernel-facts.md case 1), so a SYN is either dropped by the
:class:`~tcplab.model.listen.Listener` rules or the client is ESTABLISHED at once.
A dropped client retransmits on the :func:`~tcplab.model.retries.syn_schedule` and gives
up (ETIMEDOUT) when that schedule says so. Retransmissions due within one timer tick
(``profile.timer_tick``) of each other are one burst: all their SYNs meet the SYN-queue /
cookie / accept-queue tests before any of their ACKs (:meth:`Listener.on_syn_burst`), so
cookie ACKs can find the accept queue full and leave "phantom" clients (ESTABLISHED, no server
socket, no RST); a request whose ACK finds it full stays in the SYN queue (abort_on_overflow=0)
and its SYN-ACK timer makes the client ACK again. The application accept()s from
``accept_start`` on, one connection per ``accept_service`` seconds (0 = drains the queue
instantly), or, with ``accept_every``, at its polls only; or never.

Two loops, one per kind of scenario, both driven by the model's rules
(:meth:`Listener.syn_verdict`, :meth:`Listener.ack_verdict`, :meth:`Listener.on_request_timer`
and their counter tables :data:`~tcplab.model.listen.SYN_COUNTERS` /
:data:`~tcplab.model.listen.ACK_COUNTERS`):

* :func:`_run_loopback`, for a fresh listener without TCP_DEFER_ACCEPT (accept_queue, load):
  the queues live in local variables, counters are tallied per verdict and written at the end;
* :func:`_run_reference`, for a listener that carries state or defers accept (syn_queue: the
  flood's requests, TCP_DEFER_ACCEPT): every SYN and ACK goes through ``Listener.on_syn`` /
  ``on_ack``. It is also the reference the other loop is tested against
  (tests/test_sim_listenq.py: thousands of seeded cases, the same world bit for bit).

Events live in one heap of ``(time, seq, kind, client, n)`` (:class:`Event`; seq breaks ties
in scheduling order); first SYNs come from the sorted arrivals merged with the heap (an arrival
first at equal times), and accept()s and timeline samples are computed lazily between events
(an accept() first at equal times), so the heap only holds clients waiting for a timer.

Why this loop keeps its own heap rather than :class:`tcplab.sim.engine.Engine` (the other
scenarios' clock; issue 23): it is the hot path of ``load``, ``accept_queue`` and ``syn_queue``
and of the simulator's speed goal (bench/bench_sim.py: many times a SimPy model, 1M attempts in
seconds), and the Engine's callback per event costs ~1.2-1.4 us more than popping a tuple and
branching on its kind (``python bench/bench_engine.py``, 2026-12-07: 2.6-3.0 vs 4.0-4.2 us per
event on this shared 2-core host). The bench's load case at 100k attempts runs 42,814 heap events
plus 100,000 arrivals merged lazily in 0.23-0.25 s CPU; the Engine would add ~0.17-0.20 s, 73-79 %.
The heap has the Engine's ordering (time, then scheduling order) and no other clock.

>>> from tcplab.model.listen import Listener
>>> w = run_listen_world(Listener(backlog=5), arrivals=[0.001 * i for i in range(20)], until=1.5)
>>> w.established, w.syn_sent, w.listener.recv_q, w.listener.counters["ListenOverflows"]
(6, 14, 6, 28)
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from tcplab.model.listen import ACK_COUNTERS, SYN_COUNTERS, Ack, Child, Listener, Request, Syn
from tcplab.model.retries import SynSchedule, syn_schedule

__all__ = ["ListenWorld", "run_listen_world", "Event", "FIN_SENDS"]

PENDING, ESTAB, FAILED, RESET = 0, 1, 2, 3
STATE_NAMES = {PENDING: "SYN_SENT", ESTAB: "ESTABLISHED", FAILED: "CLOSE", RESET: "CLOSE"}
OUTCOME_NAMES = {PENDING: "pending", ESTAB: "established", FAILED: "ETIMEDOUT", RESET: "ECONNRESET"}

#: A phantom client's FIN and its retransmissions (tcp_orphan_retries=0 means 8 on a live peer):
#: ~25 s at a 0.2 s RTO.
FIN_SENDS = 7


class Event(IntEnum):
    """The kind of a heap entry ``(time, seq, kind, client, n)``."""

    SYN = 0            # the client's SYN number ``n`` (1, 2, ...: retransmissions; 0 comes from arrivals)
    GIVE_UP = 1        # the RTO fired with the SYN budget spent: connect() fails (ETIMEDOUT)
    SYNACK_TIMER = 2   # the reqsk timer of a request whose ACK overflowed: SYN-ACK again, the client re-ACKs
    FIN = 3            # copy ``n`` of a phantom client's FIN (of a group of them in _run_loopback); it carries the ACK again


_SYN, _GIVE_UP, _SYNACK_TIMER, _FIN = map(int, Event)


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
    first that finds room makes the child.
    ``sample_every`` adds timeline rows (t, recv_q, syn_recv, established, syn_sent, ...).
    ``reference=True`` runs :func:`_run_reference` whatever the listener (for cross-checks).
    """
    prof = listener.profile
    k = prof.syn_retries if syn_retries is None else syn_retries
    lt = prof.syn_linear_timeouts if linear_timeouts is None else linear_timeouts
    sched = syn_schedule(k, lt, prof.rto_initial, prof.rto_max)
    run = _run_loopback if not reference and _fresh(listener) else _run_reference
    return run(listener, arrivals, sched, until, accept_start, accept_service, sample_every, accept_every,
               timer_gran, timer_phase, fin_rto)


def _fresh(listener: Listener) -> bool:
    """:func:`_run_loopback` models a listener that starts empty and turns every request
    into a child inside connect() unless the accept queue is full: no TCP_DEFER_ACCEPT."""
    return not listener.defer_accept and not listener.accept_queue and not listener.syn_queue


def _poller(start: float | None, every: float | None) -> Any:
    """``poll(x)``: the first application poll at or after ``x`` (None without polling). A time
    within 1e-9 poll period after a poll is that poll (``previous poll + period`` in floats)."""
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


def _run_reference(listener: Listener, arrivals: list[float], sched: SynSchedule, until: float,
                   accept_start: float | None, accept_service: float,
                   sample_every: float | None, accept_every: float | None,
                   timer_gran: float, timer_phase: float, fin_rto: float) -> ListenWorld:
    """The loop through the model: every SYN goes through :class:`Listener` ``on_syn``/``on_ack``
    (a burst of retransmissions through ``on_syn_burst``), a request's SYN-ACK timer through
    ``on_request_timer``. A request whose ACK overflowed (abort_on_overflow=0,
    ``inet_rsk(req)->acked``) gets a :attr:`Event.SYNACK_TIMER`: the client answers the
    retransmitted SYN-ACK with its ACK again, which builds the child once the accept queue has
    room (docs/kernel-facts.md case 2)."""
    offsets = (*sched.send_times, sched.fail_after)   # SYN n is due at arrival + offsets[n]
    nsends = len(sched.send_times)
    n = len(arrivals)
    state = [PENDING] * n
    connected_at = [math.nan] * n
    syns = [0] * n
    c = listener.counters
    aq = listener.accept_queue
    on_syn = listener.on_syn
    on_ack = listener.on_ack
    heap: list[tuple[float, int, int, int, int]] = []
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
    up = _wheel(timer_gran, timer_phase) if timer_gran else None

    def retry(cl: int, t: float, nxt: int) -> None:
        """Arm the RTO after a dropped SYN: SYN ``nxt`` or, out of SYNs, the give-up."""
        nonlocal seq
        seq += 1
        when = arrivals[cl] + offsets[nxt] if up is None else up(t + offsets[nxt] - offsets[nxt - 1])
        push(heap, (when, seq, _SYN if nxt < nsends else _GIVE_UP, cl, nxt))

    def give_up(cl: int) -> None:
        c["TCPTimeouts"] += 1
        c["AttemptFails"] += 1
        c["TCPAbortOnTimeout"] += 1
        state[cl] = FAILED

    def child_made() -> None:
        nonlocal max_q
        if len(aq) > max_q:
            max_q = len(aq)

    def ack_result(t: float, cl: int, result: str) -> None:
        nonlocal est_count, seq
        if result == "reset":
            state[cl] = RESET
            c["AttemptFails"] += 1
            return
        if result in ("discarded", "overflow"):
            phantom.add(cl)
            if result == "overflow":         # the request waits for its SYN-ACK timer
                seq += 1
                push(heap, (listener.syn_queue[cl].next_timer, seq, _SYNACK_TIMER, cl, 0))
            if fin_rto:                      # the client's close(): its FIN, at once
                seq += 1
                push(heap, (t, seq, _FIN, cl, 0))
        state[cl] = ESTAB
        connected_at[cl] = t
        est_count += 1
        child_made()

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
        last = t > until
        if last:
            t = until
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
            _, _, kind, cl, attempt = pop(heap)
            if kind == _GIVE_UP:
                give_up(cl)
                continue
            if kind == _FIN:                     # a phantom client's FIN number ``attempt``
                if cl not in phantom:
                    continue
                if cl in listener.syn_queue:
                    result = on_ack(t, cl, bare=False)
                else:                            # a cookie phantom: the FIN's ACK is a cookie
                    result = on_ack(t, cl, cookie=True)
                if result == "child":
                    phantom.discard(cl)
                    child_made()
                elif result in ("overflow", "discarded") and attempt + 1 < FIN_SENDS:
                    seq += 1
                    push(heap, (t + fin_rto * (1 << attempt), seq, _FIN, cl, attempt + 1))
                continue
            if kind == _SYNACK_TIMER:            # reqsk_timer_handler() of an acked request
                req = listener.syn_queue.get(cl)
                if req is None or listener.on_request_timer(t, req) == "expired":
                    continue                     # (expired: the client stays a phantom)
                result = on_ack(t, cl)           # the client re-ACKs the SYN-ACK
                if result == "child":
                    phantom.discard(cl)
                    child_made()
                elif result == "overflow":
                    seq += 1
                    push(heap, (req.next_timer, seq, _SYNACK_TIMER, cl, 0))
                continue
            burst = [(cl, attempt)]
            if tick:                             # every SYN whose timer fires in this tick
                held = []
                tend = t + tick
                while heap and heap[0][0] < tend:
                    e = pop(heap)
                    if e[2] == _GIVE_UP:
                        give_up(e[3])
                    elif e[2] == _SYN:
                        burst.append((e[3], e[4]))
                    else:                        # SYN-ACK timers and FINs are not SYNs
                        held.append(e)
                for e in held:
                    push(heap, e)
            for b, _ in burst:
                c["TCPTimeouts"] += 1            # tcp_retransmit_timer()
                c["TCPSynRetrans"] += 1
                c["RetransSegs"] += 1
            if len(burst) > 1:
                for b, _ in burst:
                    syns[b] += 1
                attempts = dict(burst)
                results = listener.on_syn_burst(t, [b for b, _ in burst])
                for b, verdict, result in results:
                    if verdict == "dropped":
                        retry(b, t, attempts[b] + 1)
                for b, verdict, result in results:
                    if verdict != "dropped":
                        ack_result(t, b, result)
                continue
        syns[cl] += 1
        verdict = on_syn(t, cl)
        if verdict == "dropped":
            retry(cl, t, attempt + 1)
            continue
        ack_result(t, cl, on_ack(t, cl, cookie=verdict == "cookie"))
    world.phantom = len(phantom)
    world.accepted = accepted
    world.max_recv_q = max_q
    return world


def _run_loopback(listener: Listener, arrivals: list[float], sched: SynSchedule, until: float,
                  accept_start: float | None, accept_service: float,
                  sample_every: float | None, accept_every: float | None,
                  timer_gran: float, timer_phase: float, fin_rto: float) -> ListenWorld:
    """The same run as :func:`_run_reference` for a fresh listener without TCP_DEFER_ACCEPT,
    with the queues in local variables.

    The verdicts are the model's (:meth:`Listener.syn_verdict` / :meth:`Listener.ack_verdict`);
    they are tallied per verdict and turned into counters at the end through
    :data:`SYN_COUNTERS` / :data:`ACK_COUNTERS`. On loopback a request becomes a child inside
    the same connect(), so between bursts the SYN queue only holds requests whose ACK overflowed
    (``qlen``): a lone SYN's verdict depends on ``qlen`` and on whether the accept queue is full,
    and is looked up once per ``qlen`` (``v_free``/``v_full``). ``cap`` is the accept-queue
    length above which a lone SYN is dropped (-1 when every SYN is). A dropped retransmission is
    one ``heapreplace``. Bursts (retransmissions due within ``timer_tick`` of the head, docs/kernel-facts.md
    case 2's "all SYNs before their ACKs") take each SYN's verdict for ``qlen + requests so far``
    (from the same per-``qlen`` cache), then each ACK's. The accept queue holds
    ``(created, client)``; requests whose ACK overflowed live in the Listener's own SYN queue
    (their timer is ``on_request_timer``). The FINs of one burst's phantoms are one heap entry
    ``(time, seq, FIN, [clients], copy)`` standing for one entry per client with consecutive
    seqs (nothing else is armed at that time in between, so the order of every event is the
    per-client order); once one of them finds the accept queue full with no accept() due before
    the next event, the rest of the group finds it full too and is tallied at once.
    """
    L = listener
    c = L.counters
    mab = L.max_ack_backlog
    rto0 = L.profile.rto_initial
    syn_verdict, ack_verdict = L.syn_verdict, L.ack_verdict
    synq = L.syn_queue
    offsets = (*sched.send_times, sched.fail_after)   # SYN n is due at arrival + offsets[n]
    nsends = len(sched.send_times)
    n = len(arrivals)
    state = [PENDING] * n
    connected_at = [math.nan] * n
    syns = [0] * n
    world = ListenWorld(listener, arrivals, sched, state, connected_at, syns)
    timeline = world.timeline
    phantom = world.phantom_ids
    inf = math.inf
    aq: deque[tuple[float, int]] = deque()   # (created, client)
    q = 0                                    # len(aq)
    cookie_kids: set[int] = set()
    # the heap always holds a sentinel at +inf, so the loop never tests it for emptiness
    # (a FIN entry holds a list of clients: see the docstring)
    heap: list[tuple[float, int, int, Any, int]] = [(inf, -1, -1, -1, -1)]
    push, pop, replace = heapq.heappush, heapq.heappop, heapq.heapreplace
    seq = 0
    up = _wheel(timer_gran, timer_phase) if timer_gran else None
    poll = _poller(accept_start, accept_every)
    tick = L.profile.timer_tick
    syn_tally = [0] * len(Syn)               # SYNs per verdict
    ack_tally = [0] * len(Ack)               # ACKs per verdict
    retrans = fails = resets = 0
    accepted = max_q = est = 0
    free_at = inf if accept_start is None else accept_start
    next_acc = inf                           # when the app takes the head of the accept queue
    next_sample = 0.0 if sample_every else inf
    special = min(next_sample, until)        # the next accept(), sample or the end of the run
    verdicts: dict[int, tuple[int, int, int, int]] = {}

    def lone_verdicts(qlen: int) -> tuple[int, int, int, int]:
        """(cap, verdict with room, its ACK verdict, verdict with the accept queue full)."""
        v = verdicts.get(qlen)
        if v is None:
            free, full = syn_verdict(qlen, 0), syn_verdict(qlen, mab + 1)
            ack = ack_verdict(0, cookie=free is Syn.COOKIE)
            v = verdicts[qlen] = (-1 if free.dropped else mab, int(free), int(ack), int(full))
        return v

    def pending(name: str) -> int:
        """Counter ``name`` with the tallies so far (for a timeline sample)."""
        syn_rows, ack_rows = rows_of[name]
        return c[name] + sum(map(syn_tally.__getitem__, syn_rows)) + sum(map(ack_tally.__getitem__, ack_rows))

    rows_of = {name: ([int(v) for v in Syn if name in SYN_COUNTERS[v]], [int(v) for v in Ack if name in ACK_COUNTERS[v]])
               for name in ("ListenOverflows", "ListenDrops")}

    # the ACK verdicts the loop needs, by [cookie][accept queue full] (only the queue's length
    # varies; the ACK of a burst's SYN, a FIN's ACK, the re-ACK of a retransmitted SYN-ACK)
    burst_ack = [[int(ack_verdict(x, cookie=ck)) for x in (0, mab + 1)] for ck in (False, True)]
    fin_ack = [[int(ack_verdict(x, cookie=ck, bare=False)) for x in (0, mab + 1)] for ck in (False, True)]
    reack = burst_ack[False]
    qlen = 0                                 # requests in the SYN queue (ACK overflowed, waiting)
    cap, v_free, a_free, v_full = lone_verdicts(qlen)
    COOKIE_CHILD, OVERFLOW, RST, DISCARDED = (int(Ack.COOKIE_CHILD), int(Ack.OVERFLOW), int(Ack.RESET),
                                              int(Ack.COOKIE_DISCARDED))
    REQUEST, COOKIE, DROPPED = int(Syn.REQUEST), int(Syn.COOKIE), int(Syn.DROP_SYNQ_FULL)   # >= DROPPED: dropped
    i = 0
    ta = arrivals[0] if n else inf
    while True:
        th = heap[0][0]
        t = ta if ta <= th else th
        if t >= special:
            last = t > until
            if last:
                t = until
            # accept()s and samples due by t, in time order (an accept() first at equal times)
            while next_acc <= t or next_sample <= t:
                if next_acc <= next_sample:
                    aq.popleft()
                    q -= 1
                    accepted += 1
                    free_at = next_acc + accept_service
                    if q:
                        when = aq[0][0]
                        next_acc = when if when > free_at else free_at
                        if poll is not None:
                            next_acc = poll(next_acc)
                    else:
                        next_acc = inf
                else:
                    timeline.append({"t": round(next_sample, 9), "recv_q": q, "syn_recv": qlen,
                                     "established": est, "accepted": accepted,
                                     "ListenOverflows": pending("ListenOverflows"),
                                     "ListenDrops": pending("ListenDrops")})
                    next_sample += sample_every  # type: ignore[operator]
            if last:
                break
            special = next_acc if next_acc < next_sample else next_sample
            if until < special:
                special = until
        if ta <= th:                             # a client's first SYN
            cl = i
            i += 1
            ta = arrivals[i] if i < n else inf
            syns[cl] = 1
            if q > cap:                          # dropped: arm the RTO for SYN 1
                syn_tally[v_full if q > mab else v_free] += 1
                seq += 1
                push(heap, (arrivals[cl] + offsets[1] if up is None else up(t + offsets[1]), seq,
                            _SYN if nsends > 1 else _GIVE_UP, cl, 1))
                continue
        else:
            e = heap[0]
            kind = e[2]
            cl = e[3]
            if kind == _SYN:
                a = e[4]
                if tick:
                    tend = t + tick
                    if heap[1][0] < tend or (len(heap) > 2 and heap[2][0] < tend):
                        # a burst: every SYN whose RTO fires in this tick (Listener.on_syn_burst),
                        # all SYNs first, then their ACKs
                        members = []
                        held = []
                        while heap[0][0] < tend:
                            e = pop(heap)
                            if e[2] == _SYN:
                                members.append(e)
                            elif e[2] == _GIVE_UP:
                                fails += 1
                                state[e[3]] = FAILED
                            else:                # SYN-ACK timers and FINs are not SYNs
                                held.append(e)
                        for e in held:
                            push(heap, e)
                        if q > mab:              # accept queue full for the whole burst: all dropped
                            retrans += len(members)
                            syn_tally[v_full] += len(members)
                            due: dict[int, float] = {}   # on the wheel: SYN a's time, same for all
                            for e in members:
                                b = e[3]
                                a = e[4] + 1
                                syns[b] = a
                                if up is None:
                                    when = arrivals[b] + offsets[a]
                                else:
                                    when = due.get(a, -1.0)
                                    if when < 0:
                                        when = due[a] = up(t + offsets[a] - offsets[a - 1])
                                seq += 1
                                push(heap, (when, seq, _SYN if a < nsends else _GIVE_UP, b, a))
                            continue
                        acks = []
                        fins: list[int] = []     # phantoms of this burst: their FINs, one group entry
                        fin_seq = 0
                        nreq = 0                 # requests queued by this burst's SYNs so far
                        for e in members:
                            b = e[3]
                            a = e[4]
                            retrans += 1
                            syns[b] = a + 1
                            vs = verdicts.get(qlen + nreq) or lone_verdicts(qlen + nreq)
                            v = vs[3] if q > mab else vs[1]   # syn_verdict(qlen + nreq, q)
                            syn_tally[v] += 1
                            if v >= DROPPED:
                                a += 1
                                seq += 1
                                push(heap, (arrivals[b] + offsets[a] if up is None
                                            else up(t + offsets[a] - offsets[a - 1]),
                                            seq, _SYN if a < nsends else _GIVE_UP, b, a))
                            else:
                                if v == REQUEST:
                                    nreq += 1
                                acks.append((b, v == COOKIE))
                        for b, ck in acks:
                            v = burst_ack[ck][q > mab]
                            ack_tally[v] += 1
                            if v == RST:         # embryonic_reset: the client gets ECONNRESET
                                resets += 1
                                state[b] = RESET
                                continue
                            if v == OVERFLOW or v == DISCARDED:
                                phantom.add(b)   # ESTABLISHED client, no child
                                if v == OVERFLOW:   # the request stays, acked, for its SYN-ACK timer
                                    synq[b] = Request(b, t, acked=True, next_timer=t + rto0)
                                    qlen += 1
                                    seq += 1
                                    push(heap, (t + rto0, seq, _SYNACK_TIMER, b, 0))
                                if fin_rto:      # the client's close(): its FIN, at once
                                    seq += 1
                                    if not fins:
                                        fin_seq = seq
                                    fins.append(b)
                            else:
                                aq.append((t, b))
                                q += 1
                                if ck:
                                    cookie_kids.add(b)
                                if q > max_q:
                                    max_q = q
                                if q == 1:
                                    when = t if t > free_at else free_at
                                    next_acc = poll(when) if poll is not None else when
                                    if next_acc < special:
                                        special = next_acc
                            state[b] = ESTAB
                            connected_at[b] = t
                            est += 1
                        if fins:
                            push(heap, (t, fin_seq, _FIN, fins, 0))
                        cap, v_free, a_free, v_full = lone_verdicts(qlen)
                        continue
                retrans += 1
                syns[cl] = a + 1
                if q > cap:                      # dropped again: one sift replaces pop + push
                    syn_tally[v_full if q > mab else v_free] += 1
                    a += 1
                    seq += 1
                    replace(heap, (arrivals[cl] + offsets[a] if up is None else up(t + offsets[a] - offsets[a - 1]),
                                   seq, _SYN if a < nsends else _GIVE_UP, cl, a))
                    continue
                pop(heap)
            elif kind == _GIVE_UP:               # the RTO fired with the budget spent
                pop(heap)
                fails += 1
                state[cl] = FAILED
                continue
            elif kind == _FIN:                   # copy e[4] of the FINs of a group of phantoms
                pop(heap)
                members = e[3]
                k = e[4]
                rearm: list[int] = []
                j = 0
                nm = len(members)
                while j < nm:
                    cl = members[j]
                    j += 1
                    if cl not in phantom:        # made a child since (its SYN-ACK timer)
                        continue
                    req = synq.get(cl)           # no request: a cookie phantom, the ACK is a cookie
                    full = q > mab
                    v = fin_ack[req is None][full]
                    ack_tally[v] += 1
                    if v == OVERFLOW or v == DISCARDED:
                        if k + 1 < FIN_SENDS:
                            rearm.append(cl)
                        if full and special > t:
                            # nothing frees a slot before the next event: every other FIN
                            # of the group finds the queue full too
                            rest = [x for x in members[j:] if x in phantom]
                            nreq = sum(1 for x in rest if x in synq) if synq else 0
                            ack_tally[fin_ack[0][1]] += nreq
                            ack_tally[fin_ack[1][1]] += len(rest) - nreq
                            if k + 1 < FIN_SENDS:
                                rearm += rest
                            break
                        continue
                    phantom.discard(cl)          # the child is made at last
                    if req is not None:
                        del synq[cl]
                        qlen -= 1
                        cap, v_free, a_free, v_full = lone_verdicts(qlen)
                    else:
                        cookie_kids.add(cl)
                    aq.append((t, cl))
                    q += 1
                    if q > max_q:
                        max_q = q
                    if q == 1:
                        when = t if t > free_at else free_at
                        next_acc = poll(when) if poll is not None else when
                        if next_acc < special:
                            special = next_acc
                    if special <= t and j < nm:   # an accept() is due first: the rest later
                        push(heap, (t, e[1] + j, _FIN, members[j:], k))
                        break
                if rearm:                        # retransmitted together (seqs as if one by one)
                    seq += 1
                    push(heap, (t + fin_rto * (1 << k), seq, _FIN, rearm, k + 1))
                    seq += len(rearm) - 1
                continue
            else:                                # the SYN-ACK timer of a request whose ACK overflowed
                pop(heap)
                req = synq.get(cl)
                if req is None:
                    continue
                if L.on_request_timer(t, req) == "expired":
                    qlen -= 1                    # the client stays a phantom
                    cap, v_free, a_free, v_full = lone_verdicts(qlen)
                    continue
                v = reack[q > mab]               # the client re-ACKs the SYN-ACK
                ack_tally[v] += 1
                if v == OVERFLOW:
                    seq += 1
                    push(heap, (req.next_timer, seq, _SYNACK_TIMER, cl, 0))
                    continue
                phantom.discard(cl)              # the child is made at last
                del synq[cl]
                qlen -= 1
                cap, v_free, a_free, v_full = lone_verdicts(qlen)
                aq.append((t, cl))
                q += 1
                if q > max_q:
                    max_q = q
                if q == 1:
                    when = t if t > free_at else free_at
                    next_acc = poll(when) if poll is not None else when
                    if next_acc < special:
                        special = next_acc
                continue
        # a lone SYN that gets in: a request (or a cookie) and, at once, its child
        syn_tally[v_free] += 1
        ack_tally[a_free] += 1
        if a_free == COOKIE_CHILD:
            cookie_kids.add(cl)
        aq.append((t, cl))
        q += 1
        state[cl] = ESTAB
        connected_at[cl] = t
        est += 1
        if q > max_q:
            max_q = q
        if q == 1:                               # the app may take this one next
            when = t if t > free_at else free_at
            next_acc = poll(when) if poll is not None else when
            if next_acc < special:
                special = next_acc
    # counters, where tcp_conn_request() / tcp_check_req() / tcp_retransmit_timer() count them
    for v, k in zip(Syn, syn_tally):
        L.count(SYN_COUNTERS[v], k)
    for v, k in zip(Ack, ack_tally):
        L.count(ACK_COUNTERS[v], k)
    c["ActiveOpens"] += i
    c["TCPTimeouts"] += retrans + fails
    c["TCPSynRetrans"] += retrans
    c["RetransSegs"] += retrans
    c["TCPAbortOnTimeout"] += fails
    c["AttemptFails"] += fails + resets
    L.accept_queue.extend(Child(cl, t, via_cookie=cl in cookie_kids) for t, cl in aq)
    world.phantom = len(phantom)
    world.accepted = accepted
    world.max_recv_q = max_q
    return world
