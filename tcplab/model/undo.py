"""A spurious RTO and its undo: when the timers fire as an RTT spike holds every ACK back, and which
rule of Linux finds out the data was only late.

The rules, one place (Linux 6.x; ``net/ipv4/tcp_output.c``, ``tcp_timer.c``, ``tcp_input.c``):

1. **The loss probe** (``tcp_schedule_loss_probe()``, re-armed at every transmission): PTO =
   ``usecs_to_jiffies(2 * srtt)`` plus ``TCP_TIMEOUT_MIN`` (2 jiffies), or plus the RTO floor when a
   single packet is in flight (the peer's delayed ACK), but never later than the RTO would fire.
   When it fires (``tcp_send_loss_probe()``) it sends new data if the receiver's window allows, else
   retransmits the last segment, and re-arms the RTO a full ``icsk_rto`` from *now*
   (``icsk_pending = 0`` then ``tcp_rearm_rto()``): :func:`pto_us`.
2. **The RTO** (``tcp_retransmit_timer()``): ``tcp_enter_loss()`` sets cwnd to the packets in flight
   + 1 (all marked lost: 1), saves the old cwnd for an undo (``prior_cwnd``), retransmits the head and
   doubles ``icsk_rto`` (``icsk_backoff``): the next RTO fires 2x, 4x ... later if no ACK comes.
3. **The undo** (``tcp_process_loss()``, the ACK that first advances ``snd_una`` in Loss state):
   ``tcp_try_undo_loss(sk, false)`` undoes when ``tcp_may_undo()``: the ACK echoes a timestamp older
   than the first retransmission (``tcp_packet_delayed()``: the original, not the copy, got there)
   -> TCPLossUndo. Without timestamps, F-RTO (net.ipv4.tcp_frto, RFC 5682; ``tp->frto`` set by
   ``tcp_enter_loss()``) sends *new* data on that first ACK instead of retransmitting (step 2.b), and
   when the next ACK acknowledges never-retransmitted data (``FLAG_ORIG_SACK_ACKED``) calls
   ``tcp_try_undo_loss(sk, true)`` -> TCPLossUndo and TCPSpuriousRTOs. With neither, the sender
   goes back N (retransmits everything in slow start from cwnd 1); every copy comes back as a DSACK,
   and once all of them are DSACKed ``tcp_try_undo_dsack()`` restores cwnd -> TCPDSACKUndo.
   Every undo sets cwnd back to at least ``prior_cwnd`` (``tcp_undo_cwnd_reduction()``).
4. **Karn** (``tcp_clean_rtx_queue()``): an ACK covering a retransmitted segment gives no RTT sample
   without timestamps, so srtt stays what it was through a go-back-N recovery.

>>> ep = episode(rtt_ms=20, spike_ms=1200, spike_at_s=1.0, timestamps=True, frto=2)
>>> ep.rto_us, ep.pto_us, round(ep.probe_at_s, 3), [round(t, 3) for t in ep.rto_at_s], ep.ack_back_s
(224000, 52000, 1.057, [1.281], 1.6)
>>> ep.undone_by, ep.cwnd_lowest
('timestamps', 1)
>>> episode(20, 1200, 1.0, timestamps=False, frto=2).undone_by, episode(20, 1200, 1.0, False, 0).undone_by
('F-RTO', 'DSACK')
>>> [round(t, 3) for t in episode(20, 1200, 1.0, False, 0).rto_at_s]   # going back N: the copies' ACKs are late too
[1.281, 2.048]
>>> e = episode(20, 400, 1.0, True, 2); e.rtos, e.undone_by    # the ACKs are back before the RTO
(0, None)
>>> len(episode(20, 1800, 1.0, True, 2).rto_at_s)               # 2 timeouts: 224 ms, then 448 ms
2
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tcplab.model.profiles import DEFAULT_PROFILE, PROFILES
from tcplab.model.rtt import usecs_to_jiffies

__all__ = ["pto_us", "undo_rule", "episode", "Episode", "UNDO_RULES", "SERIALIZATION_S"]

_DEFAULT = PROFILES[DEFAULT_PROFILE]
#: include/net/tcp.h: TCP_TIMEOUT_MIN, 2 jiffies
TCP_TIMEOUT_MIN_JIFFIES = 2
#: what undoes a spurious RTO, by the counter it bumps (None: nothing did)
UNDO_RULES = ("timestamps", "F-RTO", "DSACK", None)
#: a full segment (1500 bytes on the wire) at the bottleneck's 50 Mbit/s: what every RTT sample
#: carries beyond the delay line's RTT (srtt before the spike is rtt + about two of these)
SERIALIZATION_S = 1500 * 8 / 50e6


def pto_us(srtt_us: int, packets_out: int, rto_us: int, tick: float = _DEFAULT.timer_tick,
           rto_min_us: int = round(_DEFAULT.rto_min * 1e6)) -> int:
    """``tcp_schedule_loss_probe()``'s timeout in µs, from the time of the last transmission:
    2 * srtt in whole jiffies, plus 2 jiffies (or the RTO floor with one packet in flight, for the
    peer's delayed ACK), at most ``rto_us`` (the RTO's own remaining time).

    >>> pto_us(20_500, 13, 224_000), pto_us(20_500, 1, 224_000), pto_us(200_000, 13, 224_000)
    (52000, 224000, 224000)
    """
    tick_us = round(tick * 1e6)
    jiffies = usecs_to_jiffies(2 * srtt_us, tick_us)
    jiffies += usecs_to_jiffies(rto_min_us, tick_us) if packets_out == 1 else TCP_TIMEOUT_MIN_JIFFIES
    return min(jiffies * tick_us, usecs_to_jiffies(rto_us, tick_us) * tick_us)


def undo_rule(rto_fired: bool, timestamps: bool, frto: int, dsacks_return: bool = True) -> str | None:
    """Which rule undoes the RTO (:data:`UNDO_RULES`): timestamps first (the first ACK decides), then
    F-RTO (the second ACK), then the DSACKs of every copy (``dsacks_return``: they are back before the
    run ends).

    >>> undo_rule(True, True, 0), undo_rule(True, False, 2), undo_rule(True, False, 0), undo_rule(False, True, 2)
    ('timestamps', 'F-RTO', 'DSACK', None)
    """
    if not rto_fired:
        return None
    if timestamps:
        return "timestamps"
    if frto:
        return "F-RTO"
    return "DSACK" if dsacks_return else None


@dataclass
class Episode:
    """One spike's timers and undo (times in s on the run's clock)."""

    srtt_us: int
    rto_us: int
    pto_us: int
    last_send_s: float
    probe_at_s: float | None
    ack_back_s: float
    rto_at_s: list[float] = field(default_factory=list)
    undone_by: str | None = None

    @property
    def rtos(self) -> int:
        return len(self.rto_at_s)

    @property
    def cwnd_lowest(self) -> int | None:
        """``tcp_enter_loss()``: cwnd = packets in flight (all marked lost: none) + 1."""
        return 1 if self.rto_at_s else None

    @property
    def undo_at_s(self) -> float | None:
        """When timestamps or F-RTO undo: at the first ACK back (F-RTO's second ACK follows it within
        the same flight); None for the DSACK undo (after go-back-N, not modelled in time) or none."""
        return self.ack_back_s if self.undone_by in ("timestamps", "F-RTO") else None


def episode(rtt_ms: float, spike_ms: float, spike_at_s: float, timestamps: bool, frto: int, *,
            spike_s: float | None = None, seconds: float | None = None, tick: float = _DEFAULT.timer_tick,
            in_flight: int = 13) -> Episode:
    """The timers of a window-limited bulk sender whose path's RTT jumps from ``rtt_ms`` to
    ``spike_ms`` at ``spike_at_s`` (the delay line fixes a packet's delay when it reaches the line).

    - The last ACK that entered the return line before the spike arrives within ``rtt_ms / 2`` of
      it: the sender sends its last segments then (taken half-way, ``rtt_ms / 4`` after the spike
      starts) and is then window-limited: nothing more leaves, so the probe timer set by that last
      transmission is not re-armed. The first ACK the spike held entered the line as it began:
      it comes back ``spike_ms / 2`` after (``ack_back_s``).
    - The probe fires PTO after the last send (if before the ACK is back), the first RTO a full RTO
      after the probe, then each one twice the one before, until the ACK is back. Going back N (no
      timestamps, no F-RTO), the copies sent at that ACK cross the spiked line too: the RTO, re-armed
      there still doubled, fires again until their ACKs are back.
    - ``spike_s`` and ``seconds``: the DSACK undo needs the copies' DSACKs back before the run ends
      (taken as: at least 0.5 s left after the spike).
    """
    tick_us = round(tick * 1e6)
    srtt_us = round((rtt_ms / 1000 + 2 * SERIALIZATION_S) * 1e6)
    rto_floor_us = round(_DEFAULT.rto_min * 1e6)
    rto_us = usecs_to_jiffies(srtt_us + rto_floor_us, tick_us) * tick_us
    last_send = spike_at_s + rtt_ms / 4000
    ack_back = round(spike_at_s + spike_ms / 2000, 6)
    pto = pto_us(srtt_us, in_flight, rto_us, tick)
    probe_at = last_send + pto / 1e6
    ep = Episode(srtt_us, rto_us, pto, last_send, probe_at if probe_at < ack_back else None, ack_back)
    if ep.probe_at_s is not None:
        t, rto = probe_at + rto_us / 1e6, rto_us
        while t < ack_back and len(ep.rto_at_s) < 16:
            ep.rto_at_s.append(t)
            rto *= 2
            t += rto / 1e6
    spike_end = spike_at_s + (spike_ms / 1000 if spike_s is None else spike_s)
    dsacks_back = seconds is None or seconds - spike_end >= 0.5
    ep.undone_by = undo_rule(bool(ep.rto_at_s), timestamps, frto, dsacks_back)
    if ep.rto_at_s and ep.undone_by not in ("timestamps", "F-RTO"):
        # going back N: the first ACK back re-arms the RTO, still backed off (it gives no RTT sample - Karn - so
        # tcp_set_rto() never resets it), and the copies sent then cross the spiked line: until their ACKs are
        # back the RTO fires again at each doubling
        def one_way(t: float) -> float:
            return (spike_ms if spike_at_s <= t < spike_end else rtt_ms) / 2000

        copies_back = ack_back + one_way(ack_back)
        copies_back += one_way(copies_back)
        rto = rto_us * 2 ** len(ep.rto_at_s)
        t = ack_back + rto / 1e6
        while t < copies_back and len(ep.rto_at_s) < 16:
            ep.rto_at_s.append(t)
            rto *= 2
            t += rto / 1e6
    return ep
