"""flow_control: a reader that stops (or reads slowly) closes the receive window; the sender's
Send-Q fills, zero-window probes go out with the persist timer's backoff, the window reopens.

The real runner connects a receiver with a small SO_RCVBUF (set on the listener, before the
handshake, so the window is small from the start) and a sender that writes ``bytes`` without
blocking. Every ~2 ms it reads TCP_INFO of both sockets and the ss-style queues in bytes —
Send-Q = ``ioctl(SIOCOUTQ)`` (write_seq - snd_una) on the sender, Recv-Q = ``ioctl(SIOCINQ)``
(rcv_nxt - copied_seq) on the receiver, what ``ss`` and /proc/net/tcp show on ESTABLISHED rows —
and every 50 ms the two /proc/net/tcp rows themselves (table ``queues``). Zero-window probes are
counted by the kernel (TCPWinProbe) and timed by the sender's ``icsk_backoff``, which
``tcp_send_probe0()`` raises once per probe. The rules are :mod:`tcplab.model.persist`.

>>> s = flow_control(rcvbuf=4096, bytes=200_000, reader="stalled", stall_s=2.0, mode="sim").summary
>>> s["max_recv_q"], s["max_send_q"], s["probes"], s["probe_times"], s["window_updates"]
(4096, 197952, 3, [0.252, 0.672, 1.504], 1)
"""

from __future__ import annotations

import errno
import math
import select
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

from tcplab.errors import ExperimentError
from tcplab.experiments._common import Clock, counters_now, delta
from tcplab.experiments.registry import make_function
from tcplab.experiments.spec import (Experiment, FromRun, GridPoint, Key, ListRel, Param, Plot, Slider, Table,
                                     named, too_long)
from tcplab.kernel.capture import Capture
from tcplab.kernel.loopback import SocketSet
from tcplab.kernel.namespace import set_loopback
from tcplab.kernel.procnet import read_proc_net_tcp
from tcplab.kernel.tcpinfo import send_recv_queues, tcp_info
from tcplab.model.outcome import Outcome, Timing
from tcplab.model.persist import ZERO_WINDOW_DELAY, probe0_base, probe_run, receive_capacity
from tcplab.model.rto import TCP_RETR2, TCP_RTO_MAX, TCP_RTO_MIN
from tcplab.model.window import WINDOW_COLUMNS, sender_window
from tcplab.model.profiles import KernelProfile

__all__ = ["flow_control", "SPEC", "READERS", "send_recv_queues", "next_probe_after"]

READERS = ("stalled", "slow", "fast")
#: what the receiver's host does once the window is closed: answer the probes, or go silent
PEERS = ("answers", "silent")
RETRIES2 = "net.ipv4.tcp_retries2"
DEFAULT_SLOW_RATE = 20_000                  # B/s when reader="slow" and reader_rate is None
_READ_PERIOD = 0.01                         # the slow reader reads every 10 ms
_POLL_S = 0.002
_PROC_EVERY = 0.05
_CHUNK = 16384
#: how late the slow reader's reads may come (s). Measured (2026-12-07, reader="slow", 20,000 B at
#: 20,000 B/s, the loop made late by 25/50/100/200 ms every ~150 ms, 3 runs each): up to 50 ms, probes (2)
#: and window_updates (3-4) stayed within their rules (rel25); at 100 ms two runs of three sent a third
#: probe - a window closed longer than the persist timer's base, max(RTO, TCP_RTO_MIN) = 200 ms, less
#: the time it was closed anyway; at 200 ms every run changed.
_SLOW_PACE_S = 0.050
#: what one non-blocking send() of a 16 KiB chunk to loopback may take without counting as held up (s)
_WRITE_S = 0.001
_COUNTERS = ("TCPWinProbe", "TCPToZeroWindowAdv", "TCPFromZeroWindowAdv")


def _rate(p: Mapping[str, Any]) -> float:
    return float(p["reader_rate"] or DEFAULT_SLOW_RATE)


def _predicted(p: Mapping[str, Any], base: float | None = None, tick: float | None = None,
               rto_max: float | None = None) -> Any:
    """The persist timer's run for a stalled reader (or a silent peer), from the model (rule 5);
    ``rto_max``: the profile's cap of the gap (None: TCP_RTO_MAX)."""
    r2 = TCP_RETR2 if p["retries2"] is None else p["retries2"]
    until = math.inf if p["peer"] == "silent" else p["stall_s"]
    extra: dict[str, Any] = {}
    if tick:
        extra["tick"] = tick
    if rto_max:
        extra["rto_max"] = rto_max
    return probe_run(ZERO_WINDOW_DELAY, until, base, retries2=r2, user_timeout_ms=p["user_timeout"],
                     peer_answers=p["peer"] == "answers", **extra)


def _expected_s(p: Mapping[str, Any]) -> float:
    if p["peer"] == "silent" or p["user_timeout"] is not None:
        run = _predicted(p)
        if run.aborted_at is not None:
            return (run.aborted_at if p["peer"] == "silent" else min(run.aborted_at, p["stall_s"])) + 0.5
        return math.inf if p["peer"] == "silent" else p["stall_s"] + 0.5
    if p["reader"] == "stalled":
        return p["stall_s"] + 0.5
    if p["reader"] == "slow":
        return p["bytes"] / _rate(p) + 0.5
    return 1.0


def _refusal(p: dict[str, Any]) -> str | None:
    return too_long(f"flow_control(bytes={p['bytes']}, reader={p['reader']!r})", _expected_s(p), p["max_seconds"],
                    ", fewer bytes or a faster reader_rate")


