"""load: the articles' ``ab`` experiment on loopback. Clients connect at ``rate`` per second
against a server that accepts at most ``accept_rate`` per second; the accept queue fills,
SYNs are dropped (ListenOverflows) and retried after 1 s, 2 s, ... which shows up as
connect latencies of ~1 s, ~2 s.

>>> r = load(rate=200, accept_rate=50, duration=3)          # doctest: +SKIP
>>> r.summary["max_recv_q"], r.summary["p99_connect_s"] > 0.9   # doctest: +SKIP
(17, True)
"""

from __future__ import annotations

import errno
import resource
import selectors
import socket
import time
from typing import Any

from tcplab._validate import check_choice, check_float, check_int, check_optional_int
from tcplab.experiments import _mode
from tcplab.experiments._common import Clock, counters_now, delta, listener_queues, pick
from tcplab.experiments.result import Result
from tcplab.kernel.loopback import SocketSet, socket_inode
from tcplab.model.outcome import Outcome


__all__ = ["load", "MAX_CONNECTIONS"]

RECORD = ("net.core.somaxconn", "net.ipv4.tcp_syncookies", "net.ipv4.tcp_syn_retries",
          "net.ipv4.tcp_syn_linear_timeouts", "net.ipv4.ip_local_port_range")
MAX_CONNECTIONS = 20_000  # rate * duration; keeps fds and ephemeral ports (28k by default) in bounds
SAMPLE_S = 0.05


def load(rate: float = 100, accept_rate: float = 50, duration: float = 3.0, backlog: int = 16,
         somaxconn: int | None = None, syncookies: int | None = None, syn_retries: int | None = None, *,
         mode: str = "auto", seed: int = 0, profile: str | None = None) -> Result:
    """Offer ``rate`` connects/s for ``duration`` s to a listener with ``listen(backlog)`` that
    accepts at most ``accept_rate`` connections/s (0: never). Everything stops at ``duration``:
    clients still connecting then count as neither established nor failed ("pending").

    ``syn_retries`` is set per client (TCP_SYNCNT), so it runs in the host namespace too;
    ``somaxconn`` and ``syncookies`` are set in a private namespace.

    Summary: ``attempts``, ``established`` (handshake completed), ``failed`` (connect error,
    e.g. ETIMEDOUT), ``max_recv_q`` (largest accept-queue length sampled every 50 ms),
    ``p50_connect_s``/``p99_connect_s`` (connect latency of established clients, None if none),
    ``ListenOverflows``.

    Timeline (every 50 ms): t, recv_q, attempts, established, failed, pending, accepted.
    Table ``clients``: client, started_s, connect_s, outcome ("established", errno name, "pending").
    """
    mode, seed, profile = _mode.check_mode(mode, seed, profile)
    params = {
        "rate": check_float("rate", rate, 1, 5000),
        "accept_rate": check_float("accept_rate", accept_rate, 0, 100000),
        "duration": check_float("duration", duration, 0.1, 60),
        "backlog": check_int("backlog", backlog, 0, 65535),
        "somaxconn": check_optional_int("somaxconn", somaxconn, 1, 65535),
        "syncookies": None if syncookies is None else check_choice("syncookies", syncookies, (0, 1, 2)),
        "syn_retries": check_optional_int("syn_retries", syn_retries, 1, 127),
    }
    if params["rate"] * params["duration"] > MAX_CONNECTIONS:
        raise ValueError(f"rate * duration must be at most {MAX_CONNECTIONS} connections, not "
                         f"{params['rate']:g} * {params['duration']:g}; lower rate or duration")
    sysctls: dict[str, Any] = {}
    if params["somaxconn"] is not None:
        sysctls["net.core.somaxconn"] = params["somaxconn"]
    if params["syncookies"] is not None:
        sysctls["net.ipv4.tcp_syncookies"] = params["syncookies"]
    return _mode.run("load", params, mode=mode, seed=seed, profile=profile, real=_real, sysctls=sysctls,
                     record=RECORD, timeout=params["duration"] + 30)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q  # linear interpolation, as numpy's default
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return round(v[lo] + (v[hi] - v[lo]) * (k - lo), 4)


