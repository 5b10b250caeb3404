"""Loss recovery as Linux runs it: which mechanism repairs a chosen loss, and when.

Pure rules (no I/O), replayed by the simulator of ``loss_recovery`` and cited from the kernel:

- **Fast retransmit**: segments sent after the lost one reach the receiver out of order; each makes
  it send a duplicate ACK at once (with SACK blocks when SACK was negotiated). The third marks the
  hole lost: with SACK, RACK's reorder window ``tcp_rack_reo_wnd()`` is 0 once ``tp->sacked_out >=
  tp->reordering`` (3, net/ipv4/tcp_recovery.c) and ``tcp_rack_detect_loss()`` marks it; without
  SACK ``tcp_newreno_mark_lost()`` marks the head when ``sacked_out`` (dupACKs) reaches
  ``tp->reordering`` (net/ipv4/tcp_input.c). The retransmission leaves while that ACK is processed.
- **Tail loss probe** (``tcp_schedule_loss_probe()``, net/ipv4/tcp_output.c): only with SACK and
  ``tcp_early_retrans`` 3 or 4. After the last ACK, ``timeout = 2·SRTT`` plus TCP_RTO_MIN when one
  packet is out (RFC 8985's allowance for a delayed ACK), or plus TCP_TIMEOUT_MIN (2 jiffies)
  otherwise, then ``min(timeout, RTO)``. With one packet out the RTO (SRTT + at least 200 ms) is
  the smaller, so the probe leaves when the RTO would have: same wait, but no RTO's slow start.
- **RTO** (``tcp_retransmit_timer()``): otherwise; RTO = SRTT + max(RTTVAR, TCP_RTO_MIN) jiffies
  (``__tcp_set_rto()``, ``tcp_rtt_estimator()``).

>>> plan_drop("burst 5-7", 100_000).segments, plan_drop("last", 100_000).segments
((5, 6, 7), (70,))
>>> r = recover(plan_drop("5th", 100_000), sack=True, rack=True, early_retrans=3, rtt_ms=20, rate_mbit=50)
>>> r.repairs, r.dupacks
(('fast retransmit',), 3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tcplab.model.profiles import KernelProfile, get_profile

__all__ = ["DROPS", "MSS", "RecoveryPlan", "Recovery", "plan_drop", "recover", "rto_ms", "pto_ms"]

#: the drop choices a learner picks from (the panel's dropdown)
DROPS = ("none", "5th", "burst 5-7", "last", "5th twice")
#: payload per segment on the path: MTU 1500 - 20 (IP) - 20 (TCP) - 12 (timestamps option)
MSS = 1448
#: the initial window (TCP_INIT_CWND, include/net/tcp.h)
INIT_CWND = 10
#: what tbf counts per segment: its IP length (an L3 TUN device has no link header)
WIRE_BYTES = MSS + 52
#: tp->reordering's start: net.ipv4.tcp_reordering (TCP_FASTRETRANS_THRESH)
REORDERING = 3


@dataclass(frozen=True)
class RecoveryPlan:
    """Which segments the path drops (1-based, by first transmission) and how many times each."""

    drop: str
    segments: tuple[int, ...]
    times: int
    total_segments: int


def plan_drop(drop: str, nbytes: int) -> RecoveryPlan:
    """The segments a drop choice names for a transfer of ``nbytes``.

    >>> plan_drop("5th twice", 50_000)
    RecoveryPlan(drop='5th twice', segments=(5,), times=2, total_segments=35)
    """
    if drop not in DROPS:
        raise ValueError(f"drop must be one of {', '.join(DROPS)}, not {drop!r}")
    total = math.ceil(nbytes / MSS)
    segs = {"none": (), "5th": (5,), "burst 5-7": (5, 6, 7), "last": (total,), "5th twice": (5,)}[drop]
    return RecoveryPlan(drop, segs, 2 if drop.endswith("twice") else 1, total)


def rto_ms(srtt_ms: float, profile: KernelProfile | None = None) -> float:
    """The RTO after steady samples: SRTT + max(mdev, TCP_RTO_MIN), rounded up to a jiffy
    (``__tcp_set_rto()``: ``usecs_to_jiffies((srtt_us >> 3) + tp->rttvar_us)``; ``tcp_rtt_estimator()``
    keeps ``rttvar_us`` at least ``tcp_rto_min_us()``).

    >>> rto_ms(20.5)
    224.0
    """
    prof = profile or get_profile(None)
    tick = prof.timer_tick * 1000
    return math.ceil((srtt_ms + prof.rto_min * 1000) / tick) * tick


def pto_ms(srtt_ms: float, packets_out: int, profile: KernelProfile | None = None) -> float:
    """The tail loss probe's timeout (``tcp_schedule_loss_probe()``): 2·SRTT + TCP_RTO_MIN with one
    packet out, + TCP_TIMEOUT_MIN (2 jiffies) with more, capped by the RTO.

    >>> pto_ms(20.5, 1), pto_ms(20.5, 5)
    (224.0, 52.0)
    """
    prof = profile or get_profile(None)
    tick = prof.timer_tick * 1000
    extra = prof.rto_min * 1000 if packets_out == 1 else 2 * tick
    return min(math.ceil(2 * srtt_ms / tick) * tick + extra, rto_ms(srtt_ms, prof))


@dataclass
class Recovery:
    """What the model says happens (the simulated summary's figures)."""

    dropped: list[tuple[int, int]] = field(default_factory=list)
    repairs: tuple[str, ...] = ()
    dupacks: int = 0
    sack_blocks: int = 0
    stall_ms: float | None = None
    retransmissions: int = 0
    srtt_ms: float = 0.0
    rto_ms: float = 0.0
    counters: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: the initial window's segments at the sender (the ``segments`` table's rows), ms from the first
    segments: list[dict[str, object]] = field(default_factory=list)


