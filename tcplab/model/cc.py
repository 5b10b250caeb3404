"""Congestion control through one bottleneck, packet by packet: Reno and CUBIC as Linux runs them.

A pure model (no I/O, no clock) of the path :mod:`tcplab.kernel.bottleneck` builds: a drop-tail
FIFO of ``buffer_packets`` served at ``rate_mbit`` (1500-byte packets, 1448 bytes of payload with
timestamps; an idle tbf passes the first packet at once), ``rtt_ms / 2`` each way, senders that
always have data, and a receiver whose buffer is locked (SO_RCVBUF) at ``rcv_window`` packets:

- its window (rcv_ssthresh) starts at 4/5 of ``rcv_window`` (the buffer at the default scaling
  ratio) and opens by two segments per segment received (``tcp_grow_window()``) up to
  ``rcv_window``; the sender's first window is the SYN-ACK's unscaled 65535 bytes, then never
  more than the advertised window beyond the last ACK. Out-of-order segments held take their room
  in the window (``__tcp_select_window()``: free space), and its right edge never moves back.
- quickack: 16 immediate ACKs (``TCP_MAX_QUICKACKS``), one spent per ACK sent
  (``tcp_dec_quickack_mode()``); while the window opens, ``tcp_grow_window()`` sets
  ``icsk_ack.quick |= 1``, so none is spent and every segment is ACKed at once. Measured here
  (10 Mbit/s, 20 ms, a 450-packet window): 45 opening steps + 16 = the first 61 ACKs each
  acknowledged one segment, every later one two. Out-of-order segments are ACKed at once;
  otherwise every second full segment, an odd one after 40 ms (``TCP_DELACK_MIN``).

The sender's rules, each from the kernel:

- slow start ``tcp_slow_start()`` (net/ipv4/tcp_cong.c): cwnd += packets delivered, up to ssthresh;
  initial cwnd 10 (``TCP_INIT_CWND``), ssthresh infinite.
- Reno congestion avoidance ``tcp_cong_avoid_ai(tp, cwnd, acked)``: +1 per cwnd delivered;
  on loss ``tcp_reno_ssthresh()`` = max(cwnd / 2, 2).
- CUBIC (net/ipv4/tcp_cubic.c, RFC 9438 with Linux's constants): ``bictcp_update()`` target
  W(t) = C (t - K)^3 + Wmax with C = 410/1024 (``bic_scale`` 41 x 10 / 1024), t counted from the
  epoch start plus ``delay_min``, K = cbrt((Wmax - cwnd) / C); ``cnt`` capped at 20 before the
  first loss, TCP-friendly region (``beta_scale`` 15), ``cnt >= 2``; on loss
  ``cubictcp_recalc_ssthresh()`` = max(cwnd x 717/1024, 2) with fast convergence
  (Wmax = cwnd x (1024 + 717) / 2048 when below the previous Wmax).
- HyStart (CUBIC only, ``hystart_update()``): from cwnd 16 (``hystart_low_window``), a round ends
  when snd_una passes the round's snd_nxt; ACK train: ACKs no more than 2 ms apart
  (``hystart_ack_delta_us``) reaching (delay_min + ``hystart_ack_delay()``) / 2 after the round
  start (halved: the socket is not paced); delay: the minimum of the round's RTT samples, once it has
  at least 8, above delay_min + clamp(delay_min / 8, 4 ms, 16 ms). Either sets ssthresh = cwnd
  (thresholds: :mod:`tcplab.model.cubic_fit`).
- loss detection (RACK, ``tcp_rack_detect_loss()``): a FIFO path never reorders, so a packet is
  lost when one sent after it is delivered — from the third SACKed packet on before recovery
  (``tcp_rack_reo_wnd()`` is 0 then), at once during recovery, or after min_rtt / 4 (the RACK
  reordering timer) when fewer than three packets follow the hole.
- fast recovery with PRR (``tcp_cwnd_reduction()``), cwnd = ssthresh on exit
  (``tcp_end_cwnd_reduction()``); RTO = srtt + max(4 rttvar, 200 ms) (``tcp_set_rto()``):
  cwnd 1, everything outstanding lost, the ``Loss`` state.

- BBR (``algorithm="bbr"``): :mod:`tcplab.model.bbr` owns cwnd, ssthresh and the pacing rate
  (``cong_control()`` replaces PRR and ``cong_avoid()``); the sender paces bursts of
  ``bbr_tso_segs_goal()`` packets (``tcp_update_skb_after_send()``, the first 10 unpaced).

Not modelled: tail loss probes, pacing and TSO bursts for Reno/CUBIC, receive
buffer autotuning (the experiment locks the buffer: see :func:`receive_window_for`), undo of
spurious reductions, and the 100 bytes of credit tbf's 1600-byte bucket keeps after a packet.

>>> r = simulate(rate_mbit=20, rtt_ms=40, buffer_packets=50, algorithm="reno", duration=2.0)
>>> r.flows[0].loss_events >= 1, 0.8 < r.utilization <= 1.0
(True, True)
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol


class Random(Protocol):
    """The run's seeded generator (``tcplab.sim.engine.SplitMix64`` or ``random.Random``)."""

    def random(self) -> float: ...

