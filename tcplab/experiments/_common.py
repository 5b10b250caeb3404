"""Helpers shared by the real runners (they run inside the namespace child)."""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tcplab.errors import SockDiagUnavailable
from tcplab.kernel.diag import listen_queues
from tcplab.kernel.loopback import wait_for
from tcplab.kernel.netstat import counters_delta, read_counters
from tcplab.kernel.procnet import read_proc_net_tcp
from tcplab.kernel.tcpinfo import tcp_info
from tcplab.model.cc import HYSTART_ACK_DELTA
from tcplab.model.cubic_fit import hystart_train_threshold
from tcplab.model.outcome import Timing
from tcplab.experiments.spec import Param, Slider

if TYPE_CHECKING:
    from tcplab.kernel.bottleneck import PathStats


__all__ = ["SEGMENT_COLUMNS", "segment_rows", "PATH_RATE_PARAM", "PATH_RTT_PARAM", "delay_line_timings", "ack_train_timing", "longest_ack_trains", "counters_now", "delta", "proc_sockets", "listener_queues", "Clock", "pick", "LagMeter", "BUSY_NOTE",
           "meters_of_this_run", "wait_closes_done", "wait_accept_queue", "connect_answered"]

#: how the sentence of :meth:`LagMeter.note` starts. Text only: the flag is ``Result.fidelity``
#: (``result.trusted``), which every meter of a run feeds (see :func:`meters_of_this_run`)
BUSY_NOTE = "host too busy to time this run"

_meters = threading.local()


def counters_now() -> dict[str, int]:
    return read_counters()


def delta(before: dict[str, int], keep: tuple[str, ...] = ("ListenOverflows", "ListenDrops")) -> dict[str, int]:
    """Nonzero counter deltas since ``before``, plus ``keep`` even when zero."""
    d = counters_delta(before, counters_now())
    return {k: v for k, v in d.items() if v or k in keep}


def pick(counters: dict[str, int], *names: str) -> dict[str, int]:
    return {n: int(counters.get(n, 0)) for n in names}


def proc_sockets() -> list[Any]:
    """/proc/net/tcp{,6} of this namespace (request sockets show as SYN_RECV)."""
    return read_proc_net_tcp()


def listener_queues(inode: int) -> tuple[int | None, int | None, str | None]:
    """(accept queue length, limit, note) of the listener with ``inode``.

    sock_diag gives both (``tcp_diag_get_info()``); /proc/net/tcp only the length, so
    without sock_diag the limit is None — the experiment measures the rule, it must not
    fill in the rule's own answer.
    """
    try:
        q = listen_queues().get(inode)
        if q is not None:
            return q[0], q[1], None
        note = "listener not found by sock_diag"
    except SockDiagUnavailable as e:
        note = f"sock_diag unavailable ({e.reason}): the listener's Send-Q (its limit) is unknown"
    for rec in proc_sockets():
        if rec.inode == inode and rec.state == "LISTEN":
            return rec.recv_q, None, note
    return None, None, note


#: the states a connection passes through between the two close() calls and its end (TIME_WAIT or gone)
_CLOSING = ("FIN_WAIT1", "FIN_WAIT2", "CLOSING", "LAST_ACK")

#: bound of a wait for segments already sent on loopback to be processed: microseconds on a quiet
#: host, longer when softirq work is deferred to ksoftirqd on a busy one; the wait ends at the event
SETTLE_S = 5.0


def wait_closes_done(port: int, what: str, timeout: float = SETTLE_S) -> None:
    """Wait until no connection to or from ``port`` is between its two close() calls and its end.

    For runs where both ends have called close(): the last FIN and its ACK are processed in softirq,
    which on a busy host runs after close() returned, so the closer may still be FIN_WAIT2 rather
    than TIME_WAIT when the sockets are counted. Raises ExperimentError after ``timeout`` s.
    """
    wait_for(lambda: sorted(r.state for r in read_proc_net_tcp() if port in (r.local_port, r.remote_port)
                            and r.state in _CLOSING),
             lambda closing: not closing, timeout, what)


