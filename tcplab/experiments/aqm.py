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

from tcplab.errors import ExperimentError
from tcplab.experiments._common import LagMeter, ack_train_timing, counters_now, delay_line_timings, delta, send_and_sample
from tcplab.experiments.registry import make_function
from tcplab.experiments.spec import Experiment, GridPoint, Key, Param, Plot, Slider, Table, When, named
from tcplab.kernel.aqmlink import QUEUES, Aqm
from tcplab.kernel.bottleneck import DELAY_METHOD, bottleneck_path
from tcplab.kernel.namespace import set_namespace_sysctl
from tcplab.kernel.netstat import read_ecn_counters
from tcplab.kernel.qdisc import has_qdisc
from tcplab.kernel.sysctl import read_sysctl
from tcplab.kernel.tcpinfo import packets_in_flight, tcp_info
from tcplab.model.cc import MSS, WIRE_BYTES, exit_cwnd_from_ssthresh, path_packets, rcvbuf_request, receive_window_for, receive_window_packets
from tcplab.model.codel import INTERVAL_S, TARGET_S
from tcplab.model.outcome import Outcome
from tcplab.model.profiles import KernelProfile
from tcplab.sim.bottleneck import simulate

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
TIMELINE = ("t", "cwnd", "ssthresh", "srtt_ms", "in_flight", "ca_state", "delivered_bytes")


