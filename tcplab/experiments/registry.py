"""The registry of experiment specs, and what is derived from it.

Every module of ``tcplab/experiments/`` that defines ``SPEC`` (an :class:`~tcplab.experiments.spec.Experiment`,
or ``SPECS``, a tuple of them) is an experiment; nothing else has to list it. From the specs come the public functions
(:func:`make_function`: signature, validation, docstring), the simulator's dispatch
(:func:`simulate`), the CLI's ``tcplab run``, docs/experiments.md (:func:`render_markdown`), the
agreement grid, the shape tests and the generic panel.

>>> "accept_queue" in names() and names() == tuple(sorted(names()))
True
>>> simulate("accept_queue", {"backlog": 5, "clients": 20}).summary["established_clients"]
6
>>> simulate("nope")  # doctest: +ELLIPSIS
Traceback (most recent call last):
ValueError: name must be one of accept_queue, ack_overflow, ...
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from typing import Any

from tcplab.experiments import _mode
from tcplab.experiments.decision import plan
from tcplab.experiments.result import Result
from tcplab.experiments.spec import Experiment
from tcplab.model.outcome import Outcome
from tcplab.model.profiles import KernelProfile, get_profile

__all__ = ["SPECS", "FUNCTIONS", "spec", "names", "functions", "simulate", "simulate_validated", "make_function", "run", "render_markdown"]

#: modules of this package that are machinery, not experiments
_NOT_EXPERIMENTS = frozenset({"spec", "registry", "result", "agreement", "docs", "decision", "timeline", "trace"})


def _discover() -> dict[str, Experiment]:
    import tcplab.experiments as pkg

    found: dict[str, Experiment] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in _NOT_EXPERIMENTS:
            continue
        module = importlib.import_module(f"tcplab.experiments.{info.name}")
        declared = getattr(module, "SPECS", None) or ((module.SPEC,) if hasattr(module, "SPEC") else ())
        for s in declared:
            if not isinstance(s, Experiment):
                raise TypeError(f"tcplab.experiments.{info.name}.SPEC must be an Experiment, not {type(s).__name__}")
            if s.name in found:
                raise ValueError(f"experiment {s.name!r} is declared twice")
            found[s.name] = s
            fn = getattr(module, s.name, None)
            # the module's public function, or one made from the spec when the module has none
            FUNCTIONS[s.name] = fn if getattr(fn, "spec", None) is s else make_function(s)
    return dict(sorted(found.items()))


SPECS: dict[str, Experiment] = {}
FUNCTIONS: dict[str, Callable[..., Result]] = {}


def _specs() -> dict[str, Experiment]:
    if not SPECS:
        SPECS.update(_discover())
    return SPECS


def functions() -> dict[str, Callable[..., Result]]:
    """name -> public function, for every experiment."""
    _specs()
    return dict(FUNCTIONS)


def names() -> tuple[str, ...]:
    """Every experiment's name, sorted."""
    return tuple(_specs())


def spec(name: Any) -> Experiment:
    """The spec of experiment ``name`` (ValueError naming the choices otherwise)."""
    specs = _specs()
    if not isinstance(name, str) or name not in specs:
        err = ValueError if isinstance(name, str) else TypeError
        raise err(f"name must be one of {', '.join(specs)}, not {name!r}")
    return specs[name]


def simulate(name: str, params: dict[str, Any] | None = None, *,
             profile: KernelProfile | str | None = None, seed: int = 0) -> Outcome:
    """Run experiment ``name`` in the simulator and return its plain-data Outcome.

    ``params`` as the public function takes them (missing keys take their defaults, unknown keys
    raise ValueError; ``None`` sysctls mean the profile's default). ``profile`` is a
    ``KernelProfile``, a profile name ("linux-6.18", "linux-6.1", "linux-5.15"), a kernel release
    or None (linux-6.18). ``seed`` makes random workloads reproducible: it seeds the one generator
    the sim runner gets (every random draw of the run comes from it). The profile's name is
    ``Outcome.profile``.
    """
    s = spec(name)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, not {seed!r}")
    return simulate_validated(s, s.validate(params), profile=profile, seed=seed)


def simulate_validated(s: Experiment, params: dict[str, Any], *, profile: KernelProfile | str | None,
                       seed: int) -> Outcome:
    """:func:`simulate` for ``params`` already validated by ``s.validate`` (parameters are
    validated once per run: :func:`run` does it)."""
    prof = get_profile(profile)
    from tcplab.sim.engine import SplitMix64

    out = s.sim(params, prof, SplitMix64(seed))
    out.profile = prof.name
    return out


def run(s: Experiment, given: dict[str, Any], *, mode: str = "auto", seed: int = 0, profile: str | None = None,
        progress: _mode.Progress | None = None) -> Result:
    """Validate ``given`` against ``s`` (once) and run it in ``mode`` (what every public function
    does): :func:`~tcplab.experiments.decision.plan` decides, ``_mode.run`` runs, nothing runs twice."""
    mode, seed, profile = _mode.check_mode(mode, seed, profile)
    if profile is not None:
        get_profile(profile)  # a bad name fails here, before anything runs, whatever the mode
    params = s.validate(given)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be None or a callable progress(fraction, text), not {progress!r}")
    decided = plan(s, params, mode, profile)
    expected = s.expected_s(params) if s.expected_s is not None else 0.0
    sim_profile = decided.sim_profile
    result = _mode.run(s.name, params, mode="sim" if decided.refusal is not None else mode, seed=seed,
                       profile=sim_profile, real=s.real,
                       sim=lambda p: simulate_validated(s, p, profile=sim_profile, seed=seed),
                       sysctls=_mode.applicable(s.sysctls(params)), record=s.record, needs_namespace=s.namespace_reason(params),
                       timeout=s.timeout(params), progress=progress, expected_s=expected, judge=s.judge)
    if decided.refusal is not None and mode == "auto":
        result.reason = f"simulated: {decided.refusal}"
    if result.mode == "sim" and decided.kernel_note:
        result.notes.append(decided.kernel_note)
    return result


