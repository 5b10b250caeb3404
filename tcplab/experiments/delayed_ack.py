"""delayed_ack: how long a delayed ACK waits, on loopback and over a path with a round-trip time.

40 ms (TCP_DELACK_MIN) is the floor, not the rule (:func:`tcplab.model.delack.unread_waits`):
``icsk_ack.ato`` adapts (``tcp_event_data_recv()``; doubled by ``tcp_delack_timer_handler()``
outside pingpong mode) and ``tcp_send_delayed_ack()`` bounds it by ``max(srtt, TCP_DELACK_MIN)``
and TCP_DELACK_MAX (200 ms). Two receivers, by ``pattern``:

* ``"unread"``: a receiver that never replies and has not read the data (a server still waiting
  for the rest of a request, a slow consumer). The client sends one ``write_size``-byte segment,
  waits for its ACK (Send-Q back to 0, ``ioctl(SIOCOUTQ)``), sends the next. Quick ACKs of the
  connection's start are used up first (messages until one ACK waits). On loopback every wait is
  ~44 ms (the floor: loopback's SRTT is microseconds); with ``rtt_ms`` 100 it grows 44, 84, ~104
  ms (SRTT); with 250 ms it reaches 200 ms (TCP_DELACK_MAX).
* ``"request"``: notebook 13's Nagle stall (two writes, then a reply) over the path: the server
  is interactive (pingpong); its delayed-ACK timer leaves pingpong mode and resets ato to
  TCP_ATO_MIN, so the stall stays ~44 ms whatever the RTT (a request takes 2 RTT + 44 ms).

``rtt_ms`` > 0 sends through the bottleneck path's userspace delay line (:mod:`tcplab.kernel.bottleneck`,
1 Gbit/s, so only the delay matters), which needs private namespaces.

>>> s = delayed_ack(rtt_ms=250, messages=5, mode="sim").summary
>>> s["waits_ms"], s["settled_wait_ms"]
([44.0, 84.0, 164.0, 204.0, 204.0], 204.0)
>>> delayed_ack(rtt_ms=250, messages=3, pattern="request", mode="sim").summary["waits_ms"]
[0.0, 44.0, 44.0]
"""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Mapping
from typing import Any

from tcplab.errors import ExperimentError
from tcplab.experiments.registry import make_function
from tcplab.experiments.spec import Experiment, GridPoint, Key, Param, Plot, Slider, Table, too_long
from tcplab.experiments._common import SEGMENT_COLUMNS, captured_segments
from tcplab.kernel.bottleneck import SENDER_ADDR, bottleneck_path
from tcplab.kernel.capture import Capture
from tcplab.kernel.loopback import SocketSet
from tcplab.kernel.schedstat import run_delay_s
from tcplab.kernel.tcpinfo import send_recv_queues, tcp_info
from tcplab.model.delack import delayed_ack_delay, unread_waits
from tcplab.model.outcome import Outcome, Timing
from tcplab.model.rto import HZ_TICK
from tcplab.sim.ladder import PACKET_COLUMNS, Ladder

__all__ = ["delayed_ack", "SPEC", "PATTERNS"]

PATTERNS = ("unread", "request")
#: an ACK counts as delayed when it came this much later than the path's RTT (half of TCP_DELACK_MIN)
_DELAYED_S = 0.020
#: what settled_wait_ms tolerates of the delay line's lateness (ms): it is compared within 10 %, and the
#: shortest delayed ACK is TCP_DELACK_MIN (HZ/25 = 40 ms): 4 ms. A late packet (data or its ACK) adds its
#: lateness to that message's wait.
_SETTLED = {"delay_line": 4.0, "client_late": 4.0}
_ACK_POLL_S = 0.0002
_WARMUP_MAX = 40          # quick ACKs at a connection's start: at most TCP_MAX_QUICKACKS (16) and a margin
_WAIT_MAX_S = 3.0         # no delayed ACK waits longer than 200 ms: 3 s means the path is broken
_RATE_MBIT = 1000.0


