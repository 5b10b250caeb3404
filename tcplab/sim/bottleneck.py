"""The congestion experiment's path simulated packet by packet on the simulator's one clock.

:func:`simulate` moves each flow's packets through the path :mod:`tcplab.kernel.bottleneck` builds
(a drop-tail FIFO of ``buffer_packets`` served at ``rate_mbit``, ``rtt_ms / 2`` each way, a receiver
with a locked buffer) and drives each sender's :class:`tcplab.model.cc.CongestionControl` (Reno,
CUBIC, or BBR through :mod:`tcplab.model.bbr`) with the ACKs; the rules, each with its kernel
source, are in :mod:`tcplab.model.cc`'s docstring. Time advances through
:class:`tcplab.sim.engine.Engine` like every other scenario: a packet's arrival at the receiver, an
ACK's at the sender, a delayed ACK, a paced burst, the retransmission timer and the samples are
events on it, ordered at one instant by priority (samples, arrivals, ACKs, delayed ACKs, pacing, RTO).
Measured against the deque loop this replaced (issue 23): identical outputs over a grid of 432 runs
(``scripts/cc_grid.py``) and no slower on ``python bench/bench_cc.py`` (after/before 0.84-0.99;
docs/data-transfer.md, "One clock").

>>> r = simulate(rate_mbit=20, rtt_ms=40, buffer_packets=50, algorithm="reno", duration=2.0)
>>> r.flows[0].loss_events >= 1, 0.8 < r.utilization <= 1.0
(True, True)
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import Any

from tcplab.model.cc import (ALGORITHMS, DEFAULT_SCALING_RATIO, DELACK, INFINITE_SSTHRESH, MSS, QUICKACKS,
                             RTO_MIN, SCALING_RATIO, SYN_WINDOW, WIRE_BYTES, CongestionControl, FlowRun, Random,
                             path_packets, receive_window_for)
from tcplab.model.codel import CoDel, Fifo, Packet
from tcplab.model.fq_codel import FqCoDel
from tcplab.model.pacing import Pacer
from tcplab.sim.engine import Engine

__all__ = ["simulate", "SimRun", "SPARSE_WIRE_BYTES"]

#: a sparse flow's request on the wire: 64 bytes of payload, TCP with timestamps (32) and IPv4 (20)
SPARSE_WIRE_BYTES = 64 + 32 + 20


@dataclass
class SimRun:
    """What :func:`simulate` returns: per-flow figures, samples and the queue."""

    flows: list[FlowRun]
    timeline: list[dict[str, Any]]
    queue: list[dict[str, Any]]
    duration: float
    rate_mbit: float
    drops: int = 0
    packets: int = 0
    #: bbr: each flow's mode changes, (t, mode) (tcplab.model.bbr.Bbr.history); empty otherwise
    modes: list[list[tuple[float, str]]] = field(default_factory=list)
    #: each receiver's largest window clamp (packets: autotuning's growth shows here) and the largest
    #: window its ACKs advertised (right edge less the cumulative ACK, packets)
    rcv_clamp_max: list[int] = field(default_factory=list)
    rwnd_max: list[int] = field(default_factory=list)
    #: with ``aqm``: the queue's own figures (sojourn_ms, rows, tail_drops, aqm_drops, marks,
    #: retransmits, ecn_reductions, data_ect0)
    aqm: dict[str, Any] = field(default_factory=dict)

    @property
    def utilization(self) -> float:
        """Delivered payload over what the link can carry in payload (1448 of every 1500 bytes)."""
        cap = self.rate_mbit * 1e6 / 8 / WIRE_BYTES * self.duration
        return sum(f.delivered for f in self.flows) / cap if cap else 0.0


# The order of events at one instant on the clock (tcplab.sim.engine.Engine's priority): the state is
# sampled first, then packets arrive at the receiver, ACKs at the senders, delayed ACKs go out,
# paced bursts leave, and the retransmission timer is checked last.
_SAMPLE, _ARRIVAL, _ACK, _DELACK, _PACE, _RTO = -1, 0, 1, 2, 3, 4
#: tcp_rcv_space_adjust()'s cushion: ``rcvwin = (copied << 1) + 16 * tp->advmss``, in segments
_RCVWIN_CUSHION = 16


class _Flow(CongestionControl):
    """A sender of :func:`simulate`: the congestion-control state machine plus what the path
    model needs (packets in flight, SACK holes, the receiver's window and delayed ACKs)."""

    __slots__ = ("i", "got", "xmit", "holes", "after_hole", "hole_t", "lost", "in_flight", "last_progress",
                 "rcv_nxt", "rcv_ooo", "rcv_pending", "rcv_quick", "rcv_high_inst", "delack_at",
                 "delivered_mark", "total_retrans", "ever_lost", "rcv_ssthresh", "rcv_clamp", "rwnd_edge",
                 "auto_cap", "space", "space_seq", "space_t", "clamp_max", "rwnd_max", "rcv_adv",
                 "is_cwnd_limited", "max_packets_out", "cwnd_usage_seq", "rcv_ece", "queue_cwr", "ecn_reductions",
                 "pacer")

    def __init__(self, i: int, algo: str, rcv_window: int, autotune: int | None = None) -> None:
        super().__init__(algo)
        self.i = i
        self.rcv_clamp = max(rcv_window, 2)
        # autotuning (tcp_rcv_space_adjust()): the window starts at rcv_window and may grow to
        # ``autotune`` packets; rcvq_space starts at TCP_INIT_CWND segments (tcp_init_buffer_space())
        self.auto_cap, self.space, self.space_seq, self.space_t = autotune, 10, 0, 0.0
        self.clamp_max = self.rcv_clamp
        self.rcv_ssthresh = max(self.rcv_clamp * DEFAULT_SCALING_RATIO // SCALING_RATIO, 2)
        self.rwnd_edge = min(SYN_WINDOW, self.rcv_ssthresh)      # the window the SYN-ACK offered
        self.rwnd_max = self.rwnd_edge
        self.rcv_adv = self.rwnd_edge           # the right edge the receiver last advertised
        # tcp_cwnd_validate(): whether cwnd limited the sender in the current window, and the most it had out
        self.is_cwnd_limited, self.max_packets_out, self.cwnd_usage_seq = False, 0, 0
        self.got: set[int] = set()
        self.xmit: deque[tuple[int, int, float, bool]] = deque()
        self.holes: list[int] = []
        self.after_hole, self.hole_t = 0, 0.0
        self.lost: deque[int] = deque()
        self.in_flight = 0
        self.last_progress = 0.0
        self.rcv_nxt, self.rcv_ooo, self.rcv_pending, self.rcv_quick, self.rcv_high_inst = 0, set(), 0, QUICKACKS, -1
        self.delack_at = math.inf
        self.delivered_mark = 0
        self.total_retrans = 0
        self.ever_lost = False
        # ECN (RFC 3168 as tcp_input.c/tcp_output.c run it): the receiver echoes ECE from a CE packet
        # until a CWR one (TCP_ECN_DEMAND_CWR); the sender sets CWR on its next new segment after a
        # reduction (TCP_ECN_QUEUE_CWR)
        self.rcv_ece = self.queue_cwr = False
        self.ecn_reductions = 0
        #: SO_MAX_PACING_RATE: TCP's own pacing (tcplab.model.pacing.Pacer); None unpaced (or bbr, which paces itself)
        self.pacer: Pacer | None = None


def simulate(rate_mbit: float, rtt_ms: float, buffer_packets: int, algorithm: str = "cubic",
             flows: int = 1, duration: float = 5.0, sample_s: float | None = None,
             loss: float | None = None, rng: Random | None = None, rcv_window: int | None = None,
             autotune: int | None = None, unscaled: bool = False, aqm: str | None = None,
             ecn: bool = False, max_pacing_rate: float | None = None,
             sparse_interval: float | None = None) -> SimRun:
    """Run the model; see the module docstring. ``loss``: a random drop probability per data
    packet at the bottleneck's input, decided by ``rng`` (the run's seeded generator, e.g.
    :class:`tcplab.sim.engine.SplitMix64`; required with ``loss``). ``rcv_window``: the most the
    receiver advertises, in packets (by default :func:`receive_window_for` the path); with
    ``autotune`` (packets) it is where the window starts, and once per receiver RTT in which the
    reader copied more than in the last one, ``tcp_rcv_space_adjust()`` raises it to twice what was
    copied plus 16 segments, plus twice that times the growth over the last RTT, up to ``autotune``. ``unscaled``: the window field carries
    no scale (``tcp_window_scaling`` off): never more than 65535 bytes.

    ``aqm``: ``"droptail"``, ``"codel"`` or ``"fq_codel"``: the queue of the AQM experiment's delay line
    (:mod:`tcplab.kernel.aqmlink`): a FIFO served at the rate one packet at a time, each packet's
    sojourn measured, CoDel (:class:`tcplab.model.codel.CoDel`) deciding at each dequeue, or one FIFO
    and CoDel per flow served by :class:`tcplab.model.fq_codel.FqCoDel` (flow ``i`` in bucket ``i``). ``ecn``:
    new data leaves ECT, CoDel marks it CE instead of dropping it, the receiver echoes ECE until it
    sees CWR, and the sender reduces cwnd once per window (``CongestionControl.enter_cwr``).

    ``sparse_interval`` (s, with ``aqm``): a sparse flow besides the bulk ones, a 64-byte request every
    ``sparse_interval`` from time 0 (:data:`SPARSE_WIRE_BYTES` on the wire, its own bucket), answered
    by the receiver at once; ``aqm["sparse_rtt_ms"]`` holds each request's time to its answer (the
    answer travels back without queueing), also for the requests still queued at ``duration``: the link
    then drains its queue with nothing new arriving, as the real run's queue does after its sender's RST. A request the queue drops is sent again ``RTO_MIN`` plus
    an RTT later (the real connection's TLP or RTO; approximated) and timed from its first send.

    ``max_pacing_rate`` (bytes/s, Reno and CUBIC): the sender set ``SO_MAX_PACING_RATE``, so TCP
    paces itself (:mod:`tcplab.model.pacing`): after every ACK its rate is min(this, 200 % or 120 %
    of cwnd x MSS / srtt), and its bursts wait on the clock exactly as BBR's do.

    >>> r = simulate(50, 50, 100, "cubic", duration=1.0)
    >>> r.flows[0].slow_start_exit_cwnd is not None
    True
    >>> from tcplab.sim.engine import SplitMix64
    >>> runs = [simulate(10, 20, 500, "reno", duration=1.0, loss=0.02, rng=SplitMix64(s)) for s in (1, 2, 1)]
    >>> drops = [(r.drops, r.packets, r.flows[0].delivered) for r in runs]
    >>> drops[0] == drops[2], drops[0] != drops[1]
    (True, True)
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)} in the model, not {algorithm!r}")
    tx = WIRE_BYTES * 8 / (rate_mbit * 1e6)
    one_way = rtt_ms / 2000
    sample_s = sample_s or max(0.001, rtt_ms / 8000)
    if rcv_window is None:
        rcv_window = receive_window_for(path_packets(rate_mbit, rtt_ms, buffer_packets))
    # without scaling the buffer may still grow (rcvbuf_max, clamp_max), the window cannot follow
    wnd_cap = SYN_WINDOW if unscaled else math.inf
    fl = [_Flow(i, algorithm, min(rcv_window, wnd_cap), autotune) for i in range(flows)]
    if max_pacing_rate is not None:
        if not max_pacing_rate > 0:
            raise ValueError(f"max_pacing_rate must be > 0 bytes/s, not {max_pacing_rate!r}")
        if algorithm == "bbr":
            raise ValueError("max_pacing_rate is for reno and cubic in the model (bbr paces at its own rate)")
        for f in fl:
            f.pacer = Pacer(max_pacing_rate)
            f.paced = True
    if algorithm == "bbr":
        from tcplab.model.bbr import Bbr     # here, not at the top: bbr.py is a leaf the model calls into
        for f in fl:
            f.bbr = Bbr(rtt=rtt_ms / 1000, rand=rng.random if rng is not None else None)
            f.min_rtt = rtt_ms / 1000       # tcp_min_rtt() starts at the handshake's RTT
    dropped: set[int] = set()
    qdep: deque[float] = deque()
    eng = Engine()
    schedule = eng.schedule
    state = {"inst": 0, "last_dep": -math.inf, "drops": 0}   # an idle tbf passes the first packet at once
    timeline: list[dict[str, Any]] = []
    queue_rows: list[dict[str, Any]] = []

    if aqm not in (None, "droptail", "codel", "fq_codel"):
        raise ValueError(f"aqm must be None, 'droptail', 'codel' or 'fq_codel', not {aqm!r}")
    if sparse_interval is not None and (aqm is None or not sparse_interval > 0):
        raise ValueError(f"sparse_interval must be > 0 s and needs aqm, not {sparse_interval!r} with aqm={aqm!r}")
    fifo = Fifo()
    codel = CoDel(ecn=ecn) if aqm == "codel" else None
    fq = FqCoDel(buffer_packets, ecn=ecn) if aqm == "fq_codel" else None
    sparse_rtts: list[float] = []
    sparse_sojourns: list[float] = []
    sparse = {"sent": 0, "dropped": 0}
    link = {"free": -math.inf, "pending": False, "next_row": -math.inf, "tail": 0, "aqm": 0, "marks": 0,
            "data": 0, "ect": 0}
    sojourns: list[float] = []
    aqm_rows: list[dict[str, Any]] = []

    if loss and rng is None:
        raise ValueError("loss needs rng, the run's seeded generator (e.g. tcplab.sim.engine.SplitMix64(seed))")
    rand = rng.random if rng is not None else None

    def transmit(f: _Flow, now: float, seq: int, retx: bool) -> None:
        inst = state["inst"]
        state["inst"] = inst + 1
        f.xmit.append((inst, seq, now, retx))
        if f.bbr is not None:
            f.bbr.on_send(inst, now, f.in_flight)       # tcp_rate_skb_sent()
        elif f.pacer is not None:
            f.pacer.on_send()
        f.in_flight += 1
        if aqm is not None:
            enqueue(f, now, inst, seq, retx)
            return
        while qdep and qdep[0] <= now:
            qdep.popleft()
        if len(qdep) >= buffer_packets or (loss and rand is not None and rand() < loss):
            dropped.add(inst)
            state["drops"] += 1
            return
        d = max(now, state["last_dep"] + tx)
        state["last_dep"] = d
        qdep.append(d)
        schedule(d + one_way, receive, (f, inst, seq), priority=_ARRIVAL)

    def enqueue(f: _Flow, now: float, inst: int, seq: int, retx: bool) -> None:
        """aqm: into the link's FIFO (or dropped at its limit); the link serves it in its turn."""
        ect = ecn and not retx                  # tcp_ecn_send(): only new data is ECT
        cwr = False
        if ect and f.queue_cwr:
            f.queue_cwr, cwr = False, True
        link["data"] += 1
        link["ect"] += ect
        admit(now, f.i, Packet(now, WIRE_BYTES, ect, (f, inst, seq, cwr)))

    def admit(now: float, bucket: int, p: Packet) -> None:
        """Into the queue: drop-tail at the limit, or fq_codel (its overlimit drop hits the fattest flow)."""
        if fq is not None:
            for q in fq.enqueue(now, bucket, p):
                lose(now, q)
                link["tail"] += 1
        elif len(fifo) >= buffer_packets:
            lose(now, p)
            link["tail"] += 1
            return
        else:
            fifo.push(p)
        if not link["pending"]:
            link["pending"] = True
            schedule(max(now, link["free"]), serve, None, priority=_ARRIVAL)

    def lose(now: float, p: Packet) -> None:
        """A packet the queue dropped: a bulk segment becomes a hole; a request is sent again later."""
        if isinstance(p.data[0], str):
            sparse["dropped"] += 1
            schedule(now + RTO_MIN + rtt_ms / 1000, ping_again, p.data, priority=_PACE)
            return
        dropped.add(p.data[1])
        state["drops"] += 1

    def ping(k: int) -> None:
        now = eng.now
        sparse["sent"] += 1
        admit(now, len(fl), Packet(now, SPARSE_WIRE_BYTES, ecn, ("ping", k, now)))
        assert sparse_interval is not None
        if now + sparse_interval < duration:
            schedule(now + sparse_interval, ping, k + 1, priority=_PACE)

    def drain(end: float) -> None:
        """The run is over (the real sender resets its connection: nothing new arrives), but the requests still
        queued are served as the link drains the queue, and the real client waits for their answers: time them."""
        t = max(end, link["free"])
        for _ in range(len(fq) if fq is not None else len(fifo)):
            if fq is not None:
                p = fq.dequeue(t).packet
            elif codel is not None:
                p = codel.dequeue(t, fifo).packet
            else:
                p = fifo.pop()
            if p is None:
                break
            if isinstance(p.data[0], str):
                sparse_sojourns.append((t - p.enqueued) * 1000)
                sparse_rtts.append((t + 2 * one_way - p.data[2]) * 1000)
            t += p.size * 8 / (rate_mbit * 1e6)

    def ping_again(data: tuple[str, int, float]) -> None:
        admit(eng.now, len(fl), Packet(eng.now, SPARSE_WIRE_BYTES, False, data))

    def serve(_: None) -> None:
        """The link sends the head packet (CoDel may drop or mark on the way) and books the next."""
        now = eng.now
        if codel is None and fq is None:
            p, marked = fifo.pop(), False
        else:
            d = fq.dequeue(now) if fq is not None else codel.dequeue(now, fifo)   # type: ignore[union-attr]
            for q in d.dropped:
                lose(now, q)
                link["aqm"] += 1
            p, marked = d.packet, d.marked
        if p is not None:
            sojourn = (now - p.enqueued) * 1000
            sojourns.append(sojourn)
            link["marks"] += marked
            link["free"] = now + p.size * 8 / (rate_mbit * 1e6)
            if isinstance(p.data[0], str):
                sparse_sojourns.append(sojourn)
                sparse_rtts.append((now + 2 * one_way - p.data[2]) * 1000)   # answered at once, back unqueued
            else:
                f, inst, seq, cwr = p.data
                schedule(now + one_way, receive, (f, inst, seq, marked, cwr), priority=_ARRIVAL)
            if now >= link["next_row"]:
                aqm_rows.append({"t": round(now, 6), "queue_packets": len(fq) if fq is not None else len(fifo),
                                 "sojourn_ms": round(sojourn, 3),
                                 "drops": link["tail"] + link["aqm"], "ce_marks": link["marks"]})
                link["next_row"] = now + 0.005
        if (len(fq) if fq is not None else fifo.items):
            schedule(max(now, link["free"]), serve, None, priority=_ARRIVAL)
        else:
            link["pending"] = False

    def send(f: _Flow, now: float, budget: int | None = None) -> None:
        n = 0
        pacer = f.bbr if f.bbr is not None else f.pacer    # bbr's pacing, or SO_MAX_PACING_RATE's
        burst, segs = 0, (pacer.tso_segs() if pacer is not None else 0)
        while f.in_flight < f.cwnd and (budget is None or n < budget):
            if pacer is not None and burst == 0 and now < pacer.wstamp:
                if f.pace_at != pacer.wstamp:           # paced: the next burst waits (tcp_pacing_check())
                    f.pace_at = pacer.wstamp            # (once on the clock per release time)
                    schedule(f.pace_at, paced, None, priority=_PACE)
                break
            if f.lost:
                seq = f.lost.popleft()
                if seq < f.snd_una or seq in f.got:
                    continue
                f.total_retrans += 1
                if f.state == "Recovery":
                    f.run.fast_retransmits += 1
                transmit(f, now, seq, True)
            elif f.snd_nxt < f.rwnd_edge:
                transmit(f, now, f.snd_nxt, False)
                f.snd_nxt += 1
            else:
                break                                   # receive-window limited
            n += 1
            if pacer is not None:
                burst += 1
                if burst >= segs:
                    pacer.after_burst(now, burst)
                    burst = 0
        if burst:
            pacer.after_burst(now, burst)
        if f.state == "Recovery" or f.state == "CWR":     # tcp_cwnd_reduction() counts what went out
            f.prr_out += n
        limited = f.in_flight >= f.cwnd
        if (n or limited) and (f.snd_una >= f.cwnd_usage_seq or limited
                               or (not f.is_cwnd_limited and f.in_flight > f.max_packets_out)):
            f.is_cwnd_limited, f.max_packets_out, f.cwnd_usage_seq = limited, f.in_flight, f.snd_nxt

    def receive(ev: tuple[Any, ...]) -> None:
        """The receiver: ACK now (out of order, hole filled, quickack, 2nd segment) or later."""
        f, inst, seq = ev[0], ev[1], ev[2]
        now = eng.now
        if len(ev) > 3:
            if ev[4]:
                f.rcv_ece = False                      # tcp_ecn_accept_cwr()
            if ev[3] and not f.rcv_ece:
                # tcp_ecn_check_ce(): "better not delay acks, sender can have a very low cwnd"
                f.rcv_quick = max(f.rcv_quick, 2)
                f.rcv_ece = True
        f.rcv_high_inst = inst
        immediate = False
        if f.rcv_ssthresh < f.rcv_clamp:
            # tcp_grow_window() (in order, and out of order with SACK): two segments more, and
            # icsk_ack.quick |= 1, so this ACK goes at once without spending a quickack
            f.rcv_ssthresh = min(f.rcv_ssthresh + 2, f.rcv_clamp)
            f.rcv_quick |= 1
        if seq == f.rcv_nxt:
            f.rcv_nxt += 1
            if f.rcv_ooo:
                immediate = True
                while f.rcv_nxt in f.rcv_ooo:
                    f.rcv_ooo.discard(f.rcv_nxt)
                    f.rcv_nxt += 1
            f.rcv_pending += 1
            if f.auto_cap is not None:
                autotune_step(f, now)
            if 2 * (f.rcv_adv - f.rcv_nxt) <= f.rcv_clamp:
                # the reader copies at once, and tcp_cleanup_rbuf() sends a window update when what is
                # left of the advertised window is at most half window_clamp: a window-limited
                # sender's segments in the second half of each window are ACKed without delay
                immediate = True
        else:
            if seq > f.rcv_nxt:
                f.rcv_ooo.add(seq)
            immediate = True
        if immediate or f.rcv_quick or f.rcv_pending >= 2:
            send_ack(now, f)
        elif f.delack_at == math.inf:
            f.delack_at = now + DELACK
            schedule(f.delack_at, delack, None, priority=_DELACK)

    def autotune_step(f: _Flow, now: float) -> None:
        """tcp_rcv_space_adjust(): the reader copies at once, so copied = what arrived in order
        in the last receiver RTT (rcv_rtt_est, timestamps: the sender's srtt here)."""
        rcv_rtt = f.srtt or one_way * 2
        if now - f.space_t < rcv_rtt:
            return
        copied = f.rcv_nxt - f.space_seq
        if copied > f.space:
            # tcp_rcv_space_adjust(): rcvwin = 2 copied + 16 segments, plus twice the growth since the last
            # RTT ("Accommodate for sender rate increase (eg. slow start)"): ~3x a doubling reader's copy
            rcvwin = 2 * copied + _RCVWIN_CUSHION
            rcvwin += 2 * rcvwin * (copied - f.space) // f.space
            grown = min(rcvwin, f.auto_cap)
            f.clamp_max = max(f.clamp_max, grown)
            if min(grown, wnd_cap) > f.rcv_clamp:
                f.rcv_clamp = min(grown, wnd_cap)        # window_clamp follows sk_rcvbuf
            f.space = copied
        f.space_seq, f.space_t = f.rcv_nxt, now

    def send_ack(now: float, f: _Flow) -> None:
        if f.rcv_quick:
            f.rcv_quick -= 1                            # tcp_dec_quickack_mode()
        f.rcv_pending = 0
        f.delack_at = math.inf
        # __tcp_select_window(): the free space, min rcv_ssthresh; out-of-order segments held in the
        # buffer take their room (a packet's truesize is a packet of window at the measured scaling
        # ratio), so the right edge stalls during recovery (measured: snd_wnd 249 -> 206 -> 165 packets);
        # the sender keeps the largest edge it saw (tcp_select_window() never shrinks it)
        edge = f.rcv_nxt + min(f.rcv_ssthresh, f.rcv_clamp - len(f.rcv_ooo))
        f.rcv_adv = max(f.rcv_adv, edge)
        schedule(now + one_way, on_ack, (f, f.rcv_high_inst, f.rcv_nxt, edge, f.rcv_ece), priority=_ACK)

    def on_ack(ev: tuple[_Flow, int, int, int, bool]) -> None:
        f, high_inst, cum, edge, ece = ev
        now = eng.now
        if edge > f.rwnd_edge:
            f.rwnd_edge = edge
        if edge - cum > f.rwnd_max:
            f.rwnd_max = edge - cum
        delivered = 0
        prior_in_flight = f.in_flight
        acked: list[int] = []   # the packets this ACK newly delivered (bbr's rate sample)
        rtt = None          # seq_rtt_us: the oldest newly delivered packet (srtt)
        ca_rtt = None       # ca_rtt_us: the newest one (what CUBIC's HyStart sees, tcp_clean_rtx_queue())
        xmit = f.xmit
        while xmit and xmit[0][0] <= high_inst:
            inst, seq, sent, retx = xmit.popleft()
            if inst in dropped:
                dropped.discard(inst)
                if f.bbr is not None:
                    f.bbr.forget(inst)
                f.holes.append(seq)
                if len(f.holes) == 1:
                    f.after_hole, f.hole_t = 0, now
                continue
            f.in_flight -= 1
            if seq >= f.snd_una and seq not in f.got:
                f.got.add(seq)
                delivered += 1
                acked.append(inst)
            elif f.bbr is not None:
                f.bbr.forget(inst)
            if f.holes:
                f.after_hole += 1
            if not retx:
                if rtt is None:
                    rtt = now - sent
                ca_rtt = now - sent
        prior_una = f.snd_una
        while f.snd_una in f.got:
            f.got.discard(f.snd_una)
            f.snd_una += 1
        if cum > f.snd_una:
            f.snd_una = cum
        if delivered:
            f.last_progress = now
            f.run.delivered += delivered
        if rtt is not None:
            f.rtt_sample(now, rtt, ca_rtt if ca_rtt is not None else rtt)
        marked = 0
        if f.holes and (f.state not in ("Open", "CWR") or f.after_hole >= 3 or now - f.hole_t >= f.min_rtt / 4):
            marked = len(f.holes)
            if f.state == "Open":
                f.enter_recovery()
                f.queue_cwr = ecn                   # tcp_init_cwnd_reduction() -> tcp_ecn_queue_cwr()
            elif f.state == "CWR":
                # tcp_enter_recovery(): already reducing for ECE, so no second cut (tcp_in_cwnd_reduction())
                f.state, f.high_seq = "Recovery", f.snd_nxt - 1
                f.run.loss_events += 1
            for seq in f.holes:
                f.in_flight -= 1
                f.lost.append(seq)
            f.holes.clear()
        if f.bbr is not None:
            # bbr's cong_control() replaces PRR and cong_avoid (tcp_cong_control()), and
            # tcp_end_cwnd_reduction() leaves cwnd alone when recovery ends
            if f.state != "Open" and f.snd_una > f.high_seq:
                f.state = "Open"
            f.cwnd = f.bbr.on_ack(now, acked, marked, ca_rtt, prior_in_flight, f.in_flight, f.cwnd, f.state,
                                  f.min_rtt)
            if f.bbr.ssthresh is not None:
                f.ssthresh = f.bbr.ssthresh
            send(f, now)
            rearm(now)
            return
        if f.state == "CWR" and f.snd_una > f.high_seq + 1:
            # CWR ends only when something above high_seq is ACKed (the CWR segment reached the receiver)
            f.exit_recovery()
        if ece and f.state == "Open":
            f.enter_cwr()                           # tcp_try_to_open() -> tcp_enter_cwr()
            f.queue_cwr = True
            f.ecn_reductions += 1
        if f.state == "CWR":
            f.prr(delivered, f.in_flight, bool(f.lost), una_advanced=f.snd_una > prior_una, newly_lost=marked)
            pace_update(f)
            send(f, now)
            rearm(now)
            return
        if f.state == "Recovery":
            if f.snd_una > f.high_seq:
                f.exit_recovery()
            else:
                f.prr(delivered, f.in_flight, bool(f.lost), una_advanced=f.snd_una > prior_una, newly_lost=marked)
                pace_update(f)
                send(f, now)
                rearm(now)
                return
        elif f.state == "Loss" and f.snd_una > f.high_seq:
            f.state = "Open"
        # tcp_is_cwnd_limited(): cwnd grows only while it limits the sender (in slow start, up to twice
        # what was out): a sender held back by the receiver's window keeps its cwnd
        if delivered and f.state != "Recovery" and (
                f.is_cwnd_limited or (f.cwnd < f.ssthresh and f.cwnd < 2 * f.max_packets_out)):
            f.cong_avoid(now, delivered)
        pace_update(f)
        send(f, now)
        rearm(now)

    def pace_update(f: _Flow) -> None:
        """tcp_cong_control() ends with tcp_update_pacing_rate(), before the ACK lets anything out."""
        if f.pacer is not None:
            f.pacer.update(f.cwnd, f.ssthresh, f.snd_nxt - f.snd_una, f.srtt)

    def rto(f: _Flow, now: float) -> None:
        f.on_rto()
        for inst, seq, _, _ in f.xmit:
            dropped.discard(inst)
            if f.bbr is not None:
                f.bbr.forget(inst)
        f.lost = deque(s for s in range(f.snd_una, f.snd_nxt) if s not in f.got)
        f.xmit.clear()
        f.holes.clear()
        f.in_flight = 0
        f.last_progress = now
        send(f, now)

    inf = math.inf
    # The retransmission timer (tcp_rearm_rto()): ``armed[0]`` is the earliest timeout of any flow,
    # recomputed after every event that changes a sender. Most ACKs move it later, so the clock holds
    # lazy checks (their times in ``checks``): one that finds the timeout moved later re-schedules
    # itself there, and only a timeout moved earlier than every pending check schedules a new one;
    # the timeout fires at the same instant, after the same events, as a recomputed minimum would.
    armed = [inf]
    checks: list[float] = []

    def rearm(now: float) -> None:
        tr = min((f.last_progress + (f.srtt + max(4 * f.rttvar, RTO_MIN) if f.srtt else 1.0))
                 if f.in_flight > 0 or f.lost else inf for f in fl)
        armed[0] = tr
        if tr < inf and (not checks or tr < checks[0]):
            tr = max(tr, now)
            heappush(checks, tr)
            schedule(tr, timeout, None, priority=_RTO)

    def timeout(_: None) -> None:
        now = eng.now
        heappop(checks)
        tr = armed[0]
        if tr > now:                                # moved later since: check again then
            if tr < inf and (not checks or tr < checks[0]):
                heappush(checks, tr)
                schedule(tr, timeout, None, priority=_RTO)
            return
        for f in fl:
            if f.in_flight > 0 or f.lost:
                limit = f.last_progress + (f.srtt + max(4 * f.rttvar, RTO_MIN) if f.srtt else 1.0)
                if limit <= now:
                    rto(f, now)
        rearm(now)

    def delack(_: None) -> None:
        now = eng.now
        for f in fl:
            if f.delack_at == now:
                send_ack(now, f)

    def paced(_: None) -> None:
        now = eng.now
        for f in fl:
            if f.pace_at <= now:
                f.pace_at = inf
                send(f, now)
        rearm(now)

    def sample(t: float) -> None:
        _sample(fl, t, timeline, queue_rows, qdep, state["drops"], buffer_packets)
        t += sample_s
        if t <= duration:
            schedule(t, sample, t, priority=_SAMPLE)

    for f in fl:
        f.hystart_reset(0.0)
        send(f, 0.0)
    rearm(0.0)
    schedule(0.0, sample, 0.0, priority=_SAMPLE)
    if sparse_interval is not None:
        schedule(0.0, ping, 0, priority=_PACE)
    eng.run(until=duration)
    if sparse_interval is not None:
        drain(duration)
    figures: dict[str, Any] = {}
    if aqm is not None:
        figures = {"sojourn_ms": sojourns, "rows": aqm_rows, "tail_drops": link["tail"], "aqm_drops": link["aqm"],
                   "marks": link["marks"], "retransmits": sum(f.total_retrans for f in fl),
                   "ecn_reductions": sum(f.ecn_reductions for f in fl),
                   "data_ect0": round(link["ect"] / link["data"], 4) if link["data"] else None,
                   "sparse_rtt_ms": sparse_rtts, "sparse_sojourn_ms": sparse_sojourns, "sparse_sent": sparse["sent"],
                   "sparse_dropped": sparse["dropped"], "new_flow_count": fq.new_flow_count if fq is not None else None}
    return SimRun(flows=[f.run for f in fl], timeline=timeline, queue=queue_rows, duration=duration,
                  rate_mbit=rate_mbit, drops=state["drops"], packets=state["inst"], aqm=figures,
                  modes=[f.bbr.history for f in fl if f.bbr is not None],
                  rcv_clamp_max=[f.clamp_max for f in fl], rwnd_max=[f.rwnd_max for f in fl])


def _sample(fl: list[_Flow], t: float, timeline: list[dict[str, Any]], queue_rows: list[dict[str, Any]],
            qdep: deque[float], drops: int, buffer_packets: int) -> None:
    q = sum(1 for d in qdep if d > t)
    queue_rows.append({"t": round(t, 6), "queue_packets": q, "backlog_bytes": q * WIRE_BYTES, "drops": drops})
    for f in fl:
        ss = None if f.ssthresh >= INFINITE_SSTHRESH else f.ssthresh
        srtt = f.srtt if f.srtt else None
        pacing = None
        if f.bbr is not None:
            pacing = round(f.bbr.pacing_rate * 8 / 1e6, 3)      # bbr_set_pacing_rate()
        elif f.pacer is not None:
            pacing = round(f.pacer.pacing_rate * 8 / 1e6, 3)    # tcp_update_pacing_rate(), capped
        elif srtt:
            ratio = 2.0 if f.cwnd < f.ssthresh / 2 else 1.2      # tcp_update_pacing_rate()
            pacing = round(ratio * f.cwnd * MSS * 8 / srtt / 1e6, 3)
        timeline.append({"t": round(t, 6), "flow": f.i, "cwnd": f.cwnd, "ssthresh": ss,
                         "srtt_ms": round(srtt * 1000, 3) if srtt else None,
                         "rttvar_ms": round(f.rttvar * 1000, 3) if srtt else None,
                         "in_flight": f.in_flight, "total_retrans": f.total_retrans,
                         "delivery_rate_mbit": None, "pacing_rate_mbit": pacing, "ca_state": f.state,
                         "delivered_bytes": f.run.delivered * MSS})
