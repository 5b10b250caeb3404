"""congestion: bulk transfers through a bottleneck you can slide — slow start, loss recovery, Reno vs
CUBIC vs BBR, and bufferbloat.

The real runner builds the path of :mod:`tcplab.kernel.bottleneck` (sender namespace -> veth ->
router namespace with a tbf rate limit and a ``buffer_packets`` drop-tail pfifo on a TUN device ->
a userspace delay line holding each packet ``rtt_ms / 2`` in each direction -> receiver namespace;
netem is not built into this kernel), sets the algorithm on each sender socket (TCP_CONGESTION;
the namespace-wide sysctl is refused outside the initial namespace for algorithms the host does not
list in tcp_allowed_congestion_control), and runs ``flows`` bulk transfers for ``duration`` seconds. TCP_INFO of every flow is
sampled every rtt/8 (at least 1 ms): cwnd, ssthresh, srtt, rttvar, bytes in flight, retransmissions,
delivery and pacing rate; the delay line samples the bottleneck qdisc's queue and drops (rtnetlink)
and measures its own lateness, which every real Result reports.

The simulator is :mod:`tcplab.model.cc`: the same path packet by packet with Reno and CUBIC as
Linux implements them (``tcp_slow_start()``, ``tcp_cong_avoid_ai()``, ``bictcp_update()``,
HyStart, RACK, PRR), and BBR v1 as ``net/ipv4/tcp_bbr.c`` runs it (:mod:`tcplab.model.bbr`: Startup,
Drain, ProbeBW's gain cycle, ProbeRTT, the windowed bandwidth and min-RTT filters, pacing).

>>> s = congestion(rate_mbit=20, rtt_ms=40, buffer_packets=50, algorithm="reno", duration=3, mode="sim").summary
>>> s["loss_events"] >= 1, 0.85 < s["utilization"] <= 1.0, s["srtt_min_ms"] >= 40
(True, True, True)
"""

from __future__ import annotations

import socket
import statistics
from collections.abc import Mapping
from typing import Any

from tcplab.errors import ExperimentError
from tcplab.experiments._common import (PATH_RATE_PARAM, PATH_RTT_PARAM, LagMeter, ack_train_timing, counters_now,
                                        delay_line_timings, delta, send_and_sample)
from tcplab.experiments.registry import make_function
from tcplab.experiments.spec import Experiment, GridPoint, Key, Param, Plot, Slider, Table
from tcplab.kernel.bottleneck import DELAY_METHOD, bottleneck_path
from tcplab.kernel.tcpinfo import packets_in_flight, tcp_info
from tcplab.kernel.sysctl import read_sysctl
from tcplab.model.cc import (INFINITE_SSTHRESH, MSS, WIRE_BYTES, exit_cwnd_from_ssthresh, path_packets,
                             rcvbuf_request, receive_window_for, receive_window_packets)
from tcplab.model.outcome import Outcome
from tcplab.model.profiles import KernelProfile
from tcplab.sim.bottleneck import simulate
from tcplab.sim.engine import Rng

__all__ = ["congestion", "SPEC", "jain_index"]

CC_SYSCTL = "net.ipv4.tcp_congestion_control"
RMEM_MAX = "net.core.rmem_max"
_COUNTERS = ("TCPSackRecovery", "TCPRenoRecovery", "TCPTimeouts", "TCPFastRetrans", "TCPLossProbes",
             "RetransSegs")
#: what the timed summary keys tolerate of the real runner's own timing (Key.tolerates), in ms.
#: "delay_line": the userspace delay line's p99 release lateness: each late packet adds its lateness
#: to an RTT sample and, when the line stalls, the bottleneck idles. Measured on a 2-core VM shared
#: with other work (docs/fidelity.md): p99 2.4-5.4 ms in every undisturbed run, root or not.
DELAY_LINE_TOLERANCE_MS = 10.0
#: "sender": how long the sending loop went without the CPU. Longer than the socket's send buffer
#: lasts at the bottleneck's rate and the link idles for want of data, not for congestion control.
SENDER_LAG_TOLERANCE_MS = 250.0
SENDER_LAG_LIMIT_S = SENDER_LAG_TOLERANCE_MS / 1000
_TIMED = {"delay_line": DELAY_LINE_TOLERANCE_MS}
_SENT = {"delay_line": DELAY_LINE_TOLERANCE_MS, "sender": SENDER_LAG_TOLERANCE_MS}
#: where CUBIC's slow start ends, and the losses its overshoot brings, also tolerate 1 ms of HyStart ACK train
#: the host took away (``_common.ack_train_timing``; the reasoning is aqm's ``ACK_TRAIN_TOLERANCE_MS``)
_EXIT = {**_TIMED, "ack_train": 1.0}