def make_function(s: Experiment) -> Callable[..., Result]:
    """The public function of ``s``: keyword parameters from the spec, then ``mode``, ``seed``,
    ``profile`` (and ``progress`` where the spec has it); docstring generated from the spec."""
    def experiment(*args: Any, **kwargs: Any) -> Result:
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        mode, seed, profile = values.pop("mode"), values.pop("seed"), values.pop("profile")
        progress = values.pop("progress", None)
        return run(s, values, mode=mode, seed=seed, profile=profile, progress=progress)

    P = inspect.Parameter
    params = [P(p.name, P.POSITIONAL_OR_KEYWORD, default=p.default) for p in s.params]
    if s.progress:
        params.append(P("progress", P.POSITIONAL_OR_KEYWORD, default=None))
    params += [P("mode", P.KEYWORD_ONLY, default="auto"), P("seed", P.KEYWORD_ONLY, default=0),
               P("profile", P.KEYWORD_ONLY, default=None)]
    sig = inspect.Signature(params, return_annotation="Result")
    experiment.__signature__ = sig  # type: ignore[attr-defined]
    experiment.__name__ = experiment.__qualname__ = s.name
    experiment.__doc__ = docstring(s)
    experiment.spec = s  # type: ignore[attr-defined]
    return experiment


def docstring(s: Experiment) -> str:
    """The public function's docstring: title, doc, then parameters, summary keys, tables."""
    lines = [s.title, "", s.doc.strip(), "", "Parameters:"]
    for p in s.params:
        extra = f"; sysctl {p.sysctl}" if p.sysctl else ""
        lines.append(f"    {p.name}: {p.help} ({p.describe()}{extra})")
    if s.progress:
        lines.append("    progress: None or callable(fraction, text), called about every 0.25 s of a real run")
    lines.append("    mode: 'auto' (real where possible), 'real' or 'sim'; seed, profile: for the simulator")
    lines += ["", "Summary keys:"] + [f"    {k.name}: {k.meaning}" for k in s.summary]
    if s.tables:
        lines += ["", "Tables:"] + [f"    {t.name} ({', '.join(t.columns)}): {t.meaning}"
                                     + (f" (may be missing - {t.optional})" if t.optional else "") for t in s.tables]
    if s.timeline:
        lines += ["", f"Timeline columns: {', '.join(s.timeline)}"]
    return "\n".join(lines)


def render_markdown() -> str:
    """docs/experiments.md, generated from the specs (``python scripts/gen_api.py`` writes it)."""
    specs = _specs()
    out = ["# Experiments: parameters, summary keys, tables",
           "",
           "_Generated from the experiment specs by `python scripts/gen_api.py`; do not edit by hand._",
           "",
           "Every experiment is `tcplab.experiments.<name>(**params, mode=\"auto\")` and returns a",
           "`tcplab.experiments.Result`; on the command line, `tcplab run <name> --set param=value`.",
           "`mode=\"real\"` runs on the Linux kernel (in a private network namespace when a sysctl must",
           "be set) or raises `RealModeUnavailable` saying why; `mode=\"sim\"` runs the simulator",
           "(`tcplab.experiments.simulate(name, params)`); `mode=\"auto\"` runs real where it can and",
           "simulates otherwise, with the reason in `Result.reason`. Parameters are checked before",
           "anything is opened; `None` for a sysctl parameter means the kernel default of a fresh",
           "namespace. Real and simulated runs return exactly the summary keys, tables and timeline",
           "columns below (a test checks every experiment both ways). Counter names are the kernel's",
           "(`/proc/net/netstat` TcpExt, `/proc/net/snmp` Tcp). Adding an experiment:",
           "[contributing.md](contributing.md).",
           "",
           "| experiment | what it shows |",
           "|---|---|"]
    out += [f"| [`{n}`](#{n}) | {s.title} |" for n, s in specs.items()]
    for n, s in specs.items():
        out += ["", f"## {n}", "", s.title, "", " ".join(s.doc.split()), "", "| parameter | type, range, default | meaning |",
                "|---|---|---|"]
        for p in s.params:
            sysctl = f" (sysctl `{p.sysctl}`)" if p.sysctl else ""
            out.append(f"| `{p.name}` | {p.describe()} | {p.help}{sysctl} |")
        if not s.params:
            out.append("| (none) | | |")
        out += ["", "| summary key | meaning | real vs sim |", "|---|---|---|"]
        out += [f"| `{k.name}` | {k.meaning} | {k.rule.name}: {k.rule.meaning} |" for k in s.summary]
        if s.tables:
            out += ["", "| table | columns | a row is |", "|---|---|---|"]
            out += [f"| `{t.name}` | {', '.join(t.columns)} | {t.meaning}"
                    + (f" (may be missing - {t.optional})" if t.optional else "") + " |" for t in s.tables]
        out += ["", f"Timeline columns: {', '.join(s.timeline) if s.timeline else 'none (Result.timeline is None)'}."]
        out.append(f"Agreement grid: {len(s.grid)} points ({sum(g.quick for g in s.grid)} in the quick grid).")
    return "\n".join(out) + "\n"