from tcplab.model.delack import TCP_DELACK_MIN
from tcplab.model.profiles import DEFAULT_PROFILE, PROFILES
from tcplab.model.rto import TCP_RTO_MIN

__all__ = ["simulate", "SimRun", "FlowRun", "CongestionControl", "ALGORITHMS", "MSS", "WIRE_BYTES", "cubic_ssthresh",
           "reno_ssthresh", "BETA_CUBIC", "C_CUBIC", "INFINITE_SSTHRESH", "exit_cwnd_from_ssthresh",
           "receive_window_packets", "receive_window_for", "rcvbuf_request", "path_packets"]

MSS = 1448              # payload of a 1500-byte packet with TCP timestamps
WIRE_BYTES = 1500       # what the bottleneck's tbf counts (no link header on a TUN device)
INIT_CWND = 10          # TCP_INIT_CWND
INFINITE_SSTHRESH = 0x7FFFFFFF
_BETA = PROFILES[DEFAULT_PROFILE].cubic_beta   # tcp_cubic.c beta: 717 (of BICTCP_BETA_SCALE 1024)
BETA_CUBIC = _BETA / 1024
C_CUBIC = PROFILES[DEFAULT_PROFILE].cubic_bic_scale * 10 / 1024   # cube_rtt_scale = bic_scale * 10, over 2^10
BETA_SCALE = 8 * (1024 + _BETA) // 3 // (1024 - _BETA)   # 15, tcp_friendliness
HYSTART_LOW_WINDOW = 16
HYSTART_ACK_DELTA = 0.002
HYSTART_MIN_SAMPLES = 8
HYSTART_ACK_DELAY = 0.001     # hystart_ack_delay(): min(1 ms, 4 GSO packets at the pacing rate)
QUICKACKS = 16                # TCP_MAX_QUICKACKS
#: scaling_ratio before the first data segment (TCP_DEFAULT_SCALING_RATIO, 50 %): a listener with a
#: locked SO_RCVBUF starts its connections' rcv_ssthresh at rcvbuf x 128 / 256 (measured here:
#: rcvbuf 1042562 -> 519833 bytes), 4/5 of the window it opens to once the ratio is measured
DEFAULT_SCALING_RATIO = 128
#: the SYN-ACK's window field is never scaled: the sender's first window is at most 65535 bytes
SYN_WINDOW = 65535 // MSS
#: tcp_win_from_space(): window = rcvbuf x scaling_ratio / 256; scaling_ratio = len / truesize of
#: a 1500-byte packet written to a TUN device, measured here (rcvbuf 8388608 -> window 5242880)
SCALING_RATIO = 160
DELACK = TCP_DELACK_MIN
RTO_MIN = TCP_RTO_MIN
ALGORITHMS = ("reno", "cubic", "bbr")   # bbr: the state machine is tcplab.model.bbr