TIMELINE = ("t", "flow", "cwnd", "ssthresh", "srtt_ms", "rttvar_ms", "in_flight", "total_retrans",
            "delivery_rate_mbit", "pacing_rate_mbit", "ca_state", "delivered_bytes")


def jain_index(xs: list[float]) -> float | None:
    """Jain's fairness index (sum x)^2 / (n sum x^2): 1 when all flows get the same, 1/n when one
    gets everything; None for fewer than two flows.

    >>> jain_index([10, 10]), jain_index([20, 0]), jain_index([5])
    (1.0, 0.5, None)
    """
    if len(xs) < 2:
        return None
    sq = sum(x * x for x in xs)
    return round(sum(xs) ** 2 / (len(xs) * sq), 4) if sq else None


def _sample_s(p: Mapping[str, Any]) -> float:
    return max(0.001, p["rtt_ms"] / 8000)


def _path_packets(p: Mapping[str, Any]) -> float:
    return path_packets(p["rate_mbit"], p["rtt_ms"], p["buffer_packets"])


def _checks(p: dict[str, Any]) -> None:
    path = _path_packets(p)
    if path > 20000:
        bdp = path - p["buffer_packets"]
        raise ValueError(f"buffer_packets + the path's bandwidth-delay product ({bdp:.0f} packets) must be at most "
                         f"20000 packets, not {path:.0f} (the receive window caps a flow there)")


def _refusal(p: dict[str, Any]) -> str | None:
    if p["loss"]:
        return ("loss must be None in real mode, not {:g} (random loss needs netem, which this kernel lacks); "
                "mode=\"sim\" drops packets at random").format(p["loss"])
    return None


