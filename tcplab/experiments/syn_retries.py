"""syn_retries: how long connect() keeps retransmitting SYNs that are dropped
(KERNEL.md case 3). Each SYN is timed by polling TCP_INFO every 2 ms.

>>> predict_syn_times(2, 4)
([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 7.0)
>>> predict_syn_times(3, 0)
([0.0, 1.0, 3.0, 7.0], 15.0)
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from tcplab._validate import check_float, check_int, check_optional_int
from tcplab.errors import ExperimentError
from tcplab.experiments import _mode
from tcplab.experiments._common import Clock, LagMeter, counters_now, delta
from tcplab.experiments.result import Result
from tcplab.kernel.loopback import SocketSet, connect_error, tcp_state
from tcplab.kernel.sysctl import read_sysctl
from tcplab.kernel.tcpinfo import tcp_info
from tcplab.model.outcome import Outcome


__all__ = ["syn_retries", "predict_syn_times"]

NAME = "syn_retries"
LINEAR = "net.ipv4.tcp_syn_linear_timeouts"
RECORD = ("net.ipv4.tcp_syn_retries", LINEAR, "net.ipv4.tcp_rto_min_us")
_POLL_S = 0.002
#: sampler lag above which the run says the host was too busy: half of the 10 % a schedule may
#: differ from the rules at the first 1 s retransmission
_LAG_LIMIT_S = 0.05


def predict_syn_times(retries: int, linear_timeouts: int, rto_s: float = 1.0) -> tuple[list[float], float]:
    """SYN send times and the failure time the 6.x rules predict (net/ipv4/tcp_timer.c).

    When the RTO timer fires, ``tcp_write_timeout()`` gives up if ``retransmits >= retries +
    linear_timeouts`` or if the elapsed time reached ``(2^(retries+1) - 1) * 1 s``
    (``tcp_model_timeout()``); otherwise it retransmits, and ``tcp_retransmit_timer()`` doubles
    the RTO only once ``backoff > linear_timeouts``.
    """
    t, rto, retrans, sends = 0.0, rto_s, 0, [0.0]
    budget = ((2 << retries) - 1) * rto_s
    while True:
        t += rto
        if retrans >= retries + linear_timeouts or t >= budget:
            return sends, t
        retrans += 1
        sends.append(t)
        if retrans > linear_timeouts:  # icsk_backoff after this retransmit
            rto = min(rto * 2, 120.0)


def syn_retries(retries: int = 2, linear_timeouts: int | None = None, max_seconds: float = 60.0,
                progress: _mode.Progress | None = None, *, mode: str = "auto", seed: int = 0,
                profile: str | None = None) -> Result:
    """Time the SYN retransmissions of a client whose SYNs are all dropped.

    The listener has backlog 0 and already holds one connection, so its accept queue is
    full and every SYN is dropped (``tcp_conn_request()``: ListenOverflows). The client sets
    TCP_SYNCNT=``retries``; ``linear_timeouts`` sets tcp_syn_linear_timeouts in the namespace.

    ``progress(fraction, text)`` is called about every 0.25 s from a helper thread while it runs,
    and with ``(1.0, "done")`` at the end. Real runs predicted to take longer than ``max_seconds``
    are refused with a ValueError (raise ``max_seconds`` to allow them); ``mode="sim"`` is not.

    Tables: ``syns`` (n, sent_at_s, predicted_s, rto_ms, backoff). Timeline: TCP_INFO samples
    (t, state, retransmits, total_retrans, backoff, rto_ms) at each change.

    >>> syn_retries(1, linear_timeouts=0).summary["failed_after"]   # doctest: +SKIP
    3.02
    """
    mode, seed, profile = _mode.check_mode(mode, seed, profile)
    params = {
        "retries": check_int("retries", retries, 1, 127),
        "linear_timeouts": check_optional_int("linear_timeouts", linear_timeouts, 0, 255),
        "max_seconds": check_float("max_seconds", max_seconds, 1, 86400),
    }
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be None or a callable progress(fraction, text), not {progress!r}")
    lin = params["linear_timeouts"]
    if lin is None:  # a fresh namespace starts with 4 where the sysctl exists (6.x), else 0
        lin = 4 if os.path.exists("/proc/sys/net/ipv4/tcp_syn_linear_timeouts") else 0
    expected = predict_syn_times(params["retries"], lin)[1]
    if expected > params["max_seconds"] and mode != "sim":  # simulated time is free
        raise ValueError(
            f"syn_retries(retries={params['retries']}, linear_timeouts={lin}) would run about {expected:.0f} s, "
            f"longer than max_seconds={params['max_seconds']:g}; pass max_seconds={math.ceil(expected * 1.2) + 5} "
            "to run it anyway")
    sysctls = {} if params["linear_timeouts"] is None else {LINEAR: params["linear_timeouts"]}
    return _mode.run(NAME, params, mode=mode, seed=seed, profile=profile, real=_real, sysctls=sysctls,
                     record=RECORD, timeout=expected * 1.3 + 15, progress=progress, expected_s=expected)


def _real(p: dict[str, Any]) -> Outcome:

    try:
        lin = int(read_sysctl(LINEAR))
    except OSError:
        lin = 0  # kernels before tcp_syn_linear_timeouts behave like 0
    predicted, predicted_fail = predict_syn_times(p["retries"], lin)
    out = Outcome()
    with SocketSet() as ss:
        lst = ss.listener(0)
        addr = lst.getsockname()
        first = ss.connect(addr, wait=True)  # backlog 0 holds one: the queue is now full
        if tcp_state(first) != "ESTABLISHED":
            raise ExperimentError(f"the connection that fills the queue is {tcp_state(first)}, not ESTABLISHED")
        before = counters_now()
        clock = Clock()
        c = ss.connect(addr, syncnt=p["retries"])
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
