"""loss_recovery: the same single loss repaired in one RTT, or after a ~200 ms stall. Why?

The real runner builds the path of :mod:`tcplab.kernel.bottleneck` and asks its delay line to drop
chosen data segments of the transfer (:class:`tcplab.kernel.droprule.DropRule`: counted by first
transmission, so a retransmission of the same bytes is recognised and may be dropped too). The
sender writes ``bytes`` and waits until all of them are acknowledged. A packet capture on the
sender's own interface (kernel timestamps) shows when each segment left and each ACK arrived: the
duplicate ACKs, their SACK blocks and the retransmissions; the namespace's counters say which
mechanism repaired the loss.

The rules are :mod:`tcplab.model.recovery` (one place; the simulator replays them).

>>> s = loss_recovery(drop="5th", mode="sim").summary
>>> s["repaired_by"], s["dupacks_before_retransmit"], s["retransmissions"]
('fast retransmit', 3, 1)
>>> s = loss_recovery(drop="last", mode="sim").summary
>>> s["repaired_by"], s["dupacks_before_retransmit"], s["stall_ms"] > 200
('tail loss probe', 0, True)
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from typing import Any

from tcplab.errors import ExperimentError
from tcplab.experiments._common import counters_now, delay_line_timings, delta
from tcplab.experiments.registry import make_function
from tcplab.experiments.spec import Experiment, GridPoint, Key, ListExact, Param, Plot, Slider, Table
from tcplab.kernel.bottleneck import DELAY_METHOD, SENDER_ADDR, bottleneck_path
from tcplab.kernel.capture import Capture
from tcplab.kernel.droprule import DropRule
from tcplab.kernel.tcpinfo import tcp_info, timeline_row
from tcplab.model.outcome import Outcome, Timing
from tcplab.model.prr import prr_modelled, prr_trace
from tcplab.model.profiles import KernelProfile
from tcplab.model.recovery import DROPS, MSS, RecoveryPlan, plan_drop, recover

__all__ = ["loss_recovery", "SPEC"]

#: the sender's congestion control, set per socket (TCP_CONGESTION): the simulator's recovery is CUBIC's
ALGORITHM = "cubic"

SACK = "net.ipv4.tcp_sack"
RECOVERY = "net.ipv4.tcp_recovery"
EARLY_RETRANS = "net.ipv4.tcp_early_retrans"
COUNTERS = ("TCPSackRecovery", "TCPRenoRecovery", "TCPFastRetrans", "TCPLossProbes", "TCPLossProbeRecovery",
            "TCPTimeouts", "TCPLostRetransmit", "TCPDSACKRecv", "TCPDSACKOfoRecv", "RetransSegs")
#: the drop-tail buffer of the path: deep enough that the chosen drops are the transfer's only losses
BUFFER_PACKETS = 1000
#: the delay line's p99 lateness the stall (within 10 %) survives: the shortest stall the grid
#: compares is ~21 ms (one RTT of 20 ms), and each late packet adds its lateness to it
DELAY_LINE_TOLERANCE_MS = 2.0
_TIMED = {"delay_line": DELAY_LINE_TOLERANCE_MS}
#: "dupack_clock": the duplicate ACKs the kernel had processed when it retransmitted are read from the
#: retransmission's TSecr (the TSval of the newest ACK it processed, tcp_replace_ts_recent()), not from
#: arrival times: a sender whose softirq ran late has more of them in hand than it had processed
#: (measured at 50 Mbit/s on a shared 2-core host: 5 arrived before the retransmission for the 3 the
#: kernel acted on). The receiver's TSval ticks once a millisecond; when the last processed dupACK
#: and the next share one, which of the two the kernel had seen is unknown (1, else 0)
_COUNTED = {"dupack_clock": 0.5}
#: "ack_bunching": by how much a duplicate ACK before the fast retransmit came less than 1 ms after the sender's
#: previous transmission. tcp_tso_should_defer() (net/ipv4/tcp_output.c) sends at once only when the last write is
#: more than 1 ms old (``delta = tcp_clock_cache - tcp_wstamp_ns - NSEC_PER_MSEC``) or the state is Recovery; in
#: Disorder it may hold a segment the cwnd allows, and the recovery then starts from one segment fewer (measured:
#: ACKs released late by the delay line 0.93 ms apart, 12 recovery ACKs instead of 13). At 10 Mbit/s the ACKs are
#: 1.2 ms apart: none is bunched (a tolerance of 0.01 ms: the timestamps are the capture's, to the microsecond)
_BUNCHED = {"ack_bunching": 0.01}
#: the columns of the ``tcp_info`` table (the timeline's names)
TCP_INFO_COLUMNS = ("t", "cwnd", "ssthresh", "srtt_ms", "rttvar_ms", "rto_ms", "in_flight", "retransmits",
                    "total_retrans", "ca_state")


SPEC = Experiment(
    name="loss_recovery",
    title="One loss, two fates: repaired by duplicate ACKs within an RTT, or by a timer after ~200 ms",
    doc="""A transfer of ``bytes`` through a path of ``rtt_ms`` and ``rate_mbit`` whose delay line drops
    exactly the segments ``drop`` names: ``"5th"`` (the 5th data segment), ``"burst 5-7"``, ``"last"``
    (the transfer's last segment), ``"5th twice"`` (the 5th and its first retransmission), ``"none"``.
    Segments sent after a lost one make the receiver send duplicate ACKs (with SACK blocks naming
    what arrived); the third marks the hole lost (``tcp_time_to_recover()``, and RACK's reorder window
    ``tcp_rack_reo_wnd()`` is 0 once ``sacked_out >= tp->reordering``, net/ipv4/tcp_recovery.c) and the
    sender retransmits at once: a fast retransmit, about one RTT after the loss. When nothing follows the
    lost segment (``"last"``) no duplicate ACK can come: only a timer repairs it. With SACK and
    ``tcp_early_retrans`` 3 or 4 that is the tail loss probe, ``tcp_schedule_loss_probe()``
    (net/ipv4/tcp_output.c): 2·SRTT plus TCP_RTO_MIN (200 ms) when one packet is out, capped by the
    RTO; otherwise the RTO itself. A lost retransmission is found by RACK
    (``tcp_rack_detect_loss()``: a later-sent segment was SACKed) when data follows it, else by the RTO.
    ``sack``, ``rack`` and ``early_retrans`` set tcp_sack, tcp_recovery and tcp_early_retrans in the
    sender's private namespace only.""",
    params=(
        Param("drop", "choice", "5th", choices=DROPS, help="which data segments the path drops"),
        Param("sack", "bool", True, sysctl=SACK, help="tcp_sack in the sender's namespace (False: Reno's dupACK counting)"),
        Param("rack", "bool", True, sysctl=RECOVERY,
              help="tcp_recovery in the sender's namespace: 1 RACK loss detection, 0 without (6.18 detects by "
                   "RACK either way: measured, the same repairs)"),
        Param("early_retrans", "int", 3, lo=0, hi=4, sysctl=EARLY_RETRANS,
              help="tcp_early_retrans: 3 or 4 enable the tail loss probe, 0..2 do not", slider=Slider(0, 4)),
        # at least one initial window (10 segments): three segments follow the burst 5-7
        Param("bytes", "int", 14_480, lo=14_480, hi=2_000_000, unit="B",
              help="bytes the sender writes (14480: one initial window of 10 segments, all sent at once)",
              slider=Slider(14_480, 2_000_000, step=1448, scale="log")),
        Param("rtt_ms", "float", 20.0, lo=2, hi=200, unit="ms", help="the path's round-trip delay",
              slider=Slider(2, 200, step=1)),
        # 10 Mbit/s: duplicate ACKs 1.2 ms apart, more than the receiver's 1 ms TSval tick
        Param("rate_mbit", "float", 10.0, lo=1, hi=200, unit="Mbit/s", help="the bottleneck's rate",
              slider=Slider(1, 200, step=1)),
    ),
    summary=(
        Key("dropped", "[segment, transmission] of every packet the path dropped (1 = the original)",
            rule=ListExact()),
        Key("repaired_by", "what retransmitted the first lost segment: fast retransmit, tail loss probe or RTO"),
        Key("repairs", "what sent each retransmission of a lost segment, in order", rule=ListExact()),
        Key("dupacks_before_retransmit", "duplicate ACKs the sender received between the loss and the first "
            "retransmission", tolerates=_COUNTED),
        Key("sack_blocks", "the most SACK blocks on one duplicate ACK (0 without SACK)"),
        Key("stall_ms", "ms from the lost segment's first transmission to the retransmission that arrived",
            rule="rel10", tolerates=_TIMED),
        Key("retransmissions", "segments retransmitted (tcp_info.total_retrans)"),
        Key("srtt_ms", "the smoothed RTT when the loss was detected (ms; simulated: the model's)", rule="shown"),
        Key("rto_ms", "the RTO (ms; real: tcp_info.rto after the transfer, simulated: when the loss was detected)",
            rule="rel10"),
        Key("TCPFastRetrans", "fast retransmissions (counter)"),
        Key("TCPLossProbes", "tail loss probes sent (counter)"),
        Key("TCPLossProbeRecovery", "losses a tail loss probe repaired (counter)"),
        Key("TCPTimeouts", "RTO expiries (counter)"),
        Key("TCPSackRecovery", "recoveries with SACK (counter)"),
        Key("TCPRenoRecovery", "recoveries without SACK (counter)"),
        Key("prr_sent_per_ack", "segments the sender sent on each ACK of the recovery, from the one that entered it "
            "to the one before the ACK of high_seq (PRR, tcp_cwnd_reduction(); None unless one loss, or one burst "
            "with SACK, is repaired by a fast retransmit)", rule=ListExact(), tolerates=_BUNCHED),
        Key("recovery_ssthresh", "ssthresh the recovery reduced towards (CUBIC: 717/1024 of cwnd; real: TCP_INFO)"),
    ),
    tables=(Table("segments", ("t_ms", "direction", "seq", "len", "ack", "sack", "kind"),
                  "one segment at the sender, ms after the first data segment: data out (kind new, retransmit, or "
                  "lost: the path dropped it; a row may hold 2+ segments, a TSO burst) or an ACK in (kind ack or "
                  "dupack, with its SACK blocks), byte offsets from the start of the data; simulated: the initial "
                  "window and the repair",
                  optional="real: only with a packet capture (CAP_NET_RAW in the namespace)"),
            Table("tcp_info", TCP_INFO_COLUMNS,
                  "the sender's TCP_INFO when it changed (read every ms through the transfer), s after the first "
                  "data segment: cwnd, ssthresh (None while infinite), srtt, rttvar, rto, packets in flight, "
                  "retransmissions, congestion state (tcplab.timeline_of draws them under the segments)",
                  optional="real only: the simulator models the segments, not the socket's counters"),
            Table("prr", ("t_ms", "ack", "sent"),
                  "the recovery ACK by ACK: when each ACK arrived (ms after the first data segment), what it "
                  "acknowledged cumulatively, and how many segments the sender sent on it (PRR's pacing)",
                  optional="only for a loss or a burst repaired by a fast retransmit; real: with a capture"),),
    timeline=None,
    grid=(
        GridPoint(dict(drop="5th"), quick=True, why="three dupACKs, a fast retransmit one RTT after the loss"),
        GridPoint(dict(drop="last"), quick=True, why="a tail loss: the probe after 2·SRTT + 200 ms, capped by the RTO"),
        GridPoint(dict(drop="5th", sack=False), quick=True, why="Reno: the third dupACK"),
        GridPoint(dict(drop="last", early_retrans=0), why="no probe: the RTO"),
        GridPoint(dict(drop="last", sack=False), why="no probe without SACK: the RTO"),
        GridPoint(dict(drop="burst 5-7")),
        GridPoint(dict(drop="5th twice")),
        GridPoint(dict(drop="5th twice", sack=False)),
        GridPoint(dict(drop="5th twice", bytes=100_000), why="RACK finds the lost retransmission: no timer"),
        GridPoint(dict(drop="5th twice", bytes=100_000, rack=False),
                  why="tcp_recovery=0: the same on 6.18 (measured; RACK detects either way)"),
        GridPoint(dict(drop="burst 5-7", sack=False, rate_mbit=5)),
        GridPoint(dict(drop="5th", rtt_ms=40)),
        GridPoint(dict(drop="last", rtt_ms=50, bytes=50_000)),
        GridPoint(dict(drop="none")),
        GridPoint(dict(drop="5th", bytes=100_000), quick=True,
                  why="PRR paces the recovery: 13 duplicate ACKs, 9 segments (1,1,0,1,1,0,1,1,0,0,1,1,1): ssthresh/"
                      "prior_cwnd of what is delivered while more than ssthresh is in flight, then one per ACK"),
        GridPoint(dict(drop="burst 5-7", bytes=100_000, rtt_ms=30),
                  why="three holes: PRR releases the three retransmissions among the new data"),
    ),
    real=lambda p: _real(p),
    sim=lambda p, profile, rng: _sim(p, profile),
    record=(SACK, RECOVERY, EARLY_RETRANS, "net.ipv4.tcp_reordering", "net.ipv4.tcp_congestion_control"),
    needs_namespace="the bottleneck path and its delay line live in private namespaces",
    timeout=lambda p: 60.0,
    plot=Plot(y=("seq",), x="t_ms", source="segments", kind="markers", x_title="ms after the first data segment",
              title="sequence numbers at the sender: data out, ACKs in", y_title="byte offset",
              figure="recovery:recovery_figure", table="segments"),
    smoke=(dict(drop="5th", bytes=50_000),),
)