SPEC = Experiment(
    name="congestion",
    title="Bulk transfers through a bottleneck: cwnd, ssthresh, RTT and losses for Reno, CUBIC and BBR",
    doc="""``flows`` bulk transfers share a bottleneck of ``rate_mbit`` with a drop-tail buffer of
    ``buffer_packets`` and a round-trip time of ``rtt_ms`` (a userspace TUN delay line: netem is not
    built into this kernel). Slow start (``tcp_slow_start()``) grows cwnd by one packet per packet
    delivered — it doubles every RTT — until HyStart (CUBIC) or the first loss sets ssthresh; Reno
    then adds one packet per RTT (``tcp_cong_avoid_ai()``) and halves on loss, CUBIC follows
    W(t) = 0.4 (t - K)^3 + Wmax (``bictcp_update()``) and keeps 717/1024 of cwnd on loss. A buffer
    deeper than the bandwidth-delay product inflates the RTT by buffer / rate (bufferbloat); a
    shallow one costs utilization. BBR paces at its bandwidth estimate and keeps the queue short
    (``tcp_bbr.c``: Startup at 2.89x, Drain, ProbeBW's 1.25/0.75/1 x 6 gain cycle, ProbeRTT).""",
    params=(
        PATH_RATE_PARAM,
        PATH_RTT_PARAM,
        Param("buffer_packets", "int", 50, lo=1, hi=10000, real_hi=2000, unit="packets",
              real_why="deeper buffers outgrow the receive window a fresh namespace allows",
              help="the bottleneck's drop-tail buffer (pfifo limit)", slider=Slider(1, 1000, scale="log")),
        Param("algorithm", "choice", "cubic", choices=("reno", "cubic", "bbr"),
              help="the senders' congestion control, set per socket with TCP_CONGESTION"),
        Param("flows", "int", 1, lo=1, hi=8, help="bulk transfers sharing the bottleneck", slider=Slider(1, 4)),
        Param("duration", "float", 3.0, lo=0.2, hi=300, real_hi=20, unit="s",
              real_why="real runs are kept short; mode=\"sim\" runs minutes in about a second",
              help="how long the senders send", slider=Slider(1, 20, step=1)),
        Param("loss", "float", None, lo=0.0, hi=0.2, optional=True,
              help="random loss per packet (sim only: netem is missing here)"),
    ),
    summary=(
        Key("throughput_mbit", "payload delivered by all flows, Mbit/s over the run", rule="rel10", tolerates=_SENT),
        Key("flow_throughput_mbit", "each flow's payload rate, Mbit/s", rule="shown"),
        Key("utilization", "payload delivered over the most the link carries (1448 of every 1500 bytes)", rule="rel10",
            tolerates=_SENT),
        Key("srtt_p50_ms", "median smoothed RTT over the samples (bufferbloat shows here)", rule="rel10",
            tolerates=_TIMED),
        Key("srtt_max_ms", "largest smoothed RTT (about rtt + buffer / rate when the buffer fills)", rule="rel10",
            tolerates=_TIMED),
        Key("srtt_min_ms", "smallest smoothed RTT sampled", rule="shown"),
        Key("slow_start_exit_cwnd", "cwnd when slow start ended (HyStart: ssthresh = cwnd; loss: ssthresh / beta); "
            "None for bbr", rule="rel20", tolerates=_EXIT),
        Key("slow_start_exit_by", "hystart or loss (first flow)", rule="shown"),
        Key("loss_events", "recovery episodes (TCPSackRecovery + TCPRenoRecovery) plus RTO expiries", rule="rel25",
            tolerates=_EXIT),
        Key("fast_retransmits", "segments retransmitted by fast recovery (TCPFastRetrans)", rule="shown"),
        Key("rto_timeouts", "retransmission timeouts (TCPTimeouts)", rule="shown"),
        Key("fairness", "Jain's index of the flows' throughputs (None for one flow)", rule="shown"),
        Key("bottleneck_drops", "packets the bottleneck's buffer dropped", rule="shown"),
        Key("queue_max_packets", "the longest bottleneck queue sampled", rule="shown"),
        Key("receive_window_packets", "the most the receiver advertises: its receive buffer is locked at twice the "
            "path (BDP + buffer) + 16 packets, so cwnd limits the sender", rule="shown"),
        Key("delay_method", "how the delay was made (and, real, how late the delay line ran)", rule="shown"),
    ),
    tables=(Table("queue", ("t", "queue_packets", "backlog_bytes", "drops"),
                  "the bottleneck's queue sampled every 5 ms (real: rtnetlink; sim: the model)"),),
    timeline=TIMELINE,
    grid=(
        GridPoint(dict(rate_mbit=20, rtt_ms=40, buffer_packets=50, algorithm="cubic", duration=4)),
        GridPoint(dict(rate_mbit=20, rtt_ms=40, buffer_packets=50, algorithm="reno", duration=4), quick=True,
                  why="no HyStart: slow start ends by loss; 3 real runs agreed on every key"),
        GridPoint(dict(rate_mbit=10, rtt_ms=20, buffer_packets=12, algorithm="reno", duration=5),
                  why="a buffer well under the BDP (17 packets) costs utilization. Not 10: slow start's "
                      "second round peaks at exactly 10 queued packets there, and the kernel's ACK timing "
                      "jitter decided run by run whether one was dropped (slow start exit at cwnd 38 or 52)"),
        GridPoint(dict(rate_mbit=10, rtt_ms=20, buffer_packets=200, algorithm="cubic", duration=5), quick=True,
                  why="bufferbloat: srtt grows by 200 x 1.2 ms; HyStart's ACK train fires only because the receiver "
                      "ACKs every segment while its window opens (cwnd 29 in both)"),
        GridPoint(dict(rate_mbit=50, rtt_ms=50, buffer_packets=100, algorithm="cubic", duration=6)),
        GridPoint(dict(rate_mbit=30, rtt_ms=80, buffer_packets=60, algorithm="reno", duration=6)),
        GridPoint(dict(rate_mbit=20, rtt_ms=30, buffer_packets=40, algorithm="cubic", flows=2, duration=6)),
        GridPoint(dict(rate_mbit=10, rtt_ms=20, buffer_packets=200, algorithm="bbr", duration=5), quick=True,
                  why="BBR on the bufferbloat path: Startup peaks at 40 queued packets, then ProbeBW keeps ~6 "
                      "(sRTT 28 ms, not CUBIC's 260); no loss"),
        GridPoint(dict(rate_mbit=20, rtt_ms=40, buffer_packets=50, algorithm="bbr", duration=4),
                  why="Startup (2.89 x BDP) overflows a buffer under the BDP: two recoveries, ~180 drops; the "
                      "receiver's window stalls while out-of-order data fills its buffer (without that in the "
                      "model, a third recovery)"),
        GridPoint(dict(rate_mbit=10, rtt_ms=30, buffer_packets=100, algorithm="bbr", duration=12),
                  why="long enough for ProbeRTT: the min-RTT filter expires at 10 s, cwnd 4 for 200 ms"),
        GridPoint(dict(rate_mbit=50, rtt_ms=50, buffer_packets=100, algorithm="bbr", duration=6),
                  why="bursts of 4 packets at 50 Mbit/s (bbr_tso_segs_goal()); Startup overflows: 2 recoveries"),
        GridPoint(dict(rate_mbit=20, rtt_ms=30, buffer_packets=40, algorithm="bbr", flows=2, duration=6),
                  why="two BBR flows share the link fairly (Jain 0.999 in both) but keep a full buffer: ~90 "
                      "recoveries"),
    ),
    real=lambda p: _real(p),
    sim=lambda p, profile, rng: _sim(p, profile, rng),
    record=("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"),
    needs_namespace="it builds namespaces, a veth, TUN devices and a qdisc",
    checks=_checks,
    real_refusal=_refusal,
    host_limit=lambda p: _host_limit(p),
    expected_s=lambda p: p["duration"] + 1.5,
    timeout=lambda p: p["duration"] * 2 + 40,
    progress=False,
    plot=Plot(y=("cwnd", "ssthresh", "in_flight"), title="congestion window over time",
              y_title="packets", figure="congestion:congestion_figure", table="congestion:congestion_flows"),
    smoke=(dict(rate_mbit=10, rtt_ms=20, buffer_packets=20, algorithm="reno", duration=1),),
)

