"""retransmission: the peer goes silent with data in flight. When does each retransmission
leave, and when — and why — does the kernel give up?

The real runner connects two sockets on loopback in a private network namespace, lets
``silence_after_bytes`` bytes through (read and acknowledged), then silences the peer by taking
``lo`` down inside the namespace (SIOCSIFFLAGS, what ``ip link set lo down`` does) and writes 100
bytes. Those bytes, and every retransmission of them, still leave TCP — they count in OutSegs and
RetransSegs — and are dropped below it: the socket's cached route now points at a dead device, so
no ACK, RST or ICMP ever comes back (a silent peer, measured: docs/data-transfer.md). TCP_INFO is
polled every 2 ms: each increase of ``total_retrans`` is a retransmission (a tail loss probe when
``icsk_retransmits`` did not move, an RTO retransmission when it did).

The rules are :mod:`tcplab.model.rto` (one place; the simulator replays them).

>>> s = retransmission(retries2=3, mode="sim").summary
>>> s["retransmit_times"], s["failed_after_s"], s["gave_up_because"]
([0.204, 0.408, 0.816, 1.632, 3.264], 6.528, 'tcp_retries2')
>>> retransmission(retries2=3, user_timeout=1500, mode="sim").summary["failed_after_s"]
1.908

With ``orphan=True`` the application close()s its socket right after the write; the orphan goes on
retransmitting in FIN_WAIT1 (followed through sock_diag, which needs no file descriptor) until
``tcp_orphan_retries`` ends it:

>>> o = retransmission(orphan=True, orphan_retries=2, mode="sim").summary
>>> o["retransmit_times"], o["failed_after_s"], o["gave_up_because"], o["limit_s"]
([0.004, 0.208, 0.616, 1.432], 3.064, 'tcp_orphan_retries', 1.4)
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Mapping
from typing import Any

from tcplab.errors import ExperimentError
from tcplab.experiments._common import Clock, counters_now, delta
from tcplab.experiments.registry import make_function
from tcplab.experiments.spec import (Experiment, FromRun, GridPoint, Key, ListRel, Param, Plot, Slider, Table,
                                     too_long)
from tcplab.kernel.diag import tcp_info_of
from tcplab.kernel.loopback import SocketSet, connect_error, wait_until
from tcplab.kernel.namespace import set_loopback
from tcplab.kernel.release import running_profile
from tcplab.kernel.sysctl import read_sysctl
from tcplab.kernel.tcpinfo import tcp_info
from tcplab.model.outcome import Outcome, Timing
from tcplab.model.keepalive import wheel_slack
from tcplab.model.profiles import KernelProfile
from tcplab.model.rto import (GAVE_UP_REASONS, HZ_TICK, LOOPBACK_SRTT, TCP_ORPHAN_RETRIES, TCP_RETR2, TCP_RTO_MAX,
                              RetransmitSchedule, initial_rto, model_timeout, retransmit_schedule)

__all__ = ["retransmission", "SPEC", "schedule_for"]

TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", 18)
RETRIES2 = "net.ipv4.tcp_retries2"
ORPHAN_RETRIES = "net.ipv4.tcp_orphan_retries"
RECORD = (RETRIES2, ORPHAN_RETRIES, "net.ipv4.tcp_rto_min_us", "net.ipv4.tcp_rto_max_ms", "net.ipv4.tcp_early_retrans")
#: a fresh namespace's tcp_retries2 (include/net/tcp.h TCP_RETR2, the profile's retries2)
DEFAULT_RETRIES2 = TCP_RETR2
UNACKED_BYTES = 100          # the write that is never acknowledged
_POLL_S = 0.002
#: what the times tolerate of the sampler's lag (Key.tolerates), in ms: a retransmission is seen at the
#: first TCP_INFO poll after it, so it is timed up to the gap since the poll before late (beyond the
#: 2 ms interval); only the gaps that ended in an event count (a late poll in a quiet second is harmless). The first
#: retransmissions are ~200 ms apart and compared within 10 %: 20 ms (measured beside two CPU-bound
#: processes and a disk writer: a TLP seen 100 ms late, 0.313 s for ~0.21 s)
#: "first_probe": an orphan's first probe leaves a few ms after the close (2·srtt + 2 ms, in jiffies), where
#: the times' comparison allows 10 ms (its floor), not 10 %: the sampler's 20 ms would pass a probe seen
#: 16-19 ms after the write (6.12 guest, 2026-12-07, for the kernel's 4-8 ms). How much later than the
#: rule's latest (the armed PTO plus the timer wheel's granularity) the probe was seen, whatever held it
#: (a late close, a late timer, a late poll): half of that 10 ms
_SAMPLER = {"sampler": 20.0, "timer": 10.0, "first_probe": 5.0}
#: the failure time is seconds (rel10 of >= 1.5 s here): 50 ms, the sampler's own limit
_SAMPLER_FAIL = {"sampler": 50.0, "timer": 50.0}
#: "timer" (what the times tolerate, above): how much later than the kernel's own rule allows a
#: retransmission left after the one before: the RTO armed then (tcp_info.rto), rounded up by the timer
#: wheel (its level's granularity, plus a jiffy), less what the sampler's lag can explain. A kernel on a
#: quiet host is at 0; a guest whose vCPU QEMU did not run, or a host too busy to run timer softirqs,
#: fires late (6.1 guest: an RTO armed at 208 ms left 256 ms after the probe). 10 ms is 5 % of the first
#: RTO: half of what retransmit_times' 10 % comparison allows
_COUNTERS = ("TCPTimeouts", "RetransSegs", "TCPLossProbes", "TCPAbortOnTimeout", "TCPAbortOnMemory")
METHOD_NOTE = ("peer silenced by taking lo down inside the private namespace: segments still leave TCP "
               "(OutSegs/RetransSegs count them) and are dropped below it; no ACK, RST or ICMP comes back")

def schedule_for(p: Mapping[str, Any], profile: KernelProfile | None = None,
                 rto0: float | None = None) -> RetransmitSchedule:
    """The model's schedule for validated params (``retries2`` None: a fresh namespace's 15).

    >>> round(schedule_for({"retries2": None, "user_timeout": None}).fail_after)   # ~15.5 minutes
    929
    """
    r2 = DEFAULT_RETRIES2 if p["retries2"] is None else p["retries2"]
    tick = profile.timer_tick if profile is not None else HZ_TICK
    rto_max = profile.rto_max if profile is not None else TCP_RTO_MAX
    return retransmit_schedule(r2, p["user_timeout"], rto0=rto0, rto_max=rto_max, tick=tick,
                               orphan=_orphan_sysctl(p, profile))


def _orphan_sysctl(p: Mapping[str, Any], profile: KernelProfile | None = None) -> int | None:
    """net.ipv4.tcp_orphan_retries of an orphan run (a fresh namespace's 0 when not given), None otherwise."""
    if not p.get("orphan"):
        return None
    default = profile.orphan_retries if profile is not None else TCP_ORPHAN_RETRIES
    return default if p.get("orphan_retries") is None else p["orphan_retries"]


def _expected_s(p: Mapping[str, Any]) -> float:
    return schedule_for(p).fail_after


def _refusal(p: dict[str, Any]) -> str | None:
    r2 = DEFAULT_RETRIES2 if p["retries2"] is None else p["retries2"]
    orphan = f", orphan=True, orphan_retries={_orphan_sysctl(p)}" if p["orphan"] else ""
    why = too_long(f"retransmission(retries2={r2}, user_timeout={p['user_timeout']}{orphan})", _expected_s(p),
                   p["max_seconds"])
    return why and why + ' (mode="sim" shows the schedule at once)'


def first_probe_lateness(rows: list[dict[str, Any]], armed: float, tick: float) -> float:
    """How much later (ms) than the kernel's rule allows the first row, a tail loss probe, was seen: its
    time from the write less the PTO the kernel armed (``armed``, s, in whole jiffies) and the timer
    wheel's granularity at that delay (``calc_index()`` rounds the expiry up by it; the jiffy the timer
    was armed in is inside it). 0 when the first row is no probe.

    >>> first_probe_lateness([{"kind": "TLP", "sent_at_s": 0.007}], 0.004, 0.004)     # within 4-8 ms
    0.0
    >>> first_probe_lateness([{"kind": "TLP", "sent_at_s": 0.018}], 0.004, 0.004)
    10.0
    """
    if not rows or rows[0]["kind"] != "TLP":
        return 0.0
    jiffies = max(1, math.ceil(round(armed / tick, 9)))
    return round(max(0.0, rows[0]["sent_at_s"] - armed - wheel_slack(jiffies) * tick) * 1000, 3)


def timer_lateness(rows: list[dict[str, Any]], seen_gaps: list[float], tick: float,
                   first_armed: float | None = None) -> tuple[float, int]:
    """How much later than the kernel's rule a retransmission left: (ms, which row; 0 if none was late).

    Each retransmission restarts the RTO timer with ``icsk_rto`` (the ``rto_ms`` its row saw, already
    doubled after an RTO); the timer wheel rounds the expiry up by at most its level's granularity and
    a jiffy (``calc_index()``, kernel/time/timer.c). A row is seen by the first poll after it, up to
    ``seen_gaps[i]`` late, so only what that cannot explain counts. A user timeout only shortens waits.

    >>> rows = [{"sent_at_s": 0.211, "rto_ms": 208.0}, {"sent_at_s": 0.467, "rto_ms": 416.0},
    ...         {"sent_at_s": 0.884, "rto_ms": 832.0}]
    >>> timer_lateness(rows, [0.002, 0.003, 0.002], 0.004)      # 256 ms after a 208 ms RTO (+ 8 ms wheel)
    (37.0, 2)
    >>> timer_lateness(rows[1:], [0.003, 0.002], 0.004)          # 417 ms after 416: the wheel's rounding
    (0.0, 0)
    >>> timer_lateness([{"sent_at_s": 0.4, "rto_ms": 408.0}, {"sent_at_s": 0.84, "rto_ms": 816.0}], [0, 0], 0.004)
    (0.0, 0)

    ``first_armed``: the first row is a tail loss probe the kernel armed that long after the write (the PTO,
    clamped to the RTO): it is judged too (6.12 guest: a probe armed at 204 ms seen at 262 ms).

    >>> timer_lateness([{"sent_at_s": 0.262, "rto_ms": 204.0}], [0.006], 0.004, first_armed=0.204)
    (44.0, 1)
    """
    worst, which = 0.0, 0
    for i in range(0 if first_armed is not None else 1, len(rows)):
        armed = rows[i - 1]["rto_ms"] / 1000 if i else first_armed
        jiffies = max(1, math.ceil(round(armed / tick, 9)))
        # the expiry is rounded up to the level's next bucket (up to a whole granularity, by phase),
        # and the timer was armed up to a jiffy into the current one
        slack = (wheel_slack(jiffies) + 1) * tick
        late = (rows[i]["sent_at_s"] - (rows[i - 1]["sent_at_s"] if i else 0.0)) - seen_gaps[i] - armed - slack
        if late > worst:
            worst, which = late, i + 1
    return round(worst * 1000, 3), which


def _own_schedule(params: Mapping[str, Any], real: Mapping[str, Any], profile: str | None) -> tuple[float, ...] | None:
    """The kernel's schedule from this run's own initial RTO and srtt (FromRun's ``predict``): a guest's
    or a busy host's loopback RTT is milliseconds, and an orphan's probe leaves 2·srtt + 2 ms after the close.

    After a tail loss probe the kernel arms the RTO when the probe leaves (``tcp_send_loss_probe()`` ->
    ``tcp_rearm_rto()``), so the times after it count from the probe this run saw, not from the model's:
    a probe seen 6 ms late (the 6.12 guest: 0.010 s for 0.004) moved every later time by 6 ms, which with
    the timer wheel's and the sampler's own few ms put the first RTO outside its 10 %. The probe itself is
    still compared with the model's time (and judged by the ``first_probe`` / ``timer`` timings).

    >>> p = {"retries2": None, "user_timeout": None, "orphan": True, "orphan_retries": 1}
    >>> _own_schedule(p, {"rto_initial_s": 0.204, "srtt_us": 400, "retransmit_times": [0.01, 0.233, 0.65]}, None)
    (0.004, 0.214, 0.622)
    """
    rto0, srtt_us = real.get("rto_initial_s"), real.get("srtt_us")
    if rto0 is None or srtt_us is None:
        return None
    sched = retransmit_schedule(DEFAULT_RETRIES2 if params["retries2"] is None else params["retries2"],
                                params["user_timeout"], rto0=rto0, orphan=_orphan_sysctl(params), srtt=srtt_us / 1e6)
    times, seen = sched.retransmit_times, real.get("retransmit_times") or []
    if sched.tlp and len(times) > 1 and seen:
        shift = seen[0] - times[0]
        return (times[0],) + tuple(round(t + shift, 6) for t in times[1:])
    return times


RETRANSMIT_TIMES_RULE = FromRun(_own_schedule, then=ListRel(0.10, floor=0.01), otherwise=ListRel(0.10, floor=0.01),
                                name="list_rel10 (own rto, srtt)",
                                meaning="each within 10 % (or 10 ms) of the kernel's schedule from this run's own "
                                        "initial RTO and srtt, the RTOs after a tail loss probe from the probe it saw")


def _gave_up_because(elapsed: float, user_timeout_ms: int | None, retries2: int,
                     orphan_limit: float | None = None) -> str:
    """Which limit the measured ``elapsed`` (first RTO retransmission -> error) matches; ``orphan_limit``:
    an orphan's budget, model_timeout(tcp_orphan_retries()), which replaces tcp_retries2's."""
    if user_timeout_ms:
        ut = user_timeout_ms / 1000
        if abs(elapsed - ut) <= max(0.1 * ut, 0.02):
            return GAVE_UP_REASONS[1]
    elif orphan_limit is not None:
        # at the first expiry past the orphan budget: before the next doubled RTO would have fired
        if orphan_limit * 0.999 <= elapsed < 2 * orphan_limit + 1.0:
            return GAVE_UP_REASONS[2]
    elif elapsed >= model_timeout(retries2) * 0.999:
        return GAVE_UP_REASONS[0]
    return f"unexplained (gave up {elapsed:.3f} s after the first RTO retransmission)"


SPEC = Experiment(
    name="retransmission",
    title="A peer goes silent with data in flight: every retransmission's time, and when and why the kernel gives up",
    doc="""After ``silence_after_bytes`` bytes are delivered and acknowledged, the peer goes silent
    (lo is taken down inside the private namespace) and the client writes 100 bytes that are never
    acknowledged. The first retransmission is a tail loss probe one RTO (204 ms on loopback: 200 ms
    TCP_RTO_MIN rounded up to a jiffy) after the write; each RTO expiry then retransmits and doubles
    the RTO (capped at TCP_RTO_MAX, 120 s). ``tcp_write_timeout()`` gives up when the time since the
    first RTO retransmission reaches ``tcp_model_timeout(tcp_retries2)`` = ((2 << n) - 1) x 200 ms
    (+120 s per retry beyond 9), or TCP_USER_TIMEOUT if the socket set it (which replaces the
    retries2 budget). The default tcp_retries2=15 gives up after ~929 s: real runs predicted to take
    longer than ``max_seconds`` are refused in mode="real" (simulated in mode="auto").
    ``orphan=True``: the application close()s the socket right after the write. The kernel keeps the
    orphan (FIN_WAIT1, data and FIN unacknowledged) retransmitting, followed through sock_diag, and
    ``tcp_write_timeout()`` takes the retry count from ``tcp_orphan_retries()`` instead of
    tcp_retries2: the sysctl ``orphan_retries``, where 0 (the default) means 8 while
    ``icsk_rto < TCP_RTO_MAX`` (~104 s). Two segments (data, FIN) are in flight, so the tail loss probe
    leaves after usecs_to_jiffies(2·SRTT + 2 ms), one jiffy (4-8 ms with the timer wheel's rounding),
    and the first RTO one RTO after that probe (tcp_send_loss_probe() restarts the timer from now).""",
    params=(
        Param("retries2", "int", None, lo=0, hi=100, optional=True, sysctl=RETRIES2,
              help="tcp_retries2 in the namespace: the give-up budget as a retry count",
              slider=Slider(0, 15)),
        Param("user_timeout", "int", None, lo=1, hi=3_600_000, optional=True, unit="ms",
              help="TCP_USER_TIMEOUT on the socket (None: not set)",
              slider=Slider(100, 20000, step=100, scale="log")),
        Param("orphan", "bool", False,
              help="the application close()s its socket right after the write: the kernel retransmits an orphan"),
        Param("orphan_retries", "int", None, lo=0, hi=100, optional=True, sysctl=ORPHAN_RETRIES,
              help="tcp_orphan_retries in the namespace: an orphan's retry count, with orphan=True only (0: 8 "
                   "while the RTO is below TCP_RTO_MAX)",
              slider=Slider(0, 8)),
        Param("silence_after_bytes", "int", 0, lo=0, hi=10_000_000, unit="B",
              help="bytes delivered and acknowledged before the peer goes silent"),
        Param("max_seconds", "float", 60.0, lo=1, hi=86400, unit="s",
              help="refuse real runs predicted to take longer (simulated time is free)"),
    ),
    summary=(
        Key("retransmit_times", "seconds after the write of each retransmitted segment (TLP first; an orphan's "
            "TLP leaves a jiffy or two after the close)",
            rule=RETRANSMIT_TIMES_RULE, tolerates=_SAMPLER),
        Key("failed_after_s", "seconds after the write until the socket failed (an orphan: until sock_diag no "
            "longer finds it)", rule="rel10", tolerates=_SAMPLER_FAIL),
        Key("error", "the socket's error (ETIMEDOUT); None for an orphan: no application holds it to read one"),
        Key("gave_up_because", "the limit that ended it: tcp_retries2, TCP_USER_TIMEOUT or tcp_orphan_retries"),
        Key("limit_s", "the elapsed-time limit tcp_write_timeout() applied (tcp_model_timeout of tcp_retries2 or "
            "of tcp_orphan_retries(), or the user timeout)"),
        Key("rto_initial_s", "tcp_info.rto before the silence (seconds)", rule="rel10"),
        Key("srtt_us", "tcp_info.rtt before the silence: the smoothed RTT (us; simulated: loopback's typical 30)",
            rule="shown"),
        Key("rttvar_us", "tcp_info.rttvar before the silence: the mean deviation (tp->mdev_us >> 2, kept x4; us; "
            "None: not simulated)",
            rule="shown"),
        Key("rto_max_reached_s", "the largest RTO of the run (seconds)", rule="rel10"),
        Key("TCPTimeouts", "RTO expiries, the fatal one included"),
        Key("RetransSegs", "segments retransmitted (the TLP included)"),
        Key("TCPAbortOnTimeout", "connections tcp_write_err() ended on a timeout (1; an orphan killed by "
            "tcp_out_of_resources() counts TCPAbortOnMemory instead)"),
    ),
    tables=(Table("retransmissions", ("n", "kind", "sent_at_s", "predicted_s", "rto_ms", "backoff"),
                  "one retransmitted segment: kind TLP (tail loss probe) or RTO"),),
    timeline=("t", "state", "retransmits", "backoff", "rto_ms", "total_retrans", "unacked"),
    grid=(
        GridPoint(dict(retries2=3), quick=True, why="docs/kernel-facts.md: ETIMEDOUT after 6.79 s"),
        GridPoint(dict(user_timeout=1500), quick=True, why="docs/kernel-facts.md: 1.92 s (tcp_retries2 15)"),
        GridPoint(dict(retries2=1)),
        GridPoint(dict(retries2=2, silence_after_bytes=200_000)),
        GridPoint(dict(retries2=5), why="docs/kernel-facts.md: 13.31 s"),
        GridPoint(dict(retries2=2, user_timeout=4000), why="a user timeout longer than the retries2 budget wins"),
        GridPoint(dict(user_timeout=700)),
        GridPoint(dict(orphan=True, orphan_retries=2), quick=True,
                  why="an orphan: tcp_orphan_retries=2 ends it at ~3.1 s although tcp_retries2 is 15"),
        GridPoint(dict(orphan=True, orphan_retries=1)),
        GridPoint(dict(orphan=True, orphan_retries=3)),
        # tcp_retries2=4 is left out: its 6.2 s budget falls inside the timer wheel's slack at the 5th
        # expiry (6.12 s + lateness), so real runs end at ~6.7 s or ~13.3 s (docs/data-transfer.md)
    ),
    real=lambda p: _real(p),
    sim=lambda p, profile, rng: _sim(p, profile),
    record=RECORD,
    needs_namespace="it takes lo down to silence the peer",
    real_refusal=_refusal,
    expected_s=_expected_s,
    timeout=lambda p: _expected_s(p) * 1.3 + 20,
    progress=True,
    plot=Plot(y=("sent_at_s", "predicted_s"), x="n", source="retransmissions", kind="markers",
              title="when each retransmission left", x_title="retransmission", y_title="seconds after the write",
              figure="timers:retransmission_figure", table="timers:retransmission_table"),
    smoke=(dict(retries2=1),),
)

retransmission = make_function(SPEC)


def _exchange(client: socket.socket, server: socket.socket, nbytes: int, deadline: float) -> None:
    """Send ``nbytes`` client -> server and read them all (bounded by ``deadline``)."""
    client.setblocking(False)
    server.setblocking(False)
    chunk = b"d" * 65536
    sent = got = 0
    while got < nbytes:
        if time.monotonic() > deadline:
            raise ExperimentError(f"delivering silence_after_bytes={nbytes} took too long ({got} read)")
        if sent < nbytes:
            try:
                sent += client.send(chunk[:min(len(chunk), nbytes - sent)])
            except BlockingIOError:
                pass
        try:
            data = server.recv(1 << 20)
            if not data:
                raise ExperimentError("the peer closed while receiving")
            got += len(data)
        except BlockingIOError:
            time.sleep(0.0005)


def _real(p: dict[str, Any]) -> Outcome:
    retries2 = int(read_sysctl(RETRIES2))
    orphan = int(read_sysctl(ORPHAN_RETRIES)) if p["orphan"] else None
    ut = p["user_timeout"]
    out = Outcome()
    with SocketSet() as ss:
        lst = ss.listener(1)
        c = ss.connect(lst.getsockname(), wait=True)
        lst.settimeout(5)
        srv = ss.adopt(lst.accept()[0])
        if ut:
            c.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT, ut)
        _exchange(c, srv, p["silence_after_bytes"], time.monotonic() + 30)
        if not wait_until(lambda: tcp_info(c).extra.get("unacked", 0) == 0, 5.0, 0.001):
            raise ExperimentError("the bytes before the silence were not acknowledged within 5 s")
        info0 = tcp_info(c)
        rto0 = info0.rto / 1e6
        srtt_us, rttvar_us = info0.extra.get("rtt"), info0.extra.get("rttvar")
        sched = retransmit_schedule(retries2, ut, rto0=rto0, orphan=orphan,
                                    srtt=(srtt_us or LOOPBACK_SRTT * 1e6) / 1e6)
        local, remote = c.getsockname(), c.getpeername()
        live = "FIN_WAIT1" if orphan is not None else "ESTABLISHED"
        before = counters_now()
        set_loopback(False)
        try:
            clock = Clock()
            c.send(b"u" * UNACKED_BYTES)
            if orphan is not None:
                # the application lets go: close() queues a FIN behind the data and the socket is an
                # orphan (SOCK_DEAD); from now on only sock_diag sees it, by its addresses
                c.close()
            closed_at = clock()
            rows: list[dict[str, Any]] = []
            # before the write: nothing retransmitted, so a first look that comes late still counts what it finds
            last: tuple | None = (info0.state, info0.retransmits, info0.backoff, info0.rto, info0.total_retrans, -1)
            failed_after = error = None
            deadline = sched.fail_after * 1.3 + 10
            prev_poll = 0.0
            seen_late: list[tuple[float, str]] = []    # (gap before the poll that saw an event, which)
            row_gaps: list[float] = []                 # the same gap, per retransmission row
            while clock() < deadline:
                info = tcp_info(c) if orphan is None else tcp_info_of(local, remote)
                now = clock()
                gap, prev_poll = now - prev_poll, now
                if info is None:                       # the orphan is gone: tcp_done() destroyed it
                    failed_after = round(now, 3)
                    seen_late.append((gap, "the orphan's end"))
                    break
                unacked = info.extra.get("unacked", 0)
                key = (info.state, info.retransmits, info.backoff, info.rto, info.total_retrans, unacked)
                if key != last:
                    out.timeline.append({"t": round(now, 4), "state": info.state, "retransmits": info.retransmits,
                                         "backoff": info.backoff, "rto_ms": info.rto / 1000,
                                         "total_retrans": info.total_retrans, "unacked": unacked})
                    if last is not None and info.state == live and info.total_retrans > last[4]:
                        kind = "RTO" if info.retransmits > last[1] else "TLP"
                        rows.append({"n": len(rows) + 1, "kind": kind, "sent_at_s": round(now, 3),
                                     "rto_ms": info.rto / 1000, "backoff": info.backoff})
                        seen_late.append((gap, f"retransmission {len(rows)}"))
                        row_gaps.append(gap)
                    last = key
                if info.state != live:
                    failed_after = round(now, 3)
                    error = connect_error(c)
                    seen_late.append((gap, "the failure"))
                    break
                time.sleep(_POLL_S)
        finally:
            set_loopback(True)
        # the runner's own timing: how late the worst-timed event may have been seen
        gap, what = max(seen_late, default=(_POLL_S, "no event"))
        out.timings.append(Timing("sampler", round(max(0.0, gap - _POLL_S) * 1000, 3),
                                  f"the sampler asked to look every {_POLL_S * 1000:.0f} ms but saw {what} "
                                  f"{gap * 1000:.0f} ms after its previous look, so it is timed up to that late"))
        # a held socket's probe is armed at the write, a PTO clamped to the RTO (~200 ms); an orphan's, a few ms
        # after the close, is the first_probe timing's
        probe_armed = (sched.retransmit_times[0] if orphan is None and sched.tlp and rows and rows[0]["kind"] == "TLP"
                       else None)
        late_ms, which = timer_lateness(rows, row_gaps, running_profile().profile.timer_tick, first_armed=probe_armed)
        out.timings.append(Timing("timer", late_ms,
                                  f"retransmission {which} left {late_ms:g} ms later than the RTO the kernel had "
                                  "armed (and its timer wheel's rounding) allows: the host did not run the timer "
                                  "in time" if which else "every retransmission left within the armed RTO"))
        if orphan is not None and sched.tlp:
            armed = sched.retransmit_times[0]
            late_ms = first_probe_lateness(rows, armed, running_profile().profile.timer_tick)
            out.timings.append(Timing(
                "first_probe", late_ms,
                f"the orphan's first probe was seen {rows[0]['sent_at_s'] * 1000:.0f} ms after the write, "
                f"{late_ms:g} ms later than the kernel's rule allows (a probe armed {armed * 1000:g} ms out at the "
                f"close, which came {closed_at * 1000:.1f} ms after the write, plus the timer wheel's rounding)"
                if rows and late_ms else "the orphan's first probe was seen within the kernel's rule"))
        if failed_after is None:
            out.notes.append(f"the socket had not failed after {deadline:.1f} s; stopped waiting")
        out.counters = delta(before, keep=_COUNTERS)
    for i, r in enumerate(rows):
        r["predicted_s"] = sched.retransmit_times[i] if i < len(sched.retransmit_times) else None
    out.tables["retransmissions"] = rows
    first_rto = next((r["sent_at_s"] for r in rows if r["kind"] == "RTO"), None)
    because = None
    if failed_after is not None and first_rto is not None:
        because = _gave_up_because(failed_after - first_rto, ut, retries2,
                                   sched.limit_s if orphan is not None else None)
    if out.counters.get("TCPAbortOnMemory", 0):
        because = "tcp_out_of_resources (TCPAbortOnMemory: too many orphans or memory pressure)"
    out.summary = {
        "retransmit_times": [r["sent_at_s"] for r in rows],
        "failed_after_s": failed_after,
        "error": error,
        "gave_up_because": because,
        "limit_s": sched.limit_s,
        "rto_initial_s": rto0,
        "srtt_us": srtt_us,
        "rttvar_us": rttvar_us,
        "rto_max_reached_s": max((r["rto_ms"] for r in rows), default=rto0 * 1000) / 1000,
        "TCPTimeouts": out.counters.get("TCPTimeouts", 0),
        "RetransSegs": out.counters.get("RetransSegs", 0),
        "TCPAbortOnTimeout": out.counters.get("TCPAbortOnTimeout", 0),
    }
    out.notes.append(METHOD_NOTE)
    if orphan is not None:
        out.notes.append(f"the application close()d the socket after the write (tcp_orphan_retries={orphan}); the "
                         "orphan was followed through sock_diag (INET_DIAG_INFO) until the kernel destroyed it; "
                         f"close() returned {closed_at * 1000:.1f} ms after the write began")
    out.notes.append(f"the model (tcplab.model.rto) predicts retransmissions at {list(sched.retransmit_times)} s and "
                     f"failure at {sched.fail_after:g} s (tcp_retries2={retries2}, TCP_USER_TIMEOUT={ut}, "
                     f"{'' if orphan is None else f'orphan, tcp_orphan_retries={orphan}, '}"
                     f"measured initial RTO {rto0 * 1000:g} ms); real timers fire up to a timer-wheel slot late")
    return out