def _checks(p: dict[str, Any]) -> None:
    if p["reader"] != "slow" and p["reader_rate"] is not None:
        raise ValueError(f"reader_rate is for reader='slow' only, not reader={p['reader']!r} (leave it None)")
    if p["peer"] == "silent" and p["reader"] != "stalled":
        raise ValueError(f"peer='silent' is for reader='stalled' only, not reader={p['reader']!r}")


def _namespace_reason(p: Mapping[str, Any]) -> str | None:
    if p["peer"] == "silent":
        return "it silences the peer by taking lo down, which only a private network namespace may do"
    return None



def _own_base_probes(params: Mapping[str, Any], real_summary: Mapping[str, Any],
                     profile: str | None) -> tuple[float, ...] | None:
    """The probe times the kernel's rule (``tcp_probe_timer()``, :func:`~tcplab.model.persist.probe_run`:
    backoff, retries2, TCP_USER_TIMEOUT, a silent peer) gives from the run's OWN window close and
    probe base (``zero_window_after_s``, ``probe_base_s``, both compared on their own): in a slow
    guest the RTT samples raise the RTO (212 ms against loopback's 204) and the close comes later,
    and each probe carries that forward (docs/kernels.md). None where the run lacks them.

    >>> p = {"stall_s": 2.0, "retries2": None, "user_timeout": None, "peer": "answers"}
    >>> _own_base_probes(p, {"zero_window_after_s": 0.0647, "probe_base_s": 0.212}, "linux-6.1")
    (0.28, 0.736, 1.6)
    >>> _own_base_probes({**p, "stall_s": 3.0, "user_timeout": 1000},
    ...                  {"zero_window_after_s": 0.044, "probe_base_s": 0.204}, "linux-6.18")
    (0.252, 0.672)
    """
    zero, base = real_summary.get("zero_window_after_s"), real_summary.get("probe_base_s")
    if zero is None or base is None or params.get("stall_s") is None:
        return None
    from tcplab.model.persist import probe_run
    from tcplab.model.profiles import get_profile

    prof = get_profile(profile)
    r2 = prof.retries2 if params.get("retries2") is None else params["retries2"]
    until = math.inf if params.get("peer") == "silent" else params["stall_s"]
    return probe_run(zero, until, base, retries2=r2, user_timeout_ms=params.get("user_timeout"),
                     peer_answers=params.get("peer", "answers") == "answers", tick=prof.timer_tick,
                     rto_max=prof.rto_max).probes


#: probe_times: each within 10 % of the kernel's rule applied to this run's own close and base
PROBE_TIMES_RULE = FromRun(_own_base_probes, then=ListRel(0.10), otherwise=named("list_rel10"),
                           name="list_rel10 (own base)",
                           meaning="each within 10 % of the kernel's probe rule applied to the run's own "
                                   "window close and probe base")