congestion = make_function(SPEC)


def _summarise(p: Mapping[str, Any], timeline: list[dict[str, Any]], delivered_bytes: list[int],
               duration: float, counters: Mapping[str, int], exit_cwnd: int | None, exit_by: str | None,
               queue: list[dict[str, Any]], delay_method: str, rcv_window: int) -> dict[str, Any]:
    per_flow = [round(b * 8 / duration / 1e6, 3) for b in delivered_bytes]
    total = sum(per_flow)
    cap = p["rate_mbit"] * MSS / WIRE_BYTES
    srtts = [r["srtt_ms"] for r in timeline if r["srtt_ms"]]
    return {
        "throughput_mbit": round(total, 3),
        "flow_throughput_mbit": per_flow,
        "utilization": round(total / cap, 4),
        "srtt_p50_ms": round(statistics.median(srtts), 3) if srtts else None,
        "srtt_max_ms": round(max(srtts), 3) if srtts else None,
        "srtt_min_ms": round(min(srtts), 3) if srtts else None,
        "slow_start_exit_cwnd": exit_cwnd,
        "slow_start_exit_by": exit_by,
        "loss_events": counters.get("TCPSackRecovery", 0) + counters.get("TCPRenoRecovery", 0)
        + counters.get("TCPTimeouts", 0),
        "fast_retransmits": counters.get("TCPFastRetrans", 0),
        "rto_timeouts": counters.get("TCPTimeouts", 0),
        "fairness": jain_index(per_flow),
        "bottleneck_drops": queue[-1]["drops"] if queue else None,
        "queue_max_packets": max((q["queue_packets"] for q in queue), default=None),
        "receive_window_packets": rcv_window,
        "delay_method": delay_method,
    }


def _exit_from_samples(rows: list[dict[str, Any]], algorithm: str) -> tuple[int | None, str | None]:
    """Slow start's exit cwnd of one flow from its samples: at the first finite ssthresh, HyStart
    (no retransmission yet, state Open: ssthresh = cwnd) or a loss (ssthresh = beta x cwnd)."""
    if algorithm == "bbr":
        return None, None
    for r in rows:
        if r["ssthresh"] is not None:
            by_loss = r["total_retrans"] > 0 or r["ca_state"] in ("Recovery", "Loss")
            return exit_cwnd_from_ssthresh(r["ssthresh"], algorithm, by_loss), "loss" if by_loss else "hystart"
    return None, None


def _window(p: Mapping[str, Any]) -> int:
    return receive_window_for(_path_packets(p))


