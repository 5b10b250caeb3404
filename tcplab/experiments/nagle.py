"""nagle: the 40 ms stall of a client that writes a request in two pieces and then reads.

A client sends each request as ``request_writes`` writes of ``write_size`` bytes and waits for a
``write_size``-byte reply; the server replies once the whole request is in. Two kernel rules meet:

* **Nagle** (``tcp_nagle_check()``, net/ipv4/tcp_output.c): a segment smaller than the MSS is held
  while an earlier small segment is unacknowledged (``partial && (!nonagle && tp->packets_out &&
  tcp_minshall_check(tp))``). The second write waits for the ACK of the first.
* **Delayed ACK** (``tcp_send_delayed_ack()``, net/ipv4/tcp_output.c): the server, having nothing to
  send yet, delays the ACK by ``ato``: ``timeout = jiffies + ato``. ``ato`` adapts (the
  ``delayed_ack`` experiment), but here it is at its floor, ``TCP_ATO_MIN`` = ``TCP_DELACK_MIN`` =
  HZ/25 jiffies (40 ms, include/net/tcp.h): this server is interactive, and each time its timer
  fires ``tcp_delack_timer_handler()`` resets ato to TCP_ATO_MIN (measured: 44 ms at 0, 100 and
  250 ms RTT). The timer wheel rounds a level-0 expiry up by one
  jiffy (``calc_index()``: ``expires = (expires >> LVL_SHIFT(lvl)) + 1``, kernel/time/timer.c), so
  at HZ=250 the ACK leaves 11 jiffies = 44 ms after the jiffy in which the data arrived.

The first request is fast: at a connection's first data ``tcp_event_data_recv()`` gives the
receiver quick ACKs (``tcp_incr_quickack()``), and ``tcp_in_quickack_mode()`` is ``quick &&
!inet_csk_in_pingpong_mode(sk)``. The server's first reply, sent within ``ato`` of the data,
counts as interactive (``tcp_event_data_sent()``: ``inet_csk_inc_pingpong_cnt()``; the threshold,
net.ipv4.tcp_pingpong_thresh, is 1), and from then on its ACKs wait. The delayed-ACK timer leaves
pingpong mode (``tcp_delack_timer_handler()``), the next reply enters it again: every later request
stalls. Cures: ``TCP_NODELAY`` on the client (nonagle set, the second write leaves at once),
``TCP_QUICKACK`` set by the server after each read (``do_tcp_setsockopt()`` leaves pingpong mode
and sends the pending ACK), or one write per request.

>>> s = simulate_requests(requests=3, request_writes=2, nodelay=False, quickack=False, tick=0.004)
>>> [round(r["latency_s"], 3) for r in s], [r["segments"] for r in s], [r["delayed_ack"] for r in s]
([0.0, 0.042, 0.044], [2, 2, 2], [False, True, True])
>>> [r["latency_s"] for r in simulate_requests(3, 2, nodelay=True, quickack=False, tick=0.004)]
[0.0, 0.0, 0.0]
"""

from __future__ import annotations

import math
import socket
import statistics
import time
from collections.abc import Mapping
from typing import Any

from tcplab.model.rto import HZ_TICK
from tcplab.errors import ExperimentError
from tcplab.experiments._common import SEGMENT_COLUMNS, captured_segments, counters_now, delta
from tcplab.experiments.registry import make_function
from tcplab.experiments.spec import Experiment, GridPoint, Key, Param, Plot, Slider, Table, too_long
from tcplab.kernel.capture import Capture
from tcplab.kernel.loopback import SocketSet
from tcplab.kernel.schedstat import run_delay_s
from tcplab.kernel.tcpinfo import tcp_info
from tcplab.model.delack import delack_jiffies
from tcplab.model.outcome import Outcome, Timing
from tcplab.sim.engine import Engine
from tcplab.sim.ladder import PACKET_COLUMNS, Ladder

__all__ = ["nagle", "SPEC", "simulate_requests", "delack_jiffies", "STALL_THRESHOLD_S", "host_shift"]

TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", 12)

