"""aqm: bufferbloat's cure, measured — the same bulk flow through a drop-tail buffer and through CoDel,
with and without ECN, and paced.

The path is :mod:`tcplab.kernel.bottleneck`'s (sender namespace -> veth -> router namespace -> TUN ->
userspace delay line -> receiver namespace), but the bottleneck itself, its rate and its queue, is the
delay line's own (:mod:`tcplab.kernel.aqmlink`): this kernel builds no codel or fq_codel qdisc (the
real runner probes ``tc qdisc add dev lo root codel`` in its private namespace and reports
``kernel_codel``), so CoDel runs there as RFC 8289 and ``include/net/codel_impl.h`` specify it
(:mod:`tcplab.model.codel`), and drop-tail runs there too so both measure the queue the same way:
each packet's **sojourn time** from the moment the line read it to the moment the link sent it.

With ``ecn=True`` both ends' namespaces set ``net.ipv4.tcp_ecn=1``: the SYN carries ECE+CWR, the
SYN-ACK ECE (``tcp_ecn_send_syn()``, ``tcp_ecn_make_synack()``), new data leaves ECT(0)
(``tcp_ecn_send()``; retransmissions and pure ACKs stay not-ECT), CoDel sets CE instead of dropping,
the receiver echoes ECE until it sees CWR (``tcp_ecn_check_ce()``, ``tcp_ecn_accept_cwr()``), and the
sender reduces cwnd as for a loss but retransmits nothing (``tcp_enter_cwr()``: ssthresh from the
algorithm, PRR down to it over one RTT, the CA state ``CWR``) and sets CWR on its next segment.

>>> d = aqm(queue="droptail", buffer_packets=400, duration=4, mode="sim").summary
>>> c = aqm(queue="codel", buffer_packets=400, duration=4, mode="sim").summary
>>> d["srtt_p50_ms"] > 2 * c["srtt_p50_ms"], c["sojourn_p50_ms"] < 10, c["utilization"] > 0.8
(True, True, True)
>>> e = aqm(queue="codel", ecn=True, buffer_packets=400, duration=4, mode="sim").summary
>>> e["ce_marks"] > 0, e["aqm_drops"], e["retransmits"]
(True, 0, 0)

With ``pacing_mbit`` the sender sets ``SO_MAX_PACING_RATE``: since Linux 4.13 (commit 218af599fa63)
that alone turns on TCP's own pacing (``sk_pacing_status`` ``SK_PACING_NEEDED``, ``sk_setsockopt()``;
``tcp_pacing_check()`` and an hrtimer in ``tcp_write_xmit()``, no fq qdisc needed) at
min(the cap, ``tcp_update_pacing_rate()``'s 200 % / 120 % of cwnd x mss / srtt) (:mod:`tcplab.model.pacing`).
Paced just below the bottleneck, a drop-tail queue never builds:

>>> p = aqm(queue="droptail", pacing_mbit=19, buffer_packets=400, duration=4, mode="sim").summary
>>> p["sojourn_p50_ms"] < 2, p["srtt_p50_ms"] < 45, p["tail_drops"], p["utilization"] > 0.9
(True, True, 0, True)
"""

from __future__ import annotations

import json
import os
import select
import socket
import statistics
import struct
import time
from collections.abc import Mapping
from typing import Any

from tcplab.errors import ExperimentError, KernelUnavailable
from tcplab.experiments._common import (LagMeter, ack_train_timing, counters_now, delay_line_timings, delta,
                                        send_and_sample)
from tcplab.experiments.registry import make_function
from tcplab.experiments.spec import Experiment, GridPoint, Key, Param, Plot, Slider, Table, When, named
from tcplab.kernel.aqmlink import QUEUES, Aqm, flow_bucket
from tcplab.kernel.bottleneck import DELAY_METHOD, SENDER_ADDR, bottleneck_path
from tcplab.kernel.namespace import set_namespace_sysctl
from tcplab.kernel.netstat import read_ecn_counters
from tcplab.kernel.qdisc import has_qdisc
from tcplab.kernel.sysctl import read_sysctl
from tcplab.kernel.tcpinfo import packets_in_flight, tcp_info
from tcplab.model.cc import MSS, WIRE_BYTES, exit_cwnd_from_ssthresh, path_packets, rcvbuf_request, receive_window_for, receive_window_packets
from tcplab.model.codel import INTERVAL_S, TARGET_S
from tcplab.model.outcome import Outcome, Timing
from tcplab.model.profiles import KernelProfile
from tcplab.sim.bottleneck import SPARSE_WIRE_BYTES, simulate

__all__ = ["aqm", "SPEC"]

ECN_SYSCTL = "net.ipv4.tcp_ecn"
RMEM_MAX = "net.core.rmem_max"
ALGORITHM = "cubic"
#: include/uapi/asm-generic/socket.h (the socket module may not name it)
SO_MAX_PACING_RATE = getattr(socket, "SO_MAX_PACING_RATE", 47)
_COUNTERS = ("TCPSackRecovery", "TCPRenoRecovery", "TCPTimeouts", "TCPFastRetrans", "TCPDeliveredCE", "RetransSegs",
             "TCPHystartTrainDetect", "TCPHystartDelayDetect")
#: see tcplab.experiments.congestion: the delay line's p99 lateness, and the sender's own lag
DELAY_LINE_TOLERANCE_MS = 10.0
SENDER_LAG_TOLERANCE_MS = 250.0
#: the median lateness every packet's sojourn and RTT carry: CoDel's sojourns are a few ms, so 1 ms
#: of lateness is what they survive (measured: 0.03-0.09 ms, docs/fidelity.md)
DELAY_LINE_P50_TOLERANCE_MS = 1.0
_TIMED = {"delay_line": DELAY_LINE_TOLERANCE_MS, "delay_line_p50": DELAY_LINE_P50_TOLERANCE_MS}
#: the sparse flow's client: its requests' p99 lateness (a late wakeup delays the request and the timing of
#: the answer it waits for; 10 ms is a tenth of a drop-tail queue's wait, a quarter of the path's RTT)
PINGER_TOLERANCE_MS = 10.0
_PINGED = {**_TIMED, "pinger": PINGER_TOLERANCE_MS}
_SENT = {**_TIMED, "sender": SENDER_LAG_TOLERANCE_MS}
#: the keys that hinge on where slow start ended also tolerate no ACK train the host took away
#: (``_common.ack_train_timing``): in Debian's 6.12 under QEMU TCG the ACKs came 2-10 ms apart, so
#: HyStart's ACK-train test (which ends slow start here at cwnd 74-75) never could fire, and its delay
#: test ended slow start at cwnd 28-382 (docs/kernels.md, 2026-12-08); CoDel's drops and marks, the
#: recoveries and the srtt follow from that exit. 1 ms: the punctual train is rebuilt from the link's send
#: times, as if the receiver ACKed each segment the moment it arrived; a train short by less than the
#: 1 ms the median lateness may be (above) is within that reconstruction's own error
ACK_TRAIN_TOLERANCE_MS = 1.0
_EXIT = {**_TIMED, "ack_train": ACK_TRAIN_TOLERANCE_MS}
#: TCPI_OPT_ECN, TCPI_OPT_ECN_SEEN (include/uapi/linux/tcp.h)
_OPT_ECN, _OPT_ECN_SEEN = 8, 16
_SYN_ECE_CWR = 0x40 | 0x80
#: how long the receiver waits for the sender's RST before it reads its counters anyway (the RST can be
#: dropped by a full drop-tail queue or by CoDel: it is not ECN-capable)
RESET_WAIT_S = 3.0
#: the sparse flow (``sparse_flow=True``): a 64-byte request every 25 ms on a second connection, answered at once
#: by the receiver (a ping over TCP, TCP_NODELAY on both ends); answers still out when the run ends are waited
#: for up to SPARSE_GRACE_S
SPARSE_INTERVAL_S = 0.025
QDISC_WHERE = ("auto", "kernel", "delay_line")
SPARSE_BYTES = 64
SPARSE_GRACE_S = 1.5
TIMELINE = ("t", "cwnd", "ssthresh", "srtt_ms", "in_flight", "ca_state", "delivered_bytes")


