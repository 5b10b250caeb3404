"""Choose and run a mode: the real kernel (private namespace, or the host namespace for
per-socket-only parameters) or the simulator.

Decision, in order:

1. ``mode="sim"``: the simulator (the spec's sim runner, through ``registry.simulate``).
2. A private network namespace can be made: run there, with the requested sysctls
   written inside it (the host never changes). Counters are the namespace's own.
3. No namespace: if the experiment needs none (``needs_namespace`` is None) and every
   requested sysctl already has that value on the host, run in the host namespace
   with the host's sysctls (backlog, TCP_SYNCNT are per socket); the Result records
   which values were in force. Otherwise ``mode="real"`` raises
   :class:`RealModeUnavailable` naming the sysctl and the reason, and ``mode="auto"``
   falls back to the simulator with that reason.
4. Fidelity: a real run measures its own timing (``Outcome.timings``: a delay line's lateness, a
   sampler's lag); the spec's summary keys say what they tolerate (``Key.tolerates``), and
   :func:`run` turns that into ``Result.fidelity``. A run that lost it is repeated once; lost
   again, ``mode="real"`` returns it flagged and ``mode="auto"`` simulates with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from tcplab._validate import check_choice, check_int
from tcplab.errors import KernelUnavailable, NamespaceUnavailable, RealModeUnavailable
from tcplab.experiments._common import meters_of_this_run
from tcplab.experiments.result import Result
from tcplab.kernel.namespace import in_namespace, namespace_support
from tcplab.kernel.netstat import counters_delta, read_counters
from tcplab.kernel.sysctl import read_sysctl, sysctl_exists
from tcplab.model.outcome import Fidelity, Outcome, Timing
from tcplab.model.profiles import sysctl_arrival


__all__ = ["MODES", "check_mode", "run", "Progress", "host_sysctl", "absent_on_host", "absence_note", "RUN_LOG_ENV"]

#: when set to a file name, :func:`run` appends one JSON line per Result to it: which mode ran, why,
#: and the fidelity verdict with its timings. The load measurements of docs/reliability.md read it to
#: count, over a whole nbval run of the course, the real runs that lost fidelity (nbval shows no outputs).
RUN_LOG_ENV = "TCPLAB_RUN_LOG"
_DISCARDED = "a first real run lost fidelity and was discarded"

MODES = ("auto", "real", "sim")
Progress = Callable[[float, str], Any]

#: tcp counters every result carries even when zero (so summaries can index them)
BASE_COUNTERS = ("ListenOverflows", "ListenDrops")


def check_mode(mode: Any, seed: Any, profile: Any) -> tuple[str, int, str | None]:
    """Validate the three arguments every experiment shares."""
    check_choice("mode", mode, MODES)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    if profile is not None and not isinstance(profile, str):
        raise TypeError(f"profile must be None or a simulator profile name such as 'linux-6.18', not {profile!r}")
    return mode, seed, profile


def host_sysctl(name: str) -> Any:
    """Current value of a sysctl in the caller's namespace (tuples for multi-value files)."""
    return read_sysctl(name)


def absence_note(name: str, release: str | None = None) -> str:
    """What it means that this kernel (``release``, if given) lacks sysctl ``name``, from the
    profile's change table.

    >>> absence_note("net.ipv4.tcp_syn_linear_timeouts", "6.1.0-57-amd64")
    'this kernel (6.1.0-57-amd64) has no net.ipv4.tcp_syn_linear_timeouts (added in Linux 6.5, commit ccce324dabfe): older kernels double the SYN RTO from the first retry'
    """
    change = sysctl_arrival(name)
    if change is None:
        return (f"{name} is not visible in this network namespace (a global sysctl, or one this kernel hides "
                "from a namespace an unprivileged user owns, as 6.1 does net.core.somaxconn)")
    kernel = f"this kernel ({release})" if release else "this kernel"
    return f"{kernel} has no {name} (added in {change.where}): {change.older}"


def absent_on_host(names: Any) -> list[str]:
    """The sysctls of ``names`` this kernel does not have (checked in the caller's namespace)."""
    return [n for n in names if not sysctl_exists(n)]