SPEC = Experiment(
    name="flow_control",
    title="A reader that stops or reads slowly: the window closes, Send-Q fills, zero-window probes back off, "
          "the window reopens",
    doc="""The receiver sets SO_RCVBUF=``rcvbuf`` before the handshake (the kernel doubles it); the sender
    (SO_SNDBUF=``sndbuf`` if given) writes ``bytes`` as fast as loopback takes them. reader="stalled"
    reads nothing for ``stall_s`` seconds, then everything; "slow" reads ``reader_rate`` B/s (every 10 ms);
    "fast" reads whatever arrives. Once the receiver holds about two or three segments (its Recv-Q), a
    delayed ACK advertises window 0 (~44 ms); the rest waits in the sender's Send-Q. The persist timer
    then sends a zero-window probe after max(RTO, 200 ms) = 204 ms, doubling the gap each time
    (tcp_probe0_when(), capped at TCP_RTO_MAX, the doubling stopped at tcp_retries2) for as long as
    the peer answers - by default; a read that frees at least a segment sends a window update at
    once (tcp_cleanup_rbuf()). ``user_timeout`` (TCP_USER_TIMEOUT on the sender, ms): the probe
    timer aborts the connection (ETIMEDOUT) that long after its first expiry even while the peer
    answers. ``peer="silent"``: once the window is closed the receiver's host goes silent (lo down
    in the private namespace); ``tcp_probe_timer()`` then gives up after ``retries2`` unanswered
    probes - a count, not the retransmission timer's time budget.""",
    params=(
        Param("rcvbuf", "int", 4096, lo=1, hi=1_048_576, unit="B", help="SO_RCVBUF of the receiver",
              slider=Slider(1152, 32768, step=1, scale="log")),
        Param("sndbuf", "int", None, lo=1, hi=16_777_216, optional=True, unit="B",
              help="SO_SNDBUF of the sender (None: autotuned)"),
        Param("bytes", "int", 200_000, lo=1, hi=100_000_000, unit="B", help="bytes the sender writes",
              slider=Slider(10_000, 2_000_000, step=1000, scale="log")),
        Param("reader", "choice", "stalled", choices=READERS, help="how the receiving application reads"),
        Param("reader_rate", "int", None, lo=100, hi=1_000_000_000, optional=True, unit="B/s",
              help=f"read rate of reader='slow' (None: {DEFAULT_SLOW_RATE})"),
        Param("stall_s", "float", 2.0, lo=0.0, hi=3600.0, unit="s",
              help="how long reader='stalled' reads nothing", slider=Slider(0.5, 8.0, step=0.5)),
        Param("user_timeout", "int", None, lo=1, hi=3_600_000, optional=True, unit="ms",
              help="TCP_USER_TIMEOUT on the sender (None: not set)"),
        Param("retries2", "int", None, lo=0, hi=100, optional=True, sysctl=RETRIES2,
              help="tcp_retries2 in the namespace: for zero-window probes, a count of unanswered probes"),
        Param("peer", "choice", "answers", choices=PEERS,
              help="answers (the probes are ACKed) or silent (lo down once the window is closed)"),
        Param("max_seconds", "float", 60.0, lo=1, hi=86400, unit="s",
              help="refuse real runs predicted to take longer"),
    ),
    summary=(
        Key("zero_window_after_s", "seconds until the sender saw window 0 (None: never)", rule="abs50ms"),
        Key("probe_base_s", "the probe timer's base when the window closed: max(icsk_rto, TCP_RTO_MIN) "
            "(tcp_probe0_base(); real: tcp_info.rto then, which the delayed-ACK RTT samples raise above "
            "loopback's 204 ms; simulated: the loopback RTO). Probe n leaves base x (2^n - 1) after the close",
            rule="rel10"),
        # write_span: the model's peak is the whole write queued before the receiver's first delayed ACK
        # (TCP_DELACK_MIN, 40 ms): writes spread over more (a QEMU guest beside other work, 2026-12-07: one
        # 32768-byte window less) meet that ACK midway. 30 ms leaves the read of Send-Q after them 10 ms
        Key("max_send_q", "largest Send-Q of the sender (bytes written, not yet acknowledged; read right after the "
            "writes and at every poll)", rule="rel10", tolerates={"write_span": 30.0}),
        Key("max_recv_q", "largest Recv-Q of the receiver (bytes received, not yet read)", rule="rel10"),
        Key("probes", "zero-window probes of this connection (on the wire; TCPWinProbe without a capture)", rule="rel25"),
        Key("probe_times", "seconds of each zero-window probe (from the sender's icsk_backoff)", rule=PROBE_TIMES_RULE),
        Key("window_updates", "windows reopened from zero (on the wire; TCPFromZeroWindowAdv without a capture)", rule="rel25"),
        Key("mss", "the sender's segment size after the handshake (tcp_info.snd_mss): half the receiver's first "
            "window (tcp_bound_to_half_wnd())"),
        Key("done_after_s", "seconds until the reader had every byte (None: it never had them)", rule="rel10"),
        Key("aborted_after_s", "seconds until the sender gave up the connection (None: it did not)", rule="rel10"),
        Key("error", "the sender's socket error at the end (ETIMEDOUT) or None"),
    ),
    tables=(Table("queues", ("t", "side", "state", "send_q", "recv_q"),
                  "a /proc/net/tcp row (ss's Send-Q/Recv-Q in bytes) of the sender or receiver, every 50 ms"),
            Table("window", WINDOW_COLUMNS,
                  "the sender's sliding window after a segment moved it (relative sequence numbers, bytes): left "
                  "edge snd_una (the highest cumulative ACK), snd_nxt (the highest seq + len sent), right_edge "
                  "(that ACK + the advertised window, scaled by the SYN-ACK's window scale), window = right_edge - "
                  "snd_una, in_flight = snd_nxt - snd_una, usable = right_edge - snd_nxt; real: from the packet "
                  "capture; simulated: the zero-window stall only",
                  optional="real: only with a packet capture (CAP_NET_RAW) that missed nothing; simulated: only "
                           "where the model has the window (a stalled reader's zero window); the notes say why "
                           "it is missing")),
    timeline=("t", "sent", "read", "snd_wnd", "rcv_wnd", "rcv_space", "notsent_bytes", "unacked", "send_q",
              "recv_q", "backoff"),
    grid=(
        GridPoint(dict(rcvbuf=4096, bytes=200_000, stall_s=2.0), quick=True),
        GridPoint(dict(rcvbuf=8192, bytes=500_000, stall_s=1.0), quick=True),
        GridPoint(dict(rcvbuf=2304, bytes=100_000, stall_s=4.0)),
        GridPoint(dict(rcvbuf=16384, bytes=1_000_000, stall_s=3.0)),
        GridPoint(dict(rcvbuf=6000, bytes=300_000, stall_s=1.0)),
        GridPoint(dict(rcvbuf=32768, bytes=300_000, stall_s=0.5)),
        GridPoint(dict(rcvbuf=4096, bytes=200_000, stall_s=3.0, user_timeout=1000), quick=True,
                  why="TCP_USER_TIMEOUT aborts a zero-window stall while the peer answers"),
        GridPoint(dict(rcvbuf=4096, bytes=200_000, retries2=3, peer="silent"),
                  why="tcp_retries2 counts unanswered zero-window probes"),
    ),
    real=lambda p: _real(p),
    sim=lambda p, profile, rng: _sim(p, profile),
    checks=_checks,
    needs_namespace=_namespace_reason,
    real_refusal=_refusal,
    expected_s=_expected_s,
    timeout=lambda p: _expected_s(p) * 1.5 + 20,
    progress=True,
    plot=Plot(y=("send_q", "recv_q", "snd_wnd"), kind="step", title="Send-Q, Recv-Q and the advertised window",
              y_title="bytes", figure="flow_control:flow_control_figure", table="flow_control:flow_control_events"),
    smoke=(dict(rcvbuf=4096, bytes=50_000, stall_s=0.5),),
)

flow_control = make_function(SPEC)