def _codel(p: Mapping[str, Any]) -> bool:
    return bool(p["queue"] in ("codel", "fq_codel"))


def _sparse(p: Mapping[str, Any]) -> bool:
    return bool(p.get("sparse_flow"))


def _paced(p: Mapping[str, Any]) -> bool:
    return p.get("pacing_mbit") is not None


def _max_pacing_rate(p: Mapping[str, Any]) -> int | None:
    """SO_MAX_PACING_RATE's value, bytes/s (payload: tcp_update_skb_after_send() paces skb->len)."""
    return None if p.get("pacing_mbit") is None else int(p["pacing_mbit"] * 1e6 / 8)


def _checks(p: dict[str, Any]) -> None:
    path = path_packets(p["rate_mbit"], p["rtt_ms"], p["buffer_packets"])
    if path > 20000:
        raise ValueError(f"buffer_packets + the path's bandwidth-delay product ({path - p['buffer_packets']:.0f} "
                         f"packets) must be at most 20000 packets, not {path:.0f} (the receive window caps a flow there)")
    if p["qdisc"] == "kernel" and not _codel(p):
        raise ValueError(f"qdisc must be 'auto' or 'delay_line' with queue={p['queue']!r} (drop-tail always runs in "
                         "the delay line; qdisc='kernel' is for codel and fq_codel)")
    if p["ecn"] and not _codel(p):
        raise ValueError(f"ecn must be False with queue={p['queue']!r} (only CoDel and fq_codel mark CE; a drop-tail "
                         "queue drops whatever the packet says)")


#: CoDel's 95th percentiles are its slow-start transient: the queue slow start builds stands for the 100 ms
#: interval before the first drop and then drains at interval/sqrt(count), so how high it got depends on whether
#: HyStart ended slow start early in this run (measured at 20 Mbit/s, 40 ms, 3 s: sojourn p95 6-12 ms in most
#: real runs, 56 ms in one, the sim 6 ms); a full drop-tail buffer's are its standing queue
_DROPTAIL_ONLY_P95 = When(lambda p: not _codel(p), named("rel20"), named("shown"), name="rel20 if drop-tail",
                          otherwise_shows="shown", meaning="a full drop-tail buffer's tail within 20 %; CoDel's is "
                          "the slow-start transient (whether HyStart fired), shown")


