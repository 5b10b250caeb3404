"""What a run produced, before it becomes a :class:`tcplab.experiments.Result`.

Both the real runners (``tcplab.experiments``) and the simulator (``tcplab.sim``)
return an :class:`Outcome` made only of plain Python data (no pandas), so the
simulator stays fast and pure and both sides are compared field by field.

>>> o = Outcome(summary={"recv_q": 6}, counters={"ListenOverflows": 28})
>>> o.summary["recv_q"]
6

A real runner also reports what it measured about its own timing (:class:`Timing`); the spec's
summary keys say how much of it they tolerate, and one verdict (:class:`Fidelity`) comes of it
(``tcplab.experiments.spec.Experiment.judge``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Outcome", "Timing", "Fidelity"]


@dataclass(frozen=True)
class Timing:
    """Something a real runner measured about its own timing, by which its run is judged.

    name:     what was measured, as the spec's ``Key.tolerates`` names it: ``"delay_line"`` (how
              late a userspace delay line released packets), ``"sampler"`` (how long a sampling
              loop went without the CPU), ...
    ms:       the figure judged, in milliseconds (e.g. the delay line's p99 release lateness).
    detail:   what a learner reads when it is too large: "the delay line released 2% of its packets
              more than 11 ms late (max 40 ms)".
    limit_ms: the runner's own bound, used by the keys of a spec that declares none for ``name``.

    >>> Timing("sampler", 200.0, "the sampler went 200 ms without the CPU", limit_ms=50).ms
    200.0
    """

    name: str
    ms: float
    detail: str
    limit_ms: float | None = None


@dataclass(frozen=True)
class Fidelity:
    """Whether a real run measured the kernel alone, or a busy host too: the verdict on its timings.

    ok:       every timing within what the summary keys tolerate.
    reason:   one sentence: what was measured and, when lost, what it spoils
              ("host busy: the delay line released ... late, so utilization and srtt_p50_ms are not
              the kernel's alone").
    timings:  what the runner measured (the evidence).
    keys:     the summary keys whose tolerance was exceeded (empty when ok).
    attempts: real runs made: 2 when the first lost fidelity and was repeated.

    >>> Fidelity(True, "timing held").ok
    True
    """

    ok: bool
    reason: str
    timings: tuple[Timing, ...] = ()
    keys: tuple[str, ...] = ()
    attempts: int = 1


@dataclass
class Outcome:
    """Plain-data result of one run.

    summary:  flat dict of headline numbers (the experiment's documented keys).
    counters: kernel counter deltas over the run, kernel names (e.g. "ListenOverflows").
    tables:   name -> list of row dicts (become DataFrames in the Result).
    timeline: list of row dicts with a ``t`` column in seconds since the start.
    sysctls:  sysctl name -> value in force during the run (e.g. "net.core.somaxconn": 4096).
    notes:    human sentences worth showing (e.g. "loopback slowed by 20 ms netem"); text, not flags.
    absent_sysctls: sysctls the run wanted to record that this kernel does not have.
    timings:  what a real runner measured about its own timing (:class:`Timing`); the simulator
              reports none.
    sampled:  the real run observed by sampling (e.g. /proc/net/tcp every ms) rather than from the
              packets, so a state shorter than the sampling interval may be missing (a flag, not a note).
    incomplete: why a real run could not observe what the experiment is about (e.g. no packet
              capture here), or None; mode="auto" then simulates, mode="real" says so in its reason.
    profile:  the simulator's kernel profile name (None when real).
    """

    summary: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    sysctls: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    absent_sysctls: list[str] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=list)
    sampled: bool = False
    incomplete: str | None = None
    profile: str | None = None
