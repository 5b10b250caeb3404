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

>>> from tcplab.model.listen import Listener
>>> w = run_listen_world(Listener(backlog=5), arrivals=[0.001 * i for i in range(20)], until=1.5)
>>> w.established, w.syn_sent, w.listener.recv_q, w.listener.counters["ListenOverflows"]
(6, 14, 6, 28)
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any

from tcplab.model.listen import Listener
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
                     sample_every: float | None = None) -> ListenWorld:
    """Run clients (sorted ``arrivals``) against ``listener`` up to time ``until``.

    ``accept_start=None`` means the application never calls accept().
    ``sample_every`` adds timeline rows (t, recv_q, syn_recv, established, syn_sent, ...).
    """
    prof = listener.profile
    k = prof.syn_retries if syn_retries is None else syn_retries
    lt = prof.syn_linear_timeouts if linear_timeouts is None else linear_timeouts
    sched = syn_schedule(k, lt, prof.rto_initial, prof.rto_max)
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
        # lazy accept(): the app takes one child per accept_service once it is free
        while aq and free_at <= t:
            when = aq[0].created
            if when < free_at:
                when = free_at
            if when > t:
                break
            aq.popleft()
            accepted += 1
            free_at = when + accept_service
        while next_sample <= t:
            sample(next_sample)
            next_sample += sample_every  # type: ignore[operator]
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