def _read_some(sock: socket.socket, limit: int) -> int:
    got = 0
    while got < limit:
        try:
            data = sock.recv(min(limit - got, 1 << 20))
        except BlockingIOError:
            break
        if not data:
            raise ExperimentError("the sender closed early")
        got += len(data)
    return got


def _wire_events(segs: list[dict[str, Any]], sport: int, t0: float) -> tuple[float | None, list[float], int]:
    """(first zero window seen by the sender, probe times, window reopenings) from the wire log."""
    zero_at, probes, reopen = None, [], 0
    last_ack, closed = None, False
    for s in segs:
        t = round(s["mono"] - t0, 4)
        if s["dst_port"] == sport:                   # receiver -> sender: ACKs carrying the window
            last_ack = s["ack"]
            if s["window"] == 0:
                if zero_at is None:
                    zero_at = t
                closed = True
            elif closed:
                reopen += 1
                closed = False
        elif s["src_port"] == sport and s["payload"] == 0 and last_ack is not None \
                and s["seq"] == (last_ack - 1) & 0xFFFFFFFF and "A" in s["flags"]:
            probes.append(round(t, 3))               # tcp_xmit_probe_skb(): seq = snd_una - 1, no data
    return zero_at, probes, reopen


def _window_table(out: Outcome, segments: list[dict[str, Any]] | None, sport: int, t0: float, *,
                  drops: int, cut: bool) -> None:
    """Table ``window`` (the sender's window edges, :func:`tcplab.model.window.sender_window`) from the
    wire, or a note saying why there is none: a table from a capture that missed segments or the
    handshake would be invented, not measured."""
    if segments is None:
        out.notes.append("table window (the sliding window) left out: it is read from a packet capture, and "
                         "there is none here (AF_PACKET needs CAP_NET_RAW)")
        return
    if drops:
        out.notes.append(f"table window left out: the capture dropped {drops} packets, so some ACKs or data "
                         "segments are missing from it")
        return
    try:
        w = sender_window(segments, sport, time_key="mono", t0=t0)
    except ValueError as e:
        out.notes.append(f"table window left out: {e}")
        return
    out.tables["window"] = w.rows
    scale = (f"window scale {w.rcv_wscale} (x{1 << w.shift}) on the receiver's SYN-ACK, {w.snd_wscale} on the "
             "sender's SYN" if w.scaling else
             f"no window scaling (SYN wscale {w.snd_wscale}, SYN-ACK wscale {w.rcv_wscale})")
    out.notes.append(f"table window: the sender's window edges from {len(segments)} captured segments; {scale}; "
                     "sequence numbers relative to the first data byte"
                     + ("; it ends when lo went down (the capture stopped there)" if cut else ""))


def next_probe_after(p: Mapping[str, Any], zero_at: float, base: float, t: float) -> float | None:
    """When the persist timer would next fire after ``t`` (s since the start) had the window stayed
    closed (``tcp_probe_timer()``, :func:`~tcplab.model.persist.probe_run` with the run's own close
    ``zero_at`` and base): a probe, or the abort of TCP_USER_TIMEOUT / tcp_retries2; None if the
    connection was over before ``t``.

    A stalled reader that resumes at ``stall_s`` sends its window update then (``tcp_cleanup_rbuf()``);
    one that resumes later than this instant lets one more probe go out, so ``probes``,
    ``probe_times`` and ``window_updates`` are no longer the kernel's alone.

    >>> p = dict(retries2=None, user_timeout=None, peer="answers")
    >>> next_probe_after(p, 0.044, 0.204, 2.0)      # probes 0.252, 0.672, 1.504, then 3.168
    3.168
    """
    r2 = TCP_RETR2 if p["retries2"] is None else p["retries2"]
    run = probe_run(zero_at, t + TCP_RTO_MAX + 1.0, base, retries2=r2, user_timeout_ms=p["user_timeout"],
                    peer_answers=True)
    later = [x for x in run.probes if x > t]
    if run.aborted_at is not None and run.aborted_at <= t:
        return None
    if run.aborted_at is not None:
        later.append(run.aborted_at)
    return min(later) if later else None