def applicable(sysctls: dict[str, Any]) -> dict[str, Any]:
    """``sysctls`` without those this kernel lacks and whose asked value is what it does anyway
    (``KernelChange.absent_means``: ``tcp_syn_linear_timeouts=0`` on 6.1, which doubles the SYN RTO
    from the first retry), so such a run is real on that kernel, not refused.

    >>> applicable({"net.ipv4.tcp_syncookies": 1})
    {'net.ipv4.tcp_syncookies': 1}
    """
    out = {}
    for name, value in sysctls.items():
        change = sysctl_arrival(name)
        if (change is not None and change.absent_means is not None and _same(value, change.absent_means)
                and not sysctl_exists(name)):
            continue
        out[name] = value
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool):
        a = int(a)
    if isinstance(a, (list, tuple)):
        return tuple(a) == (tuple(b) if isinstance(b, (list, tuple)) else (b,))
    return a == b


def _read_counters() -> dict[str, int]:
    return read_counters()


def _run_here(real: Callable[[dict[str, Any]], Outcome], params: dict[str, Any],
              record: tuple[str, ...]) -> tuple[Outcome, str]:
    """Run ``real`` in the current network namespace (the namespace child, or the host as a
    fallback) and add the counter deltas and the sysctls in force, read in that same namespace."""
    before = _read_counters()
    with meters_of_this_run() as meters:
        outcome = real(params)
    outcome.timings += [m.timing() for m in meters]
    if not outcome.counters:
        delta = counters_delta(before, _read_counters())
        outcome.counters = {k: v for k, v in delta.items() if v or k in BASE_COUNTERS}
    for name in record:
        if not sysctl_exists(name):
            # a kernel older than the sysctl: record its absence, never a made-up value
            outcome.absent_sysctls.append(name)
            outcome.notes.append(absence_note(name))
            continue
        try:
            outcome.sysctls.setdefault(name, host_sysctl(name))
        except OSError:
            outcome.sysctls.setdefault(name, None)
    return outcome, os.uname().release


def _log_run(result: Result) -> None:
    """Append ``result``'s verdict to the file named by ``TCPLAB_RUN_LOG`` (if set). Never raises:
    a log that cannot be written must not break a learner's run."""
    path = os.environ.get(RUN_LOG_ENV)
    if not path:
        return
    fid = result.fidelity
    entry = {"t": round(time.time(), 3), "name": result.name, "mode": result.mode, "badge": result.badge,
             "trusted": result.trusted, "reason": result.reason, "duration_s": round(result.duration_s, 3),
             "params": result.params, "kernel": result.kernel, "summary": result.summary,
             # the verdict on a first run that lost fidelity and was repeated (its note)
             "discarded": [n for n in result.notes if n.startswith(_DISCARDED)],
             "fidelity": None if fid is None else _fidelity_entry(fid)}
    _append_line(path, entry)


def _log_failure(name: str, params: dict[str, Any], fid: Fidelity, reason: str) -> None:
    """The run log's line for a run that returned no Result (see :func:`_log_run`)."""
    path = os.environ.get(RUN_LOG_ENV)
    if not path:
        return
    entry = {"t": round(time.time(), 3), "name": name, "mode": None, "badge": None, "trusted": False,
             "reason": reason, "params": params,
             "fidelity": _fidelity_entry(fid)}
    _append_line(path, entry)


def _fidelity_entry(fid: Fidelity) -> dict[str, Any]:
    """A fidelity verdict as the run log writes it."""
    return {"ok": fid.ok, "reason": fid.reason, "attempts": fid.attempts, "keys": list(fid.keys),
            "timings": [{"name": t.name, "ms": t.ms, "limit_ms": t.limit_ms} for t in fid.timings]}