#: a request counts as stalled when it took at least this long (half of TCP_DELACK_MIN: a stall
#: lasts 40-44 ms, an unstalled loopback request about 0.05 ms)
STALL_THRESHOLD_S = 0.020
#: the server's read timeout in the real run: a request never waits longer than a delayed ACK
#: (at most TCP_DELACK_MAX = 200 ms), so 5 s means something else went wrong
_READ_TIMEOUT_S = 5.0
#: what the keys tolerate of the runner's own timing (Key.tolerates), in ms. "host_stall": the latency
#: of a request counted as stalled that no delayed ACK explains (none was sent during it, or its
#: thread waited so long for a CPU that the timer fired because of the wait). On loopback nothing
#: else in the kernel's TCP holds a request 20 ms, so any such stall is the host's (a CPU wait,
#: deferred softirq work, a page fault): 1 ms. "scheduler_first": the first request's CPU wait
#: (run_delay; its latency is asserted < 10 ms).
_HOST_STALL = {"host_stall": 1.0}
#: "between": the runner's own pause between one reply and the next request (its tcp_info and counter
#: reads: well under 1 ms on a host, tens of ms where Python is 20-100x slower, as in a TCG guest). The
#: client holds its ACK of each reply for the next request to carry; a pause that reaches the delayed-ACK
#: timer (TCP_DELACK_MIN, 40 ms) sends that ACK alone: one more DelayedACKs that the kernel's rule for
#: back-to-back requests does not have (measured in the 6.1 guest: 22 for 19). Half of it tolerated.
_BETWEEN = {"between": 20.0}
_SCHED_FIRST = {"scheduler_first": 5.0}
#: "median_shift" / "stall_shift": how far the threads' CPU waits (run_delay) moved the median latency
#: and the median stall (:func:`host_shift`). median_latency_s is compared within 10 ms (abs10ms): half
#: of it, as for the first request. median_stall_s within 10 % of a stall, which is TCP_DELACK_MIN
#: (HZ/25 = 40 ms) plus up to a jiffy (4 ms at HZ 250) of the timer wheel: 10 % of 40 ms.
_MEDIAN_SHIFT = {"median_shift": 5.0}
_STALL_SHIFT = {"stall_shift": 4.0}
#: a CPU wait this long lets the server's delayed-ACK timer (TCP_DELACK_MIN, 40 ms; a tick earlier
#: at the soonest) fire before the thread reads: then the delayed ACK does not prove a kernel stall
_WAIT_FIRES_DELACK_S = 0.036


# -- the kernel rules (pure) ---------------------------------------------------------------------

def _delack_fires_at(t: float, tick: float) -> float:
    """When a delayed ACK scheduled at time ``t`` leaves: ``timeout = jiffies + ato`` in
    ``tcp_send_delayed_ack()``, plus the one jiffy that ``calc_index()`` adds at timer-wheel
    level 0 (a delay under 63 jiffies) so that no timer fires early."""
    jiffies = math.floor(t / tick + 1e-9)
    return (jiffies + delack_jiffies(round(1 / tick)) + 1) * tick


def _nagle_holds(nodelay: bool, small_segment_unacked: bool) -> bool:
    """``tcp_nagle_check()`` for a sub-MSS segment: held while a small segment is unacknowledged
    (Minshall's variant), unless TCP_NODELAY is set."""
    return not nodelay and small_segment_unacked