def reno_ssthresh(cwnd: int) -> int:
    """``tcp_reno_ssthresh()``: half the window, at least 2.

    >>> reno_ssthresh(101)
    50
    """
    return max(cwnd >> 1, 2)


def cubic_ssthresh(cwnd: int) -> int:
    """``cubictcp_recalc_ssthresh()``: cwnd x 717 / 1024, at least 2.

    >>> cubic_ssthresh(100)
    70
    """
    return max(cwnd * _BETA // 1024, 2)


def receive_window_packets(rcvbuf: int) -> int:
    """The most a receiver with a locked ``rcvbuf`` (SO_RCVBUF, the value getsockopt returns)
    advertises, in packets: ``tcp_win_from_space()`` of the buffer, which rcv_ssthresh reaches
    in steps of two segments (``tcp_grow_window()``).

    >>> receive_window_packets(2 * 4194304), receive_window_packets(2 * 212992)
    (3620, 183)
    """
    return (rcvbuf * SCALING_RATIO >> 8) // MSS


def path_packets(rate_mbit: float, rtt_ms: float, buffer_packets: int) -> float:
    """What the path holds when full: its bandwidth-delay product plus the buffer, in packets.

    >>> round(path_packets(20, 40, 50), 1)
    116.7
    """
    return buffer_packets + rate_mbit * 1e6 / 8 * rtt_ms / 1000 / WIRE_BYTES


def receive_window_for(path_packets: float) -> int:
    """The receive window tcplab gives each flow, in packets: room for the whole path (BDP +
    buffer) twice over plus 16 segments, as receive autotuning settles (``tcp_rcvbuf_grow()``:
    twice what one RTT delivers), so that cwnd, not the receiver, limits the sender.

    >>> receive_window_for(117)
    250
    """
    return 2 * math.ceil(path_packets) + 16


def rcvbuf_request(window_packets: int) -> int:
    """The SO_RCVBUF request that makes :func:`receive_window_packets` come out at
    ``window_packets`` (the kernel stores twice the request).

    >>> receive_window_packets(2 * rcvbuf_request(250))
    250
    """
    return -(-(window_packets * MSS << 8) // SCALING_RATIO) // 2 + 1


def exit_cwnd_from_ssthresh(ssthresh: int, algorithm: str, by_loss: bool) -> int:
    """The cwnd slow start ended at, from the first finite ssthresh: HyStart sets ssthresh = cwnd;
    a loss sets the algorithm's reduction of it (inverted here, to within a packet).

    >>> exit_cwnd_from_ssthresh(70, "cubic", True), exit_cwnd_from_ssthresh(50, "reno", True)
    (100, 100)
    """
    if not by_loss:
        return ssthresh
    if algorithm == "reno":
        return 2 * ssthresh
    return int(round(ssthresh * 1024 / _BETA))


@dataclass
class FlowRun:
    """One flow's figures from the model (packets, seconds)."""

    delivered: int = 0
    loss_events: int = 0
    fast_retransmits: int = 0
    rto_timeouts: int = 0
    slow_start_exit_cwnd: int | None = None
    exit_by: str | None = None


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

    @property
    def utilization(self) -> float:
        """Delivered payload over what the link can carry in payload (1448 of every 1500 bytes)."""
        cap = self.rate_mbit * 1e6 / 8 / WIRE_BYTES * self.duration
        return sum(f.delivered for f in self.flows) / cap if cap else 0.0


class CongestionControl:
    """The sender's congestion-control state machine, sans-IO: events and their times in, the
    window out. No clock, no packets, no I/O: :func:`simulate` drives it from its model of the
    path, and a captured real run can drive it from its trace (``tests/test_model_cc_replay.py``
    replays a real CUBIC run's TCP_INFO samples through it).

    Events: :meth:`rtt_sample` (an ACK's RTT), :meth:`acked` (packets newly delivered, outside
    recovery), :meth:`enter_recovery` (loss detected), :meth:`prr` (an ACK during recovery),
    :meth:`exit_recovery`, :meth:`on_rto`. Out: ``cwnd`` and ``ssthresh`` (packets), ``state``
    (``"Open"``, ``"Recovery"``, ``"Loss"``) and the flow's figures in ``run``.

    >>> cc = CongestionControl("reno")
    >>> cc.acked(0.04, 10); cc.cwnd                  # slow start: +1 per packet delivered
    20
    >>> cc.enter_recovery(); cc.ssthresh, cc.state   # tcp_reno_ssthresh(): half
    (10, 'Recovery')
    >>> cc.exit_recovery(); cc.cwnd
    10
    """

    __slots__ = ("algo", "cwnd", "cnt", "ssthresh", "state", "snd_nxt", "snd_una", "srtt", "rttvar", "min_rtt",
                 "high_seq", "prior_cwnd", "prr_delivered", "prr_out", "run",
                 "epoch_start", "last_max", "origin", "K", "ack_cnt", "tcp_cwnd", "last_cwnd",
                 "last_time", "delay_min", "found", "round_start", "last_ack", "end_seq", "curr_rtt",
                 "sample_cnt", "bic_cnt", "bbr", "pace_at")

    def __init__(self, algo: str) -> None:
        if algo not in ALGORITHMS:
            raise ValueError(f"algo must be one of {', '.join(ALGORITHMS)}, not {algo!r}")
        self.algo = algo
        self.cwnd, self.cnt, self.ssthresh, self.state = INIT_CWND, 0, INFINITE_SSTHRESH, "Open"
        self.snd_nxt = self.snd_una = 0
        self.srtt = self.rttvar = 0.0
        self.min_rtt = math.inf
        self.high_seq = self.prior_cwnd = self.prr_delivered = self.prr_out = 0
        self.run = FlowRun()
        self.epoch_start = self.last_max = self.origin = self.K = 0.0
        self.ack_cnt = self.tcp_cwnd = self.last_cwnd = 0
        self.last_time = -1.0
        self.delay_min = 0.0
        self.found = False
        self.round_start = self.last_ack = 0.0
        self.end_seq = 0
        self.curr_rtt, self.sample_cnt = math.inf, 0
        self.bic_cnt = 0
        self.bbr: Any = None            # a tcplab.model.bbr.Bbr when algo == "bbr" (it owns cwnd and pacing)
        self.pace_at = math.inf         # when pacing next lets a burst go (bbr)

    # -- events -------------------------------------------------------------------
    def rtt_sample(self, now: float, rtt: float, ca_rtt: float) -> None:
        """An ACK's RTT samples: ``rtt`` of the oldest newly delivered packet (srtt, rttvar,
        ``tcp_rtt_estimator()``), ``ca_rtt`` of the newest (what CUBIC's HyStart sees)."""
        if self.srtt == 0:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar += (abs(rtt - self.srtt) - self.rttvar) / 4
            self.srtt += (rtt - self.srtt) / 8
        self.min_rtt = min(self.min_rtt, rtt)
        if self.algo == "cubic":
            self.cubic_acked(now, ca_rtt)

    def acked(self, now: float, delivered: int) -> None:
        """``delivered`` packets newly acknowledged outside recovery (``tcp_cong_avoid()``)."""
        if delivered and self.state != "Recovery":
            self.cong_avoid(now, delivered)

    def enter_recovery(self) -> None:
        """Loss detected in the Open state: ssthresh from the algorithm, PRR starts
        (``tcp_enter_recovery()``); the window is cut by :meth:`prr`, ACK by ACK."""
        self.prior_cwnd = self.cwnd
        self.note_exit("loss")
        self.ssthresh = self.reduce()
        self.state, self.high_seq = "Recovery", self.snd_nxt - 1
        self.prr_delivered = self.prr_out = 0
        self.run.loss_events += 1

    def prr(self, delivered: int, in_flight: int, retransmit_pending: bool) -> None:
        """An ACK during recovery: ``tcp_cwnd_reduction()`` (proportional rate reduction)."""
        self.prr_delivered += delivered
        delta = self.ssthresh - in_flight
        if delta < 0:
            sndcnt = -(-self.ssthresh * self.prr_delivered // self.prior_cwnd) - self.prr_out
        else:
            sndcnt = min(delta, max(self.prr_delivered - self.prr_out, delivered) + 1)
        sndcnt = max(sndcnt, 1 if retransmit_pending else 0)
        self.cwnd = max(in_flight + sndcnt, 1)

    def exit_recovery(self) -> None:
        """Everything outstanding at the loss is acknowledged: cwnd = ssthresh
        (``tcp_end_cwnd_reduction()``)."""
        self.state = "Open"
        self.cwnd = self.ssthresh

    def on_rto(self) -> None:
        """The retransmission timer fired: ssthresh reduced (once per Loss episode), cwnd 1, the
        ``Loss`` state (``tcp_enter_loss()``)."""
        self.note_exit("loss")
        self.run.rto_timeouts += 1
        if self.state == "Open":
            self.run.loss_events += 1
        self.ssthresh = self.reduce() if self.state != "Loss" else self.ssthresh
        if self.algo == "cubic":
            self.epoch_start = self.last_max = 0.0 if self.state == "Loss" else self.epoch_start
        self.state, self.high_seq = "Loss", self.snd_nxt - 1
        self.cwnd, self.cnt = 1, 0
        if self.bbr is not None:
            self.bbr.on_loss()                          # bbr_set_state(TCP_CA_Loss)

    # -- CUBIC ------------------------------------------------------------------
    def hystart_reset(self, now: float) -> None:
        self.round_start = self.last_ack = now
        self.end_seq = self.snd_nxt
        self.curr_rtt, self.sample_cnt = math.inf, 0

    def cubic_acked(self, now: float, rtt: float) -> None:
        """``cubictcp_acked()``: delay_min and HyStart from one RTT sample."""
        if self.epoch_start and now - self.epoch_start < 1.0:
            return
        if self.delay_min == 0 or self.delay_min > rtt:
            self.delay_min = rtt
        if not self.found and self.cwnd < self.ssthresh and self.cwnd >= HYSTART_LOW_WINDOW:
            if self.snd_una > self.end_seq:
                self.hystart_reset(now)
            if now - self.last_ack <= HYSTART_ACK_DELTA:
                self.last_ack = now
                if now - self.round_start > (self.delay_min + HYSTART_ACK_DELAY) / 2:
                    self.hystart_found()
            if not self.found:
                self.curr_rtt = min(self.curr_rtt, rtt)
                if self.sample_cnt < HYSTART_MIN_SAMPLES:
                    self.sample_cnt += 1
                elif self.curr_rtt > self.delay_min + min(max(self.delay_min / 8, 0.004), 0.016):
                    self.hystart_found()

    def hystart_found(self) -> None:
        self.found = True
        self.ssthresh = self.cwnd
        if self.run.slow_start_exit_cwnd is None:
            self.run.slow_start_exit_cwnd, self.run.exit_by = self.cwnd, "hystart"

    def cubic_update(self, now: float, acked: int) -> None:
        """``bictcp_update()`` in floating point (the kernel's fixed point agrees to a packet)."""
        self.ack_cnt += acked
        cwnd = self.cwnd
        if self.last_cwnd == cwnd and now - self.last_time <= 1 / 32:
            return
        if not (self.epoch_start and now == self.last_time):
            self.last_cwnd, self.last_time = cwnd, now
            if self.epoch_start == 0:
                self.epoch_start = now or 1e-9
                self.ack_cnt, self.tcp_cwnd = acked, cwnd
                if self.last_max <= cwnd:
                    self.K, self.origin = 0.0, cwnd
                else:
                    self.K = ((self.last_max - cwnd) / C_CUBIC) ** (1 / 3)
                    self.origin = self.last_max
            t = now - self.epoch_start + self.delay_min
            target = self.origin + C_CUBIC * (t - self.K) ** 3
            target = math.floor(target) if target > 0 else 0
            self.bic_cnt = cwnd // (target - cwnd) if target > cwnd else 100 * cwnd
            if self.last_max == 0 and self.bic_cnt > 20:
                self.bic_cnt = 20
        delta = (cwnd * BETA_SCALE) >> 3
        while delta and self.ack_cnt > delta:
            self.ack_cnt -= delta
            self.tcp_cwnd += 1
        if self.tcp_cwnd > cwnd:
            max_cnt = cwnd // (self.tcp_cwnd - cwnd)
            if self.bic_cnt > max_cnt:
                self.bic_cnt = max_cnt
        self.bic_cnt = max(self.bic_cnt, 2)

    # -- both -------------------------------------------------------------------
    def cong_avoid(self, now: float, acked: int) -> None:
        if self.cwnd < self.ssthresh:                   # tcp_slow_start()
            if self.algo == "cubic" and self.snd_una > self.end_seq:
                self.hystart_reset(now)
            new = min(self.cwnd + acked, self.ssthresh)
            acked -= new - self.cwnd
            self.cwnd = new
            if acked <= 0:
                return
        if self.algo == "cubic":
            self.cubic_update(now, acked)
            w = self.bic_cnt
        else:
            w = self.cwnd
        if self.cnt >= w:                               # tcp_cong_avoid_ai()
            self.cnt = 0
            self.cwnd += 1
        self.cnt += acked
        if self.cnt >= w:
            d = self.cnt // w
            self.cnt -= d * w
            self.cwnd += d

    def reduce(self) -> int:
        """ssthresh on a loss (and the CUBIC epoch bookkeeping)."""
        cwnd = self.cwnd
        if self.bbr is not None:                        # bbr_ssthresh(): save cwnd, ssthresh unchanged
            ss = self.bbr.on_recovery(cwnd)
            return INFINITE_SSTHRESH if ss is None else ss
        if self.algo == "reno":
            return reno_ssthresh(cwnd)
        self.epoch_start = 0.0
        self.last_max = cwnd * (1024 + _BETA) / 2048 if cwnd < self.last_max else cwnd
        return cubic_ssthresh(cwnd)

    def note_exit(self, by: str) -> None:
        if self.run.slow_start_exit_cwnd is None:
            self.run.slow_start_exit_cwnd, self.run.exit_by = self.cwnd, by


class _Flow(CongestionControl):
    """A sender of :func:`simulate`: the congestion-control state machine plus what the path
    model needs (packets in flight, SACK holes, the receiver's window and delayed ACKs)."""

    __slots__ = ("i", "got", "xmit", "holes", "after_hole", "hole_t", "lost", "in_flight", "last_progress",
                 "rcv_nxt", "rcv_ooo", "rcv_pending", "rcv_quick", "rcv_high_inst", "delack_at",
                 "delivered_mark", "total_retrans", "ever_lost", "rcv_ssthresh", "rcv_clamp", "rwnd_edge")

    def __init__(self, i: int, algo: str, rcv_window: int) -> None:
        super().__init__(algo)
        self.i = i
        self.rcv_clamp = max(rcv_window, 2)
        self.rcv_ssthresh = max(self.rcv_clamp * DEFAULT_SCALING_RATIO // SCALING_RATIO, 2)
        self.rwnd_edge = min(SYN_WINDOW, self.rcv_ssthresh)      # the window the SYN-ACK offered
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


def simulate(rate_mbit: float, rtt_ms: float, buffer_packets: int, algorithm: str = "cubic",
             flows: int = 1, duration: float = 5.0, sample_s: float | None = None,
             loss: float | None = None, rng: Random | None = None, rcv_window: int | None = None) -> SimRun:
    """Run the model; see the module docstring. ``loss``: a random drop probability per data
    packet at the bottleneck's input, decided by ``rng`` (the run's seeded generator, e.g.
    :class:`tcplab.sim.engine.SplitMix64`; required with ``loss``). ``rcv_window``: the most the
    receiver advertises, in packets (by default :func:`receive_window_for` the path).

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
    fl = [_Flow(i, algorithm, rcv_window) for i in range(flows)]
    if algorithm == "bbr":
        from tcplab.model.bbr import Bbr     # here, not at the top: bbr.py is a leaf the model calls into
        for f in fl:
            f.bbr = Bbr(rtt=rtt_ms / 1000, rand=rng.random if rng is not None else None)
            f.min_rtt = rtt_ms / 1000       # tcp_min_rtt() starts at the handshake's RTT
    dropped: set[int] = set()
    qdep: deque[float] = deque()
    arrivals: deque[tuple[float, _Flow, int, int]] = deque()
    acks: deque[tuple[float, _Flow, int, int, int]] = deque()
    state = {"inst": 0, "last_dep": -math.inf, "drops": 0}   # an idle tbf passes the first packet at once
    timeline: list[dict[str, Any]] = []
    queue_rows: list[dict[str, Any]] = []

    if loss and rng is None:
        raise ValueError("loss needs rng, the run's seeded generator (e.g. tcplab.sim.engine.SplitMix64(seed))")
    rand = rng.random if rng is not None else None

    def transmit(f: _Flow, now: float, seq: int, retx: bool) -> None:
        inst = state["inst"]
        state["inst"] = inst + 1
        f.xmit.append((inst, seq, now, retx))
        if f.bbr is not None:
            f.bbr.on_send(inst, now, f.in_flight)       # tcp_rate_skb_sent()
        f.in_flight += 1
        while qdep and qdep[0] <= now:
            qdep.popleft()
        if len(qdep) >= buffer_packets or (loss and rand is not None and rand() < loss):
            dropped.add(inst)
            state["drops"] += 1
            return
        d = max(now, state["last_dep"] + tx)
        state["last_dep"] = d
        qdep.append(d)
        arrivals.append((d + one_way, f, inst, seq))

    def send(f: _Flow, now: float, budget: int | None = None) -> None:
        n = 0
        burst, segs = 0, (f.bbr.tso_segs() if f.bbr is not None else 0)
        while f.in_flight < f.cwnd and (budget is None or n < budget):
            if f.bbr is not None and burst == 0 and now < f.bbr.wstamp:
                f.pace_at = f.bbr.wstamp                # paced: the next burst waits (tcp_pacing_check())
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
            if f.bbr is not None:
                burst += 1
                if burst >= segs:
                    f.bbr.after_burst(now, burst)
                    burst = 0
        if burst:
            f.bbr.after_burst(now, burst)
        if f.state == "Recovery":
            f.prr_out += n

    def receive(now: float, f: _Flow, inst: int, seq: int) -> None:
        """The receiver: ACK now (out of order, hole filled, quickack, 2nd segment) or later."""
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
        else:
            if seq > f.rcv_nxt:
                f.rcv_ooo.add(seq)
            immediate = True
        if immediate or f.rcv_quick or f.rcv_pending >= 2:
            send_ack(now, f)
        elif f.delack_at == math.inf:
            f.delack_at = now + DELACK

    def send_ack(now: float, f: _Flow) -> None:
        if f.rcv_quick:
            f.rcv_quick -= 1                            # tcp_dec_quickack_mode()
        f.rcv_pending = 0
        f.delack_at = math.inf
        # __tcp_select_window(): the free space, min rcv_ssthresh; out-of-order segments held in the
        # buffer take their room (a packet's truesize is a packet of window at the measured scaling
        # ratio), so the right edge stalls during recovery (measured: snd_wnd 249 -> 206 -> 165 packets);
        # the sender keeps the largest edge it saw (tcp_select_window() never shrinks it)
        acks.append((now + one_way, f, f.rcv_high_inst, f.rcv_nxt,
                     f.rcv_nxt + min(f.rcv_ssthresh, f.rcv_clamp - len(f.rcv_ooo))))

    def on_ack(now: float, f: _Flow, high_inst: int, cum: int, edge: int) -> None:
        if edge > f.rwnd_edge:
            f.rwnd_edge = edge
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
        if f.holes and (f.state != "Open" or f.after_hole >= 3 or now - f.hole_t >= f.min_rtt / 4):
            marked = len(f.holes)
            if f.state == "Open":
                f.enter_recovery()
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
            return
        if f.state == "Recovery":
            if f.snd_una > f.high_seq:
                f.exit_recovery()
            else:
                f.prr(delivered, f.in_flight, bool(f.lost))
                send(f, now)
                return
        elif f.state == "Loss" and f.snd_una > f.high_seq:
            f.state = "Open"
        if delivered and f.state != "Recovery":
            f.cong_avoid(now, delivered)
        send(f, now)

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

    for f in fl:
        f.hystart_reset(0.0)
        send(f, 0.0)
    next_sample = 0.0
    now = 0.0
    inf = math.inf
    while True:
        ta = arrivals[0][0] if arrivals else inf
        tk = acks[0][0] if acks else inf
        td = min(f.delack_at for f in fl)
        tp = min(f.pace_at for f in fl)
        tr = min((f.last_progress + (f.srtt + max(4 * f.rttvar, RTO_MIN) if f.srtt else 1.0)) if f.in_flight > 0 or f.lost else inf for f in fl)
        now = min(ta, tk, td, tr, tp)
        while next_sample <= min(now, duration):
            _sample(fl, next_sample, timeline, queue_rows, qdep, state["drops"], buffer_packets)
            next_sample += sample_s
        if now > duration:
            break
        if now == ta:
            _, f, inst, seq = arrivals.popleft()
            receive(now, f, inst, seq)
        elif now == tk:
            _, f, inst, cum, edge = acks.popleft()
            on_ack(now, f, inst, cum, edge)
        elif now == td:
            for f in fl:
                if f.delack_at == now:
                    send_ack(now, f)
        elif now == tp:
            for f in fl:
                if f.pace_at <= now:
                    f.pace_at = inf
                    send(f, now)
        else:
            for f in fl:
                if f.in_flight > 0 or f.lost:
                    limit = f.last_progress + (f.srtt + max(4 * f.rttvar, RTO_MIN) if f.srtt else 1.0)
                    if limit <= now:
                        rto(f, now)
    return SimRun(flows=[f.run for f in fl], timeline=timeline, queue=queue_rows, duration=duration,
                  rate_mbit=rate_mbit, drops=state["drops"], packets=state["inst"],
                  modes=[f.bbr.history for f in fl if f.bbr is not None])


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
        elif srtt:
            ratio = 2.0 if f.cwnd < f.ssthresh / 2 else 1.2      # tcp_update_pacing_rate()
            pacing = round(ratio * f.cwnd * MSS * 8 / srtt / 1e6, 3)
        timeline.append({"t": round(t, 6), "flow": f.i, "cwnd": f.cwnd, "ssthresh": ss,
                         "srtt_ms": round(srtt * 1000, 3) if srtt else None,
                         "rttvar_ms": round(f.rttvar * 1000, 3) if srtt else None,
                         "in_flight": f.in_flight, "total_retrans": f.total_retrans,
                         "delivery_rate_mbit": None, "pacing_rate_mbit": pacing, "ca_state": f.state,
                         "delivered_bytes": f.run.delivered * MSS})