def srtt_after(samples_ms: list[float]) -> float:
    """SRTT after RTT samples, as ``tcp_rtt_estimator()`` (net/ipv4/tcp_input.c) keeps it: the first
    sample as is, then ``srtt += (m - srtt) / 8`` (in us, stored x8).

    >>> srtt_after([20.0, 28.0])
    21.0
    """
    srtt = 0.0
    for m in samples_ms:
        srtt = m if not srtt else srtt + (m - srtt) / 8
    return round(srtt, 3)


def recover(plan: RecoveryPlan, *, sack: bool, rack: bool, early_retrans: int, rtt_ms: float, rate_mbit: float,
            profile: KernelProfile | None = None) -> Recovery:
    """The repair of ``plan``'s losses on a path of ``rtt_ms`` and ``rate_mbit`` (see the module doc)."""
    prof = profile or get_profile(None)
    ser = WIRE_BYTES * 8 / (rate_mbit * 1000)            # ms per segment at the bottleneck
    # the handshake's sample, then one per ACK of the initial window: the receiver, in quickack mode
    # at the start (tcp_event_data_recv() -> tcp_incr_quickack()), ACKs each segment; segment i left the
    # bottleneck i slots after the burst was sent. A loss stops the samples at the hole.
    first = min(plan.segments) if plan.segments else INIT_CWND + 1
    acked = range(1, min(first, INIT_CWND + 1, plan.total_segments + 1))
    srtt = srtt_after([rtt_ms] + [rtt_ms + i * ser for i in acked])
    r = Recovery(srtt_ms=srtt, rto_ms=rto_ms(srtt, prof))
    counters = dict.fromkeys(("TCPFastRetrans", "TCPLossProbes", "TCPLossProbeRecovery", "TCPTimeouts",
                              "TCPSackRecovery", "TCPRenoRecovery"), 0)
    r.counters = counters
    if not rack:
        r.notes.append("tcp_recovery=0 is modelled as RACK: measured on 6.18, it changed none of these drops (that "
                       "kernel's tcp_time_to_recover() asks only whether loss detection marked a segment lost, "
                       "tp->lost_out); kernels that keep RFC 6675's duplicate-ACK threshold beside RACK may "
                       "repair a lost retransmission by the RTO instead (not modelled per version)")
    if not plan.segments:
        return r
    r.dropped = [(s, t) for t in range(1, plan.times + 1) for s in plan.segments]
    r.dropped.sort()
    tail = first == plan.total_segments
    tlp = sack and early_retrans in (3, 4)
    if tail:
        # nothing follows it: no duplicate ACK; the timer after the last ACK (the one for the segment before)
        wait = pto_ms(srtt, 1, prof) if tlp else r.rto_ms
        r.repairs = ("tail loss probe",) if tlp else ("RTO",)
        # the timer starts at the ACK of the segment before it (tcp_set_xmit_timer() on each ACK). In the
        # initial window that segment queued behind first - 2 others at the bottleneck; beyond it slow start
        # is ACK-clocked: the last segment left on an ACK right behind the one before it (each ACK releases
        # two), whose ACK comes one RTT and a slot later (6.18: 302.4 ms measured at 50 ms / 50 kB, where
        # the burst rule gave 346.8)
        ahead = first - 1 if plan.total_segments <= INIT_CWND else 1
        r.stall_ms = round(rtt_ms + ahead * ser + wait, 3)
        r.segments = _rows(plan, first, rtt_ms, ser, sack, [r.stall_ms])
        if plan.total_segments > INIT_CWND:
            r.notes.append("simulated: the RTT samples of slow start beyond the initial window, and any queue it "
                           "builds at the bottleneck, are not modelled: a tail loss's wait is timed from the "
                           "initial window's SRTT, and the segment before the lost one is taken to cross an "
                           "empty queue")
        r.retransmissions = 1
        if tlp:
            # TCPLossProbeRecovery stays 0: tcp_process_tlp_ack() counts it only for an ACK beyond
            # tp->tlp_high_seq (snd_nxt when the probe left); the probe's own ACK is exactly it
            counters["TCPLossProbes"] = 1
        else:
            counters["TCPTimeouts"] = 1
        return r
    # the initial window went out at once; the segment REORDERING after the first lost one that
    # arrives brings the third duplicate ACK (a burst's later losses bring none)
    arrived_after = [n for n in range(first + 1, plan.total_segments + 1) if n not in plan.segments]
    third = arrived_after[REORDERING - 1]
    r.dupacks = REORDERING
    # one block: the segments after a single hole (or a burst) are contiguous
    r.sack_blocks = 1 if sack else 0
    stall = stall_first = rtt_ms + third * ser
    r.repairs = ("fast retransmit",)
    r.retransmissions = len(plan.segments)
    counters["TCPFastRetrans"] = len(plan.segments)
    counters["TCPSackRecovery" if sack else "TCPRenoRecovery"] = 1
    if plan.times == 2:
        r.retransmissions += len(plan.segments)
        if sack and plan.total_segments > INIT_CWND:
            # RACK (tcp_rack_detect_loss()) marks the retransmission lost once a segment sent after it
            # is SACKed (reo_wnd 0 in recovery, tcp_rack_reo_wnd()): the new data PRR sends right after
            # it, one RTT later. Measured on 6.18 with tcp_recovery 0 as well (no RFC 6675 fallback)
            stall += rtt_ms + 2 * ser
            r.repairs = ("fast retransmit", "fast retransmit")
            counters["TCPFastRetrans"] += len(plan.segments)
        else:
            # no segment sent after the retransmission can be SACKed (Reno has no SACK; with one initial
            # window nothing new is left to send): the RTO armed by the retransmission expires
            # (tcp_xmit_retransmit_queue() rearms it for the head; duplicate ACKs do not)
            stall += r.rto_ms
            r.repairs = ("fast retransmit", "RTO")
            counters["TCPTimeouts"] = 1
    r.stall_ms = round(stall, 3)
    r.segments = _rows(plan, first, rtt_ms, ser, sack, [stall_first, stall] if plan.times == 2 else [stall])
    return r


