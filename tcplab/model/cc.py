"""Congestion control through one bottleneck, packet by packet: Reno and CUBIC as Linux runs them.

The sender's rules as a sans-IO state machine (:class:`CongestionControl`: no I/O, no clock; events
and their times in, the window out), and the rules and constants of the path
:mod:`tcplab.kernel.bottleneck` builds, which :mod:`tcplab.sim.bottleneck` simulates packet by
packet on the simulator's one clock (:class:`tcplab.sim.engine.Engine`): a drop-tail
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
  start (halved unless the socket is paced, ``sk_pacing_status``); delay: the minimum of the round's RTT samples, once it has
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

>>> round(path_packets(20, 40, 50), 1), receive_window_for(path_packets(20, 40, 50))
(116.7, 250)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol


class Random(Protocol):
    """The run's seeded generator (``tcplab.sim.engine.SplitMix64`` or ``random.Random``)."""

    def random(self) -> float: ...

from tcplab.model.delack import TCP_DELACK_MIN
from tcplab.model.profiles import DEFAULT_PROFILE, PROFILES
from tcplab.model.rto import TCP_RTO_MIN
from tcplab.model.prr import sndcnt

__all__ = ["FlowRun", "CongestionControl", "ALGORITHMS", "MSS", "WIRE_BYTES", "cubic_ssthresh",
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


class CongestionControl:
    """The sender's congestion-control state machine, sans-IO: events and their times in, the
    window out. No clock, no packets, no I/O: :func:`tcplab.sim.bottleneck.simulate` drives it from
    its model of the path, and a captured real run can drive it from its trace (``tests/test_model_cc_replay.py``
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
                 "sample_cnt", "bic_cnt", "bbr", "pace_at", "paced")

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
        #: sk_pacing_status != SK_PACING_NONE (SO_MAX_PACING_RATE): HyStart's ACK train is not halved
        self.paced = False

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

    def enter_cwr(self) -> None:
        """An ACK with ECE in the Open state: the same reduction as a loss, nothing to retransmit
        (``tcp_enter_cwr()``: ``tcp_init_cwnd_reduction()``, the CA state ``CWR``); :meth:`prr` cuts
        the window ACK by ACK until everything sent before it is acknowledged.

        >>> cc = CongestionControl("cubic"); cc.cwnd = 100; cc.snd_nxt = 100
        >>> cc.enter_cwr(); cc.ssthresh, cc.state, cc.run.loss_events
        (70, 'CWR', 0)
        """
        self.prior_cwnd = self.cwnd
        self.note_exit("ecn")
        self.ssthresh = self.reduce()
        self.state, self.high_seq = "CWR", self.snd_nxt - 1
        self.prr_delivered = self.prr_out = 0

    def prr(self, delivered: int, in_flight: int, retransmit_pending: bool, *, una_advanced: bool,
            newly_lost: int = 0) -> None:
        """An ACK during recovery: ``tcp_cwnd_reduction()`` (proportional rate reduction). At or below
        ssthresh it conserves packets, plus one only when the ACK advanced ``snd_una`` and marked nothing
        newly lost (``FLAG_SND_UNA_ADVANCED && !newly_lost``, 7e901ee7b6ab, in 6.1, 6.12 and 6.18): a
        duplicate ACK sends what it delivered, not one more (Timeline.cc_replay found the +1 on every
        ACK one packet above the kernel's cwnd on a real loss_recovery)."""
        self.prr_delivered += delivered
        n = sndcnt(self.ssthresh, self.prior_cwnd, self.prr_delivered, self.prr_out, in_flight, delivered,
                   una_advanced, newly_lost)
        # the model's own: a lost segment still to resend leaves on this ACK (the kernel's floor is one
        # segment only while nothing was sent in the recovery, prr_out == 0)
        n = max(n, 1 if retransmit_pending else 0)
        self.cwnd = max(in_flight + n, 1)

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
                # hystart_update(): "Pacing might have delayed packets up to RTT/2 during slow start",
                # so only an unpaced socket (SK_PACING_NONE) halves the threshold
                if now - self.round_start > (self.delay_min + HYSTART_ACK_DELAY) / (1 if self.paced else 2):
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