def _host_limit(p: dict[str, Any]) -> str | None:
    """The receiver's buffer is locked at what the path needs; a SO_RCVBUF request beyond
    net.core.rmem_max (host-wide: no namespace has its own, and none can raise it) is cut to it."""
    need = rcvbuf_request(_window(p))
    try:
        rmem_max = read_sysctl(RMEM_MAX)
    except (OSError, ValueError):
        return None                     # the real run reports the window it got
    if isinstance(rmem_max, int) and rmem_max < need:
        return (f"the receiver needs a {_window(p)}-packet window for this path ({_path_packets(p):.0f} packets of "
                f"BDP + buffer, twice over, so that cwnd and not the receiver limits the sender), a locked SO_RCVBUF "
                f"of {need} bytes, but the host's net.core.rmem_max is {rmem_max} (the host's administrator can "
                f"raise it; a namespace cannot)")
    return None


def _window_note(p: Mapping[str, Any], rcvbuf: int) -> str:
    return (f"receiver: SO_RCVBUF locked at {rcvbuf} bytes, a window of up to {receive_window_packets(rcvbuf)} "
            f"packets (twice the path's {_path_packets(p):.0f} + 16): cwnd, not the receiver, limits the sender. "
            f"It opens from 4/5 of that by two segments per segment received (tcp_grow_window()); the receiver ACKs "
            f"every segment until it is open and 16 more (quickack), every second one after")