def _codel(p: Mapping[str, Any]) -> bool:
    return bool(p["queue"] == "codel")


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
    if p["ecn"] and p["queue"] != "codel":
        raise ValueError(f"ecn must be False with queue={p['queue']!r} (only CoDel marks CE; a drop-tail queue "
                         "drops whatever the packet says)")


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
    kernel running the experiment has one).""",
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
        Key("loss_events", "loss recoveries (TCPSackRecovery + TCPRenoRecovery) plus RTO expiries", rule="rel25",
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
        Key("kernel_codel", "whether this kernel builds a codel qdisc (probed in the private namespace; "
            "sim: None)", rule="shown"),
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
    smoke=(dict(queue="codel", ecn=True, rate_mbit=10, rtt_ms=20, buffer_packets=100, duration=1),),
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


def _read_line(fd: int, deadline: float) -> Any:
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise ExperimentError("the receiver did not answer in time")
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            raise ExperimentError("the receiver exited before answering")
        buf += chunk
    return json.loads(buf)


def _receiver(ecn: bool, ctl: int, up: int) -> Any:
    def main(lst: socket.socket, deadline: float) -> None:
        # tcp_ecn_create_request() reads the listener's own namespace's tcp_ecn when the SYN arrives
        set_namespace_sysctl(ECN_SYSCTL, int(ecn))
        before = read_ecn_counters()
        _send_line(up, {"ready": read_sysctl(ECN_SYSCTL)})
        lst.settimeout(max(0.1, deadline - time.monotonic()))
        conn, _ = lst.accept()
        conn.setblocking(False)
        buf = bytearray(1 << 20)
        got, reset, until = 0, False, deadline
        watch = [conn, ctl]
        while time.monotonic() < min(deadline, until):
            r, _, _ = select.select(watch, [], [], 0.2)
            if ctl in r:
                # the sender has reset the connection: everything it sent before the RST is ahead of it in the
                # link's FIFO, so once the RST is here the CE packets the line marked have all been counted
                watch, until = [conn], time.monotonic() + RESET_WAIT_S
                continue
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
    return main


def _real(p: dict[str, Any]) -> Outcome:
    out = Outcome()
    sample_s = max(0.001, p["rtt_ms"] / 8000)
    # the probe changes lo's root qdisc for a moment: only here, in the private namespace the runner is in
    has_codel = has_qdisc("codel")
    ctl_r, ctl_w = os.pipe()
    up_r, up_w = os.pipe()
    spec = Aqm(p["queue"], p["ecn"])
    try:
        with bottleneck_path(p["rate_mbit"], p["rtt_ms"], p["buffer_packets"], max_seconds=p["duration"] + 30,
                             rcvbuf=rcvbuf_request(_window(p)), receiver=_receiver(p["ecn"], ctl_r, up_w),
                             aqm=spec) as path:
            hello = _read_line(up_r, time.monotonic() + 10)
            if int(hello["ready"]) != int(p["ecn"]):
                raise ExperimentError(f"the receiver's namespace reads tcp_ecn={hello['ready']}")
            with socket.socket() as s:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, ALGORITHM.encode())
                if _paced(p):
                    # sk_setsockopt(): a cap other than ~0 sets SK_PACING_NEEDED: TCP's internal pacing
                    s.setsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, _max_pacing_rate(p))
                s.settimeout(5)
                s.connect(path.receiver)
                s.setblocking(False)
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
                out.counters = delta(before, keep=_COUNTERS)
                # an RST (SO_LINGER 0) ends the transfer at once: the send buffer is discarded, nothing is sent
                # (or marked) after it, and its arrival tells the receiver every earlier packet has arrived
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
                os.write(ctl_w, b"x")                       # the receiver reports and stops
                rcv = _read_line(up_r, time.monotonic() + RESET_WAIT_S + 10)
    finally:
        for fd in (ctl_r, ctl_w, up_r, up_w):
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
        "kernel_codel": has_codel,
        "queue_method": _queue_method(p, has_codel),
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
    if kernel_drops:
        out.notes.append(f"tunR's hand-off pfifo dropped {kernel_drops} packets: the delay line fell behind")
    out.timings += delay_line_timings(stats, path.scheduling, median="every sojourn and RTT sample was that much longer")
    exit_t = next((r["t"] for r in rows if r["ssthresh"] is not None), elapsed)
    out.timings.append(ack_train_timing(stats, t0, t0 + exit_t, final.extra.get("min_rtt", 0) / 1e6,
                                        final.extra.get("pacing_rate") or 0, paced=_paced(p)))
    if stats.error:
        out.notes.append(stats.error)
    return out


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


def _queue_method(p: Mapping[str, Any], has_codel: bool | None) -> str:
    if p["queue"] == "droptail":
        what = f"drop-tail, {p['buffer_packets']} packets"
    else:
        what = (f"CoDel (RFC 8289: target {TARGET_S * 1000:g} ms, interval {INTERVAL_S * 1000:g} ms, "
                f"{'CE marks' if p['ecn'] else 'drops'}; limit {p['buffer_packets']} packets)")
    kernel = {True: "this kernel has a codel qdisc, but the delay line's ran, for a like-for-like sojourn measure",
              False: "this kernel has no codel qdisc", None: "no tc to ask whether this kernel has a codel qdisc"}
    return f"{what} in the delay line (tcplab.kernel.aqmlink); {kernel[has_codel]}"


def _sim(p: dict[str, Any], profile: KernelProfile) -> Outcome:
    run = simulate(p["rate_mbit"], p["rtt_ms"], p["buffer_packets"], ALGORITHM, duration=p["duration"],
                   sample_s=max(0.001, p["rtt_ms"] / 8000), rcv_window=_window(p), aqm=p["queue"], ecn=p["ecn"],
                   max_pacing_rate=_max_pacing_rate(p))
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
        "kernel_codel": None,
        "queue_method": _queue_method(p, None).split(";")[0].replace("in the delay line (tcplab.kernel.aqmlink)",
                                                                    "simulated (tcplab.model.codel)"),
        "delay_method": "simulated: a constant one-way delay of rtt/2 (tcplab.sim.bottleneck)",
    }
    out.notes.append(f"kernel profile {profile.name}: CUBIC as tcplab.model.cc models it; {run.packets} packets, "
                     f"{a['tail_drops']} tail drops, {a['aqm_drops']} CoDel drops, {a['marks']} CE marks")
    return out
