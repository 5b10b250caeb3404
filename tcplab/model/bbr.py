"""BBR (v1) as ``net/ipv4/tcp_bbr.c`` runs it: a pure state machine the congestion simulator
(:mod:`tcplab.model.cc`) drives, one call per ACK.

Read from torvalds/linux ``net/ipv4/tcp_bbr.c`` (commit 02dc96ef6c25, the version with
``bbr_update_gains()``, ack aggregation and ``bbr_packets_in_net_at_edt()``), ``net/ipv4/tcp_rate.c``
(the rate sample) and ``lib/win_minmax.c`` (the bandwidth filter). Every function below names its
kernel counterpart. The changes known between that version and 6.1, 6.12 and 6.18 are of form, not
behaviour: the ``tcp_snd_cwnd()`` accessors (5.19), ``prandom_u32_max()`` renamed
``get_random_u32_below()`` (6.2), ``cong_control()`` gaining the ACK's ``ack``/``flag`` arguments (6.10,
unused by BBR v1); not checked line by line against each release. Measured against 6.18 (the host):
docs/data-transfer.md.

The modes (``bbr->mode``) and what they set (``bbr_update_gains()``):

==========  ==========================  ==================  ===================================
mode        pacing gain                 cwnd gain           leaves when
==========  ==========================  ==================  ===================================
Startup     2/ln 2 (739/256 = 2.887)    2.887               the max bandwidth grew < 25 % for 3
                                                            rounds (``bbr_check_full_bw_reached``)
Drain       1/2.885 (88/256)            2.887               in flight <= 1 BDP (+ quantum)
ProbeBW     1.25, 0.75, 1 x 6 (8 phases 2                   the min-RTT filter (10 s) expires
            of >= min_rtt each)
ProbeRTT    1                           cwnd <= 4 packets   200 ms and one round at <= 4 in flight
==========  ==========================  ==================  ===================================

- bandwidth: delivered / max(send interval, ACK interval) per ACK (``tcp_rate_gen()``), into a
  windowed max over 10 rounds (``bbr_bw_rtts``, Kathleen Nichols' 3-sample ``minmax_running_max``);
- min RTT: the least RTT sample, replaced when 10 s old (``bbr_min_rtt_win_sec``);
- pacing rate = gain x bw x 99 % (``bbr_pacing_margin_percent``), only raised before the pipe
  is full (``bbr_set_pacing_rate()``);
- cwnd target = ceil(cwnd gain x bw x min_rtt) + extra ACKed (aggregation) + 3 TSO bursts, even,
  +2 in ProbeBW's 1.25 phase (``bbr_quantization_budget()``); cwnd grows by the packets ACKed up to
  it (``bbr_set_cwnd()``), packet conservation in recovery's first round.
- long-term (policer) bandwidth (``bbr_lt_bw_sampling()``): two intervals of 4-16 rounds with
  >= 20 % loss and bandwidths within 1/8 pin the bandwidth for 48 rounds.

Not modelled: ``is_ack_delayed`` (an expired min-RTT filter takes the next sample even if a delayed
ACK inflated it), idle restarts (the senders never go idle), and app-limited periods other than
the first window and ProbeRTT.

>>> b = Bbr(rtt=0.04)
>>> b.mode, round(b.pacing_gain, 3), b.cwnd_gain == b.pacing_gain
('Startup', 2.887, True)
>>> [round(g, 2) for g in PACING_GAIN]
[1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

__all__ = ["Bbr", "RateSample", "MinMax", "HIGH_GAIN", "DRAIN_GAIN", "CWND_GAIN", "PACING_GAIN",
           "BW_RTTS", "MIN_RTT_WIN_S", "PROBE_RTT_S", "CWND_MIN_TARGET"]

MSS = 1448                      # the payload of one packet (tcplab.model.cc.MSS; not imported: cc imports us)
INIT_CWND = 10                  # TCP_INIT_CWND
BBR_UNIT = 256                  # BBR_SCALE 8: gains are fixed point over 256
CYCLE_LEN = 8
HIGH_GAIN = (BBR_UNIT * 2885 // 1000 + 1) / BBR_UNIT      # bbr_high_gain: 739/256, 2/ln 2 rounded up
DRAIN_GAIN = (BBR_UNIT * 1000 // 2885) / BBR_UNIT         # bbr_drain_gain: 88/256
CWND_GAIN = 2.0                                           # bbr_cwnd_gain
PACING_GAIN = (5 / 4, 3 / 4, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)  # bbr_pacing_gain[]
CYCLE_RAND = 7                  # bbr_cycle_rand: ProbeBW starts at a random phase other than 0.75
BW_RTTS = CYCLE_LEN + 2         # bbr_bw_rtts: the max-bandwidth filter's window, in rounds
MIN_RTT_WIN_S = 10.0            # bbr_min_rtt_win_sec
PROBE_RTT_S = 0.2               # bbr_probe_rtt_mode_ms
MIN_TSO_RATE = 1200000 / 8      # bbr_min_tso_rate, bytes/s: below it one-segment bursts
PACING_MARGIN = 0.99            # 100 - bbr_pacing_margin_percent
CWND_MIN_TARGET = 4             # bbr_cwnd_min_target
FULL_BW_THRESH = 5 / 4          # bbr_full_bw_thresh
FULL_BW_CNT = 3                 # bbr_full_bw_cnt
LT_INTVL_MIN_RTTS = 4           # bbr_lt_intvl_min_rtts
LT_LOSS_THRESH = 50 / BBR_UNIT  # bbr_lt_loss_thresh: 20 %
LT_BW_RATIO = 1 / 8             # bbr_lt_bw_ratio
LT_BW_DIFF = 4000 / 8           # bbr_lt_bw_diff, bytes/s
LT_BW_MAX_RTTS = 48             # bbr_lt_bw_max_rtts
EXTRA_ACKED_WIN_RTTS = 5        # bbr_extra_acked_win_rtts
EXTRA_ACKED_MAX_S = 0.1         # bbr_extra_acked_max_us
PACING_SHIFT = 10               # sk_pacing_shift: a TSO burst is ~1 ms of the pacing rate
GSO_MAX_BYTES = 65536 - 1 - 320  # GSO_MAX_SIZE - 1 - MAX_TCP_HEADER (about)


class MinMax:
    """``lib/win_minmax.c``'s running max: the best, second and third best samples of a window
    (here counted in rounds), so the max is forgotten ``win`` rounds after it was seen.

    >>> m = MinMax()
    >>> [m.running_max(10, t, v) for t, v in ((0, 5), (1, 9), (5, 7), (11, 6), (12, 6), (16, 4))]
    [5, 9, 9, 9, 7, 6]
    """

    def __init__(self) -> None:
        self.s = [(0, 0.0), (0, 0.0), (0, 0.0)]     # (t, v) x 3

    def reset(self, t: int, v: float) -> float:
        self.s = [(t, v)] * 3
        return v

    def get(self) -> float:
        return self.s[0][1]

    def running_max(self, win: int, t: int, v: float) -> float:
        s = self.s
        if v >= s[0][1] or t - s[2][0] > win:      # a new max, or nothing left in the window
            return self.reset(t, v)
        if v >= s[1][1]:
            s[2] = s[1] = (t, v)
        elif v >= s[2][1]:
            s[2] = (t, v)
        # minmax_subwin_update()
        dt = t - s[0][0]
        if dt > win:
            s[0], s[1], s[2] = s[1], s[2], (t, v)
            if t - s[0][0] > win:
                s[0], s[1], s[2] = s[1], s[2], (t, v)
        elif s[1][0] == s[0][0] and dt > win / 4:
            s[2] = s[1] = (t, v)
        elif s[2][0] == s[1][0] and dt > win / 2:
            s[2] = (t, v)
        return s[0][1]


@dataclass
class _Tx:
    """What ``tcp_rate_skb_sent()`` stamps on a packet when it is sent."""

    sent: float
    delivered: int
    delivered_t: float
    first_tx: float
    app_limited: bool


@dataclass
class RateSample:
    """``struct rate_sample`` as ``tcp_rate_gen()`` fills it (times in s, rate in packets/s)."""

    delivered: int = -1
    interval: float = -1.0
    prior_delivered: int = 0
    acked_sacked: int = 0
    losses: int = 0
    rtt: float = -1.0
    prior_in_flight: int = 0
    is_app_limited: bool = False


class Bbr:
    """One sender's BBR state. The simulator calls :meth:`on_send` per packet sent,
    :meth:`on_ack` per ACK (it returns the new cwnd), :meth:`on_recovery` / :meth:`on_loss` when
    the ACK path enters Recovery or an RTO fires, and reads :attr:`pacing_rate` and
    :meth:`tso_segs` to pace.

    ``rtt``: the handshake's RTT, s (``bbr_init()`` reads ``tcp_min_rtt()`` and the pacing rate
    from srtt); ``rand``: a draw in [0, 1) for ProbeBW's starting phase (``prandom_u32_max(7)``).

    >>> b = Bbr(rtt=0.02)
    >>> round(b.pacing_rate / MSS)      # 2.887 x 10 packets / 20 ms x 99 %
    1429
    """

    MODES = ("Startup", "Drain", "ProbeBW", "ProbeRTT")

    def __init__(self, rtt: float, rand: Callable[[], float] | None = None) -> None:
        self.rand = rand or (lambda: 0.0)
        self.mode = "Startup"
        self.pacing_gain = self.cwnd_gain = HIGH_GAIN
        self.bw = MinMax()
        self.rtt_cnt = 0
        self.next_rtt_delivered = 0
        self.round_start = False
        self.min_rtt = rtt
        self.min_rtt_stamp = 0.0
        self.prior_cwnd = 0
        self.prev_ca_state = "Open"
        self.packet_conservation = False
        self.probe_rtt_done_stamp: float | None = None
        self.probe_rtt_round_done = False
        self.full_bw_reached = False
        self.full_bw = 0.0
        self.full_bw_cnt = 0
        self.cycle_idx = 0
        self.cycle_stamp = 0.0
        self.lt_bw = 0.0
        self.lt_use_bw = False
        self.lt_is_sampling = False
        self.lt_rtt_cnt = 0
        self.lt_last_stamp = 0.0
        self.lt_last_delivered = 0
        self.lt_last_lost = 0
        self.ack_epoch_stamp = 0.0
        self.ack_epoch_acked = 0
        self.extra_acked = [0, 0]
        self.extra_acked_win_rtts = 0
        self.extra_acked_win_idx = 0
        self.ssthresh: int | None = None
        # tcp_sock state tcp_rate.c keeps (tp->delivered, delivered_mstamp, first_tx_mstamp, lost,
        # app_limited: ~0U at tcp_init_sock(), so the first window's samples are app-limited)
        self.delivered = 0
        self.delivered_t = 0.0
        self.first_tx = 0.0
        self.lost = 0
        self.app_limited: int | None = -1
        self.tx: dict[int, _Tx] = {}
        # pacing (tcp_update_skb_after_send()): the earliest departure time of the next burst
        self.wstamp = 0.0
        self.data_segs_out = 0
        # bbr_init_pacing_rate_from_rtt(): high_gain x init cwnd / srtt
        self.pacing_rate = self._rate(INIT_CWND / rtt, HIGH_GAIN)
        self.history: list[tuple[float, str]] = [(0.0, "Startup")]
        self._cwnd_now = INIT_CWND      # the sender's cwnd as this ACK found it (bbr_save_cwnd() reads it)
        self._restore_cwnd = 0          # bbr_check_probe_rtt_done()'s max(cwnd, prior_cwnd), applied in _set_cwnd

    # -- units -------------------------------------------------------------------------------------
    @staticmethod
    def _rate(bw: float, gain: float) -> float:
        """``bbr_rate_bytes_per_sec()``: packets/s to paced payload bytes/s, 1 % under."""
        return bw * MSS * gain * PACING_MARGIN

    def max_bw(self) -> float:
        """``bbr_max_bw()``: the windowed max delivery rate, packets/s."""
        return self.bw.get()

    def bw_est(self) -> float:
        """``bbr_bw()``: the policer's long-term rate when one was detected, else the max."""
        return self.lt_bw if self.lt_use_bw else self.max_bw()

    def tso_segs(self) -> int:
        """``bbr_tso_segs_goal()``: packets per burst, ~1 ms of the pacing rate, at least 2."""
        min_segs = 1 if self.pacing_rate < MIN_TSO_RATE else 2
        byts = min(int(self.pacing_rate) >> PACING_SHIFT, GSO_MAX_BYTES)
        return min(max(byts // MSS, min_segs), 0x7F)

    def bdp(self, bw: float, gain: float) -> int:
        """``bbr_bdp()``: ceil(bw x min_rtt x gain) packets."""
        if self.min_rtt == math.inf:
            return INIT_CWND
        return math.ceil(bw * self.min_rtt * gain - 1e-9)

    def quantization_budget(self, cwnd: int) -> int:
        """``bbr_quantization_budget()``: + 3 bursts, rounded up to even, + 2 in the 1.25 phase."""
        cwnd += 3 * self.tso_segs()
        cwnd = (cwnd + 1) & ~1
        if self.mode == "ProbeBW" and self.cycle_idx == 0:
            cwnd += 2
        return cwnd

    def inflight(self, bw: float, gain: float) -> int:
        """``bbr_inflight()``."""
        return self.quantization_budget(self.bdp(bw, gain))

    def in_net_at_edt(self, now: float, inflight_now: int) -> int:
        """``bbr_packets_in_net_at_edt()``: in flight at the next burst's departure time."""
        interval = max(self.wstamp, now) - now
        delivered = int(self.bw_est() * interval)
        at_edt = inflight_now + (self.tso_segs() if self.pacing_gain > 1 else 0)
        return max(at_edt - delivered, 0)

    # -- tcp_rate.c ------------------------------------------------------------------------------
    def on_send(self, inst: int, now: float, packets_out: int) -> None:
        """``tcp_rate_skb_sent()``: stamp packet ``inst`` (``packets_out``: before it)."""
        if packets_out == 0:
            self.first_tx = self.delivered_t = now
        self.tx[inst] = _Tx(now, self.delivered, self.delivered_t, self.first_tx, self.app_limited is not None)
        self.data_segs_out += 1

    def forget(self, inst: int) -> None:
        """A packet the path dropped: its stamp goes with it."""
        self.tx.pop(inst, None)

    def after_burst(self, now: float, packets: int) -> None:
        """``tcp_update_skb_after_send()``: the next burst leaves ``packets`` x MSS / rate later,
        less up to half that for the time the sender was late (its OS-jitter credit); the first 10
        segments are not paced."""
        prior = self.wstamp
        self.wstamp = max(self.wstamp, now)
        if self.data_segs_out >= 10 and self.pacing_rate > 0:
            length = packets * MSS / self.pacing_rate
            credit = self.wstamp - prior
            self.wstamp += length - min(length / 2, credit)

    def _rate_sample(self, now: float, acked: list[int], losses: int, rtt: float | None,
                     prior_in_flight: int, min_rtt_path: float) -> RateSample:
        """``tcp_rate_skb_delivered()`` for each packet ACKed, then ``tcp_rate_gen()``."""
        rs = RateSample(losses=losses, prior_in_flight=prior_in_flight)
        rs.rtt = rtt if rtt is not None else -1.0
        prior_t: float | None = None
        snd = -1.0
        newest = -math.inf
        for inst in acked:
            tx = self.tx.pop(inst, None)
            if tx is None:
                continue
            if prior_t is None or tx.sent >= newest:      # tcp_skb_sent_after(): the latest sent wins
                newest = tx.sent
                rs.prior_delivered, prior_t = tx.delivered, tx.delivered_t
                rs.is_app_limited = tx.app_limited
                self.first_tx = tx.sent
                snd = tx.sent - tx.first_tx
        n = len(acked)
        self.delivered += n
        if self.app_limited is not None and (self.app_limited < 0 or self.delivered > self.app_limited):
            self.app_limited = None
        if n:
            self.delivered_t = now
        rs.acked_sacked = n
        if prior_t is None:
            return rs
        rs.delivered = self.delivered - rs.prior_delivered
        rs.interval = max(snd, now - prior_t)
        if rs.interval < min_rtt_path - 1e-9:
            rs.interval = -1.0                            # an implausibly short sample (ACK compression)
        return rs

    # -- the ACK: bbr_main() ---------------------------------------------------------------------------
    def on_ack(self, now: float, acked: list[int], losses: int, rtt: float | None, prior_in_flight: int,
               in_flight: int, cwnd: int, ca_state: str, min_rtt_path: float) -> int:
        """One ACK: ``acked`` the packets it newly delivered (their ``inst``), ``losses`` the
        packets it marked lost, ``rtt`` the newest one's RTT (``ca_rtt_us``); returns the new cwnd
        (``bbr_main()``: ``bbr_update_model()``, then the pacing rate and cwnd)."""
        self.lost += losses
        self._cwnd_now = cwnd
        rs = self._rate_sample(now, acked, losses, rtt, prior_in_flight, min_rtt_path)
        self._update_bw(now, rs)
        self._update_ack_aggregation(cwnd, rs)
        if self.mode == "ProbeBW" and self._is_next_cycle_phase(now, rs):
            self._advance_cycle_phase()
        self._check_full_bw_reached(rs)
        self._check_drain(now, in_flight)
        self._update_min_rtt(now, rs, in_flight)
        self._update_gains()
        self._set_pacing_rate(self.bw_est(), self.pacing_gain)
        return self._set_cwnd(rs, rs.acked_sacked, self.bw_est(), self.cwnd_gain, cwnd, in_flight, ca_state)

    def _set_mode(self, now: float, mode: str) -> None:
        self.mode = mode
        self.history.append((now, mode))

    def _update_bw(self, now: float, rs: RateSample) -> None:
        """``bbr_update_bw()``: count rounds, feed the long-term sampler and the max filter."""
        self.round_start = False
        if rs.delivered < 0 or rs.interval <= 0:
            return
        if rs.prior_delivered >= self.next_rtt_delivered:
            self.next_rtt_delivered = self.delivered
            self.rtt_cnt += 1
            self.round_start = True
            self.packet_conservation = False
        self._lt_bw_sampling(now, rs)
        bw = rs.delivered / rs.interval
        if not rs.is_app_limited or bw >= self.max_bw():
            self.bw.running_max(BW_RTTS, self.rtt_cnt, bw)

    def _update_ack_aggregation(self, cwnd: int, rs: RateSample) -> None:
        """``bbr_update_ack_aggregation()``: packets ACKed beyond bw x time since the epoch began."""
        if rs.acked_sacked <= 0 or rs.delivered < 0 or rs.interval <= 0:
            return
        if self.round_start:
            self.extra_acked_win_rtts = min(0x1F, self.extra_acked_win_rtts + 1)
            if self.extra_acked_win_rtts >= EXTRA_ACKED_WIN_RTTS:
                self.extra_acked_win_rtts = 0
                self.extra_acked_win_idx ^= 1
                self.extra_acked[self.extra_acked_win_idx] = 0
        expected = int(self.bw_est() * (self.delivered_t - self.ack_epoch_stamp))
        if self.ack_epoch_acked <= expected or self.ack_epoch_acked + rs.acked_sacked >= 1 << 20:
            self.ack_epoch_acked = 0
            self.ack_epoch_stamp = self.delivered_t
            expected = 0
        self.ack_epoch_acked = min(0xFFFFF, self.ack_epoch_acked + rs.acked_sacked)
        extra = min(self.ack_epoch_acked - expected, cwnd)
        if extra > self.extra_acked[self.extra_acked_win_idx]:
            self.extra_acked[self.extra_acked_win_idx] = extra

    def _is_next_cycle_phase(self, now: float, rs: RateSample) -> bool:
        """``bbr_is_next_cycle_phase()``: a phase lasts min_rtt; 1.25 also until in flight reaches
        1.25 BDP (or a loss), 0.75 ends early once in flight falls to 1 BDP."""
        full_length = self.delivered_t - self.cycle_stamp > self.min_rtt
        if self.pacing_gain == 1.0:
            return full_length
        inflight = self.in_net_at_edt(now, rs.prior_in_flight)
        bw = self.max_bw()
        if self.pacing_gain > 1.0:
            return full_length and (rs.losses > 0 or inflight >= self.inflight(bw, self.pacing_gain))
        return full_length or inflight <= self.inflight(bw, 1.0)

    def _advance_cycle_phase(self) -> None:
        self.cycle_idx = (self.cycle_idx + 1) % CYCLE_LEN
        self.cycle_stamp = self.delivered_t

    def _reset_probe_bw_mode(self, now: float) -> None:
        """``bbr_reset_probe_bw_mode()``: a random phase, then the next one (never the 0.75)."""
        self._set_mode(now, "ProbeBW")
        self.cycle_idx = CYCLE_LEN - 1 - min(int(self.rand() * CYCLE_RAND), CYCLE_RAND - 1)
        self._advance_cycle_phase()

    def _reset_mode(self, now: float) -> None:
        if not self.full_bw_reached:
            self._set_mode(now, "Startup")
        else:
            self._reset_probe_bw_mode(now)

    def _check_full_bw_reached(self, rs: RateSample) -> None:
        """``bbr_check_full_bw_reached()``: 3 rounds without 25 % more bandwidth fill the pipe."""
        if self.full_bw_reached or not self.round_start or rs.is_app_limited:
            return
        if self.max_bw() >= self.full_bw * FULL_BW_THRESH:
            self.full_bw = self.max_bw()
            self.full_bw_cnt = 0
            return
        self.full_bw_cnt += 1
        self.full_bw_reached = self.full_bw_cnt >= FULL_BW_CNT

    def _check_drain(self, now: float, in_flight: int) -> None:
        """``bbr_check_drain()``: Startup -> Drain at a full pipe; Drain -> ProbeBW at 1 BDP."""
        if self.mode == "Startup" and self.full_bw_reached:
            self._set_mode(now, "Drain")
            self.ssthresh = self.inflight(self.max_bw(), 1.0)
        if self.mode == "Drain" and self.in_net_at_edt(now, in_flight) <= self.inflight(self.max_bw(), 1.0):
            self._reset_probe_bw_mode(now)

    def _update_min_rtt(self, now: float, rs: RateSample, in_flight: int) -> None:
        """``bbr_update_min_rtt()``: the 10 s min-RTT filter and ProbeRTT."""
        expired = now > self.min_rtt_stamp + MIN_RTT_WIN_S
        # "<=" as in commit 02dc96ef6c25 (an equal sample refreshes the stamp; 88c2cfa3f781 had "<")
        if rs.rtt >= 0 and (rs.rtt <= self.min_rtt or expired):
            self.min_rtt = rs.rtt
            self.min_rtt_stamp = now
        if expired and self.mode != "ProbeRTT":
            self._set_mode(now, "ProbeRTT")
            self._save_cwnd(self._cwnd_now)
            self.probe_rtt_done_stamp = None
        if self.mode == "ProbeRTT":
            # ignore the low rate samples of this mode (tp->app_limited)
            self.app_limited = (self.delivered + in_flight) or 1
            if self.probe_rtt_done_stamp is None and in_flight <= CWND_MIN_TARGET:
                self.probe_rtt_done_stamp = now + PROBE_RTT_S
                self.probe_rtt_round_done = False
                self.next_rtt_delivered = self.delivered
            elif self.probe_rtt_done_stamp is not None:
                if self.round_start:
                    self.probe_rtt_round_done = True
                if self.probe_rtt_round_done and now > self.probe_rtt_done_stamp:
                    # bbr_check_probe_rtt_done()
                    self.min_rtt_stamp = now
                    self._restore_cwnd = self.prior_cwnd
                    self._reset_mode(now)

    def _update_gains(self) -> None:
        """``bbr_update_gains()``."""
        if self.mode == "Startup":
            self.pacing_gain, self.cwnd_gain = HIGH_GAIN, HIGH_GAIN
        elif self.mode == "Drain":
            self.pacing_gain, self.cwnd_gain = DRAIN_GAIN, HIGH_GAIN
        elif self.mode == "ProbeBW":
            self.pacing_gain = 1.0 if self.lt_use_bw else PACING_GAIN[self.cycle_idx]
            self.cwnd_gain = CWND_GAIN
        else:
            self.pacing_gain, self.cwnd_gain = 1.0, 1.0

    def _set_pacing_rate(self, bw: float, gain: float) -> None:
        """``bbr_set_pacing_rate()``: before the pipe is full the rate only goes up."""
        rate = self._rate(bw, gain)
        if self.full_bw_reached or rate > self.pacing_rate:
            self.pacing_rate = rate

    def _save_cwnd(self, cwnd: int) -> None:
        """``bbr_save_cwnd()``."""
        if self.prev_ca_state not in ("Recovery", "Loss") and self.mode != "ProbeRTT":
            self.prior_cwnd = cwnd
        else:
            self.prior_cwnd = max(self.prior_cwnd, cwnd)

    def _set_cwnd(self, rs: RateSample, acked: int, bw: float, gain: float, cwnd: int, in_flight: int,
                  ca_state: str) -> int:
        """``bbr_set_cwnd()`` with ``bbr_set_cwnd_to_recover_or_restore()``."""
        if self._restore_cwnd:                 # bbr_check_probe_rtt_done(): cwnd = max(cwnd, prior_cwnd)
            cwnd = max(cwnd, self._restore_cwnd)
            self._restore_cwnd = 0
        if acked:
            if rs.losses > 0:
                cwnd = max(cwnd - rs.losses, 1)
            conserve = False
            if ca_state == "Recovery" and self.prev_ca_state != "Recovery":
                self.packet_conservation = True
                self.next_rtt_delivered = self.delivered
                cwnd = in_flight + acked
            elif self.prev_ca_state in ("Recovery", "Loss") and ca_state not in ("Recovery", "Loss"):
                cwnd = max(cwnd, self.prior_cwnd)
                self.packet_conservation = False
            self.prev_ca_state = ca_state
            if self.packet_conservation:
                cwnd = max(cwnd, in_flight + acked)
                conserve = True
            if not conserve:
                target = self.bdp(bw, gain) + self._ack_aggregation_cwnd()
                target = self.quantization_budget(target)
                if self.full_bw_reached:
                    cwnd = min(cwnd + acked, target)
                elif cwnd < target or self.delivered < INIT_CWND:
                    cwnd = cwnd + acked
                cwnd = max(cwnd, CWND_MIN_TARGET)
        if self.mode == "ProbeRTT":
            cwnd = min(cwnd, CWND_MIN_TARGET)
        self._cwnd_now = cwnd
        return cwnd

    def _ack_aggregation_cwnd(self) -> int:
        """``bbr_ack_aggregation_cwnd()``: the max extra ACKed of the last 5-10 rounds, capped at
        100 ms of bandwidth, once the pipe is full."""
        if not self.full_bw_reached:
            return 0
        return min(max(self.extra_acked), int(self.bw_est() * EXTRA_ACKED_MAX_S))

    # -- the long-term (policer) estimator ---------------------------------------------------------------
    def _lt_reset_interval(self) -> None:
        self.lt_last_stamp = self.delivered_t
        self.lt_last_delivered = self.delivered
        self.lt_last_lost = self.lost
        self.lt_rtt_cnt = 0

    def _lt_reset(self) -> None:
        self.lt_bw = 0.0
        self.lt_use_bw = False
        self.lt_is_sampling = False
        self._lt_reset_interval()

    def _lt_bw_sampling(self, now: float, rs: RateSample) -> None:
        """``bbr_lt_bw_sampling()``."""
        if self.lt_use_bw:
            if self.mode == "ProbeBW" and self.round_start:
                self.lt_rtt_cnt += 1
                if self.lt_rtt_cnt >= LT_BW_MAX_RTTS:
                    self._lt_reset()
                    self._reset_probe_bw_mode(now)
            return
        if not self.lt_is_sampling:
            if not rs.losses:
                return
            self._lt_reset_interval()
            self.lt_is_sampling = True
        if rs.is_app_limited:
            self._lt_reset()
            return
        if self.round_start:
            self.lt_rtt_cnt += 1
        if self.lt_rtt_cnt < LT_INTVL_MIN_RTTS:
            return
        if self.lt_rtt_cnt > 4 * LT_INTVL_MIN_RTTS:
            self._lt_reset()
            return
        if not rs.losses:
            return
        lost = self.lost - self.lt_last_lost
        delivered = self.delivered - self.lt_last_delivered
        if not delivered or lost < LT_LOSS_THRESH * delivered:
            return
        # the kernel counts the interval in whole ms (div_u64(delivered_mstamp, USEC_PER_MSEC))
        t = math.floor(self.delivered_t * 1000) - math.floor(self.lt_last_stamp * 1000)
        if t < 1:
            return
        bw = delivered / (t / 1000)
        if self.lt_bw:
            diff = abs(bw - self.lt_bw)
            if diff <= LT_BW_RATIO * self.lt_bw or self._rate(diff, 1.0) <= LT_BW_DIFF:
                self.lt_bw = (bw + self.lt_bw) / 2
                self.lt_use_bw = True
                self.pacing_gain = 1.0
                self.lt_rtt_cnt = 0
                return
        self.lt_bw = bw
        self._lt_reset_interval()

    # -- state changes the ACK path and the RTO make ------------------------------------------------------
    def on_recovery(self, cwnd: int) -> int | None:
        """``bbr_ssthresh()`` on entering Recovery (or Loss): save cwnd; ssthresh is unchanged."""
        self._save_cwnd(cwnd)
        return self.ssthresh

    def on_loss(self) -> None:
        """``bbr_set_state(TCP_CA_Loss)``: an RTO ends the round and restarts full-pipe detection."""
        self.prev_ca_state = "Loss"
        self.full_bw = 0.0
        self.round_start = True
        self._lt_bw_sampling(self.delivered_t, RateSample(losses=1))