SPEC = Experiment(
    name="aqm",
    title="Bufferbloat's cure: the same bulk flow through a drop-tail buffer and through CoDel, with and without ECN",
    doc="""One CUBIC bulk transfer for ``duration`` seconds through a bottleneck of ``rate_mbit``,
    ``rtt_ms`` and a ``buffer_packets`` queue. ``queue="droptail"``: the buffer fills until it drops
    (bufferbloat: the RTT grows by buffer / rate). ``queue="codel"`` (RFC 8289): each packet's sojourn
    time is measured at dequeue; once it has stayed above 5 ms for 100 ms CoDel drops the head packet,
    then again interval / sqrt(count) later while it stays above, so the queue drains to ~target and the
    RTT stays near the path's. ``ecn=True`` (CoDel only): ``net.ipv4.tcp_ecn=1`` in both ends'
    namespaces; CoDel sets CE on ECT packets instead of dropping them, the receiver echoes ECE, the
    sender enters the CWR state (cwnd reduced as for a loss, nothing retransmitted) and sets CWR. The
    queue is the delay line's own (this kernel has no codel qdisc; ``kernel_codel`` says whether the
    kernel running the experiment has one). ``queue="fq_codel"`` (RFC 8290): each flow (5-tuple hash, 1024
    buckets) has its own queue and CoDel, served by deficit round robin with new flows first; with
    ``sparse_flow=True`` a ping-like second connection shares the bottleneck: behind drop-tail or CoDel it
    waits in the bulk flow's queue, with fq_codel it is served next.""",
    params=(
        Param("queue", "choice", "codel", choices=QUEUES, help="the bottleneck's queue discipline"),
        Param("ecn", "bool", False, sysctl=ECN_SYSCTL,
              help="net.ipv4.tcp_ecn=1 in both ends' namespaces (else 0); CoDel marks CE instead of dropping"),
        Param("rate_mbit", "float", 20.0, lo=0.5, hi=1000, real_hi=40, unit="Mbit/s",
              real_why="the delay line serves the link itself, packet by packet in Python; above 40 Mbit/s its "
                       "lateness would be a visible part of CoDel's 5 ms target",
              help="the bottleneck's rate", slider=Slider(1, 40, step=1)),
        Param("rtt_ms", "float", 40.0, lo=1, hi=1000, real_hi=200, unit="ms",
              real_why="longer delays make a real run of a few seconds mostly slow start",
              help="round-trip propagation delay (half each way)", slider=Slider(2, 200, step=2)),
        Param("buffer_packets", "int", 400, lo=2, hi=10000, real_hi=2000, unit="packets",
              real_why="deeper buffers outgrow the receive window a fresh namespace allows",
              help="the queue's limit (drop-tail drops there; CoDel's limit too)", slider=Slider(10, 1000, scale="log")),
        Param("duration", "float", 5.0, lo=0.5, hi=300, real_hi=20, unit="s",
              real_why="real runs are kept short; mode=\"sim\" runs minutes in about a second",
              help="how long the sender sends", slider=Slider(1, 20, step=1)),
        Param("sparse_flow", "bool", False,
              help="a second, sparse flow beside the bulk one: a 64-byte request every 25 ms on its own connection, "
                   "answered at once (a ping over TCP); its round trip shows whose queue it waits in"),
        Param("qdisc", "choice", "auto", choices=QDISC_WHERE,
              help="where CoDel/fq_codel run for real: auto (the kernel's own qdisc where the running kernel has it, "
                   "else the delay line's), kernel (the kernel's or no real run), delay_line (always the delay line's, "
                   "which measures every packet's sojourn); drop-tail always runs in the delay line"),
        Param("pacing_mbit", "float", None, lo=0.1, hi=10000, optional=True, unit="Mbit/s",
              help="SO_MAX_PACING_RATE on the sender's socket (payload Mbit/s): TCP paces itself at the lower of "
                   "this and 200 %/120 % of cwnd x mss / srtt (Linux >= 4.13, no fq needed); None: unpaced"),
    ),
    summary=(
        Key("throughput_mbit", "payload delivered, Mbit/s over the run (slow start included)", rule="rel10",
            tolerates=_SENT),
        Key("utilization", "payload delivered over the most the link carries (1448 of every 1500 bytes)", rule="rel10",
            tolerates=_SENT),
        Key("srtt_p50_ms", "median smoothed RTT the sender measured (TCP_INFO): bufferbloat, or its cure", rule="rel10",
            tolerates=_EXIT),
        Key("srtt_p95_ms", "95th percentile of the smoothed RTT", rule=_DROPTAIL_ONLY_P95, tolerates=_EXIT),
        Key("sojourn_p50_ms", "median time a packet waited in the bottleneck queue",
            rule=When(lambda p: not _codel(p) and not _paced(p), named("rel10"), named("shown"),
                      name="rel10 if drop-tail, unpaced", otherwise_shows="shown",
                      meaning="drop-tail's standing queue within 10 %; CoDel's few ms and a paced flow's fraction of a "
                      "ms (real 0.49, simulated 0.6) are the delay line's own jitter's size, shown"), tolerates=_EXIT),
        Key("sojourn_p95_ms", "95th percentile of the queue's sojourn time", rule=_DROPTAIL_ONLY_P95, tolerates=_EXIT),
        Key("slow_start_exit_by", "what ended slow start: hystart, loss or ecn (a CE mark); CoDel's drops and the 95th "
            "percentiles hinge on it", rule="shown"),
        Key("slow_start_exit_cwnd", "cwnd when slow start ended (from the first ssthresh)", rule="rel20",
            tolerates=_EXIT),
        Key("tail_drops", "packets dropped because the queue was full", rule="shown"),
        Key("aqm_drops", "packets CoDel dropped (0 for drop-tail)", rule="shown"),
        Key("ce_marks", "packets CoDel marked CE instead of dropping (ECN)", rule="rel25", tolerates=_EXIT),
        Key("loss_events", "loss recoveries (TCPSackRecovery + TCPRenoRecovery) plus RTO expiries (the namespace's "
            "counters: with sparse_flow the sparse connection's too; sim: the bulk flow's)", rule="rel25",
            tolerates=_EXIT),
        Key("retransmits", "segments retransmitted (RetransSegs)", rule="shown"),
        Key("ecn_reductions", "cwnd reductions for ECE (the CA state CWR entered, sampled every rtt/8; sim: the "
            "model's count)", rule="rel25", tolerates=_EXIT),
        Key("ecn_negotiated", "both SYNs agreed on ECN (TCP_INFO: TCPI_OPT_ECN)", rule="exact"),
        Key("syn_ece_cwr", "the SYN the delay line forwarded carried ECE and CWR (ECN asked)", rule="exact"),
        Key("data_ect0", "share of the sender's data segments that left ECT(0) (retransmissions do not)",
            rule="rel10"),
        Key("cwr_segments", "the sender's segments with CWR set (one per reduction while ECN is on)", rule="shown"),
        Key("receiver_ce_packets", "CE packets the receiver's kernel counted (IpExt InCEPkts in its namespace; "
            "sim: the marks)", rule="shown"),
        Key("max_pacing_rate_mbit", "the cap the sender's socket reports (TCP_INFO max_pacing_rate; None unpaced)",
            rule="exact"),
        Key("pacing_rate_p50_mbit", "median of the sender's pacing rate (TCP_INFO pacing_rate: min(cap, 200 %/120 % "
            "of cwnd x mss / srtt))",
            rule=When(_paced, named("rel10"), named("shown"), name="rel10 if paced", otherwise_shows="shown",
                      meaning="the capped rate within 10 %; unpaced it follows cwnd and the bloated srtt, shown"),
            tolerates=_SENT),
        Key("sparse_rtt_p50_ms", "the sparse flow's median round trip, request to answer (None without "
            "sparse_flow): the path's RTT plus its wait in the queue",
            rule=When(_sparse, named("rel10"), named("shown"), name="rel10 if sparse_flow", otherwise_shows="shown",
                      meaning="the sparse flow's median within 10 %; None without it"), tolerates=_PINGED),
        Key("sparse_rtt_p95_ms", "95th percentile of the sparse flow's round trip (a request lost at the queue "
            "waits for TCP's TLP or RTO; the model approximates that wait)", rule="shown"),
        Key("sparse_sojourn_p50_ms", "median wait of the sparse flow's packets in the bottleneck queue",
            rule=When(lambda p: _sparse(p) and not _codel(p), named("rel10"), named("shown"),
                      name="rel10 if sparse_flow behind drop-tail", otherwise_shows="shown",
                      meaning="behind drop-tail the bulk flow's standing queue within 10 %; under CoDel a few ms, "
                      "under fq_codel less than a packet's time on the link: the delay line's jitter's size, shown"),
            tolerates=_TIMED),
        Key("sparse_requests", "requests the sparse flow sent (40 a second; None without sparse_flow)", rule="rel10",
            tolerates={**_SENT, "pinger": PINGER_TOLERANCE_MS}),
        Key("sparse_retransmits", "the sparse connection's retransmissions (TCP_INFO total_retrans; sim: requests "
            "the queue dropped)", rule="shown"),
        Key("flows_share_bucket", "fq_codel: whether the two flows hashed to one bucket (then they share a queue "
            "and CoDel, as in Linux when skb_get_hash() collides: 1 in 1024)", rule="shown"),
        Key("new_flow_count", "fq_codel: times a flow entered new_flows (the sparse flow does at almost every "
            "request; the bulk flow rarely leaves the lists)", rule="shown"),
        Key("kernel_codel", "whether this kernel builds a codel qdisc (probed in the private namespace; "
            "sim: None)", rule="shown"),
        Key("kernel_fq_codel", "whether this kernel builds an fq_codel qdisc (probed likewise; sim: None)",
            rule="shown"),
        Key("queue_method", "where the queue ran", rule="shown"),
        Key("delay_method", "how the delay was made (and, real, how late the delay line ran)", rule="shown"),
    ),
    tables=(Table("queue", ("t", "queue_packets", "sojourn_ms", "drops", "ce_marks"),
                  "the bottleneck queue at most every 5 ms: packets waiting, the sojourn of the packet just sent, "
                  "drops and CE marks so far"),),
    timeline=TIMELINE,
    grid=(
        GridPoint(dict(queue="droptail", ecn=False, rate_mbit=20, rtt_ms=40, buffer_packets=400, duration=5),
                  quick=True, why="bufferbloat: 400 packets at 20 Mbit/s add up to 240 ms"),
        GridPoint(dict(queue="codel", ecn=False, rate_mbit=20, rtt_ms=40, buffer_packets=400, duration=5),
                  quick=True, why="the same path with CoDel: the queue stays near 5 ms"),
        GridPoint(dict(queue="codel", ecn=True, rate_mbit=20, rtt_ms=40, buffer_packets=400, duration=5),
                  quick=True, why="CE marks instead of drops: no retransmission"),
        GridPoint(dict(queue="droptail", ecn=False, rate_mbit=10, rtt_ms=80, buffer_packets=200, duration=6)),
        GridPoint(dict(queue="codel", ecn=False, rate_mbit=10, rtt_ms=80, buffer_packets=200, duration=6),
                  why="an RTT close to CoDel's 100 ms interval: the drops hit CUBIC's recovery at varying moments. "
                      "Measured: 2 drops, 2 recoveries, 7.4 Mbit/s in 4 real runs of 6 (sim 3, 2, 7.56); 3 drops and "
                      "8.5 Mbit/s in one, 17 drops after a late slow-start exit in another (cause open)"),
        GridPoint(dict(queue="codel", ecn=True, rate_mbit=30, rtt_ms=20, buffer_packets=1000, duration=5)),
        GridPoint(dict(queue="droptail", ecn=False, rate_mbit=20, rtt_ms=40, buffer_packets=400, duration=5,
                       pacing_mbit=19), quick=True,
                  why="the bufferbloat path paced at 19 Mbit/s (SO_MAX_PACING_RATE): the queue stays empty"),
        GridPoint(dict(queue="codel", ecn=False, rate_mbit=20, rtt_ms=40, buffer_packets=400, duration=5,
                       pacing_mbit=30),
                  why="paced above the bottleneck: the cap no longer holds the queue down, CoDel does. Measured: "
                      "HyStart at cwnd 148, 5 drops, 17.7 Mbit/s in 3 real runs of 4 (sim 149, 5, 17.5); cwnd 180 and "
                      "9 drops in one"),
        GridPoint(dict(queue="droptail", ecn=False, rate_mbit=20, rtt_ms=40, buffer_packets=400, duration=4,
                       sparse_flow=True), quick=True,
                  why="a ping beside the bulk flow behind drop-tail: it waits in the bulk flow's queue. 4 s: the "
                      "buffer first overflows at 4.76 s (sim), and whether its recovery starts before a 5 s run ends "
                      "depends on 0.1 s (measured: real 2 loss events, sim 0 at 5 s). Measured at 4 s: sparse_rtt_p50 "
                      "136.5 and 137.1 ms in two real runs, 148.3 in a third on a busy host, sim 136.9"),
        GridPoint(dict(queue="codel", ecn=False, rate_mbit=20, rtt_ms=40, buffer_packets=400, duration=5,
                       sparse_flow=True),
                  why="the same ping behind CoDel: a few ms of the bulk flow's queue"),
        GridPoint(dict(queue="fq_codel", ecn=False, rate_mbit=20, rtt_ms=40, buffer_packets=400, duration=5,
                       sparse_flow=True), quick=True,
                  why="fq_codel: the ping is a new flow at each request and is served next"),
        GridPoint(dict(queue="fq_codel", ecn=True, rate_mbit=10, rtt_ms=80, buffer_packets=200, duration=6,
                       sparse_flow=True),
                  why="fq_codel with ECN on a slower, longer path (a point no test uses). Measured: the ping 80.9 and "
                      "80.8 ms (sim 80.5); HyStart's exit at cwnd 74 in one run (3 marks, sim 2), 173 in the other (12 "
                      "marks): the late exit the 10 Mbit/s, 80 ms CoDel point shows too (cause open)"),
    ),
    real=lambda p: _real(p),
    sim=lambda p, profile, rng: _sim(p, profile),
    record=("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"),
    needs_namespace="it builds namespaces, a veth, TUN devices and a qdisc, and sets net.ipv4.tcp_ecn",
    checks=_checks,
    host_limit=lambda p: _host_limit(p),
    expected_s=lambda p: p["duration"] + 1.5,
    timeout=lambda p: p["duration"] * 2 + 40,
    plot=Plot(y=("srtt_ms",), title="the sender's smoothed RTT", y_title="ms"),
    smoke=(dict(queue="codel", ecn=True, rate_mbit=10, rtt_ms=20, buffer_packets=100, duration=1),
           dict(queue="fq_codel", sparse_flow=True, rate_mbit=10, rtt_ms=20, buffer_packets=100, duration=1)),
)

