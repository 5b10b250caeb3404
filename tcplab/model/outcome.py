"""What a run produced, before it becomes a :class:`tcplab.experiments.Result`.

Both the real runners (``tcplab.experiments``) and the simulator (``tcplab.sim``)
return an :class:`Outcome` made only of plain Python data (no pandas), so the
simulator stays fast and pure and both sides are compared field by field.

>>> o = Outcome(summary={"recv_q": 6}, counters={"ListenOverflows": 28})
>>> o.summary["recv_q"]
6
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Outcome"]


@dataclass
class Outcome:
    """Plain-data result of one run.

    summary:  flat dict of headline numbers (the experiment's documented keys).
    counters: kernel counter deltas over the run, kernel names (e.g. "ListenOverflows").
    tables:   name -> list of row dicts (become DataFrames in the Result).
    timeline: list of row dicts with a ``t`` column in seconds since the start.
    sysctls:  sysctl name -> value in force during the run (e.g. "net.core.somaxconn": 4096).
    notes:    human sentences worth showing (e.g. "loopback slowed by 20 ms netem").
    absent_sysctls: sysctls the run wanted to record that this kernel does not have.
    """

    summary: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    sysctls: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    absent_sysctls: list[str] = field(default_factory=list)