def wait_accept_queue(inode: int, n: int, what: str, timeout: float = SETTLE_S) -> None:
    """Wait until the listener ``inode`` holds ``n`` connections in its accept queue.

    A client is ESTABLISHED when it has processed the SYN-ACK, before the listener has processed its
    ACK (which may sit in another CPU's backlog): a run that needs the queue full must wait for the
    queue itself, not for the client. Raises ExperimentError after ``timeout`` s.
    """
    wait_for(lambda: listener_queues(inode)[0], lambda q: q is not None and q >= n, timeout, what)


#: getsockopt(SOL_SOCKET, SO_MEMINFO): u32 sk_meminfo[], whose SK_MEMINFO_DROPS is sk_drops, which
#: tcp_listendrop() increments for every SYN or final ACK a listener drops (include/net/tcp.h)
_SO_MEMINFO = 55
_SK_MEMINFO_DROPS = 8


def _listener_answers(lst: socket.socket) -> tuple[int, int]:
    """(accept queue length, drops so far) of the listening socket ``lst``: TCP_INFO of a listener
    reports sk_ack_backlog as tcpi_unacked (tcp_get_info()); two getsockopt() calls, no /proc read."""
    raw = lst.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, 4 * 16)
    drops = struct.unpack_from("I", raw, 4 * _SK_MEMINFO_DROPS)[0] if len(raw) > 4 * _SK_MEMINFO_DROPS else 0
    return int(tcp_info(lst).extra.get("unacked", 0)), drops


def connect_answered(ss: Any, lst: socket.socket, timeout: float = SETTLE_S, **connect: Any) -> socket.socket:
    """``ss.connect(lst.getsockname(), **connect)`` (non-blocking), returned once the listener
    ``lst`` has answered that SYN for good: the connection is in its accept queue, or the listener
    dropped something (the SYN, or the final ACK of a request it took).

    On a quiet host a loopback handshake completes inside connect(). On a busy one the softirq
    work is left to ksoftirqd, so the next client's SYN can reach the listener before this one's
    ACK: it is then taken as a request while the queue is already full, and its ACK is dropped
    (a phantom client, ack_overflow's story, not accept_queue's). Waiting here keeps the
    handshakes one after the other, as the experiments and their simulator describe them; it is
    two getsockopt() calls when the answer is already there. Raises ExperimentError after ``timeout`` s.
    """
    q0, d0 = _listener_answers(lst)
    c = ss.connect(lst.getsockname(), **connect)
    wait_for(lambda: _listener_answers(lst), lambda qd: qd[0] > q0 or qd[1] > d0, timeout,
             "the listener's answer to a SYN (the connection queued, or a drop); (queue, drops)")
    return c


class Clock:
    """Seconds since the run started (monotonic)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.t0

    def sleep_until(self, t: float) -> None:
        left = t - self()
        if left > 0:
            time.sleep(left)


class LagMeter:
    """The runner's own scheduling lag: how much later than asked it got to look again.

    A sampling loop that asks to sleep ``interval`` s calls :meth:`tick` at every sample; a gap
    much longer than ``interval`` means the process was not scheduled (a busy host), so an event
    seen at that sample happened up to ``gap`` s earlier than it was seen. ``limit`` is the lag
    above which a timing must not be presented as the kernel's without saying so.

    >>> m = LagMeter(interval=0.002, limit=0.05)
    >>> [round(m.tick(t), 3) for t in (0.0, 0.002, 0.004, 0.204)]
    [0.0, 0.002, 0.002, 0.2]
    >>> round(m.max_gap, 3), m.too_busy
    (0.2, True)
    >>> print(m.note("SYN times"))   # doctest: +ELLIPSIS
    host too busy to time this run: the sampler asked to look every 2 ms but went up to 200 ms without the CPU; SYN times may be off by that much ...
    >>> m.timing()
    Timing(name='sampler', ms=198.0, detail='the sampler asked to look every 2 ms but went up to 200 ms without the CPU', limit_ms=50.0)

    A meter reports itself: every LagMeter made during a real run becomes one of the run's
    ``Outcome.timings`` (:func:`meters_of_this_run`), which the run's fidelity verdict reads.
    """

    def __init__(self, interval: float, limit: float, name: str = "sampler") -> None:
        self.interval, self.limit, self.name = interval, limit, name
        self.last: float | None = None
        self.max_gap = 0.0
        self.samples = 0
        made = getattr(_meters, "made", None)
        if made is not None:
            made.append(self)

    def tick(self, now: float) -> float:
        """Record a sample taken at ``now`` (s); returns the gap since the previous one."""
        gap = 0.0 if self.last is None else now - self.last
        self.last = now
        self.samples += 1
        self.max_gap = max(self.max_gap, gap)
        return gap

    @property
    def too_busy(self) -> bool:
        return self.max_gap - self.interval > self.limit

    def timing(self) -> Timing:
        """What this meter measured, as a :class:`~tcplab.model.outcome.Timing`: the lag beyond
        the interval, against the meter's limit."""
        return Timing(self.name, round((self.max_gap - self.interval) * 1000, 3),
                      f"the {self.name} asked to look every {self.interval * 1000:.0f} ms but went up to "
                      f"{self.max_gap * 1000:.0f} ms without the CPU", limit_ms=round(self.limit * 1000, 3))

    def note(self, what: str) -> str:
        return (f"{BUSY_NOTE}: the sampler asked to look every {self.interval * 1000:.0f} ms but went up to "
                f"{self.max_gap * 1000:.0f} ms without the CPU; {what} may be off by that much (the kernel's timers are not, "
                "only our view of them): rerun when the host is quieter, or use mode='sim' for the schedule")


