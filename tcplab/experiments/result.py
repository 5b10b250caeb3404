"""The :class:`Result` every experiment returns, real or simulated.

>>> from tcplab.model.outcome import Fidelity, Outcome
>>> r = Result.from_outcome("accept_queue", "sim", "asked for", {"backlog": 5},
...                         Outcome(summary={"recv_q": 6}))
>>> r.summary["recv_q"], r.mode
(6, 'sim')

A real run the host disturbed says so (:attr:`Result.fidelity`, decided in
``tcplab.experiments._mode``), in its repr and badge:

>>> from tcplab.model.outcome import Fidelity
>>> busy = Fidelity(False, "host busy: the delay line released packets up to 11 ms late")
>>> r = Result.from_outcome("congestion", "real", "private netns", {}, Outcome(), kernel="6.18", fidelity=busy)
>>> r.trusted, r.badge
(False, 'REAL, host busy')
>>> repr(r)  # doctest: +ELLIPSIS
'<Result congestion REAL, host busy (kernel 6.18; private netns; host busy: the delay line released ...) in 0.00 s: >'
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tcplab.model.outcome import Fidelity, Outcome


if TYPE_CHECKING:  # pandas is imported lazily: `import tcplab` stays light
    import pandas as pd

__all__ = ["Result"]


@dataclass
class Result:
    """What one experiment run produced.

    name:       experiment name, e.g. ``"accept_queue"``.
    mode:       ``"real"`` (the Linux kernel) or ``"sim"`` (the simulator).
    reason:     why this mode ran (e.g. "private user+net namespace (unprivileged)").
    params:     every input, defaults filled in.
    kernel:     ``uname -r`` of the kernel that ran it (None when simulated).
    sysctls:    sysctl values in force during the run.
    counters:   kernel counter deltas over the run (kernel names, e.g. ``ListenOverflows``).
    summary:    flat dict of the headline numbers (keys in docs/experiments.md).
    tables:     name -> pandas DataFrame.
    timeline:   DataFrame of time-stamped samples (column ``t`` in s) or None.
    profile:    the simulator's kernel profile name (None when real).
    duration_s: wall-clock seconds the run took.
    notes:      sentences worth showing (e.g. "loopback slowed by 20 ms netem").
    absent_sysctls: sysctls this kernel does not have that the experiment records elsewhere
                (e.g. ``net.ipv4.tcp_syn_linear_timeouts`` before 6.5); the notes say what that means.
    fidelity:   the verdict on a real run's own timing (:class:`~tcplab.model.outcome.Fidelity`:
                ``ok``, ``reason``): of this run when real; of the rejected real runs when
                mode="auto" fell back to the simulator because the host was too busy; None when
                no real run was made.
    sampled:    the real run observed by sampling (/proc every ms) rather than from the packets: a
                state shorter than that may be missing (the agreement grid's ``States`` rule is laxer).
    """

    name: str
    mode: str
    reason: str
    params: dict[str, Any]
    kernel: str | None = None
    sysctls: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    timeline: pd.DataFrame | None = None
    profile: str | None = None
    duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    absent_sysctls: tuple[str, ...] = ()
    fidelity: Fidelity | None = None
    sampled: bool = False

    @property
    def trusted(self) -> bool:
        """True unless this is a real run that lost fidelity: its figures are the kernel's (or the
        simulator's), not a busy host's."""
        return self.mode != "real" or self.fidelity is None or self.fidelity.ok

    @property
    def badge(self) -> str:
        """``"REAL"``, ``"SIMULATED"`` or ``"REAL, host busy"`` (a real run that lost fidelity)."""
        if self.mode != "real":
            return "SIMULATED"
        return "REAL" if self.trusted else "REAL, host busy"

    @property
    def provenance(self) -> str:
        """One line: what produced these figures, why, and (real) the fidelity verdict.

        >>> Result("x", "sim", "mode='sim' was asked for", {}, profile="linux-6.18").provenance
        "SIMULATED (linux-6.18): mode='sim' was asked for"
        """
        where = f"Linux {self.kernel}" if self.mode == "real" else str(self.profile)
        line = f"{self.badge} ({where}): {self.reason}"
        if self.mode == "real" and self.fidelity is not None:
            line += f"; {self.fidelity.reason}"
        return line

    @property
    def alt_text(self) -> str:
        """What this run's figure shows, in one or two sentences with the run's own numbers and
        REAL or SIMULATED: the figure's text alternative (a screen reader reads it; panels and
        figures show it on request). Built from the summary, for every experiment.

        >>> r = Result("syn_retries", "sim", "asked", {"retries": 1}, profile="linux-6.18",
        ...            summary={"syns_sent": 2, "retransmit_times": [1.0], "failed_after": 3.0, "error": "ETIMEDOUT"})
        >>> r.alt_text
        '2 SYNs sent, retransmitted at 1 s; connect() failed after 3 s with ETIMEDOUT. SIMULATED (linux-6.18).'
        """
        from tcplab.experiments._describe import describe

        return describe(self)

    @classmethod
    def from_outcome(cls, name: str, mode: str, reason: str, params: dict[str, Any], outcome: Outcome, *,
                     kernel: str | None = None, profile: str | None = None, duration_s: float = 0.0,
                     fidelity: Fidelity | None = None) -> Result:
        """Turn plain-data :class:`Outcome` rows into DataFrames."""
        import pandas as pd

        tables = {k: pd.DataFrame(rows) for k, rows in outcome.tables.items()}
        timeline = pd.DataFrame(outcome.timeline) if outcome.timeline else None
        return cls(name=name, mode=mode, reason=reason, params=dict(params), kernel=kernel,
                   sysctls=dict(outcome.sysctls), counters=dict(outcome.counters), summary=dict(outcome.summary),
                   tables=tables, timeline=timeline, profile=profile, duration_s=duration_s,
                   notes=list(outcome.notes), absent_sysctls=tuple(outcome.absent_sysctls), fidelity=fidelity,
                   sampled=outcome.sampled)

    def __repr__(self) -> str:
        where = f"kernel {self.kernel}" if self.mode == "real" else f"profile {self.profile}"
        summary = ", ".join(f"{k}={v!r}" for k, v in self.summary.items())
        lost = f"; {self.fidelity.reason}" if self.mode == "real" and not self.trusted and self.fidelity else ""
        return (f"<Result {self.name} {self.badge} ({where}; {self.reason}{lost}) "
                f"in {self.duration_s:.2f} s: {summary}>")

    def _repr_html_(self) -> str:
        esc = html.escape
        real = self.mode == "real"
        color = ("#1a7f37" if self.trusted else "#cf222e") if real else "#9a6700"
        badge = (f'<span class="tcplab-badge" style="background:{color};color:white;padding:2px 6px;border-radius:4px;'
                 f'font-weight:bold">{esc(self.badge)}</span>')
        lost = (f"<div style='color:#cf222e;font-weight:bold'>⚠ {esc(self.fidelity.reason)}</div>"
                if self.fidelity is not None and not self.fidelity.ok else "")
        where = f"Linux {esc(str(self.kernel))}" if real else f"profile {esc(str(self.profile))}"

        def table(d: dict[str, Any], title: str) -> str:
            if not d:
                return ""
            rows = "".join(f"<tr><td><code>{esc(str(k))}</code></td><td>{esc(str(v))}</td></tr>"
                           for k, v in d.items())
            return f"<details open><summary>{title}</summary><table>{rows}</table></details>"

        nonzero = {k: v for k, v in self.counters.items() if v}
        notes = "".join(f"<li>{esc(n)}</li>" for n in self.notes)
        # the class and data-mode: what the course site's check (tests/test_site.py) finds results by
        return (f"<div class='tcplab-result' data-mode='{esc(self.mode)}'><b>{esc(self.name)}</b> {badge} <small>{where} — {esc(self.reason)} — "
                f"{self.duration_s:.2f} s</small>" + lost
                + table(self.summary, "summary")
                + table(nonzero, "counters (deltas, nonzero)")
                + table(self.sysctls, "sysctls in force")
                + (f"<ul>{notes}</ul>" if notes else "") + "</div>")