aqm = make_function(SPEC)


def _window(p: Mapping[str, Any]) -> int:
    return receive_window_for(path_packets(p["rate_mbit"], p["rtt_ms"], p["buffer_packets"]))


def _host_limit(p: Mapping[str, Any]) -> str | None:
    """As congestion's: the receiver's buffer is locked at what the path needs so that cwnd, not the receive
    window, limits the sender; a request beyond net.core.rmem_max (host-wide) would be cut."""
    need = rcvbuf_request(_window(p))
    try:
        rmem_max = read_sysctl(RMEM_MAX)
    except (OSError, ValueError):
        return None
    if isinstance(rmem_max, int) and rmem_max < need:
        return (f"the receiver needs a {_window(p)}-packet window for this path, a locked SO_RCVBUF of {need} bytes, "
                f"but the host's net.core.rmem_max is {rmem_max} (the host's administrator can raise it; a namespace "
                f"cannot)")
    return None


def _slow_start_exit(rows: list[dict[str, Any]]) -> tuple[str | None, int | None]:
    """From the sender's samples: at the first finite ssthresh, CWR means a CE mark, Recovery or Loss a
    drop (ssthresh = 0.7 cwnd, inverted), anything else HyStart (ssthresh = cwnd)."""
    for r in rows:
        if r["ssthresh"] is not None:
            by = {"CWR": "ecn", "Recovery": "loss", "Loss": "loss"}.get(r["ca_state"], "hystart")
            return by, exit_cwnd_from_ssthresh(r["ssthresh"], ALGORITHM, by != "hystart")
    return None, None


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(q * len(s)))], 3)


# -- the receiver, in its own namespace B (a forked process of kernel.bottleneck) ----------------------
def _send_line(fd: int, obj: Any) -> None:
    view = memoryview((json.dumps(obj) + "\n").encode())
    while view:
        view = view[os.write(fd, view):]