def simulate_requests(requests: int, request_writes: int, *, nodelay: bool, quickack: bool,
                      tick: float, first_phase: float = 0.5, ladder: Ladder | None = None,
                      write_size: int = 100) -> list[dict[str, Any]]:
    """Each request's latency (s), client data segments and whether a delayed ACK released it.

    ``ladder``: where given, the segments these decisions send (``write_size`` bytes a write) are
    written into it, the handshake at 0: each request's first write; the server's ACK where one
    leaves alone (a quick ACK at the connection's start, the delayed-ACK timer, TCP_QUICKACK); the
    held writes, coalesced, right after it; the reply, which carries the ACK of the whole request;
    the client's ACK of a reply rides on the next request's first write.

    Loopback costs no time here (about 0.02-0.1 ms per request on a real machine). The first
    request starts ``first_phase`` of a jiffy after a tick; every later one starts when the
    previous reply arrived, which after a stall is right at a timer tick.

    The server reads once the client's writes are queued (the real run does the same, in one
    thread), then replies; its reply carries the ACK of the whole request.
    """
    # time advances through the engine: a request starts when the previous reply arrived; a held
    # write waits for the server's delayed-ACK timer, an event of its own
    eng = Engine()
    pingpong = [False]          # inet_csk_in_pingpong_mode() of the server
    rows: list[dict[str, Any]] = []

    def sent(end: str, length: int = 0) -> None:
        if ladder is not None and length:
            ladder.data(eng.now, end, length)
        elif ladder is not None:
            ladder.ack(eng.now, end)

    def request(n: int) -> None:
        start = eng.now
        segments = 1            # the first write: nothing of ours is unacknowledged
        sent("client", write_size)
        # the server has quick ACKs left at the start of the connection and is not yet
        # interactive: tcp_in_quickack_mode() acknowledges the first segment at once
        acked_at_once = not pingpong[0]
        if acked_at_once:
            sent("server")
        held = 0
        for _ in range(request_writes - 1):
            if _nagle_holds(nodelay, small_segment_unacked=not acked_at_once):
                held += 1       # queued behind the unacknowledged segment (coalesced)
            else:
                segments += 1
                sent("client", write_size)
                if acked_at_once:
                    sent("server")      # still in quick-ACK mode
        if held and not quickack:
            # tcp_delack_timer_handler(): DelayedACKs++, and the held writes leave together
            eng.schedule(_delack_fires_at(start, tick), release, (n, start, segments + 1, True, held))
            return
        if held:
            # the server's read + TCP_QUICKACK sends the pending ACK: the held writes go out as
            # one segment at once
            segments += 1
            release((n, start, segments, False, held))
            return
        reply((n, start, segments, False))

    def release(arg: tuple[int, float, int, bool, int]) -> None:
        # the server's ACK leaves alone (its timer, or TCP_QUICKACK), the held writes follow it at once
        *rest, held = arg
        sent("server")
        sent("client", held * write_size)
        reply(tuple(rest))  # type: ignore[arg-type]

    def reply(arg: tuple[int, float, int, bool]) -> None:
        n, start, segments, stalled = arg
        sent("server", write_size)
        # the reply is sent within ato of the request: tcp_event_data_sent() counts it as
        # interactive (pingpong threshold 1). The delayed-ACK timer left pingpong mode, this
        # reply enters it again.
        pingpong[0] = True
        rows.append({"n": n, "latency_s": eng.now - start, "segments": segments, "delayed_ack": stalled})
        if n < requests:
            eng.schedule(eng.now, request, n + 1)

    if requests > 0:
        if ladder is not None:
            ladder.handshake(0.0)
        eng.schedule(first_phase * tick, request, 1)
        eng.run()
    return rows


def _summary(latencies: list[float], segments: int, delayed_acks: int) -> dict[str, Any]:
    stalls = [x for x in latencies if x >= STALL_THRESHOLD_S]
    ordered = sorted(latencies)
    p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]  # nearest rank
    return {
        "median_latency_s": round(statistics.median(latencies), 6),
        "p99_latency_s": round(p99, 6),
        "first_latency_s": round(latencies[0], 6),
        "stalled_requests": len(stalls),
        "median_stall_s": round(statistics.median(stalls), 6) if stalls else None,
        "delayed_acks": delayed_acks,
        "segments": segments,
    }


def host_shift(latencies: list[float], waits: list[float]) -> tuple[float, float]:
    """(how much the CPU waits moved the median latency, and the median of the stalled requests),
    in s: each median taken as measured and again with each request's CPU wait (``run_delay``)
    taken out of its latency. A wait while the thread also waited for the delayed-ACK timer may
    not have lengthened the request at all, so this is an upper bound (conservative).

    >>> host_shift([0.0001, 0.044, 0.044, 0.044], [0.0, 0.0, 0.0, 0.0])
    (0.0, 0.0)
    >>> [round(x, 4) for x in host_shift([0.0001, 0.054, 0.054, 0.054], [0.0, 0.01, 0.01, 0.01])]
    [0.01, 0.01]
    """
    if not latencies or len(waits) != len(latencies):
        return 0.0, 0.0
    own = [max(0.0, x - w) for x, w in zip(latencies, waits, strict=True)]
    median = statistics.median(latencies) - statistics.median(own)
    stalled = [(x, o) for x, o in zip(latencies, own, strict=True) if x >= STALL_THRESHOLD_S]
    stall = (statistics.median(x for x, _ in stalled) - statistics.median(o for _, o in stalled)) if stalled else 0.0
    return max(0.0, median), max(0.0, stall)


