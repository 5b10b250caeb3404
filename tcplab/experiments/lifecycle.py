"""lifecycle: watch both ends of one connection go through their states (docs/kernel-facts.md case 6).

Each end's states are derived from the packets: an AF_PACKET capture on lo (inside the
private namespace) records every segment of the connection, and each end is fed the
segments it sent and received, in capture order, through the model's state table
(:class:`tcplab.model.states.SegmentFollower`): every transition of RFC 9293's diagram
except the timeouts is a segment sent or received, so no state is missed, however short.
LAST_ACK, FIN_WAIT1 and SYN_RECV last microseconds on plain loopback.

A sampler thread reads /proc/net/tcp of the namespace every millisecond as a cross-check
(it finds the sockets by their ports, also after close(), while the kernel keeps an orphan,
LAST_ACK or TIME_WAIT socket): what it saw must be the packets' list with some short states
left out; otherwise a note says where they disagree. Where no capture is possible (no
CAP_NET_RAW: the host namespace as an unprivileged user) or the capture lost packets, the
sampled states are reported instead, ``Result.sampled`` is True and a note says so
(:data:`SAMPLED_NOTE`): then the short states may be missing. ``slow_motion`` adds a netem
delay on lo inside the namespace so each state lasts at least one delay (for a learner watching
the timeline).

>>> r = lifecycle("client_closes_first")                     # doctest: +SKIP
>>> r.summary["client_states"], r.summary["server_states"]  # doctest: +SKIP
(['SYN_SENT', 'ESTABLISHED', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT'], ['SYN_RECV', 'ESTABLISHED', 'CLOSE_WAIT', 'LAST_ACK', 'CLOSE'])
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import threading
import time
from typing import Any

from tcplab.errors import KernelUnavailable
from tcplab.experiments._common import SEGMENT_COLUMNS, Clock, counters_now, delta, proc_sockets, segment_rows
from tcplab.experiments.registry import make_function
from tcplab.experiments.spec import Experiment, GridPoint, Key, Param, Slider, Table
from tcplab.kernel.capture import Capture
from tcplab.kernel.loopback import SocketSet, wait_until
from tcplab.kernel.qdisc import add_delay
from tcplab.model.outcome import Outcome
from tcplab.model.states import SegmentFollower, TcpState, time_wait_end
from tcplab.sim.sockets import lifecycle as sim_lifecycle


__all__ = ["lifecycle", "SCENARIOS", "SPEC", "SAMPLED_NOTE"]

SCENARIOS = ("client_closes_first", "server_closes_first", "server_never_closes", "abortive_close",
             "half_close", "simultaneous_open")
RECORD = ("net.ipv4.tcp_fin_timeout",)

GONE = "CLOSE"  # TCP_CLOSE (tcp_states.h): recorded when the kernel no longer has the socket at all

#: (client, server) as /proc shows them once a scenario's last segment has been processed (None:
#: not sampled). The last step's answer (an ACK, a FIN's TIME_WAIT) is sent in softirq, which on a
#: busy host runs later than the step's hold: the run ends when the ends get here, not after a sleep.
FINAL = {"client_closes_first": ("TIME_WAIT", GONE), "server_closes_first": (GONE, "TIME_WAIT"),
         "server_never_closes": ("FIN_WAIT2", "CLOSE_WAIT"), "abortive_close": (GONE, GONE),
         "half_close": ("TIME_WAIT", GONE), "simultaneous_open": ("TIME_WAIT", None)}

#: bound of the wait for the final states (the wait ends when they are reached)
FINAL_WAIT_S = 5.0

#: How the note starts that tells a learner the states were sampled from /proc, not derived from
#: packets (text only: the flag is ``Result.sampled``, which the agreement grid reads).
SAMPLED_NOTE = "states sampled from /proc/net/tcp every ms"
ADDR = "127.0.0.1"


SPEC = Experiment(
    name="lifecycle",
    title="One connection through a scenario: the states both ends go through.",
    doc="""Scenarios: ``client_closes_first``, ``server_closes_first``, ``server_never_closes``
    (CLOSE_WAIT leak; the client's orphan FIN_WAIT2 waits for tcp_fin_timeout),
    ``abortive_close`` (SO_LINGER {1, 0}: RST, no TIME_WAIT, the server's recv gets ECONNRESET),
    ``half_close`` (client shutdown(SHUT_WR); the server still sends 13 bytes, the client reads
    them), ``simultaneous_open`` (a socket connecting to its own address: one socket, so
    ``server_states`` is empty). ``slow_motion`` is a one-way delay added to lo (netem, or tbf
    where netem is missing); it needs a private namespace. "CLOSE" at the end of a state list
    means the kernel dropped the socket (TCP_CLOSE) (docs/kernel-facts.md case 6).""",
    params=(
        Param("scenario", "choice", "client_closes_first", choices=SCENARIOS, help="what the two ends do"),
        Param("slow_motion", "float", 0.0, lo=0, hi=500, unit="ms", help="one-way delay added to lo",
              slider=Slider(0, 200, 10)),
    ),
    summary=(
        Key("client_states", "the client's states, in order", rule="states"),
        Key("server_states", "the server's states, in order (empty for simultaneous_open)", rule="states"),
        Key("client_error", "the error the client's script met (errno name) or None"),
        Key("server_error", "the error the server's script met (errno name) or None"),
        Key("time_wait_end", "which end's last state is TIME_WAIT: client, server, both, or None", rule="exact"),
    ),
    tables=(Table("events", ("t", "event"), "a step of the script"),
            Table("segments", SEGMENT_COLUMNS, "one segment of the connection as captured on lo (the states are "
                  "derived from these; tcplab.timeline_of draws them)",
                  optional="real: only when the states were derived from a complete packet capture")),
    timeline=("t", "client", "server", "event"),
    grid=tuple(
        GridPoint(dict(scenario=sc, slow_motion=sm), quick=sc in ("client_closes_first", "abortive_close") and sm == 20)
        for sm in (20, 0) for sc in SCENARIOS),
    smoke=(dict(scenario="client_closes_first", slow_motion=20), dict(scenario="simultaneous_open")),
    real=lambda p: _real(p),
    sim=sim_lifecycle,
    record=RECORD,
    needs_namespace=lambda p: ("slow_motion adds a qdisc to lo, which is only done in a private namespace"
                               if p["slow_motion"] else None),
    timeout=lambda p: 30 + p["slow_motion"] * 0.1,
)

lifecycle = make_function(SPEC)


class _Sampler(threading.Thread):
    """Samples /proc/net/tcp every ms and records state changes of the two ends; between two
    samples it reads the capture (if any), keeping the connection's segments in order."""

    def __init__(self, clock: Clock, server_port: int, client_port: int, self_connect: bool,
                 capture: Capture | None) -> None:
        super().__init__(name="tcplab-sampler", daemon=True)
        self.clock, self.sport, self.cport, self.self_connect = clock, server_port, client_port, self_connect
        self.capture = capture
        self.segments: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.now: dict[str, str | None] = {"client": None, "server": None}
        self.changes: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        self.sampled_from = float("-inf")   # monotonic start of the last complete sample

    def sampled_since(self, t: float) -> bool:
        """Whether a sample that started at or after monotonic ``t`` is complete."""
        with self.lock:
            return self.sampled_from >= t

    def sample(self) -> None:
        started = time.monotonic()
        client = server = None
        for r in proc_sockets():
            if r.state == "LISTEN":
                continue
            if r.local_port == self.cport and (r.remote_port == self.sport or r.state == "SYN_SENT"):
                client = r.state
            elif not self.self_connect and r.local_port == self.sport and r.remote_port == self.cport:
                server = r.state
        with self.lock:
            for end, st in (("client", client), ("server", server)):
                prev = self.now[end]
                if st is None and prev not in (None, GONE):
                    st = GONE
                if st is not None and st != prev:
                    self.now[end] = st
                    self.changes.append({"t": round(self.clock(), 4), "end": end, "state": st})
            self.sampled_from = started

    def reached(self, want: tuple[str | None, str | None]) -> bool:
        """Whether the sampled states are ``want`` (client, server; None: either)."""
        with self.lock:
            return all(w is None or self.now[end] == w for end, w in zip(("client", "server"), want))

    def read_capture(self, timeout: float) -> None:
        if self.capture is None:
            time.sleep(timeout)
            return
        shift = self.capture.t0 - self.clock.t0      # capture times -> the run's clock
        ports = {self.sport, self.cport}
        for seg in self.capture.read(timeout):
            # only this connection (the host's lo, where the fallback runs, carries other traffic)
            if seg["src_port"] in ports and seg["dst_port"] in ports and seg["src"] == seg["dst"] == ADDR:
                seg["t"] = round(seg["t"] + shift, 6)
                self.segments.append(seg)

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.sample()
                self.read_capture(0.001)
            self.sample()
            self.read_capture(0.01)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            self.error = e


def _open_capture(ports: tuple[int, int]) -> tuple[Capture | None, str | None]:
    """An AF_PACKET capture on lo of the segments between ``ports``, or (None, why not)."""
    try:
        return Capture("lo", rcvbuf=1 << 20, ports=ports), None
    except OSError as e:
        return None, f"no packet capture here ({_errname(e)}: AF_PACKET needs CAP_NET_RAW in the namespace)"


def _derive(segments: list[dict[str, Any]], sport: int, cport: int,
            self_connect: bool) -> list[dict[str, Any]]:
    """State changes of both ends from the captured segments, via the model's state table:
    the client starts CLOSE, the server at its listener (LISTEN, not reported)."""
    client = (ADDR, cport)
    server = (ADDR, sport)
    ends = {"client": SegmentFollower(TcpState.CLOSE)}
    if not self_connect:
        ends["server"] = SegmentFollower(TcpState.LISTEN)
    changes: list[dict[str, Any]] = []
    for seg in segments:
        src, dst = (seg["src"], seg["src_port"]), (seg["dst"], seg["dst_port"])
        args = (seg["flags"], seg["seq"], seg["ack"], seg["payload"])
        for end, f in ends.items():
            me = client if end == "client" else server
            peer = client if self_connect else (server if end == "client" else client)
            before = len(f.states)
            if src == me and dst == peer:
                f.sent(*args)
            if dst == me and src == peer:      # a self-connected socket also receives what it sent
                f.received(*args)
            for st in f.states[before:]:
                changes.append({"t": seg["t"], "end": end, "state": st.name, "segment": seg["flags"]})
    return changes


def _subsequence(short: list[str], long: list[str]) -> bool:
    it = iter(long)
    return all(any(x == y for y in it) for x in short)


def _errname(e: OSError) -> str:
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__


def _real(p: dict[str, Any]) -> Outcome:

    out = Outcome()
    delay = p["slow_motion"]
    if delay:
        try:
            out.notes.append("loopback slowed down for slow_motion: " + add_delay(delay))
        except KernelUnavailable as e:
            out.notes.append(f"slow_motion ignored: {e.reason}; every state is still derived from the "
                             "packets, but the short ones last microseconds on the timeline")
            delay = 0.0
    # long enough for a segment and its answer to cross (and for the cross-checking sampler to
    # see every state that lasts until the next step)
    hold = max(0.1, 4 * delay / 1000)
    before = counters_now()
    clock = Clock()
    events: list[dict[str, Any]] = []
    errs: dict[str, str | None] = {"client": None, "server": None}

    def event(what: str) -> None:
        events.append({"t": round(clock(), 4), "event": what})

    sc = p["scenario"]
    with SocketSet() as ss, contextlib.ExitStack() as stack:
        lst = ss.listener(8)
        lst.settimeout(5 + 4 * delay / 1000)
        sport = lst.getsockname()[1]
        c = ss.socket()
        c.bind(("127.0.0.1", 0))  # learn the client port before the SYN, so SYN_SENT can be sampled
        cport = c.getsockname()[1]
        self_connect = sc == "simultaneous_open"
        # the capture starts before the SYN, and the kernel keeps only this connection's segments
        capture, no_capture = _open_capture((sport, cport))
        if capture is not None:
            stack.enter_context(capture)
        sampler = _Sampler(clock, cport if self_connect else sport, cport, self_connect, capture)
        sampler.start()

        def pause() -> None:
            """The step's hold, then one complete sample taken after it: the state that lasts until
            the next step is sampled however long a busy host keeps the sampler thread off the CPU."""
            time.sleep(hold)
            t = time.monotonic()
            wait_until(lambda: sampler.sampled_since(t) or not sampler.is_alive(), FINAL_WAIT_S, 0.001)

        try:
            c.settimeout(5 + 4 * delay / 1000)
            if self_connect:
                event("client connect() to its own address")
                c.connect(("127.0.0.1", cport))  # SYN meets itself: simultaneous open
                pause()
                event("close()")
                c.close()
                pause()
            else:
                event("client connect()")
                c.connect(("127.0.0.1", sport))
                s, _ = lst.accept()
                ss.adopt(s)
                event("server accept()")
                s.settimeout(5 + 4 * delay / 1000)
                pause()
                if sc in ("client_closes_first", "server_never_closes"):
                    event("client close()")
                    c.close()
                    pause()
                    event("server recv() -> " + repr(s.recv(100)))
                    pause()
                    if sc == "client_closes_first":
                        event("server close()")
                        s.close()
                    else:
                        pause()
                elif sc == "server_closes_first":
                    event("server close()")
                    s.close()
                    pause()
                    event("client recv() -> " + repr(c.recv(100)))
                    pause()
                    event("client close()")
                    c.close()
                elif sc == "abortive_close":
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    event("client close() with SO_LINGER {1, 0}")
                    c.close()
                    pause()
                    try:
                        event("server recv() -> " + repr(s.recv(100)))
                    except OSError as e:
                        errs["server"] = _errname(e)
                        event(f"server recv() -> {errs['server']}")
                elif sc == "half_close":
                    event("client shutdown(SHUT_WR)")
                    c.shutdown(socket.SHUT_WR)
                    pause()
                    event("server recv() -> " + repr(s.recv(100)))
                    s.sendall(b"hello, world\n")
                    event("server send(13 bytes)")
                    pause()
                    event("client recv() -> " + repr(c.recv(100)))
                    event("server close()")
                    s.close()
                    pause()
                    event("client recv() -> " + repr(c.recv(100)))
                    event("client close()")
                    c.close()
                pause()
            # the sampler stops (and the capture is read for the last time) once the last segment
            # has been processed, so the states derived from the packets end where the kernel's do
            want = FINAL[sc]
            if not wait_until(lambda: sampler.reached(want) or not sampler.is_alive(), FINAL_WAIT_S, 0.002):
                out.notes.append(f"the ends had not reached {want[0]} / {want[1] or '-'} {FINAL_WAIT_S:g} s "
                                 f"after the last step (sampled: {sampler.now['client']} / {sampler.now['server']})")
        except OSError as e:
            end = "client" if errs["client"] is None else "server"
            errs[end] = _errname(e)
            event(f"{end} error {errs[end]}")
            pause()
        finally:
            sampler.stop.set()
            sampler.join(5)
        if sampler.error is not None:
            raise sampler.error
        dropped = capture.drops() if capture is not None else 0
    out.counters = delta(before, keep=())
    changes = _choose(out, sampler, sport, cport, self_connect, no_capture, dropped)
    if not out.sampled:
        out.tables["segments"] = segment_rows(sampler.segments)
    timeline, cur = [], {"client": None, "server": None}
    for ch in changes:
        cur[ch["end"]] = ch["state"]
        timeline.append({"t": ch["t"], "client": cur["client"], "server": cur["server"],
                         "event": f"{ch['end']} -> {ch['state']}"})
    for ev in events:
        timeline.append({"t": ev["t"], "client": None, "server": None, "event": ev["event"]})
    timeline.sort(key=lambda r: r["t"])
    # carry the states forward over event rows so every row shows both ends
    last = {"client": None, "server": None}
    for row in timeline:
        for end in ("client", "server"):
            if row[end] is None:
                row[end] = last[end]
            last[end] = row[end]
    out.timeline = timeline
    out.tables["events"] = events
    out.summary = {
        "client_states": [ch["state"] for ch in changes if ch["end"] == "client"],
        "server_states": [ch["state"] for ch in changes if ch["end"] == "server"],
        "client_error": errs["client"],
        "server_error": errs["server"],
    }
    out.summary["time_wait_end"] = time_wait_end(out.summary["client_states"], out.summary["server_states"])
    if delay:
        out.notes.append(f"each step waited {hold:.2f} s (4 one-way delays) so that every segment "
                         "and its answer crossed before the next step")
    return out


def _choose(out: Outcome, sampler: _Sampler, sport: int, cport: int, self_connect: bool,
            no_capture: str | None, dropped: int) -> list[dict[str, Any]]:
    """The state changes to report: from the packets when the capture is complete, else the
    sampler's (with a note saying so); the sampler cross-checks the packets' lists."""
    sampled = sampler.changes
    if no_capture is None and dropped:
        no_capture = f"the capture lost {dropped} packets"
    derived = [] if no_capture else _derive(sampler.segments, sport, cport, self_connect)
    if no_capture is None and not any(ch["end"] == "client" for ch in derived):
        no_capture = "the capture saw none of the connection's segments"
    if no_capture is not None:
        out.sampled = True
        out.notes.append(f"{SAMPLED_NOTE} ({no_capture}): a state that lasts less than that, "
                         "like LAST_ACK or FIN_WAIT1 on plain loopback, may be missing")
        return sampled
    out.notes.append(f"states derived from the {len(sampler.segments)} segments captured on lo "
                     "(AF_PACKET), each end through the state table; /proc/net/tcp sampled every ms "
                     "as a cross-check")
    for end in ("client", "server"):
        seen = [ch["state"] for ch in sampled if ch["end"] == end]
        got = [ch["state"] for ch in derived if ch["end"] == end]
        if not _subsequence(seen, got):
            out.notes.append(f"the /proc sampler saw the {end} go {' -> '.join(seen) or 'nowhere'}, "
                             f"the packets say {' -> '.join(got) or 'nowhere'}: they disagree beyond "
                             "states too short to sample")
    return derived
