"""Client SYN retransmission schedule (``tcp_retransmit_timer`` / ``tcp_write_timeout``).

docs/kernel-facts.md case 3, ``net/ipv4/tcp_timer.c``:

* the RTO starts at ``TCP_TIMEOUT_INIT`` (1 s) and is doubled (capped at ``TCP_RTO_MAX``)
  only ``if (sk->sk_state != TCP_SYN_SENT || tp->total_rto > sysctl_tcp_syn_linear_timeouts)``,
  so with linear_timeouts=4 the first 5 retransmits are 1 s apart;
* when the timer fires, ``tcp_write_timeout()`` gives up if
  ``icsk_retransmits >= retries + linear_timeouts`` **or** (``retransmits_timed_out()``)
  the time since the first SYN is ``>= ((2 << retries) - 1) * 1 s``. Both are checked
  only when the timer fires, which is why k=3 fails at 19 s and not 15 s.

The model adds no jitter (real RTOs drift by ~0.2-0.4 s at later retries).

>>> syn_schedule(1, 4)
SynSchedule(send_times=(0.0, 1.0, 2.0), fail_after=3.0)
>>> syn_schedule(3, 4).send_times, syn_schedule(3, 4).fail_after
((0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 11.0), 19.0)
>>> syn_schedule(3, 0)
SynSchedule(send_times=(0.0, 1.0, 3.0, 7.0), fail_after=15.0)
>>> len(syn_schedule(6, 4).send_times), syn_schedule(6, 4).fail_after
(11, 131.0)
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from tcplab.model.rto import TCP_RTO_MAX, TCP_TIMEOUT_INIT

__all__ = ["SynSchedule", "syn_schedule"]


class SynSchedule(NamedTuple):
    """SYN send times relative to the first SYN, and when connect() fails (ETIMEDOUT)."""

    send_times: tuple[float, ...]
    fail_after: float

    @property
    def retransmissions(self) -> int:
        return len(self.send_times) - 1


@lru_cache(maxsize=256)
def syn_schedule(retries: int, linear_timeouts: int = 4, rto_initial: float = TCP_TIMEOUT_INIT,
                 rto_max: float = TCP_RTO_MAX) -> SynSchedule:
    """Replay the RTO timer of a SYN_SENT socket that never gets an answer."""
    if retries < 1:
        raise ValueError(f"retries must be an int >= 1, not {retries}")
    budget = ((2 << retries) - 1) * rto_initial        # tcp_model_timeout(): (2 << boundary) - 1
    max_retransmits = retries + linear_timeouts          # tcp_write_timeout()
    sends = [0.0]
    rto = rto_initial
    now = 0.0
    retransmits = 0                                      # icsk_retransmits == total_rto here
    while True:
        now += rto                                       # the RTO timer fires
        if retransmits >= max_retransmits or now >= budget:
            return SynSchedule(tuple(sends), now)
        sends.append(now)
        retransmits += 1
        if retransmits > linear_timeouts:                # exponential backoff after the linear part
            rto = min(rto * 2, rto_max)