def _sim(p: dict[str, Any], profile: Any, rng: Any) -> Outcome:
    tick = profile.timer_tick or HZ_TICK
    ladder = Ladder()
    rows = simulate_requests(p["requests"], p["request_writes"], nodelay=p["nodelay"],
                             quickack=p["quickack"], tick=tick, ladder=ladder, write_size=p["write_size"])
    out = Outcome()
    out.tables["requests"] = [{"n": r["n"], "latency_ms": round(r["latency_s"] * 1000, 3),
                               "segments": r["segments"], "stalled": r["latency_s"] >= STALL_THRESHOLD_S}
                              for r in rows]
    delayed = sum(r["delayed_ack"] for r in rows)
    out.summary = _summary([r["latency_s"] for r in rows], sum(r["segments"] for r in rows), delayed)
    out.counters = {"DelayedACKs": delayed}
    out.tables["packets"] = ladder.rows
    hz = round(1 / tick)
    out.notes.append("packets: the segments the model sends (tcplab.sim.ladder; fixed ISNs, no windows); "
                     "the client's ACK of the last reply, which its delayed-ACK timer sends after the run, is not drawn")
    out.notes.append(f"simulated at HZ={hz}: a delayed ACK leaves {delack_jiffies(hz) + 1} jiffies "
                     f"({(delack_jiffies(hz) + 1) * tick * 1000:g} ms) after the jiffy its data arrived in; "
                     "the loopback path itself costs no simulated time")
    return out


# -- the real run (in the namespace child) ------------------------------------------------------

def _recv_exactly(sock: socket.socket, n: int, quickack: bool) -> None:
    while n:
        data = sock.recv(n)
        if not data:
            raise ExperimentError("the peer closed the connection in the middle of a request")
        if quickack:
            # TCP_QUICKACK is not sticky: the kernel re-enters pingpong mode with the next reply
            sock.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 1)
        n -= len(data)