class meters_of_this_run:
    """Collect the :class:`LagMeter` objects made in this thread while the block runs (a real
    run; ``tcplab.experiments._mode`` wraps every real runner in it).

    >>> with meters_of_this_run() as made:
    ...     m = LagMeter(0.001, 0.05)
    >>> made == [m]
    True
    """

    def __enter__(self) -> list[LagMeter]:
        self.outer = getattr(_meters, "made", None)
        _meters.made = []
        return _meters.made

    def __exit__(self, *exc: Any) -> None:
        _meters.made = self.outer


def delay_line_timings(stats: PathStats, scheduling: str, median: str | None = None) -> list[Timing]:
    """The bottleneck path's delay line judged by its own release lateness: ``delay_line`` (its p99)
    and, when ``median`` says what a late median spoils (an experiment whose figures depend on every
    packet, not on the rare stall), ``delay_line_p50``.

    >>> from tcplab.kernel.bottleneck import PathStats
    >>> st = PathStats(packets=200, lateness_p50_ms=0.02, lateness_p99_ms=3.5, lateness_max_ms=9.0)
    >>> [(t.name, t.ms) for t in delay_line_timings(st, "SCHED_FIFO", "every RTT sample was that much longer")]
    [('delay_line', 3.5), ('delay_line_p50', 0.02)]
    >>> print(delay_line_timings(st, "SCHED_FIFO")[0].detail)
    the delay line released 1 % of its 200 packets more than 3.5 ms late (up to 9 ms; SCHED_FIFO)
    """
    out = [Timing("delay_line", stats.lateness_p99_ms,
                  f"the delay line released 1 % of its {stats.packets} packets more than "
                  f"{stats.lateness_p99_ms:g} ms late (up to {stats.lateness_max_ms:g} ms; {scheduling})")]
    if median is not None:
        out.append(Timing("delay_line_p50", stats.lateness_p50_ms,
                          f"the delay line released half of its {stats.packets} packets more than "
                          f"{stats.lateness_p50_ms:g} ms late: {median} ({scheduling})"))
    return out