def _timings(p: Mapping[str, Any], out: Outcome, *, gaps: Mapping[str, float], resumed_at: float | None,
             zero_at: float | None, base: float | None, probe_at: list[float], probes_polled: bool,
             zero_polled: bool, done_at: float | None, aborted_at: float | None) -> None:
    """The runner's own timing against what this run's summary keys need. The limits depend on the
    run (its probe times, when it ended), so each Timing carries its own (``limit_ms``).

    ``gaps``: how late (s) the 2 ms sampling loop came round at the sample that saw each event, the
    largest: ``"probe"`` (where no capture times the probes: ``probe_times`` within 10 %, so a tenth
    of the first probe), ``"zero"`` (the zero window, where no capture times it: ``zero_window_after_s``
    within 50 ms, half of it), ``"end"`` (``done_after_s`` / ``aborted_after_s`` within 10 %, for an
    end after 0.5 s; before that it is the loop's own speed, no timer's) and ``"loop"`` (any sample:
    the slow reader reads at each, so all of them pace it; ``_SLOW_PACE_S``). ``"reader"``: how late
    the stalled reader resumed after ``stall_s``, against the next persist-timer expiry
    (:func:`next_probe_after`) and ``done_after_s``'s 10 % of ``stall_s``. ``"write"``: how long the
    sender's writes were held up before the window closed (``"writer"``): the zero window comes a delayed
    ACK (TCP_DELACK_MIN, 40 ms) after the receiver is full, so writes held up move it (kernel timestamps
    or not), and ``zero_window_after_s`` is within 50 ms: half of it.
    """
    def poll(name: str, late: float, limit: float, what: str) -> None:
        out.timings.append(Timing(name, round(late * 1000, 3),
                                  f"the sampling loop, asked to look every {_POLL_S * 1000:.0f} ms, saw {what} "
                                  f"{late * 1000:.0f} ms late", limit_ms=round(limit * 1000, 3)))

    if probes_polled and probe_at:
        poll("probe_poll", gaps.get("probe", 0.0), 0.1 * min(probe_at), "a zero-window probe (timed by polling)")
    if zero_polled and zero_at is not None:
        poll("zero_poll", gaps.get("zero", 0.0), 0.025, "the zero window (timed by polling)")
    if zero_at is not None:
        w = gaps.get("write", 0.0)
        out.timings.append(Timing(
            "writer", round(w * 1000, 3),
            f"the sender's writes, which fill the receiver until a delayed ACK closes the window, were held up "
            f"{w * 1000:.0f} ms (zero_window_after_s is within 50 ms; half of it)", limit_ms=25.0))
    end = done_at if done_at is not None else aborted_at
    if end is not None and end >= 0.5:
        poll("end_poll", gaps.get("end", 0.0), 0.1 * end,
             "the reader's last byte" if done_at is not None else "the connection's abort")
    if p["reader"] == "slow":
        out.timings.append(Timing(
            "reader_pace", round(gaps.get("loop", 0.0) * 1000, 3),
            f"the slow reader, meant to read every {_POLL_S * 1000:.0f} ms, read up to "
            f"{gaps.get('loop', 0.0) * 1000:.0f} ms late (a read 100 ms late lets a closed window reach the persist "
            "timer: one more probe)", limit_ms=round(_SLOW_PACE_S * 1000, 3)))
    if resumed_at is None or zero_at is None or base is None:
        return
    late = max(0.0, resumed_at - p["stall_s"])
    nxt = next_probe_after(p, zero_at, base, p["stall_s"])
    if nxt is None:
        return
    lim = min(nxt - p["stall_s"], 0.1 * max(p["stall_s"], 0.5))
    out.timings.append(Timing(
        "reader", round(late * 1000, 3),
        f"the reader resumed {late * 1000:.0f} ms after its stall of {p['stall_s']:g} s (the persist timer's next "
        f"expiry was at {nxt:g} s)", limit_ms=round(lim * 1000, 3)))


class _ProcRows:
    """The two /proc/net/tcp rows every 50 ms, read by a helper thread (table ``queues``).

    Reading /proc/net/tcp walks the kernel's whole established hash (every bucket, every namespace's
    sockets skipped one by one): measured 15-70 ms a read (median 20) in a private namespace on this
    busy 2-core host (2026-12-07, two QEMU guests running), which in the sampling
    loop itself made it come round 30-190 ms late (the "poll" timing). The read is a system call,
    which releases the GIL, so a thread keeps it out of the 2 ms loop. Stops within one period of
    :meth:`stop` (joined, bounded).
    """

    def __init__(self, clock: Clock, sport: int, rport: int) -> None:
        self.rows: list[dict[str, Any]] = []
        self._clock, self._ports = clock, (sport, rport)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flow_control-proc", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sport, _ = self._ports
        # the first read one period in: not on the CPU while the sender's first writes fill the window
        while not self._stop.wait(_PROC_EVERY):
            now = self._clock()
            try:
                recs = read_proc_net_tcp()
            except Exception:  # noqa: BLE001 - the figure's table only; the run goes on without it
                return
            for rec in recs:
                if rec.local_port in self._ports and rec.state == "ESTABLISHED":
                    self.rows.append({"t": round(now, 3), "side": "sender" if rec.local_port == sport
                                      else "receiver", "state": rec.state, "send_q": rec.send_q,
                                      "recv_q": rec.recv_q})

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join(5.0)
        return list(self.rows)