def _real(p: dict[str, Any]) -> Outcome:
    size, writes = p["write_size"], p["request_writes"]
    request, reply = b"q" * size, b"r" * size
    out = Outcome()
    with SocketSet() as ss:
        lst = ss.listener(1)
        client = ss.socket()
        if p["nodelay"]:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.settimeout(_READ_TIMEOUT_S)
        # both ports known before the handshake, so a capture (where CAP_NET_RAW allows one) sees every
        # segment: the held write and the delayed ACK, for timeline_of. Read once, after the requests:
        # the kernel buffers it, and reading in the loop would add to the runner's own pauses
        client.bind(("127.0.0.1", 0))
        wire, no_wire = Capture.try_open("lo", ports=(client.getsockname()[1], lst.getsockname()[1]),
                                         rcvbuf=4 << 20, kernel_time=True)
        if wire is not None:
            ss.adopt(wire.sock)      # closed with the sockets, also when the run fails
        client.connect(lst.getsockname())
        server = ss.adopt(lst.accept()[0])
        server.settimeout(_READ_TIMEOUT_S)
        # One thread plays both ends, so no thread wake-up adds to the latency: the client's
        # writes are queued (or sent) at once, then the server reads, replies, the client reads.
        rows, latencies = [], []
        before = counters_now()
        segs_before = tcp_info(client).extra["data_segs_out"]
        waits: list[float] = []     # per request: how long this thread waited for a CPU in it (s)
        unexplained: list[tuple[int, float, float | None]] = []   # (request, latency, CPU wait): stalls
        # no delayed ACK explains
        between: list[float] = []   # the runner's pause from each reply to the next request (s)
        replied_at: float | None = None
        for n in range(1, p["requests"] + 1):
            seg0 = tcp_info(client).extra["data_segs_out"]
            dack0 = counters_now().get("DelayedACKs", 0)
            rd0 = run_delay_s()
            t0 = time.monotonic()
            if replied_at is not None:
                between.append(t0 - replied_at)
            for _ in range(writes):
                client.send(request)
            _recv_exactly(server, size * writes, p["quickack"])
            server.sendall(reply)
            _recv_exactly(client, size, False)
            replied_at = time.monotonic()
            latency = replied_at - t0
            rd1 = run_delay_s()
            wait = None if rd0 is None or rd1 is None else rd1 - rd0
            if wait is not None:
                waits.append(wait)
            if latency >= STALL_THRESHOLD_S:
                delayed_ack = counters_now().get("DelayedACKs", 0) > dack0
                if not delayed_ack or (wait or 0.0) >= _WAIT_FIRES_DELACK_S:
                    unexplained.append((n, latency, wait))
            segs = tcp_info(client).extra["data_segs_out"] - seg0
            latencies.append(latency)
            rows.append({"n": n, "latency_ms": round(latency * 1000, 3), "segments": segs,
                         "stalled": latency >= STALL_THRESHOLD_S})
        # read before closing: the client's own delayed ACK of the last reply would fire 40 ms later
        out.counters = delta(before, keep=("DelayedACKs", "DelayedACKLocked"))
        segments = tcp_info(client).extra["data_segs_out"] - segs_before
        if wire is not None:
            captured_segments(wire, out)
        else:
            out.notes.append(f"{no_wire}: no segments table (timeline_of shows none)")
    out.tables["requests"] = rows
    out.summary = _summary(latencies, segments, out.counters.get("DelayedACKs", 0))
    # the runner's own timing: a stall no delayed ACK explains is the host's, not the kernel's
    n, lat, wait = max(unexplained, key=lambda u: u[1], default=(0, 0.0, None))
    cpu = "" if wait is None else f", {wait * 1000:.1f} ms of them waiting for a CPU"
    out.timings.append(Timing("host_stall", round(lat * 1000, 3),
                              f"request {n} took {lat * 1000:.1f} ms{cpu}, and no delayed ACK explains it" if n else
                              "every stalled request is explained by a delayed ACK"))
    if between:
        worst = max(between)
        out.timings.append(Timing("between", round(worst * 1000, 3),
                                  f"the runner paused up to {worst * 1000:.1f} ms between a reply and the next "
                                  "request, long enough for the client's delayed ACK of the reply to leave alone"))
    if waits:
        # the scheduler's lag, counted by the kernel (run_delay): sleeping for the reply does not count
        out.timings.append(Timing("scheduler_first", round(waits[0] * 1000, 3),
                                  f"the first request waited {waits[0] * 1000:.1f} ms for a CPU "
                                  f"(its latency {latencies[0] * 1000:.1f} ms)"))
        shift, stall_shift = host_shift(latencies, waits)
        out.timings.append(Timing("median_shift", round(shift * 1000, 3),
                                  f"waiting for a CPU moved the median request latency by {shift * 1000:.1f} ms"))
        if out.summary["median_stall_s"] is not None:
            out.timings.append(Timing("stall_shift", round(stall_shift * 1000, 3),
                                      f"waiting for a CPU moved the median stall by {stall_shift * 1000:.1f} ms"))
    out.notes.append("latency: first write to the last byte of the reply, one thread playing client and server; "
                     f"a request is 'stalled' at {STALL_THRESHOLD_S * 1000:g} ms or more")
    return out


def _expected_s(p: Mapping[str, Any]) -> float:
    rows = simulate_requests(p["requests"], p["request_writes"], nodelay=p["nodelay"], quickack=p["quickack"],
                             tick=HZ_TICK)
    return sum(r["latency_s"] for r in rows) + 0.0005 * p["requests"]


def _refusal(p: dict[str, Any]) -> str | None:
    return too_long(f"nagle(requests={p['requests']}) (44 ms per stalled request)", _expected_s(p), p["max_seconds"])


