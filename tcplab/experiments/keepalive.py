"""keepalive: an idle connection whose peer disappears (or stays, or answers with RST).

The client sets SO_KEEPALIVE, TCP_KEEPIDLE=``idle``, TCP_KEEPINTVL=``interval`` and
TCP_KEEPCNT=``count`` before connecting, so ``tcp_finish_connect()`` arms the keepalive timer at
the handshake; nothing is ever sent. Then, by ``peer``:

* ``"silent"``: the peer vanishes without a word. Silenced by taking ``lo`` down inside the private
  namespace (an ioctl, as ``ip link set lo down``): the probes find no route and reach nobody, and
  nothing comes back. (A blackhole that drops packets on the way may give other figures: this is
  the method measured.)
* ``"alive"``: the peer stays; each probe is ACKed at once and the connection lives on. We stop
  watching after ``count`` answered probes.
* ``"close_wait_rst"``: the peer closes first (its FIN puts our socket in CLOSE_WAIT, and our
  program never closes it), then its host forgets the connection (lo down, peer reset with
  SO_LINGER 0 — the RST is lost — lo up). Our probe reaches a port without a socket, which
  answers RST: ``tcp_reset()`` ends our socket with EPIPE.

The timer rules are :mod:`tcplab.model.keepalive` (``tcp_keepalive_timer()``). Probes are timed
by polling the socket's TCP_INFO every 5 ms: ``tcpi_probes`` (unanswered probes) grows for a
silent peer, ``tcpi_last_ack_recv`` restarts for an answered one.
"""

from __future__ import annotations

import errno
import socket
import struct
import time
from collections.abc import Mapping
from typing import Any

from tcplab.model.rto import HZ_TICK
from tcplab.errors import ExperimentError
from tcplab.experiments._common import Clock, counters_now, delta
from tcplab.experiments.registry import make_function
from tcplab.experiments.spec import Experiment, GridPoint, Key, Param, Plot, Slider, Table, too_long
from tcplab.kernel.fds import fd_of_socket, socket_inode_of
from tcplab.kernel.loopback import SocketSet, tcp_state, wait_until
from tcplab.kernel.namespace import set_loopback
from tcplab.kernel.procnet import read_proc_net_tcp
from tcplab.kernel.tcpinfo import tcp_info
from tcplab.model.keepalive import (MAX_TCP_KEEPCNT, MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, PEERS,
                                    KeepaliveSchedule, keepalive_schedule)
from tcplab.model.outcome import Outcome, Timing

__all__ = ["keepalive", "SPEC", "predict"]

_POLL_S = 0.005
#: the tick the real runner's predictions use (the default profile's HZ; the simulator takes
#: the profile's)
_TICK = HZ_TICK


def predict(p: Mapping[str, Any], tick: float = _TICK) -> KeepaliveSchedule:
    """The keepalive schedule the model predicts for validated parameters ``p``."""
    return keepalive_schedule(p["idle"], p["interval"], p["count"], p["peer"], tick=tick,
                              user_timeout_ms=p["user_timeout"])


def _expected_s(p: Mapping[str, Any]) -> float:
    s = predict(p)
    return s.ended_at if s.ended_at is not None else s.probe_times[-1]


def _refusal(p: dict[str, Any]) -> str | None:
    return too_long(f"keepalive(idle={p['idle']}, interval={p['interval']}, count={p['count']}, peer={p['peer']!r})",
                    _expected_s(p), p["max_seconds"])


def _namespace_reason(p: Mapping[str, Any]) -> str | None:
    if p["peer"] == "alive":
        return None  # per-socket options only: the host namespace will do
    return "it silences the peer by taking lo down, which only a private network namespace may do"


# -- the simulator (pure) ------------------------------------------------------------------------

def _outcome(s: KeepaliveSchedule, predicted: KeepaliveSchedule) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = [{"n": i + 1, "sent_at_s": t, "predicted_s": predicted.probe_times[i] if i < len(predicted.probe_times) else None,
             "answer": s.answers[i] if i < len(s.answers) else None} for i, t in enumerate(s.probe_times)]
    summary = {"detected_after_s": s.ended_at, "probes_sent": len(s.probe_times), "error": s.error,
               "probe_times": list(s.probe_times), "end_state": s.end_state,
               # the program never closes the socket: its descriptor stays whatever TCP did; a socket
               # that ended (tcp_done(): unhashed) is no longer a row of /proc/net/tcp or ss
               "fd_open_at_end": True, "listed_at_end": s.end_state != "CLOSE"}
    return summary, rows