def _read_line(fd: int, deadline: float, who: str = "the receiver") -> Any:
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise ExperimentError(f"{who} did not answer in time")
        # one byte at a time: two lines may follow each other on the pipe (the pinger's "ready", then its report)
        chunk = os.read(fd, 1)
        if not chunk:
            raise ExperimentError(f"{who} exited before answering")
        buf += chunk
    return json.loads(buf)


def _receiver(ecn: bool, ctl: int, up: int, sparse: bool = False) -> Any:
    def main(lst: socket.socket, deadline: float) -> None:
        # tcp_ecn_create_request() reads the listener's own namespace's tcp_ecn when the SYN arrives
        set_namespace_sysctl(ECN_SYSCTL, int(ecn))
        before = read_ecn_counters()
        echo: list[socket.socket] = []
        if sparse:
            # the sparse flow's own port: the delay line tells its packets apart by it (Aqm.sparse_port)
            addr, port = lst.getsockname()
            sp = socket.socket()
            sp.bind((addr, port + 1))
            sp.listen(4)
            sp.setblocking(False)
            echo.append(sp)
        _send_line(up, {"ready": read_sysctl(ECN_SYSCTL)})
        lst.settimeout(max(0.1, deadline - time.monotonic()))
        conn, _ = lst.accept()
        conn.setblocking(False)
        buf = bytearray(1 << 20)
        got, reset, until = 0, False, deadline
        watch = [conn, ctl, *echo]
        while time.monotonic() < min(deadline, until):
            r, _, _ = select.select(watch, [], [], 0.2)
            if ctl in r:
                # the sender has reset the connection: everything it sent before the RST is ahead of it in the
                # link's FIFO, so once the RST is here the CE packets the line marked have all been counted
                watch, until = [conn], time.monotonic() + RESET_WAIT_S
                continue
            for e in echo:
                if e in r and e in watch:
                    _serve_echo(e, watch, echo)
            if conn not in r:
                continue
            try:
                n = conn.recv_into(buf)
            except BlockingIOError:
                continue
            except ConnectionError:
                reset = True
                break
            if n == 0:
                reset = True
                break
            got += n
        after = read_ecn_counters()
        info = tcp_info(conn)
        _send_line(up, {"received": got, "ecn": {k: after[k] - before.get(k, 0) for k in after},
                        "options": info.options, "reset_seen": reset})
        conn.close()
        for e in echo:
            e.close()
    return main


def _serve_echo(e: socket.socket, watch: list[Any], echo: list[socket.socket]) -> None:
    """The sparse flow's server: accept on its listener (echo[0]); send back at once what a client sent."""
    if e is echo[0]:
        try:
            c, _ = e.accept()
        except BlockingIOError:
            return
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.setblocking(False)
        echo.append(c)
        watch.append(c)
        return
    try:
        data = e.recv(1 << 16)
    except BlockingIOError:
        return
    except ConnectionError:
        data = b""
    if not data:
        watch.remove(e)
        return
    try:
        e.send(data)                 # a few 64-byte answers: the send buffer takes them
    except (BlockingIOError, ConnectionError):
        pass


def _pinger(addr: tuple[str, int], go: int, out: int, seconds: float) -> None:
    """The sparse flow's client (a forked child in the sender's namespace, so its timing does not share the
    bulk sender's loop): once ``go`` says so, connect, send a 64-byte request every SPARSE_INTERVAL_S for
    ``seconds``, time each answer, wait up to SPARSE_GRACE_S for the last ones, report on ``out``."""
    r, _, _ = select.select([go], [], [], 30)
    if not r or os.read(go, 1) != b"g":
        return
    # not socket.create_connection(): its getaddrinfo() imports the idna codec, which a learner's uid 65534 in
    # the namespace child cannot read from the venv; connect() takes the dotted address as it is
    with socket.socket() as c:
        c.settimeout(5)
        c.connect(addr)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _send_line(out, {"ready": True})
        sent: dict[int, float] = {}
        rtts: list[float] = []
        late: list[float] = []                  # how long after its due time each request left (the CPU's share)
        buf = b""
        t0 = time.monotonic()
        end, nxt, k = t0 + seconds, t0, 0
        while True:
            now = time.monotonic()
            if now < end and now >= nxt:
                c.sendall(struct.pack("!I", k).ljust(SPARSE_BYTES, b"\0"))
                sent[k] = now
                late.append(now - nxt)
                k += 1
                nxt = max(nxt + SPARSE_INTERVAL_S, now)   # a late request does not make the next ones bunch up
            if now >= end and (not sent or now >= end + SPARSE_GRACE_S):
                break
            wake = nxt if now < end else end + SPARSE_GRACE_S
            ready, _, _ = select.select([c], [], [], max(0.0, min(wake, end + SPARSE_GRACE_S) - now))
            if not ready:
                continue
            got_at = time.monotonic()
            data = c.recv(1 << 16)
            if not data:
                break
            buf += data
            while len(buf) >= SPARSE_BYTES:
                (seq,) = struct.unpack_from("!I", buf)
                buf = buf[SPARSE_BYTES:]
                if seq in sent:
                    rtts.append(round((got_at - sent.pop(seq)) * 1000, 3))
        info = tcp_info(c)
        late.sort()
        _send_line(out, {"rtt_ms": rtts, "sent": k, "unanswered": len(sent),
                         "late_p99_ms": round(late[int(0.99 * (len(late) - 1))] * 1000, 3) if late else 0.0,
                         "retrans": info.extra.get("total_retrans", 0), "port": c.getsockname()[1]})