def _append_line(path: str, entry: dict[str, Any]) -> None:
    """One JSON line appended to the run log; a log that cannot be written never fails a run."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, default=str) + "\n")
    except OSError:
        pass


def _simulate(sim: Callable[[dict[str, Any]], Outcome], params: dict[str, Any],
              profile: str | None) -> tuple[Outcome, str | None]:
    out = sim(params)
    return out, out.profile or profile


@contextlib.contextmanager
def _progress_ticks(progress: Progress | None, expected_s: float) -> Iterator[None]:
    """While the block runs, call ``progress(fraction, text)`` every 0.25 s from a helper thread.

    A thread, not the caller: the caller sits in in_namespace() (waiting on the child's pipe), and
    must stay there so that a KeyboardInterrupt reaches it and kills the child. ipywidgets progress
    bars may be updated from a thread.
    """
    if progress is None:
        yield
        return
    start = time.monotonic()
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.25):
            el = time.monotonic() - start
            try:
                progress(min(0.99, el / expected_s) if expected_s > 0 else 0.0,
                         f"{el:.1f} s of ~{expected_s:.1f} s")
            except Exception:  # noqa: BLE001 - a broken progress bar must not break the run
                return

    t = threading.Thread(target=tick, name="tcplab-progress", daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


Judge = Callable[[Sequence[Timing], int], Fidelity]


def _own_limits(timings: Sequence[Timing], attempts: int) -> Fidelity:
    """The verdict when no spec judges: each timing against the runner's own ``limit_ms``."""
    lost = [t.detail for t in timings if t.limit_ms is not None and t.ms > t.limit_ms]
    if lost:
        return Fidelity(False, "host busy: " + "; ".join(lost), tuple(timings), (), attempts)
    return Fidelity(True, "timing held" if timings else "no timing measured", tuple(timings), (), attempts)


def run(name: str, params: dict[str, Any], *, mode: str, seed: int, profile: str | None,
        real: Callable[[dict[str, Any]], Outcome], sim: Callable[[dict[str, Any]], Outcome],
        sysctls: Mapping[str, Any],
        record: tuple[str, ...] = (), needs_namespace: str | None = None, timeout: float = 30.0,
        progress: Progress | None = None, expected_s: float = 0.0, judge: Judge | None = None) -> Result:
    """Run experiment ``name`` with validated ``params`` in the mode chosen as described above.

    real:            module-level function ``params -> Outcome`` (it runs in a forked child).
    sim:             ``params -> Outcome``: the simulator for this experiment.
    sysctls:         sysctls to set for this run (None values already removed).
    record:          sysctl names whose values in force go into ``Result.sysctls``.
    needs_namespace: why this run cannot use the host namespace even with host sysctls
                     (e.g. it changes a route or a qdisc), or None.
    timeout:         the namespace child is killed after this many seconds.
    judge:           ``(timings, attempts) -> Fidelity``, the spec's :meth:`Experiment.judge`
                     (None: each timing against the runner's own limit).

    Fidelity, decided here and nowhere else: a real run whose own timings (``Outcome.timings``)
    exceed what its summary keys tolerate is repeated once. If the repeat holds, it is the
    result (a note says the first was discarded). If it too lost fidelity, ``mode="real"``
    returns it flagged (``Result.fidelity.ok`` False, the badge says "REAL, host busy") and
    ``mode="auto"`` runs the simulator, with the verdict's reason as its reason.

    A real run that could not observe what the experiment is about (``Outcome.incomplete``, e.g.
    no packet capture here) is replaced by the simulator in ``mode="auto"``; ``mode="real"``
    returns it with the reason saying what is missing.
    """

    start = time.monotonic()
    record = tuple(dict.fromkeys((*record, *sysctls)))
    judge = judge or _own_limits

    def done(out: Outcome, mode_: str, reason: str, kernel: str | None, prof: str | None,
             fidelity: Fidelity | None = None) -> Result:
        if progress is not None:
            try:
                progress(1.0, "done")
            except Exception:  # noqa: BLE001
                pass
        result = Result.from_outcome(name, mode_, reason, params, out, kernel=kernel, profile=prof,
                                     duration_s=time.monotonic() - start, fidelity=fidelity)
        _log_run(result)
        return result

    if mode == "sim":
        out, prof = _simulate(sim, params, profile)
        return done(out, "sim", "mode='sim' was asked for", None, prof)

    # progress never goes back: a repeated run shows the fraction the first reached until it passes it
    shown = {"fraction": 0.0, "prefix": ""}

    def ticks(fraction: float, text: str) -> Any:
        shown["fraction"] = max(shown["fraction"], fraction)
        return progress(shown["fraction"], shown["prefix"] + text)  # type: ignore[misc]

    tick = ticks if progress is not None else None

    def attempt() -> tuple[Outcome, str, str] | str:
        """One real run: (outcome, kernel release, why real), or why it cannot run for real."""
        ok, how = namespace_support()
        if ok:
            try:
                with _progress_ticks(tick, expected_s):
                    out, kernel = in_namespace(_run_here, real, params, record, sysctls=dict(sysctls),
                                               timeout=timeout)
            except NamespaceUnavailable as e:
                ok, how = False, e.reason
            except KernelUnavailable as e:
                # a facility the runner needs is missing here (e.g. /dev/net/tun not open to this
                # user): not a failure of the experiment, a reason it cannot run for real
                return f"cannot run {name} on the real kernel here: {e.reason}"
            if ok:
                return out, kernel, f"Linux kernel in a private {how}"
        why_not = how
        if needs_namespace is not None:
            return f"cannot run {name} on the real kernel here: {needs_namespace}, and {why_not}"
        differ = []
        for k, v in sysctls.items():
            try:
                hv = host_sysctl(k)
            except OSError as e:
                differ.append(f"{k} cannot be read on the host ({e.strerror})")
                continue
            if not _same(v, hv):
                differ.append(f"{k}={v!r} was asked but the host has {hv!r}")
        if differ:
            return (f"cannot run {name} on the real kernel here: " + "; ".join(differ)
                    + f", and a sysctl may only be changed in a private namespace, which is unavailable: {why_not}")
        with _progress_ticks(tick, expected_s):
            out, kernel = _run_here(real, params, record)
        out.notes.append("ran in the host network namespace: the sysctls are the host's and the counters "
                         "are host-wide (other programs can add to them)")
        return out, kernel, (f"Linux kernel, host network namespace with the host's sysctls "
                             f"(no private namespace: {why_not})")

    got = attempt()
    if isinstance(got, str):
        if mode == "real":
            raise RealModeUnavailable(got + ". Use mode='sim' (or 'auto') to simulate it.")
        out, prof = _simulate(sim, params, profile)
        return done(out, "sim", got, None, prof)
    out, kernel, why = got
    if out.incomplete is not None and mode == "auto":
        # the real run could not observe what the experiment is about (Outcome.incomplete)
        missing = out.incomplete
        out, prof = _simulate(sim, params, profile)
        return done(out, "sim", f"simulated: {missing}", None, prof)
    verdict = judge(out.timings, 1)
    lost_how = ""
    if not verdict.ok:
        first = verdict
        shown["prefix"] = "repeating (the host was busy): "
        again = attempt()
        if isinstance(again, str):         # the repeat could not start: the first run's verdict stands
            verdict = replace(first, attempts=2)
            lost_how = f"the real run lost fidelity and its repeat could not run ({again})"
        else:
            out, kernel, why = again
            verdict = judge(out.timings, 2)
            lost_how = "the real run was repeated and lost fidelity both times"
        if verdict.ok:
            out.notes.append(f"{_DISCARDED} ({first.reason}); this is the repeat")
    if out.incomplete is not None:
        why = f"{why}; {out.incomplete}"
    if verdict.ok or mode == "real":
        return done(out, "real", why, kernel, None, verdict)
    try:
        out, prof = _simulate(sim, params, profile)
    except ValueError as e:
        # the simulator cannot stand in (e.g. algorithm='bbr'): say why the real run was not kept, or a
        # learner reads only "cannot be simulated ... use mode='real'" on a host where real did run
        _log_failure(name, params, verdict, f"{lost_how}: {verdict.reason}; {e}")
        raise ValueError(f"{e}. Here the real run was made but not kept: {lost_how}: {verdict.reason} "
                         "(mode='real' returns it, flagged)") from e
    return done(out, "sim", f"{lost_how}, so the simulator ran: {verdict.reason}", None, prof, verdict)