def _sim(p: dict[str, Any], profile: Any, rng: Any) -> Outcome:
    s = predict(p, tick=profile.timer_tick or _TICK)
    out = Outcome()
    out.summary, out.tables["probes"] = _outcome(s, s)
    out.counters = {"TCPKeepAlive": len(s.probe_times)}
    if s.error == "ETIMEDOUT":
        out.counters["TCPAbortOnTimeout"] = 1
    rows = [{"t": 0.0, "state": "CLOSE_WAIT" if p["peer"] == "close_wait_rst" else "ESTABLISHED", "unanswered": 0}]
    if p["peer"] == "silent":
        rows += [{"t": when, "state": "ESTABLISHED", "unanswered": i + 1} for i, when in enumerate(s.probe_times)]
    if s.ended_at is not None:
        rows.append({"t": s.ended_at, "state": "CLOSE", "unanswered": rows[-1]["unanswered"]})
    out.timeline = rows
    out.notes.append(f"simulated timer wheel at HZ={round(1 / (profile.timer_tick or _TICK))}")
    return out


# -- the real run (in the namespace child) -------------------------------------------------------

def _keepalive_socket(ss: SocketSet, p: Mapping[str, Any]) -> socket.socket:
    c = ss.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, p["idle"])
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, p["interval"])
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, p["count"])
    if p["user_timeout"] is not None:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, p["user_timeout"])
    return c