def _expected_s(p: Mapping[str, Any]) -> float:
    rtt = p["rtt_ms"] / 1000
    if p["pattern"] == "unread":
        return (_WARMUP_MAX // 2) * rtt + sum(unread_waits(rtt, p["messages"], tick=HZ_TICK)) \
            + p["messages"] * rtt + 2
    return p["messages"] * (2 * rtt + delayed_ack_delay(HZ_TICK)) + 2


def _refusal(p: dict[str, Any]) -> str | None:
    return too_long(f"delayed_ack(rtt_ms={p['rtt_ms']}, messages={p['messages']})", _expected_s(p), p["max_seconds"])


def _namespace_reason(p: Mapping[str, Any]) -> str | None:
    if p["rtt_ms"] > 0:
        return "an RTT needs the bottleneck path's namespaces, veth, TUN devices and delay line"
    return None


# -- the simulator (pure) ------------------------------------------------------------------------

def _sim(p: dict[str, Any], profile: Any, rng: Any) -> Outcome:
    tick = profile.timer_tick or HZ_TICK
    rtt = p["rtt_ms"] / 1000
    if p["pattern"] == "unread":
        waits = unread_waits(rtt, p["messages"], tick=tick)
        lat = [rtt + w for w in waits]
        note = ("simulated: tcp_event_data_recv() and tcp_delack_timer_handler() move ato, tcp_send_delayed_ack() "
                "bounds it by max(SRTT, 40 ms) and 200 ms (tcplab.model.delack.unread_waits); SRTT = rtt_ms")
    else:
        stall = delayed_ack_delay(tick)
        waits = [0.0] + [stall] * (p["messages"] - 1)
        lat = [2 * rtt + w for w in waits]
        note = ("simulated: the interactive server's delayed-ACK timer resets ato to TCP_ATO_MIN "
                "(tcp_delack_timer_handler(), pingpong mode): 40 ms + a jiffy at any RTT; the first request "
                "is quick-ACKed")
    out = Outcome()
    out.tables["messages"] = [{"n": i + 1, "latency_ms": round(x * 1000, 3), "wait_ms": round(w * 1000, 3)}
                              for i, (x, w) in enumerate(zip(lat, waits))]
    out.tables["packets"] = _sim_packets(p["pattern"], rtt, waits, p["write_size"])
    out.summary = _summary(p["rtt_ms"], waits)
    out.notes.append(note)
    out.notes.append("packets: the measured messages' segments as the client sees them (tcplab.sim.ladder; fixed ISNs, "
                     "no windows): a message at t, its (delayed) ACK at t + rtt + wait; the quick-ACKed messages "
                     "of the connection's start, which a real run sends first, are not simulated")
    return out


def _sim_packets(pattern: str, rtt: float, waits: list[float], size: int) -> list[dict[str, Any]]:
    """The segments of the simulated messages at the client (where a real run captures them): the
    handshake takes one RTT, each message leaves when the previous one's ACK (reply) arrived.

    >>> rows = _sim_packets("unread", 0.1, [0.044, 0.084], 100)
    >>> [(r["t"], r["direction"][0], r["flags"]) for r in rows[3:]]
    [(0.1, 'c', 'PA'), (0.244, 's', 'A'), (0.244, 'c', 'PA'), (0.428, 's', 'A')]
    """
    lad = Ladder()
    lad.syn(0.0)
    lad.synack(rtt)                 # seen at the client one RTT after its SYN
    lad.ack(rtt, "client")
    t = rtt
    for w in waits:
        if pattern == "unread":
            # the message; the receiver's ACK, delayed by w, crosses back: one RTT + w after it left
            lad.data(t, "client", size)
            t += rtt + w
            lad.ack(t, "server")
        else:
            # the first write, its ACK (delayed by w unless quick-ACKed), the held second write, the reply
            lad.data(t, "client", size)
            t += rtt + w
            lad.ack(t, "server")
            lad.data(t, "client", size)
            t += rtt
            lad.data(t, "server", size)
    return lad.rows


def _summary(path_rtt_ms: float, waits: list[float]) -> dict[str, Any]:
    ms = [round(w * 1000, 1) for w in waits]
    tail = ms[-3:]
    return {"path_rtt_ms": round(path_rtt_ms, 3), "waits_ms": ms,
            "settled_wait_ms": round(statistics.median(tail), 1) if tail else None,
            "max_wait_ms": max(ms) if ms else None}


# -- the real run (in the namespace child) -------------------------------------------------------

def _acked(sock: socket.socket, deadline: float, late: list[float] | None = None) -> float:
    """Poll until everything sent is acknowledged (Send-Q 0); the time it happened. ``late`` gets how
    late (s) the poll that saw it came after the one before (beyond its 0.2 ms): the ACK may have come
    that much earlier. (Not the thread's summed run_delay: a poller waits for a CPU at each of its
    hundreds of wake-ups, which adds up to tens of ms on a busy host without any one poll being late.)"""
    prev: float | None = None          # when the poll before last looked (and saw it unacknowledged)
    while (now := time.monotonic()) < deadline:
        if send_recv_queues(sock, sock)[0] == 0:
            if late is not None:
                late.append(0.0 if prev is None else max(0.0, now - prev - _ACK_POLL_S))
            return now
        prev = now
        time.sleep(_ACK_POLL_S)
    raise ExperimentError(f"no ACK within {_WAIT_MAX_S:g} s: the path lost a segment or the receiver is gone")


def _hold(lst: socket.socket, deadline: float) -> None:
    """The "unread" receiver: accept, never read, never reply (until the path is torn down)."""
    lst.settimeout(max(0.1, deadline - time.monotonic()))
    conn, _ = lst.accept()
    while time.monotonic() < deadline:
        time.sleep(0.05)
    conn.close()


def _serve(lst: socket.socket, deadline: float, size: int = 100) -> None:
    """The "request" server: read a request of two writes, reply ``size`` bytes, until the peer closes."""
    lst.settimeout(max(0.1, deadline - time.monotonic()))
    conn, _ = lst.accept()
    conn.settimeout(_WAIT_MAX_S)
    while time.monotonic() < deadline:
        need = 2 * size
        while need:
            data = conn.recv(need)
            if not data:
                conn.close()
                return
            need -= len(data)
        conn.sendall(b"r" * size)


def _cpu_wait(rd0: float | None) -> float:
    """This thread's CPU wait (s) since ``run_delay_s()`` gave ``rd0`` (0 where schedstat is missing)."""
    rd1 = run_delay_s()
    return 0.0 if rd0 is None or rd1 is None else max(0.0, rd1 - rd0)


def _path_rtt(c: socket.socket, handshake_rtt: float) -> float:
    """The path's RTT (s) after the messages: tcpi_min_rtt, the least of every RTT sample of the
    connection (the quick-ACKed ones carry no delayed ACK). The handshake's one sample alone can be
    late: in the 6.12 guest under QEMU the SYN-ACK took 109 ms on a 100 ms path (the first packets
    through a delay line that had just started), which made each wait 9 ms short of the kernel's."""
    least = tcp_info(c).extra.get("min_rtt", 0) / 1e6
    return min(handshake_rtt, least) if least > 0 else handshake_rtt


def _measure(c: socket.socket, p: Mapping[str, Any],
             cpu: list[float] | None = None) -> tuple[float, list[float], list[float], int]:
    """The client's side: (path RTT s, latencies s, waits s, warm-up messages). ``cpu`` gets, per measured
    message, how late the client saw its ACK (reply) (s): pattern "unread", the poll's lateness
    (:func:`_acked`); "request", the thread's CPU wait while it blocked for the reply (one wake-up). A
    quick ACK seen 20 ms late passes for the first delayed one (measured: waits 30.3, 1.9, 0.1, ...
    with the delay line on time)."""
    size = p["write_size"]
    rtt = tcp_info(c).extra.get("min_rtt", 0) / 1e6          # the handshake's RTT: no delayed ACK in it
    lat: list[float] = []
    cpu = [] if cpu is None else cpu
    warm = 0
    if p["pattern"] == "unread":
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(_WARMUP_MAX):                          # use up the quick ACKs of the start
            seen: list[float] = []
            t0 = time.monotonic()
            c.send(b"w" * size)
            took = _acked(c, t0 + _WAIT_MAX_S, seen) - t0
            if took > rtt + _DELAYED_S:
                lat.append(took)                              # the first delayed ACK is message 1
                cpu += seen
                break
            warm += 1
        else:
            raise ExperimentError(f"every one of {_WARMUP_MAX} ACKs came at once: no delayed ACK to measure")
        while len(lat) < p["messages"]:
            t0 = time.monotonic()
            c.send(b"m" * size)
            lat.append(_acked(c, t0 + _WAIT_MAX_S, cpu) - t0)
        rtt = _path_rtt(c, rtt)
        return rtt, lat, [max(0.0, x - rtt) for x in lat], warm
    c.settimeout(_WAIT_MAX_S)
    for _ in range(p["messages"]):
        rd0 = run_delay_s()
        t0 = time.monotonic()
        c.send(b"a" * size)
        c.send(b"b" * size)                                   # Nagle holds it for the first one's ACK
        got = 0
        while got < size:
            data = c.recv(size - got)
            if not data:
                raise ExperimentError("the server closed the connection")
            got += len(data)
        lat.append(time.monotonic() - t0)
        cpu.append(_cpu_wait(rd0))
    rtt = _path_rtt(c, rtt)
    return rtt, lat, [max(0.0, x - 2 * rtt) for x in lat], warm


def _open_capture(ss: SocketSet, out: Outcome, ifname: str, cport: int, sport: int,
                  incoming: bool = False) -> Capture | None:
    """A capture of this connection's segments on ``ifname`` (kernel time stamps), closed with the sockets;
    None, with a note, where AF_PACKET is not allowed. Read once after the messages: the kernel buffers it."""
    wire, why = Capture.try_open(ifname, ports=(cport, sport), rcvbuf=4 << 20, kernel_time=True, incoming=incoming)
    if wire is None:
        out.notes.append(f"{why}: no segments table (timeline_of shows none)")
    else:
        ss.adopt(wire.sock)
    return wire


def _read_capture(wire: Capture | None, out: Outcome) -> None:
    """What the capture holds, as the ``segments`` table (t from the capture's start)."""
    if wire is None:
        return
    captured_segments(wire, out)


def _real(p: dict[str, Any]) -> Outcome:
    out = Outcome()
    cpu: list[float] = []          # each measured message's CPU wait (s), see _measure
    receiver = _hold if p["pattern"] == "unread" else _serve
    if p["rtt_ms"] > 0:
        with bottleneck_path(_RATE_MBIT, p["rtt_ms"], 100, receiver=receiver,
                             max_seconds=_expected_s(p) * 1.5 + 10) as path:
            with SocketSet() as ss:
                c = ss.socket()
                c.settimeout(10)
                # the client's veth (a0) sees each segment leave and each ACK arrive, one RTT apart
                c.bind((SENDER_ADDR, 0))
                wire = _open_capture(ss, out, "a0", c.getsockname()[1], path.receiver[1], incoming=True)
                c.connect(path.receiver)
                rtt, lat, waits, warm = _measure(c, p, cpu)
                _read_capture(wire, out)
        out.notes += path.notes
        if path.stats is not None:
            st = path.stats
            out.notes.append(f"delay line lateness p99 {st.lateness_p99_ms:.2f} ms")
            # a handful of messages, each held up by any late packet of its own: the worst one, not a percentile
            out.timings.append(Timing("delay_line", st.lateness_max_ms,
                                      f"the delay line released a packet {st.lateness_max_ms:g} ms late (p99 "
                                      f"{st.lateness_p99_ms:g} ms of {st.packets} packets; {path.scheduling})"))
    else:
        with SocketSet() as ss:
            lst = ss.listener(1)
            c = ss.socket()
            c.bind(("127.0.0.1", 0))
            wire = _open_capture(ss, out, "lo", c.getsockname()[1], lst.getsockname()[1])
            c.connect(lst.getsockname())
            server = ss.adopt(lst.accept()[0])
            if p["pattern"] == "unread":
                rtt, lat, waits, warm = _measure(c, p, cpu)
            else:
                # one thread plays both ends on loopback: the server's side of _serve, inline
                c.settimeout(_WAIT_MAX_S)
                server.settimeout(_WAIT_MAX_S)
                rtt = tcp_info(c).extra.get("min_rtt", 0) / 1e6
                lat, size = [], p["write_size"]
                for _ in range(p["messages"]):
                    rd0 = run_delay_s()
                    t0 = time.monotonic()
                    c.send(b"a" * size)
                    c.send(b"b" * size)
                    need = 2 * size
                    while need:
                        need -= len(server.recv(need))
                    server.sendall(b"r" * size)
                    got = 0
                    while got < size:
                        got += len(c.recv(size - got))
                    lat.append(time.monotonic() - t0)
                    cpu.append(_cpu_wait(rd0))
                waits, warm = [max(0.0, x - 2 * rtt) for x in lat], 0
            _read_capture(wire, out)
        out.notes.append("loopback (no delay line): the path's RTT is the handshake's, microseconds")
    out.tables["messages"] = [{"n": i + 1, "latency_ms": round(x * 1000, 3), "wait_ms": round(w * 1000, 3)}
                              for i, (x, w) in enumerate(zip(lat, waits))]
    out.summary = _summary(rtt * 1000, waits)
    if cpu:
        worst = max(range(len(cpu)), key=cpu.__getitem__)
        out.timings.append(Timing("client_late", round(cpu[worst] * 1000, 3),
                                  f"the client saw the ACK (or reply) of message {worst + 1} up to "
                                  f"{cpu[worst] * 1000:.1f} ms late (it waited for a CPU)"))
    if p["pattern"] == "unread":
        out.notes.append(f"{warm} messages were quick-ACKed before the first delayed ACK (the connection's start); "
                         "wait = time to the ACK - the path's RTT (tcpi_min_rtt)")
    else:
        out.notes.append("wait = request latency - 2 x the path's RTT (Nagle holds the second write one RTT "
                         "plus the delayed ACK)")
    return out


SPEC = Experiment(
    name="delayed_ack",
    title="The delayed ACK's wait: 40 ms on loopback, growing with the RTT up to 200 ms when the receiver is "
          "not interactive",
    doc="""``pattern="unread"``: a client sends one ``write_size``-byte segment at a time and waits for
    its ACK from a receiver that never reads or replies; once the quick ACKs of the connection's start
    are used up, each ACK is delayed. ``icsk_ack.ato`` adapts (``tcp_event_data_recv()``) and doubles
    each time the delayed-ACK timer fires outside pingpong mode (``tcp_delack_timer_handler()``);
    ``tcp_send_delayed_ack()`` bounds it by ``max(SRTT, 40 ms)`` and TCP_DELACK_MAX (200 ms). So on
    loopback (``rtt_ms=0``) every wait is ~44 ms, the floor; with an RTT of 100 ms they grow to ~104 ms,
    with 250 ms to 200 ms. ``pattern="request"``: notebook 13's Nagle stall (two writes, one reply)
    over the same path: the interactive server's timer resets ato to 40 ms, so the stall is ~44 ms at
    any RTT. ``rtt_ms`` > 0 runs through the bottleneck path's delay line (private namespaces).
    Waits: the ACK's (or the request's) time minus the path's RTT (minus two for a request).""",
    params=(
        Param("rtt_ms", "float", 0.0, lo=0.0, hi=300.0, unit="ms",
              help="round-trip time of the path (0: plain loopback)", slider=Slider(0, 300, step=10)),
        Param("pattern", "choice", "unread", choices=PATTERNS,
              help="unread (a receiver that never replies) or request (the Nagle stall of notebook 13)"),
        Param("messages", "int", 8, lo=1, hi=200, help="measured messages (after the quick ACKs)",
              slider=Slider(1, 20)),
        Param("write_size", "int", 100, lo=1, hi=1000, unit="bytes", help="bytes per write"),
        Param("max_seconds", "float", 60.0, lo=1, hi=86400, unit="s",
              help="refuse real runs predicted to take longer (simulated time is free)"),
    ),
    summary=(
        Key("path_rtt_ms", "the path's round-trip time (tcpi_min_rtt: the handshake, no delayed ACK in it)",
            rule="shown"),
        Key("waits_ms", "each message's delayed-ACK wait (ms): time to the ACK (or reply) minus the path's RTT",
            rule="shown"),
        Key("settled_wait_ms", "median wait of the last three messages (a machine's load can stretch one wait; "
            "the median holds)", rule="rel10", tolerates=_SETTLED),
        Key("max_wait_ms", "longest wait (TCP_DELACK_MAX bounds a delayed ACK at 200 ms + a jiffy; load adds)",
            rule="shown"),
    ),
    tables=(Table("messages", ("n", "latency_ms", "wait_ms"), "one message (or request) and its ACK's wait"),
            Table("segments", SEGMENT_COLUMNS, "every segment of the connection as captured at the client (lo, or "
                  "its veth a0 when rtt_ms > 0); timeline_of draws them",
                  optional="real: only where a packet capture is allowed; simulated: never (table packets)"),
            Table("packets", PACKET_COLUMNS, "simulated: the measured messages' segments as the client sees them "
                  "(handshake's packets columns); timeline_of draws them",
                  optional="simulated runs only (real runs: table segments)")),
    timeline=None,
    grid=(
        GridPoint(dict(rtt_ms=0.0, messages=6), quick=True, why="loopback: the 40 ms floor (+ a jiffy)"),
        GridPoint(dict(rtt_ms=100.0, messages=5), quick=True, why="the wait grows to the SRTT"),
        GridPoint(dict(rtt_ms=250.0, messages=6), why="TCP_DELACK_MAX: 200 ms"),
        GridPoint(dict(rtt_ms=100.0, messages=4, pattern="request"), why="an interactive server: 44 ms at any RTT"),
    ),
    smoke=(dict(rtt_ms=0.0, messages=2),),
    real=lambda p: _real(p),
    sim=_sim,
    needs_namespace=_namespace_reason,
    real_refusal=_refusal,
    expected_s=_expected_s,
    timeout=lambda p: _expected_s(p) * 2 + 30,
    plot=Plot(y=("wait_ms",), x="n", source="messages", kind="bar", title="how long each ACK waited",
              x_title="message", y_title="ms"),
)

delayed_ack = make_function(SPEC)
