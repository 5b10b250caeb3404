"""syn_retries: how long connect() keeps retransmitting SYNs that are dropped
(docs/kernel-facts.md case 3). Each SYN is timed by polling TCP_INFO every 2 ms.

>>> predict_syn_times(2, 4)
([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 7.0)
>>> predict_syn_times(3, 0)
([0.0, 1.0, 3.0, 7.0], 15.0)
"""

from __future__ import annotations

import socket
import time
from typing import Any

from collections.abc import Mapping

from tcplab.errors import ExperimentError
from tcplab.experiments._common import (SEGMENT_COLUMNS, Clock, LagMeter, captured_segments, counters_now, delta,
                                        wait_accept_queue)
from tcplab.experiments.registry import make_function
from tcplab.experiments.spec import Experiment, GridPoint, Key, Param, Plot, Slider, Table, too_long
from tcplab.kernel.capture import Capture
from tcplab.kernel.loopback import SocketSet, connect_error, socket_inode, tcp_state
from tcplab.kernel.sysctl import read_sysctl, sysctl_exists
from tcplab.kernel.tcpinfo import tcp_info
from tcplab.model.outcome import Outcome
from tcplab.model.retries import syn_schedule
from tcplab.sim.ladder import PACKET_COLUMNS
from tcplab.sim.queues import syn_retries as sim_syn_retries


__all__ = ["syn_retries", "predict_syn_times", "SPEC"]

LINEAR = "net.ipv4.tcp_syn_linear_timeouts"
RECORD = ("net.ipv4.tcp_syn_retries", LINEAR, "net.ipv4.tcp_rto_min_us")
_POLL_S = 0.002
#: sampler lag above which the run says the host was too busy: half of the 10 % a schedule may
#: differ from the rules at the first 1 s retransmission
_LAG_LIMIT_S = 0.05


def predict_syn_times(retries: int, linear_timeouts: int, rto_s: float = 1.0) -> tuple[list[float], float]:
    """SYN send times and the failure time the 6.x rules predict: the model's
    :func:`tcplab.model.retries.syn_schedule` (the one copy of ``tcp_write_timeout()`` /
    ``tcp_retransmit_timer()``), as ``(send_times, fail_after)``."""
    sched = syn_schedule(retries, linear_timeouts, rto_s)
    return list(sched.send_times), sched.fail_after


def _linear(p: Mapping[str, Any]) -> int:
    """tcp_syn_linear_timeouts a real run will have: the parameter, or a fresh namespace's default
    (4 where the sysctl exists, 6.5+; kernels without it behave like 0)."""
    if p["linear_timeouts"] is not None:
        return int(p["linear_timeouts"])
    return 4 if sysctl_exists(LINEAR) else 0


def _expected_s(p: Mapping[str, Any]) -> float:
    return predict_syn_times(p["retries"], _linear(p))[1]


def _refusal(p: dict[str, Any]) -> str | None:
    return too_long(f"syn_retries(retries={p['retries']}, linear_timeouts={_linear(p)})", _expected_s(p),
                    p["max_seconds"])


SPEC = Experiment(
    name="syn_retries",
    title="Time the SYN retransmissions of a client whose SYNs are all dropped: when does connect() give up?",
    doc="""The listener has backlog 0 and already holds one connection, so its accept queue is
    full and every SYN is dropped (``tcp_conn_request()``: ListenOverflows). The client sets
    TCP_SYNCNT=``retries``; ``linear_timeouts`` sets tcp_syn_linear_timeouts in the namespace.
    ``tcp_write_timeout()`` gives up at the first RTO where retransmits >= retries +
    linear_timeouts or the elapsed time reached (2^(retries+1) - 1) s (docs/kernel-facts.md case 3). Each SYN
    is timed by polling TCP_INFO every 2 ms. Real runs predicted to take longer than
    ``max_seconds`` are refused in mode="real" (simulated in mode="auto"); raise it to run them.""",
    params=(
        Param("retries", "int", 2, lo=1, hi=127, help="TCP_SYNCNT of the client (like tcp_syn_retries)",
              slider=Slider(1, 8)),
        Param("linear_timeouts", "int", None, lo=0, hi=255, optional=True,
              sysctl="net.ipv4.tcp_syn_linear_timeouts", help="retransmits at a fixed 1 s RTO before backoff",
              slider=Slider(0, 6)),
        Param("max_seconds", "float", 60.0, lo=1, hi=86400, unit="s",
              help="refuse real runs predicted to take longer (simulated time is free)"),
    ),
    summary=(
        Key("retransmit_times", "seconds after connect() of each retransmitted SYN", rule="list_rel10"),
        Key("failed_after", "seconds until connect() failed", rule="rel10"),
        Key("error", "connect()'s errno name (ETIMEDOUT)"),
        Key("retransmissions", "SYNs retransmitted"),
        Key("syns_sent", "SYNs sent in all"),
    ),
    tables=(Table("syns", ("n", "sent_at_s", "predicted_s", "rto_ms", "backoff"),
                  "one SYN (the first has no rto_ms/backoff)"),
            Table("segments", SEGMENT_COLUMNS, "every segment of the client's connection as captured on lo, t from "
                  "connect() (the SYNs; none is answered); timeline_of draws them",
                  optional="real: only where a packet capture on lo is allowed; simulated: never (table packets)"),
            Table("packets", PACKET_COLUMNS, "simulated: the SYNs at the schedule's times (handshake's packets "
                  "columns); timeline_of draws them", optional="simulated runs only (real runs: table segments)")),
    timeline=("t", "state", "retransmits", "total_retrans", "backoff", "rto_ms"),
    grid=(
        # docs/kernel-facts.md case 3
        GridPoint(dict(retries=1, linear_timeouts=0), quick=True),
        GridPoint(dict(retries=1, linear_timeouts=4), quick=True),
        GridPoint(dict(retries=2, linear_timeouts=0)),
        GridPoint(dict(retries=2, linear_timeouts=4)),
        GridPoint(dict(retries=3, linear_timeouts=0)),
    ),
    real=lambda p: _real(p),
    sim=sim_syn_retries,
    record=RECORD,
    real_refusal=_refusal,
    expected_s=_expected_s,
    timeout=lambda p: _expected_s(p) * 1.3 + 15,
    progress=True,
    plot=Plot(y=("sent_at_s", "predicted_s"), x="n", source="syns", kind="markers",
              title="when each SYN left", x_title="SYN number", y_title="seconds after connect()"),
)