def _sim(p: dict[str, Any], profile: KernelProfile) -> Outcome:
    rto0 = initial_rto(tick=profile.timer_tick)
    sched = schedule_for(p, profile, rto0)
    r2 = DEFAULT_RETRIES2 if p["retries2"] is None else p["retries2"]
    orphan = _orphan_sysctl(p, profile)
    # an orphan holds data and FIN (two segments) until the first RTO retransmission carries both
    live, unacked = ("FIN_WAIT1", 2) if orphan is not None else ("ESTABLISHED", 1)
    rows: list[dict[str, Any]] = []
    timeline = [{"t": 0.0, "state": live, "retransmits": 0, "backoff": 0, "rto_ms": rto0 * 1000,
                 "total_retrans": 0, "unacked": unacked}]
    retransmits = 0
    for i, (t, rto) in enumerate(zip(sched.retransmit_times, sched.rtos)):
        kind = "TLP" if sched.tlp and i == 0 else "RTO"
        retransmits += kind == "RTO"
        if kind == "RTO":
            unacked = 1                        # tcp_retrans_try_collapse(): the FIN rides with the data
        rows.append({"n": i + 1, "kind": kind, "sent_at_s": t, "predicted_s": t, "rto_ms": round(rto * 1000, 3),
                     "backoff": retransmits})
        timeline.append({"t": t, "state": live, "retransmits": retransmits, "backoff": retransmits,
                         "rto_ms": round(rto * 1000, 3), "total_retrans": i + 1, "unacked": unacked})
    timeline.append({"t": sched.fail_after, "state": "CLOSE", "retransmits": retransmits, "backoff": 0,
                     "rto_ms": timeline[-1]["rto_ms"], "total_retrans": len(rows), "unacked": 0})
    counters = {"TCPTimeouts": sched.timeouts, "RetransSegs": sched.retrans_segs,
                "TCPLossProbes": int(sched.tlp), "TCPAbortOnTimeout": 1, "TCPAbortOnMemory": 0}
    notes = [f"kernel profile {profile.name}: tcp_retries2={r2}, TCP_USER_TIMEOUT={p['user_timeout']}, initial RTO "
             f"{rto0 * 1000:g} ms; timers fire exactly on time here (a real timer wheel adds up to a slot)"]
    if orphan is not None:
        notes.append(f"an orphan: tcp_orphan_retries={orphan}, so tcp_write_timeout() used "
                     f"{'8 (0 means 8 while icsk_rto < TCP_RTO_MAX)' if orphan == 0 else orphan} retries "
                     f"(budget {sched.limit_s:g} s); tcp_out_of_resources() is not modelled (one orphan never trips it)")
    if sched.fail_after > p["max_seconds"]:
        notes.append(f"a real run would take {sched.fail_after:g} s > max_seconds={p['max_seconds']:g}; "
                     "simulated time costs nothing")
    sysctls = {RETRIES2: r2, "net.ipv4.tcp_rto_min_us": 200000, "net.ipv4.tcp_rto_max_ms": int(profile.rto_max * 1000),
               "net.ipv4.tcp_early_retrans": 3}
    sysctls[ORPHAN_RETRIES] = orphan if orphan is not None else profile.orphan_retries
    return Outcome(
        summary={"retransmit_times": list(sched.retransmit_times), "failed_after_s": sched.fail_after,
                 "error": None if orphan is not None else "ETIMEDOUT", "gave_up_because": sched.gave_up_because,
                 "limit_s": sched.limit_s, "rto_initial_s": rto0, "srtt_us": round(LOOPBACK_SRTT * 1e6),
                 "rttvar_us": None, "rto_max_reached_s": max(sched.rtos, default=rto0),
                 "TCPTimeouts": sched.timeouts, "RetransSegs": sched.retrans_segs, "TCPAbortOnTimeout": 1},
        counters=counters, tables={"retransmissions": rows}, timeline=timeline, sysctls=sysctls, notes=notes)