def _real(p: dict[str, Any]) -> Outcome:
    out = Outcome()
    sample_s = max(0.001, p["rtt_ms"] / 8000)
    # the probe changes lo's root qdisc for a moment: only here, in the private namespace the runner is in
    has_codel = has_qdisc("codel")
    has_fq_codel = has_qdisc("fq_codel")
    has_kernel = has_fq_codel if p["queue"] == "fq_codel" else has_codel
    in_kernel = _codel(p) and p["qdisc"] != "delay_line" and has_kernel is True
    if p["qdisc"] == "kernel" and not in_kernel:
        raise KernelUnavailable(f"qdisc='kernel' asks for the kernel's own {p['queue']}, and this kernel has no "
                                f"sch_{p['queue']} (`tc qdisc add dev lo root {p['queue']}` "
                                f"{'was refused' if has_kernel is False else 'could not be asked: no tc'})")
    ctl_r, ctl_w = os.pipe()
    up_r, up_w = os.pipe()
    go_r, go_w = os.pipe()
    ping_r, ping_w = os.pipe()
    port = 5001
    spec = Aqm(p["queue"], p["ecn"], sparse_port=port + 1 if _sparse(p) else None, kernel_qdisc=in_kernel)
    pinger: int | None = None
    ping: dict[str, Any] | None = None
    finished = False
    try:
        with bottleneck_path(p["rate_mbit"], p["rtt_ms"], p["buffer_packets"], max_seconds=p["duration"] + 30,
                             port=port, rcvbuf=rcvbuf_request(_window(p)),
                             receiver=_receiver(p["ecn"], ctl_r, up_w, _sparse(p)), aqm=spec) as path:
            hello = _read_line(up_r, time.monotonic() + 10)
            if int(hello["ready"]) != int(p["ecn"]):
                raise ExperimentError(f"the receiver's namespace reads tcp_ecn={hello['ready']}")
            if _sparse(p):
                # forked before the bulk socket exists, so the child holds no copy of it (the RST at the end)
                pinger = os.fork()
                if pinger == 0:
                    code = 0
                    try:
                        _pinger((path.receiver[0], path.receiver[1] + 1), go_r, ping_w, p["duration"])
                    except BaseException as e:  # noqa: BLE001 - the parent raises it
                        code = 70
                        try:
                            _send_line(ping_w, {"error": f"the sparse flow's client failed: {type(e).__name__}: {e}"})
                        except OSError:
                            pass
                    finally:
                        os._exit(code)
            with socket.socket() as s:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, ALGORITHM.encode())
                if _paced(p):
                    # sk_setsockopt(): a cap other than ~0 sets SK_PACING_NEEDED: TCP's internal pacing
                    s.setsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, _max_pacing_rate(p))
                s.settimeout(5)
                s.connect(path.receiver)
                s.setblocking(False)
                if pinger is not None:
                    os.write(go_w, b"g")
                    said = _read_line(ping_r, time.monotonic() + 10, "the sparse flow's client")
                    if not said.get("ready"):
                        raise ExperimentError(said.get("error", "the sparse flow did not connect"))
                syn = tcp_info(s)
                before = counters_now()
                acked0 = syn.extra.get("bytes_acked", 0)
                rows: list[dict[str, Any]] = []
                pacing: list[float] = []
                cwr = {"entries": 0, "last": "Open"}

                def sample(now: float, t: float) -> None:
                    info = tcp_info(s)
                    x = info.extra
                    ss = x.get("snd_ssthresh", 0x7FFFFFFF)
                    rows.append({"t": round(t, 5), "cwnd": x.get("snd_cwnd"),
                                 "ssthresh": None if ss >= 0xFFFF else ss,
                                 "srtt_ms": x.get("rtt", 0) / 1000 or None,
                                 "in_flight": packets_in_flight(x), "ca_state": info.ca_state,
                                 "delivered_bytes": x.get("bytes_acked", 0) - acked0})
                    if x.get("pacing_rate") is not None and x["pacing_rate"] < 2**63:
                        pacing.append(x["pacing_rate"] * 8 / 1e6)
                    if info.ca_state == "CWR" and cwr["last"] != "CWR":
                        cwr["entries"] += 1
                    cwr["last"] = info.ca_state
                t0, elapsed = send_and_sample([s], p["duration"], sample_s, sample,
                                              LagMeter(sample_s, SENDER_LAG_TOLERANCE_MS / 1000, name="sender"))
                cwr_entries = cwr["entries"]
                final = tcp_info(s)
                bulk_port = s.getsockname()[1]
                if pinger is not None:
                    ping = _read_line(ping_r, time.monotonic() + SPARSE_GRACE_S + 10, "the sparse flow's client")
                    if "error" in ping:
                        raise ExperimentError(ping["error"])
                finished = True
                out.counters = delta(before, keep=_COUNTERS)
                # an RST (SO_LINGER 0) ends the transfer at once: the send buffer is discarded, nothing is sent
                # (or marked) after it, and its arrival tells the receiver every earlier packet has arrived
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
                os.write(ctl_w, b"x")                       # the receiver reports and stops
                rcv = _read_line(up_r, time.monotonic() + RESET_WAIT_S + 10)
    finally:
        os.close(go_w)                  # a pinger still waiting for "go" sees EOF and exits
        if pinger is not None:
            _reap_child(pinger, kill=not finished)
        for fd in (ctl_r, ctl_w, up_r, up_w, go_r, ping_r, ping_w):
            os.close(fd)
    stats = path.stats
    if stats is None or stats.link is None:
        raise ExperimentError("the delay line did not report its measurements")
    link = stats.link
    # the link's samples from the transfer (the handshake's few packets wait in no queue)
    sojourn = list(link["sojourn_ms"])
    delivered = final.extra.get("bytes_acked", 0) - acked0
    srtts = [r["srtt_ms"] for r in rows if r["srtt_ms"]]
    data = sum(link["data_ecn"].values())
    kernel_drops = stats.queue[-1][3] if stats.queue else None
    method = (f"{DELAY_METHOD}; {path.scheduling}; lateness p50 {stats.lateness_p50_ms} ms, p99 "
              f"{stats.lateness_p99_ms} ms, max {stats.lateness_max_ms} ms over {stats.packets} packets; "
              f"min_rtt measured {final.extra.get('min_rtt', 0) / 1000:g} ms for {p['rtt_ms']:g} ms configured")
    t_link0 = link["rows"][0][0] if link["rows"] else 0.0
    out.tables["queue"] = [{"t": round(t - t_link0, 4), "queue_packets": q, "sojourn_ms": so, "drops": d,
                            "ce_marks": m} for t, q, so, d, m in link["rows"]]
    out.timeline = rows
    c = out.counters
    exit_by, exit_cwnd = _slow_start_exit(rows)
    out.summary = {
        "throughput_mbit": round(delivered * 8 / elapsed / 1e6, 3),
        "utilization": round(delivered * 8 / elapsed / 1e6 / (p["rate_mbit"] * MSS / WIRE_BYTES), 4),
        "srtt_p50_ms": round(statistics.median(srtts), 3) if srtts else None,
        "srtt_p95_ms": _pct(srtts, 0.95),
        "sojourn_p50_ms": _pct(sojourn, 0.5),
        "sojourn_p95_ms": _pct(sojourn, 0.95),
        "slow_start_exit_by": exit_by,
        "slow_start_exit_cwnd": exit_cwnd,
        "tail_drops": link["tail_drops"],
        "aqm_drops": link["aqm_drops"],
        "ce_marks": link["marks"],
        "loss_events": c.get("TCPSackRecovery", 0) + c.get("TCPRenoRecovery", 0) + c.get("TCPTimeouts", 0),
        "retransmits": c.get("RetransSegs", 0),
        "ecn_reductions": cwr_entries,
        "ecn_negotiated": bool(syn.options & _OPT_ECN),
        "syn_ece_cwr": link["syn_flags"] is not None and link["syn_flags"] & _SYN_ECE_CWR == _SYN_ECE_CWR,
        "data_ect0": round(link["data_ecn"][2] / data, 4) if data else None,
        "cwr_segments": link["data_cwr"],
        "receiver_ce_packets": rcv["ecn"].get("InCEPkts"),
        "max_pacing_rate_mbit": _cap_mbit(final.extra.get("max_pacing_rate")),
        "pacing_rate_p50_mbit": round(statistics.median(pacing), 3) if pacing else None,
        **_sparse_keys(p, ping, link, bulk_port, path.receiver),
        "kernel_codel": has_codel,
        "kernel_fq_codel": has_fq_codel,
        "queue_method": _queue_method(p, has_kernel, in_kernel),
        "delay_method": method,
    }
    out.notes += path.notes
    out.notes.append(
        f"capture at the router: SYN flags {_flags(link['syn_flags'])} (ECN bits {link['syn_ecn_bits']}), SYN-ACK "
        f"{_flags(link['synack_flags'])}; data segments by ECN field: not-ECT {link['data_ecn'][0]}, ECT(1) "
        f"{link['data_ecn'][1]}, ECT(0) {link['data_ecn'][2]}, CE {link['data_ecn'][3]}; {link['acks_ece']} of "
        f"{link['acks']} ACKs carried ECE; {link['data_cwr']} segments carried CWR")
    out.notes.append(f"receiver's namespace (IpExt): {rcv['ecn']}; its TCP_INFO options {rcv['options']:#x}; the "
                     f"sender's TCPDeliveredCE {c.get('TCPDeliveredCE', 0)} (segments ACKed with ECE)")
    out.notes.append(f"receiver: SO_RCVBUF locked at {path.rcvbuf} bytes, a window of up to "
                     f"{receive_window_packets(path.rcvbuf)} packets: cwnd, not the receiver, limits the sender")
    if not rcv["reset_seen"]:
        out.notes.append(f"the receiver did not see the sender's RST within {RESET_WAIT_S:g} s (dropped at the queue?): "
                         "its CE count may miss marks made on packets still in flight")
    if ping is not None:
        out.timings.append(Timing("pinger", ping["late_p99_ms"],
                                  f"the sparse flow's client sent 1 % of its requests more than {ping['late_p99_ms']:g} "
                                  f"ms after their time ({ping['sent']} sent in {p['duration']:g} s): it lacked the "
                                  f"CPU, and each answer it timed may be that much late too",
                                  limit_ms=PINGER_TOLERANCE_MS))
    if in_kernel:
        _kernel_queue(out, p, stats.queue, t0, link)
    elif kernel_drops:
        out.notes.append(f"tunR's hand-off pfifo dropped {kernel_drops} packets: the delay line fell behind")
    out.timings += delay_line_timings(stats, path.scheduling, median="every sojourn and RTT sample was that much longer")
    exit_t = next((r["t"] for r in rows if r["ssthresh"] is not None), elapsed)
    out.timings.append(ack_train_timing(stats, t0, t0 + exit_t, final.extra.get("min_rtt", 0) / 1e6,
                                        final.extra.get("pacing_rate") or 0, paced=_paced(p)))
    if stats.error:
        out.notes.append(stats.error)
    return out