def _real(p: dict[str, Any]) -> Outcome:
    out = Outcome()
    sample_s = _sample_s(p)
    with bottleneck_path(p["rate_mbit"], p["rtt_ms"], p["buffer_packets"],
                         max_seconds=p["duration"] + 30, rcvbuf=rcvbuf_request(_window(p))) as path:
        socks: list[socket.socket] = []
        try:
            for _ in range(p["flows"]):
                s = socket.socket()
                socks.append(s)
                # per socket: writing net.ipv4.tcp_congestion_control outside the initial namespace is
                # refused (EPERM) unless the host lists the algorithm in tcp_allowed_congestion_control
                # (tcp_set_default_congestion_control()); TCP_CONGESTION needs CAP_NET_ADMIN in the
                # namespace's user namespace, which we have (tcp_set_congestion_control())
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, p["algorithm"].encode())
                s.settimeout(5)
                s.connect(path.receiver)
                s.setblocking(False)
            algo = socks[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0").decode()
            if algo != p["algorithm"]:
                raise ExperimentError(f"the sockets use {algo}, not {p['algorithm']}")
            before = counters_now()
            acked0 = [tcp_info(s).extra.get("bytes_acked", 0) for s in socks]
            rows: list[dict[str, Any]] = []

            def sample(now: float, t: float) -> None:
                for i, s in enumerate(socks):
                    rows.append(_row(round(t, 5), i, tcp_info(s), acked0[i]))
            # the sender's own lag: a loop that went long without the CPU let the socket run dry
            t0, elapsed = send_and_sample(socks, p["duration"], sample_s, sample,
                                          LagMeter(sample_s, SENDER_LAG_LIMIT_S, name="sender"))
            finals = [tcp_info(s) for s in socks]
            out.counters = delta(before, keep=_COUNTERS)
        finally:
            for s in socks:
                s.close()
    stats = path.stats
    if stats is None:
        raise ExperimentError("the delay line did not report its measurements")
    t_base = t0
    queue = [{"t": round(t - t_base, 4), "queue_packets": q, "backlog_bytes": b, "drops": d}
             for t, q, b, d in stats.queue if t_base <= t <= t_base + elapsed + 0.01]
    delivered = [f.extra.get("bytes_acked", 0) - a for f, a in zip(finals, acked0)]
    exit_cwnd, exit_by = _exit_from_samples([r for r in rows if r["flow"] == 0], p["algorithm"])
    method = (f"{DELAY_METHOD}; {path.scheduling}; lateness p50 {stats.lateness_p50_ms} ms, p99 "
              f"{stats.lateness_p99_ms} ms, max {stats.lateness_max_ms} ms over {stats.packets} packets")
    out.timeline = rows
    out.tables["queue"] = queue
    rcv_window = receive_window_packets(path.rcvbuf)
    out.summary = _summarise(p, rows, delivered, elapsed, out.counters, exit_cwnd, exit_by, queue, method,
                             rcv_window)
    out.notes.append(_window_note(p, path.rcvbuf))
    if rcv_window < _window(p):
        out.notes.append(f"the kernel kept SO_RCVBUF at {path.rcvbuf} bytes: a {rcv_window}-packet window, less than "
                         f"the {_window(p)} asked for (net.core.rmem_max); the model assumes {_window(p)}")
    widest = max((f.extra.get("snd_wnd", 0) for f in finals), default=0)
    if widest:
        out.notes.append(f"the receiver's window reached {widest // MSS} packets ({widest} bytes) by the end")
    min_rtt = min((f.extra.get("min_rtt", 0) for f in finals), default=0) / 1000
    out.summary["delay_method"] += f"; min_rtt measured {min_rtt:g} ms for {p['rtt_ms']:g} ms configured"
    out.notes += path.notes
    out.notes.append(f"delay line: {stats.packets} packets, released late by p50 {stats.lateness_p50_ms} ms, "
                     f"p99 {stats.lateness_p99_ms} ms, max {stats.lateness_max_ms} ms; TCP's min_rtt {min_rtt:g} ms "
                     f"for a configured {p['rtt_ms']:g} ms")
    out.timings += delay_line_timings(stats, path.scheduling)
    if p["algorithm"] == "cubic":
        # the delay line follows the first connection (flow 0's SYN comes first), whose exit the summary reports
        first = [r for r in rows if r["flow"] == 0]
        exit_t = next((r["t"] for r in first if r["ssthresh"] is not None), elapsed)
        out.timings.append(ack_train_timing(stats, t0, t0 + exit_t, finals[0].extra.get("min_rtt", 0) / 1e6,
                                            finals[0].extra.get("pacing_rate") or 0))
    if stats.error:
        out.notes.append(stats.error)
    return out


def _row(t: float, flow: int, info: Any, acked0: int) -> dict[str, Any]:
    x = info.extra
    ss = x.get("snd_ssthresh", INFINITE_SSTHRESH)
    in_flight = packets_in_flight(x)
    return {"t": t, "flow": flow, "cwnd": x.get("snd_cwnd"), "ssthresh": None if ss >= 0xFFFF else ss,
            "srtt_ms": x.get("rtt", 0) / 1000 or None, "rttvar_ms": x.get("rttvar", 0) / 1000,
            "in_flight": in_flight, "total_retrans": info.total_retrans,
            "delivery_rate_mbit": round(x.get("delivery_rate", 0) * 8 / 1e6, 3),
            "pacing_rate_mbit": round(x.get("pacing_rate", 0) * 8 / 1e6, 3) if x.get("pacing_rate", 0) < 2**63 else None,
            "ca_state": info.ca_state, "delivered_bytes": x.get("bytes_acked", 0) - acked0}


def _sim(p: dict[str, Any], profile: KernelProfile, rng: Rng) -> Outcome:
    rcv_window = _window(p)
    run = simulate(p["rate_mbit"], p["rtt_ms"], p["buffer_packets"], p["algorithm"], flows=p["flows"],
                   duration=p["duration"], sample_s=_sample_s(p), loss=p["loss"], rng=rng,
                   rcv_window=rcv_window)
    counters = {"TCPSackRecovery": sum(f.loss_events - f.rto_timeouts for f in run.flows),
                "TCPTimeouts": sum(f.rto_timeouts for f in run.flows),
                "TCPFastRetrans": sum(f.fast_retransmits for f in run.flows)}
    f0 = run.flows[0]
    method = "simulated: a constant one-way delay of rtt/2 (tcplab.model.cc)"
    out = Outcome(timeline=run.timeline, tables={"queue": run.queue}, counters=counters,
                  sysctls={CC_SYSCTL: p["algorithm"]})
    bbr = p["algorithm"] == "bbr"      # BBR has no slow start to exit (the real runner reports None too)
    out.summary = _summarise(p, run.timeline, [f.delivered * MSS for f in run.flows], p["duration"], counters,
                             None if bbr else f0.slow_start_exit_cwnd, None if bbr else f0.exit_by, run.queue,
                             method, rcv_window)
    out.notes.append(_window_note(p, 2 * rcvbuf_request(rcv_window)))
    out.summary["loss_events"] = sum(f.loss_events for f in run.flows)
    model = "BBR as tcplab.model.bbr models it" if bbr else "Reno/CUBIC as tcplab.model.cc models them"
    out.notes.append(f"kernel profile {profile.name}: {model}; {run.packets} packets, "
                     f"{run.drops} dropped at the bottleneck")
    if bbr and run.modes:
        shown = ", ".join(f"{m} at {t:.3f} s" for t, m in run.modes[0][:12])
        out.notes.append(f"flow 0's BBR modes: {shown}" + (" ..." if len(run.modes[0]) > 12 else ""))
    return out
