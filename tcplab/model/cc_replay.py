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

__all__ = ["Step", "replay"]


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