def _reap_child(pid: int, kill: bool) -> None:
    """Wait for the pinger (it has reported: it exits at once); kill it first if the run failed, or if it has not
    exited within a few seconds."""
    if kill:
        os.kill(pid, 9)
    end = time.monotonic() + 5
    while time.monotonic() < end:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)


def _sparse_keys(p: Mapping[str, Any], ping: Mapping[str, Any] | None, link: Mapping[str, Any], bulk_port: int,
                 receiver: tuple[str, int]) -> dict[str, Any]:
    """The sparse flow's keys from the pinger's report and the link's per-flow sojourns (None without it)."""
    if ping is None:
        return {"sparse_rtt_p50_ms": None, "sparse_rtt_p95_ms": None, "sparse_sojourn_p50_ms": None,
                "sparse_requests": None, "sparse_retransmits": None, "flows_share_bucket": None,
                "new_flow_count": link.get("new_flow_count") if p["queue"] == "fq_codel" else None}
    share = None
    if p["queue"] == "fq_codel":
        share = _bucket(SENDER_ADDR, receiver, bulk_port, 0) == _bucket(SENDER_ADDR, receiver, ping["port"], 1)
    rtts = ping["rtt_ms"]
    return {"sparse_rtt_p50_ms": _pct(rtts, 0.5), "sparse_rtt_p95_ms": _pct(rtts, 0.95),
            "sparse_sojourn_p50_ms": _pct(list(link["sparse_sojourn_ms"]), 0.5), "sparse_requests": ping["sent"],
            "sparse_retransmits": ping["retrans"], "flows_share_bucket": share,
            "new_flow_count": link.get("new_flow_count") if p["queue"] == "fq_codel" else None}


def _bucket(src: str, receiver: tuple[str, int], sport: int, port_offset: int) -> int:
    """The fq_codel bucket of the connection src:sport -> receiver (port + port_offset), as the delay line hashes
    it (:func:`tcplab.kernel.aqmlink.flow_bucket` on a header with those addresses and ports)."""
    hdr = bytearray(24)
    hdr[0], hdr[9] = 0x45, 6
    hdr[12:16] = socket.inet_aton(src)
    hdr[16:20] = socket.inet_aton(receiver[0])
    struct.pack_into("!HH", hdr, 20, sport, receiver[1] + port_offset)
    return flow_bucket(bytes(hdr))


def _cap_mbit(rate: int | None) -> float | None:
    """TCP_INFO's max_pacing_rate (bytes/s; ~0 when no cap is set) in Mbit/s."""
    if rate is None or rate >= 2**32 - 1:
        return None
    return round(rate * 8 / 1e6, 3)


def _flags(f: int | None) -> str:
    if f is None:
        return "(none seen)"
    names = [n for bit, n in ((0x02, "SYN"), (0x10, "ACK"), (0x40, "ECE"), (0x80, "CWR")) if f & bit]
    return "+".join(names)