loss_recovery = make_function(SPEC)


def _rel(x: int, base: int) -> int:
    return (x - base) & 0xFFFFFFFF


def _analyse(segs: list[dict[str, Any]], plan: RecoveryPlan,
             sack: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The sender's segments, relative to the start of data, and what they show about the first loss."""
    syn = next((s for s in segs if s["out"] and "S" in s["flags"]), None)
    if syn is None:
        raise ExperimentError("the capture missed the SYN")
    isn = syn["seq"] + 1
    t0 = next((s["mono"] for s in segs if s["out"] and s["payload"] and "S" not in s["flags"]), syn["mono"])
    rows: list[dict[str, Any]] = []
    sent_high = 0
    for s in segs:
        if "S" in s["flags"]:
            continue
        if s["out"] and s["payload"]:
            # the sender's veth sees GSO packets (two or more segments in one skb); the path's tbf splits
            # them into the MSS-sized segments the delay line counts and drops, so the table does too
            start = _rel(s["seq"], isn)
            for seq in range(start, start + s["payload"], MSS):
                size = min(MSS, start + s["payload"] - seq)
                kind = "new" if seq >= sent_high else "retransmit"
                sent_high = max(sent_high, seq + size)
                rows.append({"t_ms": round((s["mono"] - t0) * 1000, 3), "direction": "out", "seq": seq,
                             "len": size, "ack": None, "sack": None, "kind": kind, "_mono": s["mono"],
                             "_ts": s["options"].get("ts_ecr")})
        elif not s["out"] and "A" in s["flags"]:
            blocks = [(_rel(a, isn), _rel(b, isn)) for a, b in s["options"].get("sack_blocks", [])]
            rows.append({"t_ms": round((s["mono"] - t0) * 1000, 3), "direction": "in", "seq": None, "len": 0,
                         "ack": _rel(s["ack"], isn), "sack": str(blocks) if blocks else "", "kind": "ack",
                         "_mono": s["mono"], "_ts": s["options"].get("ts_val")})
    found: dict[str, Any] = {"dupacks": 0, "sack_blocks": 0, "stall_ms": None, "ambiguous": False, "prr": None,
                             "bunched_ms": 0.0}
    if not plan.segments:
        for r in rows:
            r.pop("_mono")
            r.pop("_ts")
        return rows, found
    lost = (min(plan.segments) - 1) * MSS
    first_tx = next((r for r in rows if r["direction"] == "out" and r["seq"] <= lost < r["seq"] + r["len"]), None)
    retx = [r for r in rows if r["direction"] == "out" and r["kind"] == "retransmit" and r["seq"] <= lost < r["seq"] + r["len"]]
    if first_tx is None or len(retx) < plan.times:
        raise ExperimentError(f"the capture shows {len(retx)} retransmissions of byte {lost}, fewer than the "
                              f"{plan.times} the drop needs")
    last_ack = 0
    dups = []
    for r in rows:
        if r["direction"] != "in":
            continue
        if r["ack"] == last_ack == lost and r["_mono"] > first_tx["_mono"]:
            r["kind"] = "dupack"
            dups.append(r)
        last_ack = max(last_ack, r["ack"])
    echo = retx[0]["_ts"]
    # the dupACKs the kernel had processed: those whose TSval the retransmission echoes, or older. Several
    # may carry the echoed TSval (one millisecond): the kernel had surely processed the first of them, perhaps
    # the others: counted up to the first, and the run says it is ambiguous
    seen = [d for d in dups if d["_mono"] < retx[0]["_mono"]
            and (echo is None or d["_ts"] is None or ((echo - d["_ts"]) & 0xFFFFFFFF) < 1 << 31)]
    same = [d for d in seen if echo is not None and d["_ts"] == echo]
    if len(same) > 1:
        seen = seen[:seen.index(same[0]) + 1]
    found["dupacks"] = len(seen)
    found["ambiguous"] = len(same) > 1
    found["sack_blocks"] = max((d["sack"].count("(") if d["sack"] else 0 for d in seen), default=0)
    for n in plan.segments:                     # what the path dropped: the original and `times - 1` retransmissions
        at = (n - 1) * MSS
        tx = [r for r in rows if r["direction"] == "out" and r["seq"] <= at < r["seq"] + r["len"]]
        for r in tx[:plan.times]:
            r["kind"] = "lost"
    # the retransmission that arrived: the one after the `times` the path dropped
    found["stall_ms"] = round((retx[plan.times - 1]["_mono"] - first_tx["_mono"]) * 1000, 3)
    found["prr"] = _prr_rows(rows, retx[0]) if prr_modelled(plan, sack) else None
    # the duplicate ACKs before the fast retransmit (Disorder): how soon after the sender's last transmission each came
    gaps, last_out = [], None
    for r in rows[:rows.index(retx[0])]:
        if r["direction"] == "out":
            last_out = r["_mono"]
        elif r["kind"] == "dupack" and last_out is not None:
            gaps.append((r["_mono"] - last_out) * 1000)
    found["bunched_ms"] = round(max(0.0, 1.0 - min(gaps)), 3) if gaps else 0.0
    for r in rows:
        r.pop("_mono")
        r.pop("_ts")
    return rows, found


def _prr_rows(rows: list[dict[str, Any]], first_retx: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The recovery ACK by ACK from the capture: the ACKs from the one the first retransmission answered to the one
    before the ACK of high_seq (snd_nxt then), and the segments sent on each. A segment is the answer to the ACK
    whose TSval it echoes (TSecr: the newest ACK the kernel had processed, tcp_replace_ts_recent()), so an ACK
    captured before the kernel had answered the previous one does not take its segments; when two ACKs carry the
    same TSval (the receiver's clock ticks once a millisecond), the later of them before the segment."""
    i0 = rows.index(first_retx)
    before = [r for r in rows[:i0] if r["direction"] == "in"]
    if not before:
        return None
    entry = before[-1]
    high = max(r["seq"] + r["len"] for r in rows[:i0] if r["direction"] == "out")
    start = rows.index(entry)
    acks: list[dict[str, Any]] = []
    end = next((r for r in rows[start:] if r["direction"] == "in" and r["ack"] >= high), None)
    if end is None:
        return None                                 # the capture ends inside the recovery
    end_ts = end["_ts"]
    for r in rows[start:rows.index(end)]:
        if r["direction"] == "in":
            acks.append({"t_ms": r["t_ms"], "ack": r["ack"], "sent": 0, "_ts": r["_ts"]})
    seen = 0                                        # recovery ACKs captured so far
    closed = False                                  # the ACK of high_seq has been captured
    for r in rows[start:]:
        if r["direction"] == "in":
            if r["ack"] >= high:
                closed = True
            elif not closed:
                seen += 1
            continue
        if not seen:
            continue
        if closed and r["_ts"] is not None and r["_ts"] == end_ts:
            break                                   # the answer to the ACK of high_seq: after the recovery
        match = [a for a in acks[:seen] if r["_ts"] is not None and a["_ts"] == r["_ts"]]
        if match:
            match[-1]["sent"] += 1
        elif closed:
            break
        else:
            acks[seen - 1]["sent"] += 1
    return [{k: a[k] for k in ("t_ms", "ack", "sent")} for a in acks]


def _real(p: dict[str, Any]) -> Outcome:
    out = Outcome()
    plan = plan_drop(p["drop"], p["bytes"])
    rule = DropRule(segments=plan.segments, times=plan.times)
    with bottleneck_path(p["rate_mbit"], p["rtt_ms"], BUFFER_PACKETS, drop=rule, max_seconds=40) as path:
        s = socket.socket()
        cap = None
        try:
            # the whole transfer fits the send buffer: every send is then clocked by ACKs in the kernel,
            # never by this process writing more (whose lag would show as the sender's)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2 * p["bytes"] + (1 << 16))
            # per socket, as window does: a fresh namespace's default follows the host's (bbr on some hosts:
            # cwnd held through Recovery, ssthresh never set), and the simulator's recovery is CUBIC's
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, ALGORITHM.encode())
            s.bind((SENDER_ADDR, 0))
            sport = s.getsockname()[1]
            cap, why = Capture.try_open("a0", ports=(sport, path.receiver[1]), rcvbuf=8 << 20, kernel_time=True,
                                        incoming=True)
            if cap is None:
                out.incomplete = why
            s.settimeout(5)
            s.connect(path.receiver)
            before = counters_now()
            segs: list[dict[str, Any]] = []
            data = memoryview(b"x" * p["bytes"])
            sent = 0
            deadline = time.monotonic() + 30
            s.setblocking(False)
            info = tcp_info(s)
            samples = [(time.monotonic(), _info_row(info))]
            while time.monotonic() < deadline:
                if sent < p["bytes"]:
                    try:
                        sent += s.send(data[sent:])
                    except BlockingIOError:
                        pass
                if cap is not None:
                    segs += cap.read(0.001)
                else:
                    time.sleep(0.001)
                info = tcp_info(s)
                row = _info_row(info)
                if row != samples[-1][1] and len(samples) < _MAX_INFO_ROWS:    # a change: the table stays small
                    samples.append((time.monotonic(), row))
                if sent >= p["bytes"] and info.extra.get("bytes_acked", 0) >= p["bytes"]:
                    break
            else:
                raise ExperimentError(f"the transfer of {p['bytes']} bytes was not acknowledged within 30 s")
            counters = delta(before, keep=COUNTERS)
            if cap is not None:
                segs += cap.read(0.01)
                if cap.drops():
                    out.incomplete = "the capture dropped packets: the segment table would be incomplete"
        finally:
            s.close()
            if cap is not None:
                cap.sock.close()
    stats = path.stats
    if stats is None:
        raise ExperimentError("the delay line did not report its measurements")
    out.notes.append(f"the sender's socket ran {ALGORITHM} (TCP_CONGESTION), whatever the namespace's default")
    dropped = [[d.segment, d.transmission] for d in stats.dropped]
    qdrops = max((q[3] for q in stats.queue), default=0)
    if qdrops:
        out.notes.append(f"the bottleneck queue dropped {qdrops} packets besides the chosen ones")
    if cap is not None and not out.incomplete:
        rows, found = _analyse(segs, plan, p["sack"])
        out.timings.append(Timing("ack_bunching", found["bunched_ms"],
                                  f"a duplicate ACK came {found['bunched_ms']:g} ms less than 1 ms after the sender's "
                                  "last transmission: tcp_tso_should_defer() may then hold a segment in Disorder, and "
                                  "PRR's recovery starts from one fewer"))
        out.timings.append(Timing("dupack_clock", 1.0 if found["ambiguous"] else 0.0,
                                  "two duplicate ACKs carried the same millisecond TSval, so whether the "
                                  "kernel had processed the second when it retransmitted is unknown"))
    else:
        rows, found = [], {"dupacks": None, "sack_blocks": None, "stall_ms": None, "prr": None}
    out.counters = counters
    out.tables["segments"] = rows
    if found["prr"] is not None:
        out.tables["prr"] = found["prr"]
    # the same origin as the segments' table: the first data segment the capture saw (else the first sample)
    first_data = next((g["mono"] for g in segs if g["out"] and g["payload"] and "S" not in g["flags"]), samples[0][0])
    out.tables["tcp_info"] = [{"t": round(mono - first_data, 6), **row} for mono, row in samples]
    repairs = _repairs(counters, plan)
    out.summary = {
        "dropped": dropped, "repaired_by": repairs[0] if repairs else None, "repairs": repairs,
        "dupacks_before_retransmit": found["dupacks"], "sack_blocks": found["sack_blocks"],
        "stall_ms": found["stall_ms"], "retransmissions": info.total_retrans,
        "srtt_ms": round(info.extra.get("rtt", 0) / 1000, 3), "rto_ms": round(info.rto / 1000, 3),
        **{k: counters.get(k, 0) for k in ("TCPFastRetrans", "TCPLossProbes", "TCPLossProbeRecovery", "TCPTimeouts",
                                           "TCPSackRecovery", "TCPRenoRecovery")},
        "prr_sent_per_ack": [a["sent"] for a in found["prr"]] if found["prr"] is not None else None,
        "recovery_ssthresh": (next((row["ssthresh"] for _, row in samples if row["ssthresh"] is not None), None)
                              if prr_modelled(plan, p["sack"]) else None),
    }
    out.notes += path.notes
    out.notes.append(f"delay line: {stats.packets} packets, released late by p50 {stats.lateness_p50_ms} ms, "
                     f"p99 {stats.lateness_p99_ms} ms, max {stats.lateness_max_ms} ms; dropped {dropped}")
    out.timings += delay_line_timings(stats, path.scheduling)
    if stats.error:
        out.notes.append(stats.error)
    out.notes.append(f"path: {DELAY_METHOD}")
    return out


#: a bound on the tcp_info table (a row per change; a 2 MB transfer changes a few thousand times)
_MAX_INFO_ROWS = 20_000


def _info_row(info: Any) -> dict[str, Any]:
    """The sender's TCP_INFO in the table's columns (:func:`tcplab.kernel.tcpinfo.timeline_row`)."""
    row = timeline_row(info)
    return {k: row[k] for k in TCP_INFO_COLUMNS[1:]}


def _repairs(counters: Mapping[str, int], plan: RecoveryPlan) -> list[str]:
    """What sent each retransmission of the first lost segment, from the counters, in the order the
    mechanisms act: a probe, fast retransmits (one per other lost segment of a burst taken off), then
    RTO expiries when those did not repair it.

    >>> _repairs({"TCPFastRetrans": 3}, plan_drop("burst 5-7", 100_000))
    ['fast retransmit']
    >>> _repairs({"TCPFastRetrans": 1, "TCPTimeouts": 1}, plan_drop("5th twice", 100_000))
    ['fast retransmit', 'RTO']
    """
    if not plan.segments:
        return []
    out = ["tail loss probe"] * counters.get("TCPLossProbes", 0)
    out += ["fast retransmit"] * max(0, counters.get("TCPFastRetrans", 0) - (len(plan.segments) - 1))
    out += ["RTO"] * counters.get("TCPTimeouts", 0)
    return out


def _sim(p: dict[str, Any], profile: KernelProfile) -> Outcome:
    plan = plan_drop(p["drop"], p["bytes"])
    r = recover(plan, sack=p["sack"], rack=p["rack"], early_retrans=p["early_retrans"], rtt_ms=p["rtt_ms"],
                rate_mbit=p["rate_mbit"], profile=profile)
    out = Outcome()
    out.summary = {"dropped": [list(d) for d in r.dropped], "repaired_by": r.repairs[0] if r.repairs else None,
                   "repairs": list(r.repairs), "dupacks_before_retransmit": r.dupacks, "sack_blocks": r.sack_blocks,
                   "stall_ms": r.stall_ms, "retransmissions": r.retransmissions, "srtt_ms": r.srtt_ms,
                   "rto_ms": r.rto_ms, **r.counters}
    out.counters = dict(r.counters)
    out.tables["segments"] = [dict(row) for row in r.segments]
    trace = prr_trace(plan, sack=p["sack"], rtt_ms=p["rtt_ms"], rate_mbit=p["rate_mbit"], beta=profile.cubic_beta)
    out.summary["prr_sent_per_ack"] = trace.per_ack if trace is not None else None
    out.summary["recovery_ssthresh"] = trace.ssthresh if trace is not None else None
    if trace is not None:
        out.tables["prr"] = [{k: row[k] for k in ("t_ms", "ack", "sent")} for row in trace.rows]
    out.sysctls = {SACK: int(p["sack"]), RECOVERY: int(p["rack"]), EARLY_RETRANS: p["early_retrans"],
                   "net.ipv4.tcp_reordering": 3, "net.ipv4.tcp_congestion_control": ALGORITHM}
    out.notes += r.notes
    return out