def _real(p: dict[str, Any]) -> Outcome:

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, int(p["rate"] * p["duration"]) + 256))
    if want > soft:  # we are a forked child (or the caller): only our own limit changes
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    out = Outcome()
    before = counters_now()
    total = int(round(p["rate"] * p["duration"]))
    sel = selectors.DefaultSelector()
    rows: list[dict[str, Any]] = []
    latencies: list[float] = []
    counts = {"established": 0, "failed": 0, "accepted": 0}
    try:
        with SocketSet() as ss:
            lst = ss.listener(p["backlog"])
            lst.setblocking(False)
            inode = socket_inode(lst)
            addr = lst.getsockname()
            clock = Clock()
            started = 0
            accept_ticks_used = 0
            next_sample = 0.0
            max_q = 0
            while True:
                now = clock()
                if now >= p["duration"] and started >= total:
                    break
                # offered load: client i starts at i / rate
                while started < total and started / p["rate"] <= now:
                    try:
                        c = ss.connect(addr, syncnt=p["syn_retries"])
                    except OSError as e:
                        rows.append({"client": started, "started_s": round(now, 4), "connect_s": None,
                                     "outcome": errno.errorcode.get(e.errno, str(e.errno))})
                        counts["failed"] += 1
                    else:
                        row = {"client": started, "started_s": round(started / p["rate"], 4), "connect_s": None,
                               "outcome": "pending"}
                        rows.append(row)
                        sel.register(c, selectors.EVENT_WRITE, row)
                    started += 1
                # the server: at most accept_rate accepts per second; idle ticks are lost
                due = int(now * p["accept_rate"])
                while accept_ticks_used < due:
                    try:
                        conn, _ = lst.accept()
                    except BlockingIOError:
                        accept_ticks_used = due
                        break
                    conn.close()
                    counts["accepted"] += 1
                    accept_ticks_used += 1
                if now >= next_sample:
                    q = listener_queues(inode)[0] or 0
                    max_q = max(max_q, q)
                    out.timeline.append({"t": round(now, 4), "recv_q": q, "attempts": started,
                                         "established": counts["established"], "failed": counts["failed"],
                                         "pending": len(sel.get_map()), "accepted": counts["accepted"]})
                    next_sample += SAMPLE_S
                wake = min(next_sample, p["duration"],
                           started / p["rate"] if started < total else p["duration"],
                           (accept_ticks_used + 1) / p["accept_rate"] if p["accept_rate"] else p["duration"])
                timeout = max(0.0, wake - clock())
                events = sel.select(timeout) if sel.get_map() else (time.sleep(timeout) or [])
                for key, _ in events:
                    c, row = key.fileobj, key.data
                    sel.unregister(c)
                    err = c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        row["outcome"] = errno.errorcode.get(err, str(err))
                        counts["failed"] += 1
                    else:
                        lat = clock() - row["started_s"]
                        row["connect_s"] = round(lat, 4)
                        row["outcome"] = "established"
                        latencies.append(lat)
                        counts["established"] += 1
                    c.close()  # like ab: the client is done with it; the fd is freed
            counters = delta(before, keep=("ListenOverflows", "ListenDrops", "TCPTimeouts"))
    finally:
        sel.close()
    out.counters = counters
    out.tables["clients"] = rows
    pending = sum(1 for r in rows if r["outcome"] == "pending")
    out.summary = {"attempts": len(rows), "established": counts["established"], "failed": counts["failed"],
                   "max_recv_q": max_q, "p50_connect_s": _percentile(latencies, 0.5),
                   "p99_connect_s": _percentile(latencies, 0.99), **pick(counters, "ListenOverflows")}
    out.notes.append(f"{pending} clients were still connecting when the run stopped at {p['duration']:g} s; "
                     f"the server accepted {counts['accepted']}")
    return out