def _real(p: dict[str, Any]) -> Outcome:
    predicted = predict(p)
    deadline = _expected_s(p) * 1.3 + 3
    out = Outcome()
    observed = KeepaliveSchedule()
    with SocketSet() as ss:
        lst = ss.listener(1)
        c = _keepalive_socket(ss, p)
        c.connect(lst.getsockname())          # blocking: returns once ESTABLISHED (timer armed)
        clock = Clock()                       # idle from here on
        server = ss.adopt(lst.accept()[0])
        before = counters_now()
        if p["peer"] == "silent":
            set_loopback(False)
        elif p["peer"] == "close_wait_rst":
            server.shutdown(socket.SHUT_WR)   # the peer's FIN: our socket goes CLOSE_WAIT
            clock = Clock()                   # idle from the FIN on (it updated rcv_tstamp)
            # wait for our ACK of that FIN to reach the peer (it may be a delayed ACK), so the
            # peer's host has nothing left to say before it forgets the connection
            if not wait_until(lambda: tcp_state(server) == "FIN_WAIT2", 1.0, 0.001):
                raise ExperimentError(f"the peer is {tcp_state(server)}, not FIN_WAIT2, after its FIN")
            set_loopback(False)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            server.close()                    # its RST finds no route: lost
            set_loopback(True)
        rows, last, last_ack = [], None, None
        # how late the poll came round at the samples that timed an event (s): the silent peer's probes, a
        # RST's, the end. An answered probe is timed by the kernel (last_ack_recv), not by the poll.
        seen, probe_late, end_late = None, 0.0, 0.0
        while clock() < deadline:
            info = tcp_info(c)
            now = clock()
            gap = 0.0 if seen is None else max(0.0, now - seen - _POLL_S)
            seen = now
            ack_ms = info.extra.get("last_ack_recv", 0)
            if p["peer"] == "silent" and info.probes > len(observed.probe_times):
                observed.probe_times.append(round(now, 3))
                observed.answers.append(None)
                probe_late = max(probe_late, gap)
            if p["peer"] == "alive" and last_ack is not None and ack_ms < last_ack:
                observed.probe_times.append(round(now - ack_ms / 1000, 3))   # answered: rcv_tstamp restarted
                observed.answers.append("ACK")
            last_ack = ack_ms
            key = (info.state, info.probes)
            if key != last:
                rows.append({"t": round(now, 3), "state": info.state, "unanswered": info.probes})
                last = key
            if info.state == "CLOSE":
                if p["peer"] == "close_wait_rst" and info.probes:
                    observed.probe_times.append(round(now, 3))
                    observed.answers.append("RST")
                    probe_late = max(probe_late, gap)
                observed.ended_at = round(now, 3)
                end_late = gap
                code = c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                observed.error = errno.errorcode.get(code, str(code)) if code else None
                break
            if p["peer"] == "alive" and len(observed.probe_times) >= p["count"]:
                break
            time.sleep(_POLL_S)
        observed.end_state = tcp_info(c).state
        if p["peer"] == "silent":
            set_loopback(True)
        inode = socket_inode_of(c)
        fd_open = fd_of_socket(inode) is not None
        listed = any(r.inode == inode for r in read_proc_net_tcp())
        out.counters = delta(before, keep=("TCPKeepAlive",))
    if observed.ended_at is None and p["peer"] != "alive":
        out.notes.append(f"the socket had not ended after {deadline:.1f} s; stopped watching")
    out.summary, out.tables["probes"] = _outcome(observed, predicted)
    polled = [t for t, a in zip(observed.probe_times, observed.answers) if a != "ACK"]  # noqa: B905
    if polled:
        # probe_times are compared within 10 % (list_rel10): a tenth of the first
        out.timings.append(Timing("probe_poll", round(probe_late * 1000, 3),
                                  f"the poll, asked to look every {_POLL_S * 1000:.0f} ms, saw a probe "
                                  f"{probe_late * 1000:.0f} ms late", limit_ms=round(0.1 * min(polled) * 1000, 3)))
    if observed.ended_at is not None:
        # detected_after_s within 10 % (rel10)
        out.timings.append(Timing("end_poll", round(end_late * 1000, 3),
                                  f"the poll, asked to look every {_POLL_S * 1000:.0f} ms, saw the socket end "
                                  f"{end_late * 1000:.0f} ms late",
                                  limit_ms=round(0.1 * observed.ended_at * 1000, 3)))
    out.summary["fd_open_at_end"], out.summary["listed_at_end"] = fd_open, listed
    out.timeline = rows
    out.notes.append({"silent": "peer silenced by taking lo down in the private namespace (probes find no route)",
                      "alive": "the peer stayed: each probe was ACKed; stopped watching after TCP_KEEPCNT answers",
                      "close_wait_rst": "peer closed (FIN), then its host forgot the connection (lo down, SO_LINGER 0 "
                                        "reset lost, lo up): the probe got a RST"}[p["peer"]])
    if p["user_timeout"] is not None:
        out.notes.append(f"TCP_USER_TIMEOUT={p['user_timeout']} ms: tcp_keepalive_timer() gives up on elapsed "
                         "time and ignores TCP_KEEPCNT")
    out.notes.append(f"the model predicts probes at {predicted.probe_times} s"
                     + (f" and the end at {predicted.ended_at} s ({predicted.error})" if predicted.ended_at else ""))
    return out


