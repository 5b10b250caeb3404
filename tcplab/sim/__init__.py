"""The simulator: every experiment of docs/experiments.md without a kernel.

>>> o = simulate("accept_queue", {"backlog": 5, "clients": 20})
>>> o.summary["established_clients"], o.summary["recv_q"], o.summary["send_q"]
(6, 6, 5)
>>> simulate("nope", {})
Traceback (most recent call last):
ValueError: name must be one of accept_queue, ack_overflow, syn_queue, syn_retries, lifecycle, handshake, time_wait, rebind, load, not 'nope'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tcplab.model.outcome import Outcome
from tcplab.model.profiles import PROFILES, KernelProfile, get_profile
from tcplab.sim import overflow, queues, sockets
from tcplab.sim.engine import Engine, Rng, SplitMix64
from tcplab.sim.params import DEFAULTS, EXPERIMENTS, check_name, validate

__all__ = ["simulate", "EXPERIMENTS", "DEFAULTS", "PROFILES", "Engine", "SplitMix64"]

_RUNNERS: dict[str, Callable[[dict[str, Any], KernelProfile, Rng], Outcome]] = {
    "accept_queue": queues.accept_queue,
    "ack_overflow": overflow.ack_overflow,
    "syn_queue": queues.syn_queue,
    "syn_retries": queues.syn_retries,
    "lifecycle": sockets.lifecycle,
    "handshake": sockets.handshake,
    "time_wait": sockets.time_wait,
    "rebind": sockets.rebind,
    "load": queues.load,
}


def simulate(name: str, params: dict[str, Any] | None = None, *,
             profile: KernelProfile | str | None = None, seed: int = 0) -> Outcome:
    """Run experiment ``name`` in the simulator.

    ``params`` follows docs/experiments.md (missing keys take their defaults, unknown keys
    raise ValueError; ``None`` sysctls mean the profile's default). ``profile`` is a
    :class:`KernelProfile`, a profile name ("linux-6.18", "linux-6.1", "linux-5.15"), a
    kernel release ("6.8.0-45-generic") or None (linux-6.18). ``seed`` makes random
    workloads (load) reproducible. The profile name is in ``notes`` and in
    ``sysctls["tcplab.profile"]``.
    """
    check_name(name)
    p = validate(name, params)
    prof = get_profile(profile)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, not {seed!r}")
    out = _RUNNERS[name](p, prof, SplitMix64(seed))
    out.sysctls["tcplab.profile"] = prof.name
    return out