def _kernel_queue(out: Outcome, p: Mapping[str, Any], rows: list[tuple[float, int, int, int]], t0: float,
                  link: Mapping[str, Any]) -> None:
    """The kernel's own qdisc held the queue: its figures are the qdisc's (sampled by rtnetlink every 5 ms: qlen,
    backlog, drops), and the delay line only saw what left it. The sojourn is the wait a packet arriving at a sample
    would have had (backlog x 8 / rate; sch_codel/sch_fq_codel keep each packet's own in no statistic)."""
    rate = p["rate_mbit"] * 1e6
    during = [r for r in rows if r[0] >= t0]
    waits = [b * 8 / rate * 1000 for _, _, b, _ in during]
    s = out.summary
    s["sojourn_p50_ms"], s["sojourn_p95_ms"] = _pct(waits, 0.5), _pct(waits, 0.95)
    s["aqm_drops"] = rows[-1][3] if rows else None          # the qdisc's count: CoDel's and over-limit drops together
    s["tail_drops"] = None
    s["ce_marks"] = link["data_ecn"][3]                     # CE on the data that left the qdisc
    s["sparse_sojourn_p50_ms"] = None
    s["flows_share_bucket"] = None                          # skb_get_hash() is seeded at boot: not recomputable here
    s["new_flow_count"] = None
    out.tables["queue"] = [{"t": round(t - t0, 4), "queue_packets": q, "sojourn_ms": round(b * 8 / rate * 1000, 3),
                            "drops": d, "ce_marks": None} for t, q, b, d in during]
    out.notes.append("kernel qdisc: sojourn_p50/p95_ms are the qdisc's backlog, sampled every 5 ms, over the rate; "
                     "aqm_drops its drop counter (CoDel's and over-limit drops together, tail_drops None); ce_marks "
                     "the CE packets the delay line read from it; the sparse flow's own sojourn and fq_codel's "
                     "buckets are not visible")


def _queue_method(p: Mapping[str, Any], has_kernel: bool | None, in_kernel: bool = False) -> str:
    """Which queue ran, where, and whether this kernel has the qdisc (``has_kernel``: codel's, or fq_codel's)."""
    codel = (f"CoDel (RFC 8289: target {TARGET_S * 1000:g} ms, interval {INTERVAL_S * 1000:g} ms, "
             f"{'CE marks' if p['ecn'] else 'drops'}")
    if p["queue"] == "droptail":
        return f"drop-tail, {p['buffer_packets']} packets in the delay line (tcplab.kernel.aqmlink)"
    if p["queue"] == "fq_codel":
        what = (f"fq_codel (RFC 8290: 1024 buckets, quantum 1500 bytes, new flows first; per flow {codel}); "
                f"limit {p['buffer_packets']} packets)")
    else:
        what = f"{codel}; limit {p['buffer_packets']} packets)"
    qdisc = "sch_fq_codel" if p["queue"] == "fq_codel" else "sch_codel"
    if in_kernel:
        return f"kernel qdisc {p['queue']} ({qdisc}, under tbf on tunR): {what}"
    kernel = {True: f"this kernel has {qdisc}, but the delay line's ran (qdisc='delay_line')",
              False: f"this kernel has no {qdisc}", None: f"no tc to ask whether this kernel has {qdisc}"}
    return f"{what} in the delay line (tcplab.kernel.aqmlink); {kernel[has_kernel]}"


def _sim(p: dict[str, Any], profile: KernelProfile) -> Outcome:
    run = simulate(p["rate_mbit"], p["rtt_ms"], p["buffer_packets"], ALGORITHM, duration=p["duration"],
                   sample_s=max(0.001, p["rtt_ms"] / 8000), rcv_window=_window(p), aqm=p["queue"], ecn=p["ecn"],
                   max_pacing_rate=_max_pacing_rate(p), sparse_interval=SPARSE_INTERVAL_S if _sparse(p) else None)
    f0 = run.flows[0]
    timeline = [{"t": r["t"], "cwnd": r["cwnd"], "ssthresh": r["ssthresh"], "srtt_ms": r["srtt_ms"],
                 "in_flight": r["in_flight"], "ca_state": r["ca_state"], "delivered_bytes": r["delivered_bytes"]}
                for r in run.timeline]
    srtts = [r["srtt_ms"] for r in timeline if r["srtt_ms"]]
    pacing = [r["pacing_rate_mbit"] for r in run.timeline if r["pacing_rate_mbit"] is not None]
    a = run.aqm
    tput = f0.delivered * MSS * 8 / p["duration"] / 1e6
    out = Outcome(timeline=timeline, tables={"queue": a["rows"]}, sysctls={ECN_SYSCTL: int(p["ecn"])},
                  counters={"TCPSackRecovery": f0.loss_events - f0.rto_timeouts, "TCPTimeouts": f0.rto_timeouts,
                            "RetransSegs": a["retransmits"]})
    out.summary = {
        "throughput_mbit": round(tput, 3),
        "utilization": round(tput / (p["rate_mbit"] * MSS / WIRE_BYTES), 4),
        "srtt_p50_ms": round(statistics.median(srtts), 3) if srtts else None,
        "srtt_p95_ms": _pct(srtts, 0.95),
        "sojourn_p50_ms": _pct(a["sojourn_ms"], 0.5),
        "sojourn_p95_ms": _pct(a["sojourn_ms"], 0.95),
        "slow_start_exit_by": f0.exit_by,
        "slow_start_exit_cwnd": f0.slow_start_exit_cwnd,
        "tail_drops": a["tail_drops"],
        "aqm_drops": a["aqm_drops"],
        "ce_marks": a["marks"],
        "loss_events": f0.loss_events,
        "retransmits": a["retransmits"],
        "ecn_reductions": a["ecn_reductions"],
        "ecn_negotiated": p["ecn"],
        "syn_ece_cwr": p["ecn"],
        "data_ect0": a["data_ect0"],
        "cwr_segments": a["ecn_reductions"] if p["ecn"] else 0,
        "receiver_ce_packets": a["marks"],
        "max_pacing_rate_mbit": _cap_mbit(_max_pacing_rate(p)),
        "pacing_rate_p50_mbit": round(statistics.median(pacing), 3) if pacing else None,
        "sparse_rtt_p50_ms": _pct(a["sparse_rtt_ms"], 0.5) if _sparse(p) else None,
        "sparse_rtt_p95_ms": _pct(a["sparse_rtt_ms"], 0.95) if _sparse(p) else None,
        "sparse_sojourn_p50_ms": _pct(a["sparse_sojourn_ms"], 0.5) if _sparse(p) else None,
        "sparse_requests": a["sparse_sent"] if _sparse(p) else None,
        "sparse_retransmits": a["sparse_dropped"] if _sparse(p) else None,
        "flows_share_bucket": False if _sparse(p) and p["queue"] == "fq_codel" else None,
        "new_flow_count": a["new_flow_count"],
        "kernel_codel": None,
        "kernel_fq_codel": None,
        "queue_method": _queue_method(p, None).rsplit(";", 1)[0].replace(
            "in the delay line (tcplab.kernel.aqmlink)",
            "simulated (tcplab.model.fq_codel)" if p["queue"] == "fq_codel" else "simulated (tcplab.model.codel)"),
        "delay_method": "simulated: a constant one-way delay of rtt/2 (tcplab.sim.bottleneck)",
    }
    out.notes.append(f"kernel profile {profile.name}: CUBIC as tcplab.model.cc models it; {run.packets} packets, "
                     f"{a['tail_drops']} tail drops, {a['aqm_drops']} CoDel drops, {a['marks']} CE marks")
    return out