SPEC = Experiment(
    name="nagle",
    title="Nagle meets delayed ACK: a request written in two pieces waits 40 ms for an ACK",
    doc="""A client writes each request as ``request_writes`` writes of ``write_size`` bytes, then
    reads a ``write_size``-byte reply; one thread plays client and server on loopback. With
    Nagle on (``nodelay=False``) the second write waits until the first is acknowledged
    (``tcp_nagle_check()``), and the server delays that ACK by TCP_DELACK_MIN (HZ/25 = 40 ms;
    44 ms at HZ=250 with the timer wheel's extra jiffy) because it has nothing to send yet
    (``tcp_send_delayed_ack()``). The first request is fast: quick-ACK mode at the start of a
    connection (``tcp_in_quickack_mode()``); the first reply puts the server in pingpong
    (interactive) mode and every later request stalls. Cures: ``nodelay=True``
    (TCP_NODELAY), ``quickack=True`` (the server sets TCP_QUICKACK after each read), or
    ``request_writes=1``. Real runs predicted to take longer than ``max_seconds`` are refused
    in mode="real" (simulated in mode="auto").""",
    params=(
        Param("nodelay", "bool", False, help="TCP_NODELAY on the client (Nagle off)"),
        Param("quickack", "bool", False, help="the server sets TCP_QUICKACK after each read"),
        Param("requests", "int", 20, lo=1, hi=100_000, help="request/reply exchanges on one connection",
              slider=Slider(1, 100)),
        Param("request_writes", "int", 2, lo=1, hi=4, help="write() calls per request",
              slider=Slider(1, 4)),
        Param("write_size", "int", 100, lo=1, hi=8192, unit="bytes",
              help="bytes per write (and of the reply); below the loopback MSS so Nagle applies",
              slider=Slider(1, 8192, scale="log")),
        Param("max_seconds", "float", 30.0, lo=1, hi=86400, unit="s",
              help="refuse real runs predicted to take longer (simulated time is free)"),
    ),
    summary=(
        Key("median_latency_s", "median request latency (first write to the reply)", rule="abs10ms",
            tolerates=_MEDIAN_SHIFT),
        Key("p99_latency_s", "99th-percentile request latency (nearest rank): the tail follows machine load",
            rule="shown"),
        Key("first_latency_s", "latency of the first request (quick-ACK mode)", rule="abs10ms",
            tolerates=_SCHED_FIRST),
        Key("stalled_requests", "requests that took 20 ms or more (waited for a delayed ACK)", tolerates=_HOST_STALL),
        Key("median_stall_s", "median latency of the stalled requests (None: no stall)", rule="rel10",
            tolerates=_STALL_SHIFT),
        Key("delayed_acks", "ACKs sent by the delayed-ACK timer (TcpExt DelayedACKs delta; a loaded machine that "
            "stalls the run 40 ms before a reply adds one)", tolerates={**_HOST_STALL, **_BETWEEN}),
        Key("segments", "data segments the client sent (tcpi_data_segs_out)", tolerates=_BETWEEN),
    ),
    tables=(Table("requests", ("n", "latency_ms", "segments", "stalled"), "one request/reply exchange"),
            Table("segments", SEGMENT_COLUMNS, "every segment of the connection as captured on lo (real runs where "
                  "AF_PACKET is allowed: root, or a private namespace); timeline_of draws them",
                  optional="real: only where a packet capture on lo is allowed; simulated: never (table packets)"),
            Table("packets", PACKET_COLUMNS, "simulated: every segment the model sends (the handshake, each "
                  "write, the ACK that releases a held write, the reply), as handshake's packets table; "
                  "timeline_of draws them", optional="simulated runs only (real runs: table segments)")),
    timeline=None,
    grid=(
        GridPoint(dict(requests=10), quick=True, why="docs/kernel-facts.md: 44 ms median, the first request fast"),
        GridPoint(dict(requests=10, nodelay=True), quick=True, why="TCP_NODELAY cures it"),
        GridPoint(dict(requests=20)),
        GridPoint(dict(requests=12, quickack=True), why="TCP_QUICKACK after each read cures it"),
        GridPoint(dict(requests=12, request_writes=1), why="one write per request"),
        GridPoint(dict(requests=15, request_writes=3, write_size=700)),
        GridPoint(dict(requests=9, request_writes=4, write_size=3000, quickack=True)),
        GridPoint(dict(requests=7, write_size=20, nodelay=True, request_writes=3)),
    ),
    smoke=(dict(requests=3),),
    real=lambda p: _real(p),
    sim=_sim,
    real_refusal=_refusal,
    expected_s=_expected_s,
    timeout=lambda p: _expected_s(p) * 2 + 20,
    plot=Plot(y=("latency_ms",), x="n", source="requests", kind="bar", title="latency of each request",
              x_title="request", y_title="ms", figure="nagle:nagle_figure", table="nagle:nagle_table"),
)

nagle = make_function(SPEC)
