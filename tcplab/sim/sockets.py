"""Scenarios for single connections and ports: lifecycle, handshake, time_wait, rebind.

lifecycle drives :class:`~tcplab.model.endpoint.Endpoint` objects over a lossless simulated
loopback (one-way delay = ``slow_motion`` ms, or 50 µs) on the :class:`~tcplab.sim.engine.Engine`,
following the real runner's script. The states reported are the distinct states each side went
through, as the real runner derives them from the packets: from SYN_SENT (client) / SYN_RECV
(server), with or without ``slow_motion`` (the handshake's states last microseconds on plain
loopback, but the kernel goes through them). Tables and timelines have the real
runners' shapes (docs/experiments.md, "Tables and timelines").

>>> from tcplab.model.profiles import get_profile
>>> o = lifecycle({"scenario": "client_closes_first", "slow_motion": 0.0}, get_profile(None))
>>> o.summary["client_states"], o.summary["server_states"]
(['SYN_SENT', 'ESTABLISHED', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT'], ['SYN_RECV', 'ESTABLISHED', 'CLOSE_WAIT', 'LAST_ACK', 'CLOSE'])
>>> o = lifecycle({"scenario": "simultaneous_open", "slow_motion": 20.0}, get_profile(None))
>>> o.summary["client_states"], o.summary["server_states"]
(['SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT1', 'CLOSING', 'TIME_WAIT'], [])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tcplab.model.endpoint import LOOPBACK_SYN_OPTIONS, Endpoint
from tcplab.model.outcome import Outcome
from tcplab.model.ports import PortTable, bind_conflict
from tcplab.model.profiles import KernelProfile
from tcplab.model.segment import Segment
from tcplab.model.states import TcpState, time_wait_end
from tcplab.sim.engine import Engine, Rng

__all__ = ["lifecycle", "handshake", "time_wait", "rebind", "Wire", "window_scale", "SERVER_PORT"]

SERVER_PORT = 5000


class Wire:
    """Two endpoints joined by a lossless link with a fixed one-way delay."""

    def __init__(self, engine: Engine, a: Endpoint, b: Endpoint, delay: float) -> None:
        self.engine, self.delay = engine, delay
        self.ends = {a.port: a, b.port: b}
        self.log: list[dict[str, Any]] = []
        self.samples: list[dict[str, Any]] = []

    def send(self, segs: list[Segment]) -> None:
        for seg in segs:
            self.log.append({"t": self.engine.now, "src": seg.src, "dst": seg.dst, "flags": seg.flags,
                             "seq": seg.seq, "ack": seg.ack, "len": seg.length, "segment": str(seg)})
            self.engine.schedule(self.engine.now + self.delay, self._deliver, seg)

    def _deliver(self, seg: Segment) -> None:
        dst = self.ends.get(seg.dst)
        if dst is not None:
            self.act(lambda: dst.receive(self.engine.now, seg))

    def act(self, fn: Callable[[], list[Segment]]) -> None:
        """Run an endpoint call now, send what it returns, and (re)arm timers."""
        self.send(fn())
        self._record()
        for ep in self.ends.values():
            when = ep.next_timer()
            if when is not None:
                self.engine.schedule(max(when, self.engine.now), self._fire, ep, priority=1)

    def _fire(self, ep: Endpoint) -> None:
        if ep.next_timer() is not None and ep.next_timer() <= self.engine.now:  # type: ignore[operator]
            self.act(lambda: ep.on_timer(self.engine.now))

    def _record(self) -> None:
        self.samples.append({"t": self.engine.now, **{f"state_{p}": e.state.name for p, e in self.ends.items()}})


def lifecycle(params: dict[str, Any], profile: KernelProfile, rng: Rng | None = None) -> Outcome:
    """The real runner's script on a simulated loopback. Like the real runner, the result
    follows the client socket and the server's connection socket (a request sock is SYN_RECV;
    the listener is not followed); "CLOSE" means the socket is gone. The lists start at
    SYN_SENT / SYN_RECV at any ``slow_motion`` (the real runner derives them from the packets,
    so it sees the handshake even when it lasts microseconds). ``simultaneous_open`` is one
    socket connected to its own address, then closed: ``server_states`` stays empty."""
    scenario = params["scenario"]
    sm = params["slow_motion"]
    d = sm / 1000.0 or 50e-6
    hold = max(0.1, 4 * sm / 1000)
    eng = Engine()
    self_connect = scenario == "simultaneous_open"
    client = Endpoint(40000, isn=1000, profile=profile)
    server = Endpoint(5000, isn=5000, profile=profile)
    w = Wire(eng, client, server, d)
    if self_connect:
        w.ends = {client.port: client}
    events: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    now_state: dict[str, str | None] = {"client": None, "server": None}

    def observe() -> None:
        for end, ep in (("client", client), ("server", None if self_connect else server)):
            if ep is None:
                continue
            st = ep.state.name
            if st in ("LISTEN",) or (st == "CLOSE" and now_state[end] is None):
                continue
            if st != now_state[end]:
                now_state[end] = st
                changes.append({"t": round(eng.now, 6), "end": end, "state": st})

    record = w._record

    def _record() -> None:
        record()
        observe()

    w._record = _record  # type: ignore[method-assign]

    def ev(t: float, text: str, fn: Callable[[], Any] | None = None) -> None:
        def run(_: Any) -> None:
            events.append({"t": round(eng.now, 6), "event": text})
            if fn is not None:
                fn()
        eng.schedule(t, run)

    def act(fn: Callable[[], list[Segment]]) -> Callable[[], None]:
        return lambda: w.act(fn)

    def server_recv_text() -> str:
        return "b''" if server.eof else "b'hello, world\\n'"

    if not self_connect:
        w.act(lambda: server.listen(0.0))
    up = 2 * d                                  # connect() returns after one round trip
    if self_connect:
        ev(0.0, "client connect() to its own address", act(lambda: client.connect(eng.now, client.port)))
        ev(up + hold, "close()", act(lambda: client.close(eng.now)))
        end = up + 2 * hold
    else:
        ev(0.0, "client connect()", act(lambda: client.connect(eng.now, server.port)))
        ev(up, "server accept()")
        t = up + hold
        if scenario in ("client_closes_first", "server_never_closes"):
            ev(t, "client close()", act(lambda: client.close(eng.now)))
            ev(t + hold, "server recv() -> b''", lambda: server.read())
            if scenario == "client_closes_first":
                ev(t + 2 * hold, "server close()", act(lambda: server.close(eng.now)))
            t += 3 * hold
        elif scenario == "server_closes_first":
            ev(t, "server close()", act(lambda: server.close(eng.now)))
            ev(t + hold, "client recv() -> b''", lambda: client.read())
            ev(t + 2 * hold, "client close()", act(lambda: client.close(eng.now)))
            t += 2 * hold
        elif scenario == "abortive_close":
            ev(t, "client close() with SO_LINGER {1, 0}", act(lambda: client.close(eng.now, linger0=True)))

            def srv_recv() -> None:
                events[-1]["event"] = f"server recv() -> {server.error}" if server.error else "server recv() -> b''"
            ev(t + hold, "server recv()", srv_recv)
            t += hold
        elif scenario == "half_close":
            ev(t, "client shutdown(SHUT_WR)", act(lambda: client.shutdown_write(eng.now)))
            ev(t + hold, "server recv() -> b''", lambda: server.read())
            ev(t + hold, "server send(13 bytes)", act(lambda: server.send(eng.now, 13)))
            ev(t + 2 * hold, "client recv() -> b'hello, world\\n'", lambda: client.read())
            ev(t + 2 * hold, "server close()", act(lambda: server.close(eng.now)))
            ev(t + 3 * hold, "client recv() -> b''", lambda: client.read())
            # the client is TIME_WAIT by now: close() only releases the descriptor
            ev(t + 3 * hold, "client close()",
               act(lambda: client.close(eng.now) if client.state.name not in ("TIME_WAIT", "CLOSE") else []))
            t += 3 * hold
        end = t + hold
    eng.run(until=end)
    timeline: list[dict[str, Any]] = []
    cur: dict[str, str | None] = {"client": None, "server": None}
    for e in events:   # first: at equal times the script's step comes before what it caused
        timeline.append({"t": e["t"], "client": None, "server": None, "event": e["event"]})
    for ch in changes:
        cur[ch["end"]] = ch["state"]
        timeline.append({"t": ch["t"], "client": cur["client"], "server": cur["server"],
                         "event": f"{ch['end']} -> {ch['state']}"})
    timeline.sort(key=lambda r: r["t"])
    last: dict[str, str | None] = {"client": None, "server": None}
    for row in timeline:
        for side in ("client", "server"):
            if row[side] is None:
                row[side] = last[side]
            last[side] = row[side]
    summary = {"client_states": [c["state"] for c in changes if c["end"] == "client"],
               "server_states": [c["state"] for c in changes if c["end"] == "server"],
               "client_error": client.error, "server_error": server.error}
    summary["time_wait_end"] = time_wait_end(summary["client_states"], summary["server_states"])
    counters: dict[str, int] = {}
    if scenario == "abortive_close":
        counters = {"TCPAbortOnData": 1, "OutRsts": 1, "EstabResets": 2}
    notes = [f"simulated loopback, one-way delay {d * 1000:g} ms; each step waits {hold:.2f} s "
             f"like the real script; run for {end:g} s of simulated time"]
    if scenario == "server_never_closes":
        notes.append(f"the orphaned client FIN_WAIT2 would end after tcp_fin_timeout "
                     f"({profile.fin_timeout} s); the server stays CLOSE_WAIT forever (no timer)")
    return Outcome(summary=summary, counters=counters, tables={"events": events},
                   timeline=timeline, sysctls=profile.sysctls(), notes=notes)


#: tcp_rmem of a fresh Linux network namespace (same default in 5.15, 6.1 and 6.18)
DEFAULT_TCP_RMEM = (4096, 131072, 6291456)
LO_MSS = 65495          # IPV4_MAX_PMTU 65535 - 40: ipv4_default_advmss() caps lo's MTU 65536 - 40 = 65496
TS_LEN = 12             # the timestamp option, taken off the MSS once negotiated


def window_scale(rmem_max: int) -> int:
    """``tcp_select_initial_window()``: the smallest shift with ``rmem_max >> shift`` in 16 bits
    (at most 14).

    >>> window_scale(6291456), window_scale(33554432), window_scale(65535)
    (7, 10, 0)
    """
    ws = 0
    while (rmem_max >> ws) > 0xFFFF and ws < 14:
        ws += 1
    return ws


def handshake(params: dict[str, Any], profile: KernelProfile, rng: Rng | None = None) -> Outcome:
    """The real runner's connection on a simulated loopback: connect, 13 bytes each way,
    client close(), server close(); the same 10 segments the kernel sends on lo (the server's
    ACK of the client's FIN rides on its own FIN)."""
    rmem = DEFAULT_TCP_RMEM
    ws = window_scale(rmem[2])
    ts = bool(profile.timestamps)
    mss_eff = LO_MSS - (TS_LEN if ts else 0)
    win = -(-mss_eff // (1 << ws))          # the rounded-up scaled window after the handshake
    ci, si = 1000, 5000
    tsv = {"client->server": 100, "server->client": 500}
    C, S_ = "client->server", "server->client"
    # (direction, flags, seq offset, ack offset, payload)
    script = [(C, "S", 0, None, 0), (S_, "SA", 0, 1, 0), (C, "A", 1, 1, 0), (C, "PA", 1, 1, 13),
              (S_, "A", 1, 14, 0), (S_, "PA", 1, 14, 13), (C, "A", 14, 14, 0), (C, "FA", 14, 14, 0),
              (S_, "FA", 14, 15, 0), (C, "A", 15, 15, 0)]
    rows = []
    for n, (dr, fl, so, ao, pl) in enumerate(script):
        mine, other = (ci, si) if dr == C else (si, ci)
        opts: list[str] = []
        if "S" in fl:
            opts += [f"mss={LO_MSS}", "sack_perm"]
        if ts:
            peer = S_ if dr == C else C
            ecr = 0 if fl == "S" else tsv[peer]
            opts += [f"ts_val={tsv[dr]}", f"ts_ecr={ecr}"]
        if "S" in fl:
            opts.append(f"wscale={ws}")
        window = LO_MSS if fl == "S" else mss_eff if fl == "SA" else win
        rows.append({"t": round(n * 2e-5, 6), "direction": dr, "flags": fl, "seq": mine + so,
                     "ack": 0 if ao is None else other + ao, "rel_seq": so, "rel_ack": ao,
                     "window": window, "payload": pl, "options": ", ".join(opts)})
    max_window = win << ws
    info = [{"end": end, "state_before_close": "ESTABLISHED", "timestamps": ts, "sack": True, "wscale": True,
             "snd_wscale": ws, "rcv_wscale": ws, "snd_mss": min(mss_eff, max_window // 2), "rcv_mss": 536,
             "rto_ms": 204.0} for end in ("client", "server")]
    summary = {"packets": len(rows), "mss": LO_MSS, "sack": True, "wscale": ws, "timestamps": ts}
    sysctls = profile.sysctls()
    sysctls["net.ipv4.tcp_rmem"] = rmem
    return Outcome(summary=summary, counters={"ActiveOpens": 1, "PassiveOpens": 1},
                   tables={"tcp_info": info, "packets": rows}, timeline=[], sysctls=sysctls,
                   notes=[f"loopback options as Linux sends them on lo (MTU 65536): MSS {LO_MSS}, SACK, "
                          f"timestamps; window scale {ws} from the default tcp_rmem max {rmem[2]} "
                          "(tcp_select_initial_window()); a host with another tcp_rmem (e.g. 33554432: 10) "
                          "announces another window scale",
                          "ISNs and timestamps are fixed (1000, 5000); the kernel's are random"])


def time_wait(params: dict[str, Any], profile: KernelProfile, rng: Rng | None = None) -> Outcome:
    """docs/kernel-facts.md case 5: connect and close in a loop, one attempt every 10 ms, for ``duration`` s
    or until ``connections`` connections have been made. ``reused_ports`` counts connections
    on a local port already used earlier in the run (as the real runner)."""
    step = 0.01                  # one connect()+close() round on loopback
    rng_ = params["port_range"] or profile.port_range
    reuse = profile.tw_reuse if params["tw_reuse"] is None else params["tw_reuse"]
    ts = bool(profile.timestamps) if params["timestamps"] is None else params["timestamps"]
    buckets = profile.max_tw_buckets if params["max_tw_buckets"] is None else params["max_tw_buckets"]
    client_closes = params["closer"] == "client"
    # before 6.14 reuse waits for the seconds clock to tick: where in its second the run starts is
    # the host's chance, so the simulated run draws it (the real kernel's phase is not observable)
    phase = None if profile.tw_reuse_ms else (rng.random() if rng is not None else 0.5)
    ports = PortTable(port_range=tuple(rng_), tw_reuse=reuse, timestamps=ts,  # type: ignore[arg-type]
                      tw_reuse_delay=profile.tw_reuse_delay_ms / 1000.0, seconds_phase=phase, max_tw_buckets=buckets,
                      timewait_len=profile.timewait_len)
    server_tw = PortTable(port_range=(0, 0), max_tw_buckets=buckets, counters=ports.counters,
                          timewait_len=profile.timewait_len)
    made = 0
    first_failure = None
    rows = []
    seen: set[int] = set()
    reused_total = 0
    i = 0
    while made < params["connections"]:
        t = round(i * step, 9)
        if t >= params["duration"]:
            break
        i += 1
        port = ports.connect(t)
        if port is None:
            if first_failure is None:
                first_failure = t
            rows.append({"t": t, "ok": False, "local_port": None, "reused": False, "error": "EADDRNOTAVAIL"})
            continue
        made += 1
        ports.counters["ActiveOpens"] += 1
        ports.counters["PassiveOpens"] += 1
        again = port in seen
        seen.add(port)
        reused_total += again
        rows.append({"t": t, "ok": True, "local_port": port, "reused": again, "error": None})
        close_t = t + 0.001
        if client_closes:
            ports.close(close_t, port)
        else:
            ports.close(close_t, port, time_wait=False)
            server_tw.time_wait[(port, made)] = close_t    # type: ignore[index]  # a fresh 4-tuple each time
            server_tw._expire(close_t)
            if len(server_tw.time_wait) > buckets:
                del server_tw.time_wait[(port, made)]      # type: ignore[arg-type]
                ports.counters["TCPTimeWaitOverflow"] += 1
            else:
                ports.counters["TW"] += 1
    end = max(params["duration"], i * step)
    tw_now = ports.time_wait_count(end) + server_tw.time_wait_count(end)
    srv = f"127.0.0.1:{SERVER_PORT}"
    tw_rows = [{"local": f"127.0.0.1:{p}", "remote": srv} for p in sorted(ports.time_wait)]
    tw_rows += [{"local": srv, "remote": f"127.0.0.1:{k[0]}"} for k in server_tw.time_wait]  # type: ignore[index]
    summary = {"time_wait": tw_now, "connections_made": made, "first_failure_at": first_failure,
               "error": "EADDRNOTAVAIL" if first_failure is not None else None,
               "reused_ports": reused_total}
    notes = ["one connect()+close() every 10 ms; a failed connect() is retried on the next tick; "
             "the run stops after `connections` successes or `duration` s",
             "connect() takes ports of the range start's parity first, like __inet_hash_connect()",
             f"TIME_WAIT lasts {profile.timewait_len:g} s (TCP_TIMEWAIT_LEN) whatever tcp_fin_timeout is"]
    if not client_closes:
        notes.append("server closes first: TIME_WAIT is on the server's side and never blocks the client's ports")
    return Outcome(summary=summary, counters={k: v for k, v in ports.counters.items() if v},
                   tables={"attempts": rows, "time_wait_sockets": tw_rows},
                   timeline=[],
                   sysctls=profile.sysctls(port_range=tuple(rng_), tw_reuse=reuse, timestamps=int(ts),
                                           max_tw_buckets=buckets),
                   notes=notes)


def rebind(params: dict[str, Any], profile: KernelProfile, rng: Rng | None = None) -> Outcome:
    """docs/kernel-facts.md case 7: bind()+listen() on :5000 again after the old server's connection closed."""
    server_closed_first = params["closer"] == "server"
    others: list[tuple[bool, str, str]] = []         # (sk_reuse, state, what)
    if params["old_listener_open"]:
        others.append((params["old_reuseaddr"], "LISTEN", "old listener"))
    if server_closed_first:
        # the TIME_WAIT mini-socket stays in :5000's bind bucket and keeps the old sk_reuse
        others.append((params["old_reuseaddr"], "TIME_WAIT", "TIME_WAIT on :5000"))
    # a client-side TIME_WAIT sits on the client's ephemeral port, not in :5000's bucket
    conflict = next((what for reuse, st, what in others
                     if bind_conflict(params["new_reuseaddr"], reuse, st)), None)
    c_port = 40000
    srv, cli = f"127.0.0.1:{SERVER_PORT}", f"127.0.0.1:{c_port}"
    tw_rows = [{"local": srv if server_closed_first else cli, "remote": cli if server_closed_first else srv,
                "on_server_port": server_closed_first}]
    return Outcome(summary={"bound": conflict is None, "error": None if conflict is None else "EADDRINUSE",
                            "time_wait": 1},
                   counters={"TW": 1}, tables={"time_wait_sockets": tw_rows},
                   sysctls=profile.sysctls(),
                   notes=["inet_bind_conflict(): no conflict only if the old and the new socket set "
                          "SO_REUSEADDR and the old one is not listening"
                          + (f"; conflict with: {conflict}" if conflict else "")])