def longest_ack_trains(departures: Sequence[tuple[int, float]], acks: Sequence[tuple[int, float, float]],
                       start: float, end: float, delta_s: float = HYSTART_ACK_DELTA) -> tuple[float, float]:
    """(the longest ACK train a punctual host delivers, the longest this sender got), seconds, over the
    ACKs the delay line released between ``start`` and ``end``.

    A train is what HyStart's ACK-train test (``hystart_update()``, net/ipv4/tcp_cubic.c) follows:
    ACKs each at most ``hystart_ack_delta_us`` (2 ms) after the one before. An ACK of new data is
    punctual at the time the link sent the segment it acknowledges (``departures``: end sequence ->
    send time; the path adds the same delay to all of them), and the sender got it when the delay
    line wrote it (``acks``: ACK number, due, written). Duplicate ACKs and ACKs of no recorded
    segment are skipped.

    >>> deps = [(1000 * i, 0.0012 * i) for i in range(1, 31)]           # one ACK per 1.2 ms, 35 ms
    >>> acks = [(1000 * i, 0.04 + t, 0.04 + t + (0.003 if i > 15 else 0.0)) for i, t in
    ...         [(i, 0.0012 * i) for i in range(1, 31)]]                 # the line 3 ms late from ACK 16 on
    >>> [round(x * 1000, 1) for x in longest_ack_trains(deps, acks, 0.0, 1.0)]
    [34.8, 16.8]
    """
    sent: dict[int, float] = {}
    for seq, t in departures:
        sent.setdefault(seq, t)
    best_p = best_w = 0.0
    prev: tuple[int, float, float] | None = None
    first_p = first_w = 0.0
    for ack, _due, written in acks:
        if not start <= written <= end:
            continue
        t = sent.get(ack)
        if t is None or (prev is not None and ((ack - prev[0]) & 0xFFFFFFFF) >= 1 << 31) or (prev and ack == prev[0]):
            continue
        if prev is None or t - prev[1] > delta_s:
            first_p = t
        if prev is None or written - prev[2] > delta_s:
            first_w = written
        best_p, best_w = max(best_p, t - first_p), max(best_w, written - first_w)
        prev = (ack, t, written)
    return best_p, best_w


def ack_train_timing(stats: PathStats, start: float, end: float, delay_min_s: float, pacing_rate_bytes: float,
                     paced: bool = False) -> Timing:
    """HyStart's ACK train judged (``"ack_train"``, ms): 0 unless a punctual host would have delivered a
    train long enough for ``hystart_update()``'s test ((delay_min + ``hystart_ack_delay()``) / 2, or the
    whole of it for a paced socket) between ``start`` and ``end`` (the run's start and the slow-start
    exit it saw) and this sender got none that long: then how far the longest it got fell short. Then
    slow start did not end where this kernel ends it on a punctual host (a QEMU guest's ACKs, 2-10 ms
    apart, never formed one: HyStart's delay test ended slow start later, at another cwnd).

    >>> from tcplab.kernel.bottleneck import PathStats
    >>> deps = [(1000 * i, 0.0012 * i) for i in range(1, 31)]
    >>> st = PathStats(departures=deps, acks=[(s, t + 0.04, t + 0.04 + 0.003 * (s > 15000)) for s, t in deps])
    >>> t = ack_train_timing(st, 0.0, 1.0, 0.040, 2.5e6)
    >>> t.name, t.ms
    ('ack_train', 3.7)
    >>> print(t.detail)   # doctest: +NORMALIZE_WHITESPACE
    HyStart's ACK train: on time, the receiver's ACKs formed a 34.8 ms train (each within 2 ms of the last) before
    slow start ended, past the 20.5 ms ((delay_min + 1 ms) / 2) at which this kernel ends slow start; the longest
    this sender got was 16.8 ms (the delay line's releases over 30 ACKs)
    >>> ack_train_timing(PathStats(departures=deps, acks=[(s, t, t) for s, t in deps]), 0.0, 1.0, 0.040, 2.5e6).ms
    0.0
    """
    threshold = hystart_train_threshold(delay_min_s, pacing_rate_bytes, paced=paced)
    punctual, got = longest_ack_trains(stats.departures, stats.acks, start, end)
    n = sum(1 for _a, _d, w in stats.acks if start <= w <= end)
    how = "(delay_min + 1 ms)" if paced else "((delay_min + 1 ms) / 2)"
    detail = (f"HyStart's ACK train: on time, the receiver's ACKs formed a {punctual * 1000:.1f} ms train (each within "
              f"{HYSTART_ACK_DELTA * 1000:g} ms of the last) before slow start ended, past the {threshold * 1000:.1f} ms "
              f"{how} at which this kernel ends slow start; the longest this sender got was {got * 1000:.1f} ms "
              f"(the delay line's releases over {n} ACKs)")
    if punctual >= threshold > got:
        return Timing("ack_train", round((threshold - got) * 1000, 3), detail)
    return Timing("ack_train", 0.0, f"HyStart's ACK train: the longest this sender got before slow start ended was "
                  f"{got * 1000:.1f} ms, a punctual host's {punctual * 1000:.1f} ms (threshold {threshold * 1000:.1f} ms)")


