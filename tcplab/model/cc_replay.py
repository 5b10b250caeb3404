"""Replay a real run's trace through the congestion-control state machine, step by step.

:class:`~tcplab.model.cc.CongestionControl` is sans-IO (events and times in, the window out),
so what drives it can be the simulator's path model or a trace of a real run. Here the trace is
the real ``congestion()`` run's TCP_INFO samples (``Result.timeline``: ``t``, ``cwnd``,
``ssthresh``, ``srtt_ms``, ``in_flight``, ``ca_state``, ``delivered_bytes``). Between two samples
the packets delivered (``tcpi_delivered`` growth) arrive as ACKs of two segments (the receiver's
delayed ACK), spread evenly over the interval, each with the sample's srtt as its RTT; a sample
in ``Recovery`` where the model is Open is the loss the kernel detected (the path's business,
not the state machine's), and a sample back in ``Open`` ends it. The model's window is never
reset from the trace: only the inputs come from the kernel, every ``cwnd``/``ssthresh`` is the
model's own, compared sample by sample.

What a sampled trace cannot give (so the comparison is not exact, see the test's tolerances):
the exact ACK times and per-ACK RTTs (HyStart reads both), and the PRR steps inside recovery
(the model's window is not compared while the kernel is in Recovery).

>>> rows = [{"t": 0.0, "cwnd": 10, "ssthresh": None, "srtt_ms": 40.0, "in_flight": 10, "ca_state": "Open",
...          "delivered_bytes": 0},
...         {"t": 0.05, "cwnd": 20, "ssthresh": None, "srtt_ms": 40.0, "in_flight": 20, "ca_state": "Open",
...          "delivered_bytes": 10 * 1448}]
>>> [(s.real_cwnd, s.model_cwnd) for s in replay(rows, "cubic")]
[(10, 10), (20, 20)]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tcplab.model.cc import INFINITE_SSTHRESH, MSS, CongestionControl

__all__ = ["Step", "replay", "AckStep", "replay_capture", "RTO_MIN_S"]


@dataclass(frozen=True)
class Step:
    """One sample of the trace: the kernel's window and the model's after the same inputs."""

    t: float
    ca_state: str
    real_cwnd: int
    model_cwnd: int
    real_ssthresh: int | None
    model_ssthresh: int | None
    delivered: int


def replay(rows: Iterable[Mapping[str, Any]], algorithm: str, *, acked_per_ack: int = 2) -> list[Step]:
    """Feed the trace ``rows`` (TCP_INFO samples in time order) to a fresh
    :class:`CongestionControl` of ``algorithm``; one :class:`Step` per sample."""
    if acked_per_ack < 1:
        raise ValueError(f"acked_per_ack must be at least 1, not {acked_per_ack!r}")
    if algorithm not in ("reno", "cubic"):
        # bbr's state machine (tcplab.model.bbr) needs per-packet rate samples a TCP_INFO trace lacks
        raise ValueError(f"algorithm must be 'reno' or 'cubic' for a replay, not {algorithm!r}")
    cc = CongestionControl(algorithm)
    steps: list[Step] = []
    t_prev, delivered_prev = 0.0, 0
    cc.hystart_reset(0.0)
    for row in rows:
        t = float(row["t"])
        delivered = int(row["delivered_bytes"]) // MSS
        rtt = float(row["srtt_ms"]) / 1000 if row.get("srtt_ms") else None
        state = row["ca_state"]
        if state == "Recovery" and cc.state == "Open":
            cc.enter_recovery()                 # the kernel detected a loss in this interval
        new = delivered - delivered_prev
        acks = -(-new // acked_per_ack) if new > 0 else 0
        for k in range(acks):
            now = t_prev + (k + 1) * (t - t_prev) / acks
            got = min(acked_per_ack, new - k * acked_per_ack)
            cc.snd_una = delivered_prev + k * acked_per_ack + got
            cc.snd_nxt = max(cc.snd_nxt, cc.snd_una + int(row["in_flight"]))
            if rtt is not None:
                cc.rtt_sample(now, rtt, rtt)
            cc.acked(now, got)
        cc.snd_nxt = max(cc.snd_nxt, delivered + int(row["in_flight"]))
        if state == "Open" and cc.state == "Recovery":
            cc.exit_recovery()                  # everything outstanding at the loss was acknowledged
        ss = row.get("ssthresh")
        real_ss = None if ss is None or ss != ss else int(ss)
        steps.append(Step(t, state, int(row["cwnd"]), cc.cwnd, real_ss,
                          None if cc.ssthresh >= INFINITE_SSTHRESH else cc.ssthresh, delivered))
        t_prev, delivered_prev = t, delivered
    return steps


# ---------------------------------------------------------------- from a capture's segments

#: the least RTO Linux uses (TCP_RTO_MIN, 200 ms): a retransmission of the first unacknowledged segment
#: this long after the last ACK is taken for a timeout; a sooner one without duplicate ACKs is a probe
RTO_MIN_S = 0.2


@dataclass(frozen=True)
class AckStep:
    """One event of a captured connection replayed through the congestion model: an ACK arriving at the
    sender (``ack`` / ``dupack``) or a retransmission it sent, and the model's window after it.

    flight:    packets the capture shows sent and not cumulatively acknowledged (snd_nxt - snd_una).
    in_flight: the kernel's ``tcp_packets_in_flight()`` as the capture allows estimating it: flight -
               SACKed - lost (holes below the highest SACKed byte) + retransmitted.
    """

    t: float
    event: str
    delivered: int
    model_cwnd: int
    model_ssthresh: int | None
    model_state: str
    flight: int
    in_flight: int


def replay_capture(segments: Iterable[Mapping[str, Any]], algorithm: str, *, sender: str = "client",
                   mss: int = MSS) -> list[AckStep]:
    """Feed a captured connection to a fresh :class:`CongestionControl` of ``algorithm``: the sender's
    data segments and the ACKs it received, as a timeline's segments give them (``t``, ``src_end``,
    ``rel_seq``/``rel_ack`` with data starting at 1, ``len``, ``sack`` blocks, ``mark``), in time order.

    Every input is the capture's own, exact where a TCP_INFO trace only samples: each ACK's time and
    what it newly delivered (``acked``), its RTT from when the capture saw the data leave (Karn: no
    sample from a retransmitted segment; the oldest newly acknowledged segment gives the SRTT sample,
    the newest CUBIC's), a loss the sender detected (its first retransmission after a duplicate ACK:
    ``enter_recovery``, with the PRR step of the ACK that triggered it), the ACKs during recovery
    (``prr``: delivered = newly SACKed or acknowledged packets, in flight from the SACK scoreboard), the
    end of recovery (everything outstanding at the loss acknowledged) and a timeout (``on_rto``: the
    first unacknowledged segment again, :data:`RTO_MIN_S` or more after the last ACK). Segments of
    ``len`` > ``mss`` (a GSO capture) count as ``ceil(len / mss)`` packets. A retransmission that is
    neither (a tail loss probe) is kept as an event and changes nothing. cwnd grows only while it limits
    the sender (``tcp_is_cwnd_limited()``, with ``tcp_cwnd_validate()``'s bookkeeping from the segments the
    capture sees leave), as the simulator does.

    >>> segs = [{"t": 0.0, "src_end": "client", "rel_seq": 1 + i * 1448, "len": 1448} for i in range(10)]
    >>> segs += [{"t": 0.04 + i / 1000, "src_end": "server", "rel_ack": 1 + (i + 1) * 1448, "len": 0}
    ...          for i in range(4)]
    >>> [(s.event, s.model_cwnd, s.flight) for s in replay_capture(segs, "cubic")]
    [('ack', 11, 9), ('ack', 12, 8), ('ack', 13, 7), ('ack', 14, 6)]
    """
    if algorithm not in ("reno", "cubic"):
        # bbr's state machine (tcplab.model.bbr) needs the pacing the capture cannot give back
        raise ValueError(f"algorithm must be 'reno' or 'cubic' for a replay, not {algorithm!r}")
    if isinstance(mss, bool) or not isinstance(mss, int) or not 64 <= mss <= 65535:
        raise ValueError(f"mss must be an int in 64..65535, not {mss!r}")

    def pk(n_bytes: int) -> int:
        return -(-n_bytes // mss)

    cc = CongestionControl(algorithm)
    sent: dict[int, tuple[float, int, bool]] = {}     # start offset -> (first sent, length, retransmitted)
    retrans: set[int] = set()                          # retransmitted, not yet cumulatively acknowledged
    sacked: list[tuple[int, int]] = []                 # SACK blocks (offsets) above snd_una
    high = una = 0
    started = False
    dup_seen = False
    last_ack_t: float | None = None
    last_dup: tuple[int, int] | None = None            # the last duplicate ACK's (delivered, in flight)
    recovery_point = 0
    # tcp_cwnd_validate() (net/ipv4/tcp_output.c), from what the capture shows leave: whether cwnd limited the
    # sender in the last window, the most it had out, and where that window ends (as tcplab.sim.bottleneck)
    limited_state = {"is": False, "max_out": 0, "usage_seq": 0}
    steps: list[AckStep] = []

    def scoreboard() -> tuple[int, int]:
        """(packets SACKed, the kernel's packets in flight) from the capture."""
        blocks = [(max(a, una), b) for a, b in sacked if b > una]
        sack_pk = sum(pk(b - a) for a, b in blocks)
        top = max((b for _, b in blocks), default=una)
        lost = max(0, pk(top - una) - sack_pk) if blocks else 0
        return sack_pk, max(0, pk(high) - pk(una) - sack_pk - lost + len(retrans))

    def validate(sent_now: bool) -> None:
        in_flight = scoreboard()[1]
        limited = in_flight >= cc.cwnd
        st = limited_state
        if (sent_now or limited) and (pk(una) >= st["usage_seq"] or limited
                                      or (not st["is"] and in_flight > st["max_out"])):
            st["is"], st["max_out"], st["usage_seq"] = limited, in_flight, pk(high)

    def may_raise() -> bool:
        """tcp_is_cwnd_limited(): cwnd grows only while it limits the sender (in slow start, up to twice what
        was out)."""
        st = limited_state
        return bool(st["is"]) or (cc.cwnd < cc.ssthresh and cc.cwnd < 2 * int(st["max_out"]))

    def step(t: float, event: str, delivered: int) -> None:
        ss = None if cc.ssthresh >= INFINITE_SSTHRESH else cc.ssthresh
        steps.append(AckStep(t, event, delivered, cc.cwnd, ss, cc.state, pk(high) - pk(una), scoreboard()[1]))

    for s in sorted(segments, key=lambda r: float(r["t"])):
        t = float(s["t"])
        length = int(s.get("len") or 0)
        if s.get("src_end") == sender and length and s.get("rel_seq") is not None:
            off = int(s["rel_seq"]) - 1
            if not started:
                cc.hystart_reset(t)
                started = True
            if off + length <= high or s.get("mark") == "retransmit":
                first = sent.get(off, (t, length, False))
                sent[off] = (first[0], first[1], True)
                if cc.state == "Open" and dup_seen:
                    cc.enter_recovery()                 # tcp_fastretrans_alert() on the ACK just before
                    recovery_point = high
                    if last_dup is not None:
                        cc.prr(last_dup[0], last_dup[1], True, una_advanced=False)
                    event = "retransmit: enter recovery"
                elif cc.state == "Open" and off == una and last_ack_t is not None and t - last_ack_t >= RTO_MIN_S:
                    cc.on_rto()
                    recovery_point = high
                    event = "retransmit: timeout"
                else:
                    event = "retransmit" if cc.state != "Open" else "retransmit: probe, not replayed"
                retrans.add(off)
                cc.prr_out += pk(length)
                validate(True)
                step(t, event, 0)
            else:
                sent[off] = (t, length, False)
                high = max(high, off + length)
                if cc.state == "Recovery":
                    cc.prr_out += pk(length)
                cc.snd_nxt = pk(high)
                validate(True)
            cc.snd_nxt = pk(high)
            continue
        if s.get("src_end") == sender or s.get("rel_ack") is None or not started:
            continue
        ack = int(s["rel_ack"]) - 1
        before_sack, _ = scoreboard()
        sacked = [(int(a) - 1, int(b) - 1) for a, b in (s.get("sack") or [])] or \
            ([blk for blk in sacked if blk[1] > ack] if ack > una else sacked)
        if ack > una:
            newly = pk(ack) - pk(una)
            oldest = sent.get(una)
            newest = max((o for o in sent if una <= o < ack), default=None)
            rtt = t - oldest[0] if oldest is not None and not oldest[2] else None
            ca_rtt = t - sent[newest][0] if newest is not None and not sent[newest][2] else None
            una = ack
            cc.snd_una = pk(una)
            retrans = {o for o in retrans if o >= una}
            dup_seen, last_ack_t, last_dup = False, t, None
            if rtt is not None or ca_rtt is not None:
                cc.rtt_sample(t, rtt if rtt is not None else ca_rtt, ca_rtt if ca_rtt is not None else rtt)
            if cc.state in ("Recovery", "Loss") and una >= recovery_point:
                if cc.state == "Recovery":
                    cc.exit_recovery()              # tcp_end_cwnd_reduction(): cwnd = ssthresh
                else:
                    cc.state = "Open"
                # then, on the same ACK, tcp_cong_control(): no longer in a cwnd reduction, so tcp_cong_avoid()
                # with what it delivered (net/ipv4/tcp_input.c, tcp_ack() after tcp_fastretrans_alert())
                if may_raise():
                    cc.acked(t, newly)
                validate(False)
                step(t, "ack: end of recovery", newly)
                continue
            if cc.state == "Recovery":
                now_sacked, in_flight = scoreboard()
                cc.prr(newly + max(0, now_sacked - before_sack), in_flight, bool(retrans), una_advanced=True)
            elif may_raise():
                cc.acked(t, newly)              # slow start / congestion avoidance (Loss: slow start)
            validate(False)
            step(t, "ack", newly)
        else:
            now_sacked, in_flight = scoreboard()
            delivered = max(0, now_sacked - before_sack)
            dup_seen = dup_seen or bool(s.get("sack")) or s.get("mark") == "dupack"
            if cc.state == "Recovery":
                cc.prr(delivered, in_flight, False, una_advanced=False)
            else:
                last_dup = (delivered, in_flight)
            step(t, "dupack", delivered)
    return steps