def _real(p: dict[str, Any]) -> Outcome:
    total, reader = p["bytes"], p["reader"]
    out = Outcome()
    rows: list[dict[str, Any]] = []
    queues: list[dict[str, Any]] = []
    probe_at: list[float] = []
    silent = p["peer"] == "silent"
    silenced = False
    with SocketSet() as ss:
        lst = ss.socket()
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, p["rcvbuf"])   # inherited by the accepted socket
        lst.bind(("127.0.0.1", 0))
        lst.listen(1)
        snd = ss.socket()
        if p["user_timeout"] is not None:
            snd.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, p["user_timeout"])
        if p["sndbuf"] is not None:
            snd.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, p["sndbuf"])
        # both ports known before the handshake (the accepted socket has the listener's), so the capture
        # opens first and sees the SYNs: their window-scale options scale every later window (table window)
        snd.bind(("127.0.0.1", 0))
        sport, rport = snd.getsockname()[1], lst.getsockname()[1]
        # the kernel stamps each segment as it passes: polling TCP_INFO on a loaded machine can
        # notice a probe tens of ms late. Without CAP_NET_RAW the runner times probes by polling.
        wire, no_wire = Capture.try_open("lo", ports=(sport, rport), rcvbuf=8 << 20, kernel_time=True)
        if wire is not None:
            ss.adopt(wire.sock)      # closed with the sockets, also when the run fails
        snd.connect(lst.getsockname())
        lst.settimeout(5)
        rcv = ss.adopt(lst.accept()[0])
        snd.setblocking(False)
        rcv.setblocking(False)
        # the MSS the handshake set: half the receiver's first window (tcp_bound_to_half_wnd() in
        # tcp_sync_mss()). Read now, before any data: a later, larger window re-syncs it (below).
        first_mss = tcp_info(snd).snd_mss
        payload = b"f" * _CHUNK
        segments: list[dict[str, Any]] = []
        wire_stopped = False
        before = counters_now()
        clock = Clock()
        sent = got = 0
        zero_at = done_at = aborted_at = None
        error: str | None = None
        rto_at_zero: int | None = None       # tcp_info.rto (us) when the window was first seen closed
        last_key = None
        last_backoff = 0
        rate = _rate(p)
        deadline = _expected_s(p) * 1.5 + 10
        # the bytes that fill the receiver (SO_RCVBUF, which the kernel doubles): the window closes a delayed
        # ACK after them; later writes only fill the sender's Send-Q
        fills = 2 * p["rcvbuf"]
        proc = _ProcRows(clock, sport, rport)
        last_round = 0.0             # the clock's start: a first round held up is late too
        gaps = {"loop": 0.0, "probe": 0.0, "zero": 0.0, "end": 0.0, "write": 0.0}   # lateness (s), see _timings
        resumed_at: float | None = None
        writes_from = all_written = None             # the first write's round; when the last byte was written
        refused = False                              # a write found the socket full (then the kernel paced them)
        peak_send_q = 0
        try:
            while got < total:
                now = clock()
                gap = max(0.0, now - last_round - _POLL_S)
                gaps["loop"] = max(gaps["loop"], gap)
                last_round = now
                if now > deadline:
                    out.notes.append(f"stopped after {deadline:.1f} s with {got} of {total} bytes read")
                    break
                if sent < fills:
                    gaps["write"] = max(gaps["write"], gap)
                wrote = now
                had = sent
                while sent < total:                              # the sender: as much as the socket takes
                    try:
                        sent += snd.send(payload[:min(_CHUNK, total - sent)])
                    except OSError:                              # full (EAGAIN), or given up (ETIMEDOUT)
                        refused = True
                        break
                    if had == 0 and writes_from is None:
                        writes_from = now
                    if sent >= total and all_written is None:
                        all_written = clock()
                    if sent - _CHUNK < fills:                    # the writes that fill the receiver, held up?
                        t_w = clock()
                        gaps["write"] = max(gaps["write"], t_w - wrote - _WRITE_S)
                        wrote = t_w
                    if zero_at is None and tcp_info(snd).extra.get("snd_wnd", 1) == 0:
                        zero_at = round(clock(), 4)              # seen between two writes
                        rto_at_zero = tcp_info(snd).rto
                if sent > had:
                    # Send-Q at its peak: right after the writes, before the receiver's delayed ACK (rule 3)
                    peak_send_q = max(peak_send_q, send_recv_queues(snd, rcv)[0])
                reading = reader == "fast" or (reader == "stalled" and not silent and now >= p["stall_s"])
                if reading and resumed_at is None and reader == "stalled":
                    resumed_at = now
                if reading:
                    got += _read_some(rcv, total - got)
                elif reader == "slow":
                    got += _read_some(rcv, min(total - got, max(0, int(rate * now) - got)))
                if wire is not None:
                    segments += wire.read(timeout=0)
                si, ri = tcp_info(snd), tcp_info(rcv)
                send_q, recv_q = send_recv_queues(snd, rcv)
                snd_wnd = si.extra.get("snd_wnd", 0)
                if snd_wnd == 0 and zero_at is None and sent > 0:
                    zero_at = round(now, 4)
                    rto_at_zero = si.rto
                    gaps["zero"] = gap
                if silent and zero_at is not None and not silenced:
                    if wire is not None:
                        # a capture on a device that goes down fails (ENETDOWN), and the probes
                        # never reach lo anyway: keep what it saw, time the probes by polling
                        segments += wire.read(timeout=0.01)
                        wire.sock.close()
                        wire, wire_stopped = None, True
                    set_loopback(False)                          # the receiver's host goes silent
                    silenced = True
                if si.backoff > last_backoff:                    # tcp_send_probe0(): one probe, backoff++
                    probe_at.extend([round(now, 3)] * (si.backoff - last_backoff))
                    gaps["probe"] = max(gaps["probe"], gap)
                last_backoff = si.backoff
                key = (snd_wnd, ri.extra.get("rcv_wnd"), si.extra.get("notsent_bytes"), si.extra.get("unacked"),
                       send_q, recv_q, si.backoff)
                if key != last_key:
                    rows.append({"t": round(now, 4), "sent": sent, "read": got, "snd_wnd": snd_wnd,
                                 "rcv_wnd": ri.extra.get("rcv_wnd"), "rcv_space": ri.extra.get("rcv_space"),
                                 "notsent_bytes": si.extra.get("notsent_bytes"), "unacked": si.extra.get("unacked"),
                                 "send_q": send_q, "recv_q": recv_q, "backoff": si.backoff})
                    last_key = key
                if si.state == "CLOSE":
                    # tcp_write_err(): the probe timer gave up (TCP_USER_TIMEOUT or tcp_retries2)
                    aborted_at = round(now, 3)
                    gaps["end"] = gap
                    code = snd.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    error = errno.errorcode.get(code, str(code)) if code else None
                    break
                if got >= total:
                    done_at = round(now, 3)
                    gaps["end"] = gap
                    break
                if reading:
                    select.select([rcv], [], [], _POLL_S)        # draining: go on as soon as data arrives
                else:
                    time.sleep(_POLL_S)
        finally:
            queues = proc.stop()
            if silenced:
                set_loopback(True)
        end_mss = tcp_info(snd).snd_mss
        if end_mss != first_mss:
            top = max((r["snd_wnd"] or 0 for r in rows), default=0)
            out.notes.append(
                f"the sender's MSS went from {first_mss} (half the first window) to {end_mss} by the end: a window "
                f"larger than any before (the largest polled: {top} B) re-syncs it (tcp_ack_update_window() -> "
                "tcp_sync_mss()); since 6.6 a receiver's window after a read follows its measured scaling_ratio")
        mss = first_mss
        out.counters = delta(before, keep=_COUNTERS)
        wire_drops = wire.drops() if wire is not None else 0
        if wire is not None:
            segments += wire.read(timeout=0.01)
            wire_drops += wire.drops()
            w_zero, w_probes, w_reopen = _wire_events(segments, sport, clock.t0)
            out.notes.append(f"probes and the zero window timed from {len(segments)} segments captured on lo "
                             f"(kernel timestamps); the wire shows {len(w_probes)} probes and {w_reopen} reopenings")
            zero_at, probe_at = w_zero, w_probes
            wire_counts: tuple[int, int] | None = (len(w_probes), w_reopen)
        elif wire_stopped:
            wire_counts = None
            zero_at = _wire_events(segments, sport, clock.t0)[0] or zero_at
            out.notes.append("the zero window timed on the wire; the probes, which never reach a device that is "
                             "down, by polling the sender's tcpi_backoff")
        else:
            wire_counts = None
            out.notes.append("no packet capture here (CAP_NET_RAW): probes timed by polling the sender's backoff")
        _window_table(out, segments if (wire is not None or wire_stopped) else None, sport, clock.t0,
                      drops=wire_drops, cut=wire_stopped)
    out.timeline = rows
    out.tables["queues"] = queues
    c = out.counters
    if c.get("TCPWinProbe", 0) != len(probe_at):
        out.notes.append(f"TCPWinProbe counted {c.get('TCPWinProbe', 0)} probes, the sender's backoff rose "
                         f"{len(probe_at)} times (a window update can reset it between two polls)")
    base = round(max(rto_at_zero / 1e6, TCP_RTO_MIN), 6) if rto_at_zero is not None else None
    # only where every write was taken at once: then how long they took is the host's pace (a socket that
    # refused one made the writer wait for the kernel, and Send-Q peaks at the send buffer instead)
    if writes_from is not None and all_written is not None and not refused:
        span = all_written - writes_from
        out.timings.append(Timing(
            "write_span", round(span * 1000, 3),
            f"the sender's writes of all {total} bytes took {span * 1000:.1f} ms; Send-Q peaks at the last of them "
            "only if that is before the receiver's delayed ACK (40 ms at the earliest) acknowledges more"))
    _timings(p, out, gaps=gaps, resumed_at=resumed_at, zero_at=zero_at, base=base,
             probe_at=probe_at, probes_polled=wire_counts is None, zero_polled=wire_counts is None and not wire_stopped,
             done_at=done_at, aborted_at=aborted_at)
    out.summary = {
        "zero_window_after_s": zero_at,
        # tcp_probe0_base(): the first probe waits max(icsk_rto, TCP_RTO_MIN), then each gap doubles
        "probe_base_s": base,
        "max_send_q": max(peak_send_q, max((r["send_q"] for r in rows), default=0)),
        "max_recv_q": max((r["recv_q"] for r in rows), default=0),
        # the wire counts only this connection (host-wide counters would include other programs' probes)
        "probes": wire_counts[0] if wire_counts else c.get("TCPWinProbe", 0),
        "probe_times": probe_at,
        "window_updates": wire_counts[1] if wire_counts else c.get("TCPFromZeroWindowAdv", 0),
        "mss": mss,
        "done_after_s": done_at,
        "aborted_after_s": aborted_at,
        "error": error,
    }
    out.notes.append(f"receiver SO_RCVBUF={p['rcvbuf']} (the kernel doubles it); Send-Q/Recv-Q from "
                     "ioctl SIOCOUTQ/SIOCINQ every 2 ms, /proc/net/tcp rows every 50 ms")
    if silent:
        out.notes.append("the receiver's host went silent once the window was closed (lo down in the private "
                         "namespace): no probe was answered")
    if p["user_timeout"] is not None or silent or p["retries2"] is not None:
        if zero_at is not None and base is not None:
            pred = _predicted(p, base)
            out.notes.append(f"the model (tcp_probe_timer(), this run's base {base:g} s) predicts probes at "
                             f"{list(pred.probes)} s and "
                             + (f"the abort at {pred.aborted_at:g} s ({pred.why})" if pred.aborted_at is not None
                                else "no abort"))
    return out