syn_retries = make_function(SPEC)


def _real(p: dict[str, Any]) -> Outcome:

    # the value in force in this namespace; kernels before 6.5 have no such sysctl and behave like 0
    lin = int(read_sysctl(LINEAR)) if sysctl_exists(LINEAR) else 0
    predicted, predicted_fail = predict_syn_times(p["retries"], lin)
    out = Outcome()
    with SocketSet() as ss:
        lst = ss.listener(0)
        addr = lst.getsockname()
        first = ss.connect(addr, wait=True)  # backlog 0 holds one: the queue is now full
        if tcp_state(first) != "ESTABLISHED":
            raise ExperimentError(f"the connection that fills the queue is {tcp_state(first)}, not ESTABLISHED")
        # ESTABLISHED on the client does not mean the listener has queued it yet (its ACK may still
        # be in a backlog): the SYN below must find the queue full, so wait for the queue
        wait_accept_queue(socket_inode(lst), 1, "the first connection in the listener's accept queue")
        before = counters_now()
        clock = Clock()
        wire: list[Capture | None] = [None]

        def capture(sock: socket.socket) -> None:
            # this client's segments only (its port and the listener's), from before its first SYN; read once
            # at the end: a handful of SYNs sit in the kernel's buffer meanwhile
            wire[0], why = Capture.try_open("lo", ports=(sock.getsockname()[1], addr[1]), rcvbuf=1 << 20,
                                            kernel_time=True)
            if wire[0] is None:
                out.notes.append(f"{why}: no segments table (timeline_of shows the TCP_INFO samples only)")
            else:
                ss.adopt(wire[0].sock)
            # t = 0 is the connect() call: opening the capture (milliseconds) must not count in the SYN times
            clock.t0 = time.monotonic()

        c = ss.connect(addr, syncnt=p["retries"], bind_port=0, on_bound=capture)
        sends = [0.0]
        rows = [{"n": 1, "sent_at_s": 0.0}]
        last = None
        deadline = predicted_fail * 1.3 + 10
        failed_after = None
        error = None
        lag = LagMeter(_POLL_S, _LAG_LIMIT_S)
        while clock() < deadline:
            info = tcp_info(c)
            now = clock()
            lag.tick(now)
            key = (info.state, info.retransmits, info.total_retrans, info.backoff)
            if key != last:
                out.timeline.append({"t": round(now, 4), "state": info.state, "retransmits": info.retransmits,
                                     "total_retrans": info.total_retrans, "backoff": info.backoff,
                                     "rto_ms": info.rto / 1000})
                if last is not None and info.state == "SYN_SENT" and info.total_retrans > last[2]:
                    sends.append(round(now, 3))
                    rows.append({"n": len(sends), "sent_at_s": round(now, 3), "rto_ms": info.rto / 1000,
                                 "backoff": info.backoff})
                last = key
            if info.state != "SYN_SENT":
                failed_after = round(now, 3)
                error = connect_error(c) if info.state == "CLOSE" else None
                break
            time.sleep(_POLL_S)
        if failed_after is None:
            out.notes.append(f"connect() had not failed after {deadline:.1f} s; stopped waiting")
        for i, r in enumerate(rows):
            r["predicted_s"] = predicted[i] if i < len(predicted) else None
        out.tables["syns"] = rows
        out.counters = delta(before, keep=("ListenOverflows", "ListenDrops", "TCPTimeouts"))
        if wire[0] is not None:
            captured_segments(wire[0], out, t0=clock.t0)   # t = 0 at connect(), as sent_at_s
    out.summary = {
        "retransmit_times": sends[1:],
        "failed_after": failed_after,
        "error": error,
        "retransmissions": len(sends) - 1,
        "syns_sent": len(sends),
    }
    out.notes.append(f"rules predict SYNs at {predicted} s and failure at {predicted_fail:g} s "
                     f"(TCP_SYNCNT={p['retries']}, tcp_syn_linear_timeouts={lin})")
    if lag.too_busy:
        out.notes.append(lag.note("the SYN and failure times above"))
    return out
