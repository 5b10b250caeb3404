"""Proportional Rate Reduction (RFC 6937) as Linux paces a recovery: how many segments leave on each ACK.

``tcp_cwnd_reduction()`` (net/ipv4/tcp_input.c; the same in 6.1, 6.12 and 6.18) runs on every ACK while
the sender is in Recovery (or CWR). With ``prr_delivered`` the segments delivered (ACKed or SACKed) since
the recovery began, ``prr_out`` the segments sent since, and ``delta = ssthresh - in_flight``:

- ``delta < 0`` (more in flight than ssthresh, the start of a recovery): ``sndcnt = ceil(ssthresh x
  prr_delivered / prior_cwnd) - prr_out``: for every ``prior_cwnd`` delivered, ``ssthresh`` are sent.
  CUBIC's ssthresh is 717/1024 of cwnd, so about 7 segments leave for every 10 ACKed: ``1, 0, 1, 1, 0,
  1, ...``, spread over the recovery's round trip, never a burst and never a silence;
- else (in flight at or below ssthresh): packet conservation, ``max(prr_delivered - prr_out,
  newly_acked_sacked)``, plus one when the ACK advanced ``snd_una`` and marked nothing newly lost (the
  slow start towards ssthresh), at most ``delta``;
- at least one segment on the ACK that enters the recovery (``prr_out`` 0: the fast retransmit).

Then ``cwnd = in_flight + sndcnt``, and ``tcp_xmit_recovery()`` / ``tcp_write_xmit()`` send lost
segments first, then new data, while ``in_flight < cwnd``. The recovery ends at the ACK that covers
``high_seq`` (``snd_nxt`` when it began): ``tcp_end_cwnd_reduction()`` sets cwnd to ssthresh.

:func:`prr_trace` replays the loss_recovery experiment's transfer (the initial window of 10 segments sent at
once, slow start on each ACK, one segment per bottleneck slot, each ACK an RTT after its segment left the
bottleneck, every out-of-order segment ACKed at once with SACK) up to the end of the recovery.

>>> from tcplab.model.recovery import plan_drop
>>> t = prr_trace(plan_drop("5th", 100_000), sack=True, rtt_ms=20, rate_mbit=10)
>>> t.prior_cwnd, t.ssthresh, t.per_ack     # 13 duplicate ACKs: the fast retransmit, then 2 of every 3 ...
(14, 9, [1, 1, 0, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1])
>>> [r["in_flight"] for r in t.rows][-5:]     # ... until in flight is down to ssthresh: then one per ACK
[10, 9, 9, 9, 9]
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from tcplab.model.profiles import DEFAULT_PROFILE, get_profile
from tcplab.model.recovery import INIT_CWND, MSS, REORDERING, WIRE_BYTES, RecoveryPlan

__all__ = ["PrrTrace", "prr_trace", "prr_modelled", "sndcnt", "PRR_DROPS"]

#: the drops whose recovery PRR paces (one loss or one burst, each lost once; a tail loss is a probe's,
#: and a lost retransmission's recovery is RACK's second pass, not modelled here)
PRR_DROPS = ("5th", "burst 5-7")
#: how many ACKs a trace may process: a bound on the loop
_MAX_EVENTS = 100_000


def sndcnt(ssthresh: int, prior_cwnd: int, prr_delivered: int, prr_out: int, in_flight: int,
           newly_acked_sacked: int, snd_una_advanced: bool, newly_lost: int) -> int:
    """``tcp_cwnd_reduction()``'s send count for one ACK (``prr_delivered`` already includes this ACK's).

    >>> sndcnt(9, 14, 1, 0, 12, 1, False, 1)      # entering: 9/14 rounds up to 1, the fast retransmit
    1
    >>> sndcnt(9, 14, 3, 2, 11, 1, False, 0)      # ceil(27/14) = 2, already 2 out: nothing this ACK
    0
    >>> sndcnt(9, 14, 13, 9, 7, 1, True, 0)       # below ssthresh, snd_una advanced: conservation + 1
    2
    """
    delta = ssthresh - in_flight
    if delta < 0:
        n = -(-ssthresh * prr_delivered // prior_cwnd) - prr_out
    else:
        n = max(prr_delivered - prr_out, newly_acked_sacked)
        if snd_una_advanced and not newly_lost:
            n += 1
        n = min(delta, n)
    return max(n, 0 if prr_out else 1)


@dataclass
class PrrTrace:
    """The recovery, ACK by ACK: ``rows`` (t_ms, the ACK's cumulative byte, segments it newly delivered, segments
    sent on it, in flight after, cwnd), ``per_ack`` the sends alone, and the reduction's ``prior_cwnd`` and
    ``ssthresh``."""

    prior_cwnd: int = 0
    ssthresh: int = 0
    rows: list[dict[str, object]] = field(default_factory=list)

    @property
    def per_ack(self) -> list[int]:
        return [int(r["sent"]) for r in self.rows]  # type: ignore[call-overload]


def prr_modelled(plan: RecoveryPlan, sack: bool) -> bool:
    """Whether :func:`prr_trace` replays this recovery: one loss, or a burst with SACK. Without SACK a burst is
    repaired one hole per partial ACK (``tcp_newreno_mark_lost()`` marks only the head), a longer recovery this
    model does not replay (measured: 26 ACKs for the burst 5-7 at 5 Mbit/s, against 13 with SACK).

    >>> from tcplab.model.recovery import plan_drop
    >>> prr_modelled(plan_drop("5th", 100_000), False), prr_modelled(plan_drop("burst 5-7", 100_000), False)
    (True, False)
    """
    return plan.drop in PRR_DROPS and plan.times == 1 and (sack or len(plan.segments) == 1)


def prr_trace(plan: RecoveryPlan, *, sack: bool, rtt_ms: float, rate_mbit: float,
              beta: int = get_profile(DEFAULT_PROFILE).cubic_beta) -> PrrTrace | None:
    """The recovery of ``plan``'s loss as PRR paces it, or None when it is not modelled (no loss, a tail loss, a
    lost retransmission, a burst without SACK: :func:`prr_modelled`). ``beta``: CUBIC's decrease over 1024."""
    if not prr_modelled(plan, sack):
        return None
    ser = WIRE_BYTES * 8 / (rate_mbit * 1000)          # ms per segment at the bottleneck
    total = plan.total_segments
    lost_on_path = set(plan.segments)
    # the path: a FIFO bottleneck, then the ACK one RTT after the segment left it
    link_free = 0.0
    acks: list[tuple[float, int, int]] = []            # (arrival at the sender, order, segment that caused it)
    order = 0
    # the receiver
    rcv_nxt, ofo = 1, set()
    # the sender
    cwnd, ssthresh, prior_cwnd = INIT_CWND, 1 << 30, 0
    snd_una, snd_nxt = 1, 1
    sacked: set[int] = set()
    lost: set[int] = set()                             # marked lost (lost_out): they stay so when retransmitted
    to_retransmit: list[int] = []
    retrans_out: set[int] = set()
    state = "Open"
    high_seq = prr_delivered = prr_out = 0
    trace = PrrTrace()

    def in_flight() -> int:
        packets_out = snd_nxt - snd_una
        return packets_out - len(sacked) - len(lost) + len(retrans_out)

    def send(now: float) -> int:
        nonlocal snd_nxt, link_free, order, prr_out
        n = 0
        while in_flight() < cwnd:
            if to_retransmit:
                seg = to_retransmit.pop(0)
                retrans_out.add(seg)
                dropped = False                          # times == 1: a retransmission arrives
            elif snd_nxt <= total:
                seg = snd_nxt
                snd_nxt += 1
                dropped = seg in lost_on_path
            else:
                break
            link_free = max(now, link_free) + ser
            if not dropped:
                order += 1
                heapq.heappush(acks, (link_free + rtt_ms, order, seg))
            n += 1
        if state == "Recovery":
            prr_out += n
        return n

    send(0.0)
    for _ in range(_MAX_EVENTS):
        if not acks:
            return None
        t, _, seg = heapq.heappop(acks)
        # the receiver: in order advances rcv_nxt over what it holds; out of order is held (SACKed)
        if seg == rcv_nxt:
            rcv_nxt += 1
            while rcv_nxt in ofo:
                ofo.discard(rcv_nxt)
                rcv_nxt += 1
        elif seg > rcv_nxt:
            ofo.add(seg)
        # the sender processes the ACK (cumulative rcv_nxt, SACK: what the receiver holds out of order)
        newly = 0
        advanced = rcv_nxt > snd_una
        for s in range(snd_una, rcv_nxt):
            if s not in sacked:
                newly += 1
            sacked.discard(s)
            retrans_out.discard(s)
            lost.discard(s)
            if s in to_retransmit:
                to_retransmit.remove(s)
        snd_una = max(snd_una, rcv_nxt)
        if seg > rcv_nxt - 1 and seg not in sacked and seg >= snd_una:
            sacked.add(seg)                              # SACKed (without SACK: counted as a duplicate ACK)
            lost.discard(seg)
            retrans_out.discard(seg)
            newly += 1
        newly_lost = 0
        if state == "Recovery" and snd_una >= high_seq:
            break                                        # tcp_end_cwnd_reduction(): the recovery is over
        if state != "Recovery" and len(sacked) >= REORDERING:
            # RACK (reo_wnd 0 once sacked_out >= reordering) or the third duplicate ACK: every hole sent
            # before the newest SACKed segment is lost
            newest = max(sacked)
            holes = [s for s in range(snd_una, newest) if s not in sacked]
            lost.update(holes)
            to_retransmit.extend(holes)
            newly_lost = len(holes)
            prior_cwnd, ssthresh = cwnd, max(cwnd * beta // 1024, 2)
            state, high_seq, prr_delivered, prr_out = "Recovery", snd_nxt, 0, 0
            trace.prior_cwnd, trace.ssthresh = prior_cwnd, ssthresh
        if state == "Recovery":
            prr_delivered += newly
            cwnd = in_flight() + sndcnt(ssthresh, prior_cwnd, prr_delivered, prr_out, in_flight(), newly,
                                        advanced, newly_lost)
            sent = send(t)
            trace.rows.append({"t_ms": round(t, 3), "ack": (snd_una - 1) * MSS, "delivered": newly, "sent": sent,
                               "in_flight": in_flight(), "cwnd": cwnd})
            continue
        if advanced and not sacked:
            cwnd = min(cwnd + newly, max(ssthresh, cwnd))   # slow start (tcp_slow_start()), in-order data only
        send(t)
    else:
        return None
    return trace if trace.rows else None