def _sim(p: dict[str, Any], profile: KernelProfile) -> Outcome:
    """Stalled reader: the rules of tcplab.model.persist, event by event. Slow and fast readers: only
    the reader's own pace (done_after_s); what the window does between reads is not modelled (None)."""
    total, reader = p["bytes"], p["reader"]
    cap = receive_capacity(p["rcvbuf"], scaling_ratio=profile.rcv_scaling_ratio)
    held = min(total, cap.max_recv_q)
    sndbuf_note = ""
    if p["sndbuf"] is not None:
        sndbuf_note = "; SO_SNDBUF is not modelled (the whole write is assumed to fit the send buffer)"
    base = probe0_base()
    zero_at = ZERO_WINDOW_DELAY if total > cap.max_recv_q else None
    rows: list[dict[str, Any]] = [{"t": 0.0, "sent": total, "read": 0, "snd_wnd": cap.window, "rcv_wnd": cap.window,
                                   "rcv_space": cap.window, "notsent_bytes": total - held, "unacked": 0,
                                   "send_q": total, "recv_q": held, "backoff": 0}]
    probes: tuple[float, ...] = ()
    updates = 0
    done: float | None = 0.0
    aborted: float | None = None
    if reader == "stalled":
        done = round(p["stall_s"], 3) if total > 0 else 0.0
        if zero_at is not None and (p["stall_s"] > zero_at or p["peer"] == "silent"):
            run = _predicted(p, base, tick=profile.timer_tick, rto_max=profile.rto_max)
            probes, aborted = run.probes, run.aborted_at
            updates = 0 if aborted is not None else 1
            rows.append({**rows[-1], "t": zero_at, "snd_wnd": 0, "rcv_wnd": 0})
            for i, t in enumerate(probes, start=1):
                rows.append({**rows[-1], "t": t, "backoff": min(i, TCP_RETR2 if p["retries2"] is None
                                                                   else p["retries2"])})
            if aborted is not None:
                done = None
                notes_abort = (f"the probe timer gives up at {aborted:g} s ({run.why}): tcp_probe_timer(), "
                               "tcplab.model.persist rule 5")
        elif zero_at is None:
            done = 0.0 if p["stall_s"] == 0 else round(p["stall_s"], 3)
    else:
        # slow and fast readers: only what a fluid model knows; the window's dance between reads depends on
        # tcp_select_window()'s rounding and the receiver's scaling_ratio, which this model does not follow
        done = round(total / _rate(p), 3) if reader == "slow" else 0.0
        zero_at = None
    if aborted is None:
        rows.append({"t": done, "sent": total, "read": total, "snd_wnd": cap.window, "rcv_wnd": cap.window,
                     "rcv_space": cap.window, "notsent_bytes": 0, "unacked": 0, "send_q": 0, "recv_q": 0,
                     "backoff": 0})
    queues = [{"t": 0.0, "side": "sender", "state": "ESTABLISHED", "send_q": total - held, "recv_q": 0},
              {"t": 0.0, "side": "receiver", "state": "ESTABLISHED", "send_q": 0, "recv_q": held}]
    tables: dict[str, list[dict[str, Any]]] = {"queues": queues}
    notes = [f"kernel profile {profile.name}: SO_RCVBUF {p['rcvbuf']} -> sk_rcvbuf {cap.sk_rcvbuf}, first window "
             f"{cap.window}, MSS {cap.mss}, the receiver holds {cap.max_recv_q} B (tcplab.model.persist rule 4, "
             + ("fitted on 6.18" if profile.rcv_scaling_ratio else
                "one window: before 6.6, dfa2f0483360, tcp_adv_win_scale sizes it; measured on 6.1")
             + f"){sndbuf_note}"]
    # Send-Q peaks before the delayed ACK (rule 3): only the first segment, ACKed at once in quick-ACK
    # mode, has left it; the sender has queued the whole write by then
    peak_send_q = total - min(total, cap.mss)
    summary = {"zero_window_after_s": zero_at, "probe_base_s": round(base, 6) if zero_at is not None else None,
               "max_send_q": peak_send_q, "max_recv_q": held, "probes": len(probes),
               "probe_times": list(probes), "window_updates": updates, "mss": cap.mss, "done_after_s": done,
               "aborted_after_s": aborted, "error": "ETIMEDOUT" if aborted is not None else None}
    if aborted is not None:
        notes.append(notes_abort)
    stall_end = aborted if aborted is not None else (p["stall_s"] if reader == "stalled" else None)
    if zero_at is not None and stall_end is not None and stall_end > zero_at:
        # rules 3-4: the delayed ACK that closes the window acknowledges everything the receiver holds;
        # nothing moves until the reader resumes (rule 2) or the probe timer gives up (rule 5)
        edge = {"snd_una": held, "snd_nxt": held, "right_edge": held, "window": 0, "in_flight": 0, "usable": 0}
        tables["window"] = [{"t_s": zero_at, **edge}, {"t_s": round(stall_end, 4), **edge}]
        notes.append(f"table window: the simulator models the zero-window stall only ({zero_at:g} to {stall_end:g} s: "
                     f"every edge at {held} B, what the receiver holds); how the window filled before it (each ACK) and "
                     "moved after the stall are not modelled, so the table has no rows there")
    else:
        notes.append("table window left out: the simulator models the window only through a stalled reader's zero "
                     f"window, and this run (reader={reader!r}) has none it models")
    if reader != "stalled":
        for k in ("zero_window_after_s", "max_send_q", "max_recv_q", "probes", "probe_times", "window_updates",
                  "aborted_after_s"):
            summary[k] = None
        notes.append(f"reader={reader!r}: the simulator models only the stalled reader's window; zero windows, "
                     "probes, updates and queue maxima are None here (not modelled) - run it for real")
    return Outcome(
        summary=summary,
        counters={"TCPWinProbe": len(probes), "TCPToZeroWindowAdv": updates, "TCPFromZeroWindowAdv": updates},
        tables=tables, timeline=rows, notes=notes)