SPEC = Experiment(
    name="keepalive",
    title="Keepalive on an idle connection: the probes, their times, and how a dead peer is noticed",
    doc="""The client sets SO_KEEPALIVE with TCP_KEEPIDLE=``idle``, TCP_KEEPINTVL=``interval`` and
    TCP_KEEPCNT=``count`` and stays idle. ``peer="silent"``: the peer vanishes (lo is taken down
    in the private namespace): probes at idle, idle+interval, ..., and after ``count``
    unanswered probes ``tcp_keepalive_timer()`` gives up with ETIMEDOUT, at about idle +
    count*interval (5.08 s for 2, 1, 3: the timer wheel adds up to 32 ms per timer at HZ=250).
    ``peer="alive"``: every probe is ACKed and the next one comes an idle time later; we stop
    after ``count`` answers. ``peer="close_wait_rst"``: our socket is in CLOSE_WAIT (the keepalive
    timer skips only CLOSE and SYN_SENT) and the peer's host answers the first probe with RST:
    EPIPE after ``idle``. ``user_timeout`` (TCP_USER_TIMEOUT, ms): the timer gives up on elapsed
    time instead and ignores TCP_KEEPCNT - at the first expiry, one probe at least sent, that finds
    the connection idle for ``user_timeout`` (2, 1, count=1, user_timeout=4000: two probes, the end
    at ~4.06 s). Probe times are seconds after the connection went idle. Real runs
    predicted to take longer than ``max_seconds`` are refused in mode="real".""",
    params=(
        Param("idle", "int", 2, lo=1, hi=MAX_TCP_KEEPIDLE, unit="s", help="TCP_KEEPIDLE: idle time before the first probe",
              slider=Slider(1, 10)),
        Param("interval", "int", 1, lo=1, hi=MAX_TCP_KEEPINTVL, unit="s", help="TCP_KEEPINTVL: time between probes",
              slider=Slider(1, 5)),
        Param("count", "int", 3, lo=1, hi=MAX_TCP_KEEPCNT, help="TCP_KEEPCNT: unanswered probes before giving up",
              slider=Slider(1, 9)),
        Param("user_timeout", "int", None, lo=1, hi=3_600_000, optional=True, unit="ms",
              help="TCP_USER_TIMEOUT on the keepalive socket (None: not set); set, it replaces TCP_KEEPCNT"),
        Param("peer", "choice", "silent", choices=PEERS,
              help="silent (vanished), alive (answers), close_wait_rst (CLOSE_WAIT socket, the peer's host sends RST)"),
        Param("max_seconds", "float", 60.0, lo=1, hi=86400 * 30, unit="s",
              help="refuse real runs predicted to take longer (simulated time is free)"),
    ),
    summary=(
        Key("detected_after_s", "seconds after the connection went idle until the socket ended (None: it did not)",
            rule="rel10"),
        Key("probes_sent", "keepalive probes sent"),
        Key("error", "the socket's error at the end (ETIMEDOUT, EPIPE) or None"),
        Key("probe_times", "seconds after the connection went idle of each probe", rule="list_rel10"),
        Key("end_state", "the socket's state when we stopped watching"),
        Key("fd_open_at_end", "the program's file descriptor of the socket is still open at the end (it never "
            "calls close(): keepalive ends the connection, not the descriptor)", rule="exact"),
        Key("listed_at_end", "the socket is still a row of /proc/net/tcp (what ss lists) at the end", rule="exact"),
    ),
    tables=(Table("probes", ("n", "sent_at_s", "predicted_s", "answer"),
                  "one keepalive probe (answer: ACK, RST or None for silence)"),),
    timeline=("t", "state", "unanswered"),
    grid=(
        GridPoint(dict(idle=2, interval=1, count=3), quick=True, why="docs/kernel-facts.md: ETIMEDOUT after 5.08 s"),
        GridPoint(dict(idle=1, interval=1, count=2, peer="close_wait_rst"), quick=True,
                  why="notebook 06: a CLOSE_WAIT socket probes too"),
        GridPoint(dict(idle=1, interval=2, count=2), why="interval longer than idle"),
        GridPoint(dict(idle=3, interval=1, count=1)),
        GridPoint(dict(idle=1, interval=1, count=3, peer="alive")),
        GridPoint(dict(idle=2, interval=3, count=2, peer="alive"), why="answered probes come max(idle, interval) apart"),
        GridPoint(dict(idle=3, interval=1, count=5, peer="close_wait_rst")),
        GridPoint(dict(idle=2, interval=1, count=1, user_timeout=4000), quick=True,
                  why="TCP_USER_TIMEOUT replaces TCP_KEEPCNT: two probes where the count says one"),
        GridPoint(dict(idle=1, interval=1, count=9, user_timeout=2500),
                  why="a user timeout shorter than count x interval ends it first"),
    ),
    smoke=(dict(idle=1, interval=1, count=1),),
    real=lambda p: _real(p),
    sim=_sim,
    needs_namespace=_namespace_reason,
    real_refusal=_refusal,
    expected_s=_expected_s,
    timeout=lambda p: _expected_s(p) * 1.5 + 20,
    progress=True,
    plot=Plot(y=("sent_at_s", "predicted_s"), x="n", source="probes", kind="markers", title="when each probe left",
              x_title="probe", y_title="seconds after the connection went idle",
              figure="timers:keepalive_figure", table="timers:keepalive_table"),
)

keepalive = make_function(SPEC)
