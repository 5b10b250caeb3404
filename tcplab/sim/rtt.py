"""The RTT estimator on a paced flow through the bottleneck path, simulated ACK by ACK.

The sender of :mod:`tcplab.experiments.rtt_rto` writes two full segments every ``interval`` s (an
application-limited flow: nothing queues); the receiver ACKs each pair at once (two full segments
received, ``__tcp_ack_snd_check()``). Each pair's RTT sample is what the path gives it: the delay
line's one-way delay each way, fixed when the packet reaches the line (the RTT in force then; FIFO:
after a decrease a packet still leaves behind the ones already held), plus the bottleneck's
serialization of the pair's second segment. The handshake gives the first sample (the SYN-ACK
acknowledges the SYN). Every sample goes through :class:`tcplab.model.rtt.RttEstimator`.

>>> run = simulate_rtt(40, None, 2.0, 3.0, rto_min_route_ms=None, rate_mbit=50)
>>> run.timeline[-1]["rto_ms"], run.samples
(244.0, 293)
>>> changed = simulate_rtt(40, 80, 1.0, 3.0, rto_min_route_ms=None, rate_mbit=50)
>>> changed.timeline[-1]["srtt_ms"], changed.timeline[-1]["rto_ms"]
(80.24, 284.0)
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

from tcplab.model.profiles import DEFAULT_PROFILE, PROFILES
from tcplab.model.rtt import RttEstimator, rto_min_us

__all__ = ["simulate_rtt", "RttRun", "PACKET_BYTES"]

#: bytes of one full segment on the wire (MTU 1500, what tbf serializes)
PACKET_BYTES = 1500


@dataclass
class RttRun:
    """timeline: rows t, srtt_ms, rttvar_ms, rto_ms, min_rtt_ms, path_rtt_ms every ``sample_s``;
    samples: RTT samples the estimator took (the handshake's included)."""

    timeline: list[dict[str, Any]] = field(default_factory=list)
    samples: int = 0


def simulate_rtt(rtt_ms: float, rtt_after_ms: float | None, change_at_s: float, seconds: float, *,
                 rto_min_route_ms: int | None, rate_mbit: float, interval_s: float = 0.01,
                 sample_s: float = 0.005, tick: float | None = None,
                 rto_min_sysctl_us: int | None = None, acks_per_pair: int = 1) -> RttRun:
    """Simulate ``seconds`` of the paced flow; the path's RTT is ``rtt_ms`` until ``change_at_s``
    (s after the path is ready, which is when the client connects), ``rtt_after_ms`` from then on.

    ``acks_per_pair``: 1, the receiver ACKs the pair when its second segment arrives; 2, it ACKs each
    segment (two samples, the first without the second's serialization)."""
    if acks_per_pair not in (1, 2):
        raise ValueError(f"acks_per_pair must be 1 or 2, not {acks_per_pair!r}")
    tick = PROFILES[DEFAULT_PROFILE].timer_tick if tick is None else tick
    est = RttEstimator(rto_min_us(rto_min_sysctl_us, rto_min_route_ms, tick), tick=tick)
    ser = PACKET_BYTES * 8 / (rate_mbit * 1e6)

    def one_way(t: float) -> float:
        late = rtt_after_ms is not None and t >= change_at_s
        return (rtt_after_ms if late else rtt_ms) / 2000   # type: ignore[operator]

    fifo = {"fwd": 0.0, "back": 0.0}

    def cross(t: float, way: str) -> float:
        """When a packet reaching the delay line at ``t`` leaves it (FIFO behind earlier ones)."""
        due = max(t + one_way(t), fifo[way])
        fifo[way] = due
        return due

    # events: (time, kind, burst) - the handshake first (SYN at 0)
    syn_ack = cross(cross(0.0, "fwd"), "back")
    acks: list[tuple[float, int, int]] = []      # (arrival, pair, segments it acknowledges: 1 or 2)
    sends: list[float] = []
    t = syn_ack
    while t < seconds:
        sends.append(t)
        if acks_per_pair == 2:
            acks.append((cross(cross(t, "fwd"), "back"), len(sends) - 1, 1))
        acks.append((cross(cross(t + ser, "fwd"), "back"), len(sends) - 1, 2))
        t += interval_s
    run = RttRun()
    est.sample(round(syn_ack * 1e6), snd_una=1, snd_nxt=1)
    run.samples = 1
    min_rtt = syn_ack
    ai, nxt = 0, 0.0
    acks.sort()
    while nxt <= seconds:
        while ai < len(acks) and acks[ai][0] <= nxt:
            at, k, segs = acks[ai]
            sent = bisect_right(sends, at)                # snd_nxt: every pair written by then
            rtt = at - sends[k]
            min_rtt = min(min_rtt, rtt)
            est.sample(round(rtt * 1e6), snd_una=1 + 2 * k + segs, snd_nxt=1 + 2 * sent)
            run.samples += 1
            ai += 1
        if nxt >= syn_ack:
            run.timeline.append({"t": round(nxt, 4), "srtt_ms": est.srtt_us / 1000,
                                 "rttvar_ms": est.info_rttvar_us / 1000, "rto_ms": est.rto_us / 1000,
                                 "min_rtt_ms": round(min_rtt * 1000, 3),
                                 "path_rtt_ms": one_way(nxt) * 2000})
        nxt = round(nxt + sample_s, 9)
    return run