#: the bottleneck path's two knobs, one definition for every bulk-flow experiment on it (congestion, window)
PATH_RATE_PARAM = Param(
    "rate_mbit", "float", 20.0, lo=0.5, hi=1000, real_hi=50, unit="Mbit/s",
    real_why="the userspace delay line forwards every packet in Python; above 50 Mbit/s its lateness "
             "would exceed the 10 % the course promises",
    help="the bottleneck's rate (tbf)", slider=Slider(1, 50, step=1))
PATH_RTT_PARAM = Param(
    "rtt_ms", "float", 40.0, lo=1, hi=1000, real_hi=200, unit="ms",
    real_why="longer delays make a real run of a few seconds mostly slow start",
    help="round-trip propagation delay (half each way)", slider=Slider(2, 200, step=2))


#: the columns of a captured ``segments`` table (what the capture decoded; options as "mss=65495, sack_perm, ...");
#: :func:`tcplab.timeline_of` reads it back
SEGMENT_COLUMNS = ("t", "src", "src_port", "dst", "dst_port", "flags", "seq", "ack", "window", "payload", "options")


def segment_rows(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Captured segments (:meth:`tcplab.kernel.capture.Capture.read`) as ``segments`` table rows.

    >>> segment_rows([dict(t=0.0, src="127.0.0.1", src_port=1, dst="127.0.0.1", dst_port=2, flags="S", seq=5,
    ...                    ack=0, window=65495, payload=0, options={"mss": 65495, "sack_perm": True})])[0]["options"]
    'mss=65495, sack_perm'
    """
    return [{**{k: g[k] for k in SEGMENT_COLUMNS if k != "options"},
             "options": ", ".join(k if v is True else f"{k}={v}" for k, v in g["options"].items()
                                  if k != "sack_blocks")}
            for g in segments]


def captured_segments(wire: Any, out: Any, t0: float | None = None) -> None:
    """Empty a capture (:class:`tcplab.kernel.capture.Capture`) into ``out.tables["segments"]``
    (:func:`segment_rows`), with a note when the kernel dropped some. ``t0``: a ``time.monotonic()``
    to count ``t`` from (the run's own clock) instead of the capture's start.

    >>> class Empty:
    ...     def read(self, timeout): return []
    ...     def drops(self): return 0
    >>> from tcplab.model.outcome import Outcome
    >>> out = Outcome(); captured_segments(Empty(), out); out.tables["segments"]
    []
    """
    got: list[dict[str, Any]] = []
    for _ in range(100):                 # bounded: a few reads empty what the kernel buffered
        more = wire.read(timeout=0.01)
        if not more:
            break
        got += more
    if t0 is not None:
        for g in got:
            g["t"] = round(g["mono"] - t0, 6)
    out.tables["segments"] = segment_rows(got)
    if wire.drops():
        out.notes.append(f"the capture dropped {wire.drops()} packets: the segments table is incomplete")


def send_and_sample(socks: list[socket.socket], seconds: float, interval: float, sample: Any,
                    lag: LagMeter) -> tuple[float, float]:
    """The bulk senders of the bottleneck path's experiments: write to the non-blocking ``socks`` as fast
    as each takes data, for ``seconds``, and call ``sample(now, t)`` (``t`` from the start, s) every
    ``interval`` s; ``lag`` ticks at every round (a round held up let the sockets run dry). Returns
    (the start, time.monotonic(); the seconds it ran). Every wait is bounded by the next sample.

    >>> import socket as so
    >>> a, b = so.socketpair()
    >>> a.setblocking(False)
    >>> seen = []
    >>> t0, ran = send_and_sample([a], 0.05, 0.01, lambda now, t: seen.append(t), LagMeter(0.01, 1.0))
    >>> 4 <= len(seen) <= 7 and ran >= 0.05
    True
    >>> a.close(); b.close()
    """
    chunk = memoryview(b"\0" * (1 << 18))
    t0 = time.monotonic()
    end, nxt = t0 + seconds, t0
    while True:
        now = time.monotonic()
        lag.tick(now)
        if now >= nxt:
            sample(now, now - t0)
            nxt = max(nxt + interval, now)
        if now >= end:
            break
        _, ready, _ = select.select((), socks, (), max(0.0, min(nxt, end) - time.monotonic()))
        for s in ready:
            try:
                s.send(chunk)
            except BlockingIOError:
                pass
    return t0, time.monotonic() - t0