def _rows(plan: RecoveryPlan, first: int, rtt_ms: float, ser: float, sack: bool,
          retransmits: list[float]) -> list[dict[str, object]]:
    """The initial window at the sender: sent at once, each ACK one RTT after its segment left the
    bottleneck; after the hole, duplicate ACKs (with the SACK block growing); then the retransmissions."""
    rows: list[dict[str, object]] = []
    iw = min(INIT_CWND, plan.total_segments)
    for n in range(1, iw + 1):
        rows.append({"t_ms": 0.0, "direction": "out", "seq": (n - 1) * MSS, "len": MSS, "ack": None, "sack": None,
                     "kind": "lost" if n in plan.segments else "new"})
    hole = (first - 1) * MSS
    for n in range(1, iw + 1):
        if n in plan.segments:
            continue
        t = round(rtt_ms + n * ser, 3)
        if n < first:
            rows.append({"t_ms": t, "direction": "in", "seq": None, "len": 0, "ack": n * MSS, "sack": "",
                         "kind": "ack"})
        else:
            start = max(s for s in plan.segments if s < n) * MSS
            rows.append({"t_ms": t, "direction": "in", "seq": None, "len": 0, "ack": hole,
                         "sack": str([(start, n * MSS)]) if sack else "", "kind": "dupack"})
    for i, t in enumerate(retransmits):
        lost = i + 1 < plan.times
        rows.append({"t_ms": round(t, 3), "direction": "out", "seq": hole, "len": MSS, "ack": None, "sack": None,
                     "kind": "lost" if lost else "retransmit"})
    rows.sort(key=lambda r: (r["t_ms"], r["direction"] == "out"))
    return rows
