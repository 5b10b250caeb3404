"""Scenarios for single connections and ports: lifecycle, handshake, time_wait, rebind.

lifecycle/handshake drive two :class:`~tcplab.model.endpoint.Endpoint` objects over a
lossless simulated loopback (one-way delay = ``slow_motion`` ms, or 50 µs) on the
:class:`~tcplab.sim.engine.Engine`. The states reported are the distinct states each side
went through from ESTABLISHED on (from SYN_SENT for simultaneous_open), as a sampler
watching ``ss`` would see them if it never missed one.

>>> from tcplab.model.profiles import get_profile
>>> o = lifecycle({"scenario": "client_closes_first", "slow_motion": 0.0}, get_profile(None))
>>> o.summary["client_states"], o.summary["server_states"]
(['ESTABLISHED', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT'], ['ESTABLISHED', 'CLOSE_WAIT', 'LAST_ACK', 'CLOSE'])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tcplab.model.endpoint import LOOPBACK_SYN_OPTIONS, Endpoint
from tcplab.model.outcome import Outcome
from tcplab.model.ports import PortTable, bind_conflict
from tcplab.model.profiles import KernelProfile
from tcplab.model.segment import Segment
from tcplab.model.states import TcpState
from tcplab.sim.engine import Engine, Rng

__all__ = ["lifecycle", "handshake", "time_wait", "rebind", "Wire"]


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


def _states(ep: Endpoint, first: TcpState) -> list[str]:
    h = ep.history
    start = h.index(first) if first in h else 0
    return [s.name for s in h[start:]]


def lifecycle(params: dict[str, Any], profile: KernelProfile, rng: Rng | None = None) -> Outcome:
    scenario = params["scenario"]
    d = params["slow_motion"] / 1000.0 or 50e-6
    eng = Engine()
    client = Endpoint(40000, isn=1000, profile=profile)
    if scenario == "simultaneous_open":
        server = Endpoint(40001, isn=5000, profile=profile)
    else:
        server = Endpoint(5000, isn=5000, profile=profile)
    w = Wire(eng, client, server, d)
    at = eng.schedule
    step = max(10 * d, 0.1)
    if scenario == "simultaneous_open":
        at(0.0, lambda _: w.act(lambda: client.connect(eng.now, server.port)))
        at(0.0, lambda _: w.act(lambda: server.connect(eng.now, client.port)))
    else:
        w.act(lambda: server.listen(0.0))
        at(0.0, lambda _: w.act(lambda: client.connect(eng.now, server.port)))
    if scenario == "client_closes_first":
        at(step, lambda _: w.act(lambda: client.close(eng.now)))
        at(2 * step, lambda _: w.act(lambda: server.close(eng.now)))
    elif scenario == "server_closes_first":
        at(step, lambda _: w.act(lambda: server.close(eng.now)))
        at(2 * step, lambda _: w.act(lambda: client.close(eng.now)))
    elif scenario == "server_never_closes":
        at(step, lambda _: w.act(lambda: client.close(eng.now)))
    elif scenario == "abortive_close":
        at(step, lambda _: w.act(lambda: client.close(eng.now, linger0=True)))
    elif scenario == "half_close":
        at(step, lambda _: w.act(lambda: client.shutdown_write(eng.now)))
        at(2 * step, lambda _: w.act(lambda: server.send(eng.now, 13)))
        at(3 * step, lambda _: (client.read(), None)[1])
        at(4 * step, lambda _: w.act(lambda: server.close(eng.now)))
    horizon = 5.0 + 10 * step
    eng.run(until=horizon)
    first = TcpState.SYN_SENT if scenario == "simultaneous_open" else TcpState.ESTABLISHED
    summary = {"client_states": _states(client, first), "server_states": _states(server, first),
               "client_error": client.error, "server_error": server.error}
    counters: dict[str, int] = {}
    if scenario == "abortive_close":
        counters = {"TCPAbortOnData": 1, "OutRsts": 1, "EstabResets": 2}
    notes = [f"simulated loopback, one-way delay {d * 1000:g} ms; run for {horizon:g} s of simulated time",
             "states are every distinct state each side entered (a real sampler may miss short ones)"]
    if scenario == "server_never_closes":
        notes.append(f"the orphaned client FIN_WAIT2 would end after tcp_fin_timeout "
                     f"({profile.fin_timeout} s); the server stays CLOSE_WAIT forever (no timer)")
    return Outcome(summary=summary, counters=counters, tables={"packets": w.log},
                   timeline=w.samples, sysctls=profile.sysctls(), notes=notes)


def handshake(params: dict[str, Any], profile: KernelProfile, rng: Rng | None = None) -> Outcome:
    eng = Engine()
    client, server = Endpoint(40000, isn=1000, profile=profile), Endpoint(5000, isn=5000, profile=profile)
    w = Wire(eng, client, server, 50e-6)
    w.act(lambda: server.listen(0.0))
    w.act(lambda: client.connect(0.0, 5000))
    eng.run(until=1.0)
    opts = dict(LOOPBACK_SYN_OPTIONS)
    summary = {"packets": len(w.log), "mss": opts["mss"], "sack": bool(opts["sack_perm"]),
               "wscale": opts["wscale"], "timestamps": bool(profile.timestamps)}
    return Outcome(summary=summary, counters={"ActiveOpens": 1, "PassiveOpens": 1},
                   tables={"packets": w.log}, timeline=w.samples, sysctls=profile.sysctls(),
                   notes=["loopback SYN options as Linux sends them on lo (MTU 65536): MSS 65495, "
                          "SACK, timestamps, window scale 7"])


def time_wait(params: dict[str, Any], profile: KernelProfile, rng: Rng | None = None) -> Outcome:
    """KERNEL.md case 5: connect and close in a loop, one attempt every 10 ms, for ``duration`` s
    or until ``connections`` connections have been made."""
    step = 0.01                  # one connect()+close() round on loopback
    rng_ = params["port_range"] or profile.port_range
    reuse = profile.tw_reuse if params["tw_reuse"] is None else params["tw_reuse"]
    ts = bool(profile.timestamps) if params["timestamps"] is None else params["timestamps"]
    buckets = profile.max_tw_buckets if params["max_tw_buckets"] is None else params["max_tw_buckets"]
    client_closes = params["closer"] == "client"
    ports = PortTable(port_range=tuple(rng_), tw_reuse=reuse, timestamps=ts,  # type: ignore[arg-type]
                      tw_reuse_delay=profile.tw_reuse_delay_ms / 1000.0, max_tw_buckets=buckets,
                      timewait_len=profile.timewait_len)
    server_tw = PortTable(port_range=(0, 0), max_tw_buckets=buckets, counters=ports.counters,
                          timewait_len=profile.timewait_len)
    made = 0
    first_failure = None
    rows = []
    timeline = []
    i = 0
    while made < params["connections"]:
        t = round(i * step, 9)
        if t >= params["duration"]:
            break
        i += 1
        before = ports.counters["TWRecycled"]
        port = ports.connect(t)
        if port is None:
            if first_failure is None:
                first_failure = t
            rows.append({"t": t, "local_port": None, "outcome": "EADDRNOTAVAIL", "reused": False})
            continue
        made += 1
        ports.counters["ActiveOpens"] += 1
        ports.counters["PassiveOpens"] += 1
        reused = ports.counters["TWRecycled"] > before
        rows.append({"t": t, "local_port": port, "outcome": "ok", "reused": reused})
        close_t = t + 0.001
        if client_closes:
            ports.close(close_t, port)
        else:
            ports.close(close_t, port, time_wait=False)
            server_tw.time_wait[(port, made)] = close_t    # a fresh 4-tuple each time on the server
            server_tw._expire(close_t)
            if len(server_tw.time_wait) > buckets:
                del server_tw.time_wait[(port, made)]
                ports.counters["TCPTimeWaitOverflow"] += 1
            else:
                ports.counters["TW"] += 1
        timeline.append({"t": t, "time_wait": ports.time_wait_count(close_t) + len(server_tw.time_wait),
                         "connections_made": made})
    end = max(params["duration"], i * step)
    tw_now = ports.time_wait_count(end) + server_tw.time_wait_count(end)
    summary = {"time_wait": tw_now, "connections_made": made, "first_failure_at": first_failure,
               "error": "EADDRNOTAVAIL" if first_failure is not None else None,
               "reused_ports": ports.counters["TWRecycled"]}
    notes = ["one connect()+close() every 10 ms; a failed connect() is retried on the next tick; "
             "the run stops after `connections` successes or `duration` s",
             f"TIME_WAIT lasts {profile.timewait_len:g} s (TCP_TIMEWAIT_LEN) whatever tcp_fin_timeout is"]
    if not client_closes:
        notes.append("server closes first: TIME_WAIT is on the server's side and never blocks the client's ports")
    return Outcome(summary=summary, counters={k: v for k, v in ports.counters.items() if v},
                   tables={"connects": rows,
                           "sockets": [{"state": "TIME_WAIT", "local_port": p, "remote_port": 5000,
                                        "recv_q": 0, "send_q": 0} for p in sorted(ports.time_wait)]},
                   timeline=timeline,
                   sysctls=profile.sysctls(port_range=tuple(rng_), tw_reuse=reuse, timestamps=int(ts),
                                           max_tw_buckets=buckets),
                   notes=notes)


def rebind(params: dict[str, Any], profile: KernelProfile, rng: Rng | None = None) -> Outcome:
    """KERNEL.md case 7: bind()+listen() on :5000 again after the old server's connection closed."""
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
    sockets = [{"state": "TIME_WAIT", "local_port": 5000 if server_closed_first else 40000,
                "remote_port": 40000 if server_closed_first else 5000, "recv_q": 0, "send_q": 0}]
    if params["old_listener_open"]:
        sockets.insert(0, {"state": "LISTEN", "local_port": 5000, "remote_port": 0, "recv_q": 0, "send_q": 128})
    return Outcome(summary={"bound": conflict is None, "error": None if conflict is None else "EADDRINUSE",
                            "time_wait": 1},
                   counters={"TW": 1}, tables={"sockets": sockets},
                   sysctls=profile.sysctls(),
                   notes=["inet_bind_conflict(): no conflict only if the old and the new socket set "
                          "SO_REUSEADDR and the old one is not listening"
                          + (f"; conflict with: {conflict}" if conflict else "")])
