"""An experiment declared once, as data: :class:`Experiment` and its parts.

Each experiment module (``tcplab/experiments/<name>.py``) defines ``SPEC = Experiment(...)``:
its parameters (type, range, default, unit, the sysctl behind it, a slider hint), its summary
keys with one-line meanings and the rule that compares them real vs simulated, its tables and
timeline columns, its agreement-grid points, its real runner and its sim runner. Everything
else is derived from the registry of specs (:mod:`tcplab.experiments.registry`): the public
function and its signature, validation, ``tcplab.experiments.__all__``, the simulator's
dispatch, ``tcplab run NAME --set k=v``, docs/experiments.md, the shape tests, the agreement
grid and the generic slider panel. docs/contributing.md walks through adding one.

>>> p = Param("backlog", "int", 5, lo=0, hi=65535, help="listen() backlog")
>>> p.check(7), p.describe()
(7, 'int 0..65535, default 5')
>>> p.check(-1)
Traceback (most recent call last):
ValueError: backlog must be an int in 0..65535, not -1
>>> Param("rate", "float", 100, lo=1, hi=1e6, real_hi=5000, unit="connects/s").real_refusal(9000)
'rate must be at most 5000 connects/s in real mode, not 9000 (the real runner needs one fd and port per client); mode="sim" takes up to 1e+06'

Comparison rules (a Key's ``rule``) are data too: ``Rel(0.10)``, ``Abs(0.05)``, ``Exact()``, and
``When`` for a rule that depends on the run's parameters, its condition declared by the spec:

>>> Rel(0.10).name, Rel(0.10).check(3.07, 3.0), Rel(0.10).check(3.5, 3.0)
('rel10', True, False)
>>> Abs(0.05).name, Abs(0.05).check(1.04, 1.0)
('abs50ms', True)
>>> only_flood = When(lambda p: p["flood"], Exact(), name="flood_only", meaning="equal, with a flood")
>>> only_flood.verdict(1, 1, {"flood": False}), only_flood.verdict(1, 2, {"flood": True})
(('flood_only', None), ('flood_only', False))
>>> named("rel10") == Rel(0.10)
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from tcplab.model.outcome import Fidelity, Timing
from tcplab._validate import (check_bool, check_choice, check_float, check_int, check_optional_int,
                              check_port_range)

if TYPE_CHECKING:
    from tcplab.model.outcome import Outcome
    from tcplab.model.profiles import KernelProfile
    from tcplab.sim.engine import Rng

__all__ = ["Param", "Slider", "Key", "Table", "GridPoint", "Plot", "Experiment", "too_long",
           "Rule", "Exact", "Rel", "Abs", "ListExact", "ListRel", "States", "NotCompared", "When", "named", "NAMED"]

Kind = Literal["int", "float", "bool", "choice", "port_range"]
KINDS: tuple[str, ...] = ("int", "float", "bool", "choice", "port_range")



# -- comparison rules (a Key's rule) ----------------------------------------------

class Rule:
    """A comparison rule. ``name`` is what the grid shows in its rule column, ``meaning`` one line
    for the rules table; :meth:`verdict` answers for one key (``ok`` None: not compared)."""

    name: str = ""
    meaning: str = ""

    def check(self, real: Any, sim: Any) -> bool:
        """Whether ``real`` and ``sim`` agree under this rule."""
        raise NotImplementedError

    def verdict(self, real: Any, sim: Any, params: Mapping[str, Any], *,
                sampled: bool = False, **context: Any) -> tuple[str, bool | None]:
        """(rule as shown, agree?) for one key of a run with ``params``; ``sampled``: the real run
        observed by sampling, not from packets (:attr:`tcplab.experiments.Result.sampled`).
        ``context``: what a rule may also need, ``profile`` (the simulator's kernel profile name)
        and ``real_summary`` (the whole real summary); plain rules ignore it."""
        return self.name, self.check(real, sim)

    def __str__(self) -> str:
        return self.name


def _pct(frac: float) -> str:
    return f"{frac * 100:g}"


@dataclass(frozen=True)
class Exact(Rule):
    """Equal (the kernel is deterministic here)."""

    why: str = field(default="the kernel is deterministic here", compare=False)

    @property
    def name(self) -> str:  # type: ignore[override]
        return "exact"

    @property
    def meaning(self) -> str:  # type: ignore[override]
        return f"equal ({self.why})" if self.why else "equal"

    def check(self, real: Any, sim: Any) -> bool:
        return bool(real == sim)


def _rel(real: Any, sim: Any, frac: float) -> bool:
    if real is None or sim is None:
        return real is sim
    return bool(abs(real - sim) <= frac * max(abs(real), abs(sim)))


@dataclass(frozen=True)
class Rel(Rule):
    """Within ``frac`` of the larger of the two (None agrees only with None)."""

    frac: float
    why: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not 0 < self.frac < 1:
            raise ValueError(f"frac must be in 0..1 (exclusive), not {self.frac!r}")

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"rel{_pct(self.frac)}"

    @property
    def meaning(self) -> str:  # type: ignore[override]
        return f"within {_pct(self.frac)} %" + (f" ({self.why})" if self.why else "")

    def check(self, real: Any, sim: Any) -> bool:
        return _rel(real, sim, self.frac)


@dataclass(frozen=True)
class Abs(Rule):
    """Within ``tol`` seconds (None agrees only with None)."""

    tol: float
    why: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.tol > 0:
            raise ValueError(f"tol must be a positive number of seconds, not {self.tol!r}")

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"abs{self.tol * 1000:g}ms"

    @property
    def meaning(self) -> str:  # type: ignore[override]
        return f"within {self.tol:g} s" + (f" ({self.why})" if self.why else "")

    def check(self, real: Any, sim: Any) -> bool:
        if real is None or sim is None:
            return real is sim
        return bool(abs(real - sim) <= self.tol)


@dataclass(frozen=True)
class ListExact(Rule):
    """The same list (None counts as empty)."""

    @property
    def name(self) -> str:  # type: ignore[override]
        return "list_exact"

    @property
    def meaning(self) -> str:  # type: ignore[override]
        return "same list"

    def check(self, real: Any, sim: Any) -> bool:
        return list(real or []) == list(sim or [])


@dataclass(frozen=True)
class ListRel(Rule):
    """Same length, each element within ``frac``; with ``floor`` (seconds), within ``frac`` or ``floor``,
    for a list that may hold a timer of a jiffy or two, whose phase on the tick decides ms.

    >>> ListRel(0.10, floor=0.01).check([0.007, 0.215], [0.004, 0.204]), ListRel(0.10).check([0.007], [0.004])
    (True, False)
    """

    frac: float
    floor: float = 0.0

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"list_rel{_pct(self.frac)}" + (f"_or_{self.floor * 1000:g}ms" if self.floor else "")

    @property
    def meaning(self) -> str:  # type: ignore[override]
        return (f"same length, each element within {_pct(self.frac)} %"
                + (f" or {self.floor * 1000:g} ms (a timer of a jiffy or two fires anywhere in its tick)"
                   if self.floor else ""))

    def check(self, real: Any, sim: Any) -> bool:
        return (real is not None and sim is not None and len(real) == len(sim)
                and all(_rel(a, b, self.frac) or (a is not None and b is not None and abs(a - b) <= self.floor)
                        for a, b in zip(real, sim)))


def _subsequence(short: list[Any], long: list[Any]) -> bool:
    it = iter(long)
    return all(any(x == y for y in it) for x in short)


@dataclass(frozen=True)
class States(Rule):
    """The same ordered list of states; a real list observed by sampling (every ms) only has to
    be a subsequence of the simulated one that ends in the same state and starts after the
    handshake at the latest (states lasting microseconds slip between two samples)."""

    handshake: tuple[str, ...] = ("SYN_SENT", "SYN_RECV")

    @property
    def name(self) -> str:  # type: ignore[override]
        return "states"

    @property
    def meaning(self) -> str:  # type: ignore[override]
        return "the same ordered list of states"

    def check(self, real: Any, sim: Any) -> bool:
        return list(real or []) == list(sim or [])

    def verdict(self, real: Any, sim: Any, params: Mapping[str, Any], *,
                sampled: bool = False, **context: Any) -> tuple[str, bool | None]:
        real, sim = list(real or []), list(sim or [])
        if not sampled:
            return self.name, real == sim
        # the 1 ms sampler can miss anything that lasts microseconds, the handshake's states
        # included (it catches them on a loaded machine and misses them on an idle one), but
        # never a state that lasts until the script's next step: the first one after the
        # handshake and the last one
        head = sim.index(real[0]) if real and real[0] in sim else -1
        ok = (real == sim) or (head >= 0 and all(x in self.handshake for x in sim[:head])
                               and real[-1] == sim[-1] and _subsequence(real, sim))
        return f"{self.name} (sampled: subsequence)", ok


@dataclass(frozen=True)
class NotCompared(Rule):
    """Shown, never compared (``label`` names why in the grid's rule column)."""

    label: str
    why: str

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.label

    @property
    def meaning(self) -> str:  # type: ignore[override]
        return f"not compared: {self.why}"

    def verdict(self, real: Any, sim: Any, params: Mapping[str, Any], *,
                sampled: bool = False, **context: Any) -> tuple[str, bool | None]:
        return self.name, None


@dataclass(frozen=True)
class When(Rule):
    """``then`` where the experiment's own ``condition(params)`` holds, else ``otherwise``
    (None: not compared). The spec that uses it declares the condition; ``name`` and
    ``meaning`` say it in the grid; ``then_shows``/``otherwise_shows``: the rule column when
    that branch decided (default ``name``)."""

    condition: Callable[[Mapping[str, Any]], bool] = field(compare=False)
    then: Rule
    otherwise: Rule | None = None
    name: str = ""  # type: ignore[assignment]
    meaning: str = ""  # type: ignore[assignment]
    then_shows: str = ""
    otherwise_shows: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.meaning:
            raise ValueError("When needs a name and a meaning (what the grid shows)")

    def check(self, real: Any, sim: Any) -> bool:  # pragma: no cover - verdict() decides
        raise TypeError("When depends on the run's parameters: use verdict()")

    def verdict(self, real: Any, sim: Any, params: Mapping[str, Any], *,
                sampled: bool = False, **context: Any) -> tuple[str, bool | None]:
        if self.condition(params):
            _, ok = self.then.verdict(real, sim, params, sampled=sampled, **context)
            return self.then_shows or self.name, ok
        if self.otherwise is None:
            return self.name, None
        _, ok = self.otherwise.verdict(real, sim, params, sampled=sampled, **context)
        return self.otherwise_shows or self.name, ok


@dataclass(frozen=True)
class FromRun(Rule):
    """The real value against the kernel's rule applied to the run's OWN measured inputs (not the
    simulator's): ``predict(params, real_summary, profile)`` gives the expected value, or None
    where the rule does not apply, and then ``otherwise`` decides as usual. ``then`` compares the
    real value with the prediction. The spec that uses it declares ``predict``."""

    predict: Callable[[Mapping[str, Any], Mapping[str, Any], str | None], Any] = field(compare=False)
    then: Rule
    otherwise: Rule
    name: str = ""  # type: ignore[assignment]
    meaning: str = ""  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if not self.name or not self.meaning:
            raise ValueError("FromRun needs a name and a meaning (what the grid shows)")

    def check(self, real: Any, sim: Any) -> bool:  # pragma: no cover - verdict() decides
        raise TypeError("FromRun depends on the run's own summary: use verdict()")

    def verdict(self, real: Any, sim: Any, params: Mapping[str, Any], *,
                sampled: bool = False, **context: Any) -> tuple[str, bool | None]:
        summary = context.get("real_summary")
        own = self.predict(params, summary, context.get("profile")) if summary else None
        if own is None or real is None:
            return self.otherwise.verdict(real, sim, params, sampled=sampled, **context)
        _, ok = self.then.verdict(real, own, params, sampled=sampled, **context)
        shown = list(own) if isinstance(own, tuple) else own
        return f"{self.then.name} of the kernel's rule with this run's inputs ({shown})", ok


@dataclass(frozen=True)
class Within(Rule):
    """The real value inside a range the kernel allows (``bounds(params, profile)``, widened by
    ``slack`` each side), where the kernel's own chance decides a value (a clock's phase);
    ``otherwise`` decides where ``bounds`` gives None. The spec declares ``bounds``."""

    bounds: Callable[[Mapping[str, Any], str | None], tuple[float, float] | None] = field(compare=False)
    otherwise: Rule
    slack: float = 0.10
    name: str = ""  # type: ignore[assignment]
    meaning: str = ""  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if not self.name or not self.meaning:
            raise ValueError("Within needs a name and a meaning (what the grid shows)")

    def check(self, real: Any, sim: Any) -> bool:  # pragma: no cover - verdict() decides
        raise TypeError("Within depends on the run's parameters and kernel: use verdict()")

    def verdict(self, real: Any, sim: Any, params: Mapping[str, Any], *,
                sampled: bool = False, **context: Any) -> tuple[str, bool | None]:
        window = self.bounds(params, context.get("profile"))
        if window is None or not isinstance(real, (int, float)):
            return self.otherwise.verdict(real, sim, params, sampled=sampled, **context)
        lo, hi = window
        return f"{self.name} ({lo:g}..{hi:g} s)", lo * (1 - self.slack) <= real <= hi * (1 + self.slack)


#: plain rules by the name they show: a Key may say ``rule="rel10"`` for ``Rel(0.10)``
NAMED: dict[str, Rule] = {r.name: r for r in (
    Exact(), Rel(0.10, "timers drift on a real machine"), Rel(0.15), Rel(0.20), Rel(0.25), ListRel(0.10),
    ListExact(), States(), Abs(0.01), Abs(0.05, "one timer-wheel slot"),
    NotCompared("host_rmem", "follows the host's tcp_rmem"), NotCompared("shown", "shown for the learner"))}


def named(rule: Rule | str) -> Rule:
    """The rule itself, or the plain rule a name stands for (ValueError naming the choices).

    >>> named("abs10ms")
    Abs(tol=0.01, why='')
    >>> named("rel12")
    Traceback (most recent call last):
    ValueError: rule must be a Rule or one of exact, rel10, rel15, rel20, rel25, list_rel10, list_exact, states, abs10ms, abs50ms, host_rmem, shown, not 'rel12'
    """
    if isinstance(rule, Rule):
        return rule
    if isinstance(rule, str) and rule in NAMED:
        return NAMED[rule]
    raise ValueError(f"rule must be a Rule or one of {', '.join(NAMED)}, not {rule!r}")


@dataclass(frozen=True)
class Slider:
    """How a panel offers a parameter: range, step and scale.

    ``scale="log"`` gives a slider over log-spaced values that keeps every small integer, so a
    learner can pick 3 as easily as 4096 (:meth:`options`).

    >>> Slider(1, 4096, scale="log").options()[:14]
    (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 16, 20)
    >>> Slider(1, 4096, scale="log").options()[-4:]
    (2500, 3000, 4000, 4096)
    """

    lo: float
    hi: float
    step: float = 1
    scale: Literal["linear", "log"] = "linear"

    def options(self) -> tuple[float, ...]:
        """The values the slider offers. Log scale: every integer up to 10, then round numbers
        (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten) and the powers of two
        (backlogs are often 128, 1024, 4096), within ``lo..hi`` and on the ``step`` grid."""
        if self.scale != "log":
            n = int(round((self.hi - self.lo) / self.step))
            return tuple(_tidy(self.lo + i * self.step) for i in range(n + 1))
        values = {float(v) for v in range(1, 11)}
        decade = 1.0
        while decade <= self.hi:
            values |= {m * decade for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8)}
            decade *= 10
        two = 1.0
        while two <= self.hi:
            values.add(two)
            two *= 2
        values |= {float(self.lo), float(self.hi)}
        grid = [v for v in values if self.lo <= v <= self.hi and abs(v / self.step - round(v / self.step)) < 1e-9]
        return tuple(_tidy(v) for v in sorted(grid))


def _tidy(v: float) -> float:
    return int(v) if float(v).is_integer() else round(v, 6)


@dataclass(frozen=True)
class Param:
    """One parameter of an experiment.

    kind:     ``"int"``, ``"float"``, ``"bool"``, ``"choice"`` (one of ``choices``) or
              ``"port_range"`` (a ``(low, high)`` pair).
    default:  the value when not given; ``None`` (with ``optional=True``) means "the kernel's
              default in a fresh namespace" for a sysctl.
    lo, hi:   the range every mode accepts (the simulator's limit).
    real_hi:  a lower upper bound of the real runner (e.g. one fd per client), or None. Real mode
              refuses beyond it with a reason; auto mode simulates with that reason.
    unit:     shown in help, docs and slider labels ("s", "ms", "connects/s").
    sysctl:   the kernel's name when the value is written as a sysctl in the private namespace
              (``"net.core.somaxconn"``); bools are written as 0/1, None is not written.
    slider:   how a panel offers it; None: the generic panel shows no control for it.
    """

    name: str
    kind: Kind
    default: Any
    lo: float | None = None
    hi: float | None = None
    choices: tuple[Any, ...] = ()
    optional: bool = False
    unit: str = ""
    help: str = ""
    sysctl: str | None = None
    real_hi: float | None = None
    real_why: str = "the real runner needs one fd and port per client"
    slider: Slider | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.kind in ("int", "float") and (self.lo is None or self.hi is None):
            raise ValueError(f"{self.name}: an {self.kind} parameter needs lo and hi")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"{self.name}: a choice parameter needs choices")
        if self.default is not None or not self.optional:
            self.check(self.default)

    # -- checking --------------------------------------------------------------
    def check(self, value: Any) -> Any:
        """The value, checked (``ValueError``/``TypeError`` naming the parameter and range)."""
        n = self.name
        if value is None and self.optional:
            return None
        if self.kind == "int":
            if self.optional:
                return check_optional_int(n, value, int(self.lo), int(self.hi))  # type: ignore[arg-type]
            return check_int(n, value, int(self.lo), int(self.hi))  # type: ignore[arg-type]
        if self.kind == "float":
            return check_float(n, value, self.lo, self.hi, optional=self.optional)  # type: ignore[arg-type]
        if self.kind == "bool":
            try:
                return check_bool(n, value)
            except TypeError:
                if self.optional:
                    raise TypeError(f"{n} must be None, True or False, not {value!r}") from None
                raise
        if self.kind == "choice":
            return check_choice(n, value, self.choices)
        return check_port_range(n, value)

    def real_refusal(self, value: Any) -> str | None:
        """Why the real runner cannot take ``value`` (beyond ``real_hi``), or None."""
        if self.real_hi is None or value is None or value <= self.real_hi:
            return None
        unit = f" {self.unit}" if self.unit else ""
        return (f"{self.name} must be at most {self.real_hi:g}{unit} in real mode, not {value:g} "
                f"({self.real_why}); mode=\"sim\" takes up to {self.hi:g}")

    def sysctl_value(self, value: Any) -> Any:
        """What is written to the sysctl file for ``value``."""
        return int(value) if isinstance(value, bool) else value

    def parse(self, text: str) -> Any:
        """A value from command-line text (``--set NAME=TEXT``), then checked.

        >>> Param("port_range", "port_range", None, optional=True).parse("40000-40009")
        (40000, 40009)
        >>> Param("flood", "bool", False).parse("yes")
        True
        """
        t = text.strip()
        if self.optional and t.lower() in ("none", "default", ""):
            return None
        if self.kind == "int":
            try:
                return self.check(int(t))
            except ValueError:
                if not t.lstrip("-").isdigit():
                    raise ValueError(f"{self.name} must be an int in {self.lo:g}..{self.hi:g}, not {t!r}") from None
                raise
        if self.kind == "float":
            try:
                v = float(t)
            except ValueError:
                raise ValueError(f"{self.name} must be a number in {self.lo:g}..{self.hi:g}, not {t!r}") from None
            return self.check(v)
        if self.kind == "bool":
            low = t.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{self.name} must be true or false, not {t!r}")
        if self.kind == "choice":
            for c in self.choices:
                if str(c) == t:
                    return c
            shown = ", ".join(map(str, self.choices))
            raise ValueError(f"{self.name} must be one of {shown}, not {t!r}")
        parts = t.strip("()[] ").replace(",", "-").split("-")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"{self.name} must look like LOW-HIGH (ports in 1024..65535), not {t!r}")
        return self.check((int(parts[0]), int(parts[1])))

    # -- describing ------------------------------------------------------------
    def describe(self) -> str:
        """Type, range, default and unit in a few words (help, docs)."""
        unit = f" {self.unit}" if self.unit else ""
        if self.kind in ("int", "float"):
            what = f"{self.kind} {self.lo:g}..{self.hi:g}{unit}"
            if self.real_hi is not None:
                what += f" (real mode: up to {self.real_hi:g})"
        elif self.kind == "choice":
            what = "one of " + ", ".join(map(repr, self.choices))
        elif self.kind == "bool":
            what = "bool"
        else:
            what = "(low, high) ports"
        opt = ", None = the kernel default" if self.optional and self.sysctl else ""
        return f"{what}, default {self.default!r}{opt}"


@dataclass(frozen=True)
class Key:
    """A summary key: its one-line meaning, how real and simulated runs are compared, and how much
    of the real runner's own timing error it tolerates.

    rule:      a :class:`~tcplab.experiments.rules.Rule` (``Rel(0.15)``, ``Abs(0.05)``, a ``When``
               whose condition this spec declares...), or the name of a plain one (``"rel10"``).

    tolerates: timing name (a :class:`~tcplab.model.outcome.Timing` the real runner reports, e.g.
               ``"delay_line"``) -> the most of it, in ms, this key's real value survives; beyond it
               the value is the busy host's as much as the kernel's (:meth:`Experiment.judge`).

    >>> Key("utilization", "payload over capacity", rule="rel10", tolerates={"delay_line": 5}).tolerates
    {'delay_line': 5}
    """

    name: str
    meaning: str
    rule: Rule | str = "exact"
    tolerates: Mapping[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        try:
            # a plain rule may be given by the name it shows ("rel10" is Rel(0.10)); the Key holds the object
            object.__setattr__(self, "rule", named(self.rule))
        except ValueError as e:
            raise ValueError(f"{self.name}: {e}") from None
        for what, ms in self.tolerates.items():
            if not isinstance(ms, (int, float)) or isinstance(ms, bool) or not ms > 0:
                raise ValueError(f"{self.name}: tolerates[{what!r}] must be a positive number of ms, not {ms!r}")


@dataclass(frozen=True)
class Table:
    """A table of the Result: its columns, what a row is, and when it is present."""

    name: str
    columns: tuple[str, ...]
    meaning: str = ""
    present: Callable[[Mapping[str, Any]], bool] | None = None
    #: non-empty: a run may lack this table although ``present`` says it could have it - when it
    #: could not observe it (e.g. no packet capture); says when, and the Result's notes say why
    optional: str = ""

    def is_present(self, params: Mapping[str, Any]) -> bool:
        return True if self.present is None else bool(self.present(params))


@dataclass(frozen=True)
class GridPoint:
    """A point of the agreement grid: run real and simulated, compare the summaries."""

    params: Mapping[str, Any]
    quick: bool = False
    why: str = ""


@dataclass(frozen=True)
class Plot:
    """What the generic figure draws: ``y`` columns against ``x`` of the timeline or a table.

    kind: ``"line"``, ``"step"`` (a line holding each value until the next), ``"markers"`` or
    ``"bar"``.
    figure: where the experiment's key result needs a figure of its own (two axes, marked
          events), the figure function that draws it, as ``"module:function"`` under
          ``tcplab.viz`` (``"flow_control:flow_control_figure"``); it takes the Result and returns a
          plotly Figure. The notebook's ``experiment_figure(result)`` and the panel both draw it,
          so they show the same figure. Named as text: experiments do not import viz (layer map).
    table: what the panel shows under the figure: a table's name, ``"module:function"`` under
          ``tcplab.viz`` (``Result -> DataFrame``), or "" for the first table.
    """

    y: tuple[str, ...]
    x: str = "t"
    source: str = "timeline"
    kind: Literal["line", "step", "markers", "bar"] = "line"
    title: str = ""
    x_title: str = "time (s)"
    y_title: str = ""
    figure: str = ""
    table: str = ""


RealRunner = Callable[[dict[str, Any]], "Outcome"]
SimRunner = Callable[[dict[str, Any], "KernelProfile", "Rng"], "Outcome"]


@dataclass(frozen=True)
class Experiment:
    """Everything about one experiment, as data (see the module docstring).

    name:      the public function's name (``tcplab.experiments.<name>``) and the CLI's.
    title:     one line: what it shows.
    doc:       the public function's docstring body (what it does, the kernel rule).
    params, summary, tables, timeline: the contract; real and sim runs return exactly these
               (timeline None: no timeline).
    grid:      agreement points; ``smoke``: small, fast parameter sets the shape tests run real
               and simulated (default: the first quick grid point, or the defaults).
    real:      module-level ``params -> Outcome``, run in the private namespace's child process.
    sim:       pure ``(params, profile, rng) -> Outcome``.
    record:    sysctls whose values in force go into ``Result.sysctls`` (the params' own are added).
    needs_namespace: why a real run cannot use the host namespace (a qdisc, a route, a silenced
               peer...) as a string or ``params -> str | None``; None: per-socket only.
    checks:    cross-parameter checks, ``params -> None`` raising ValueError.
    real_refusal: ``params -> str | None``: why the real runner cannot run these params (too long,
               too many fds); real mode raises ValueError with it, auto simulates.
    host_limit: ``params -> str | None``: why *this host* cannot run these params for real (a host-wide
               limit such as net.core.rmem_max); asked only when a real run is about to start (it may
               read the host), never in mode="sim": real mode raises RealModeUnavailable with it,
               auto simulates and says why.
    timeout:   seconds before the namespace child is killed, ``params -> float``.
    expected_s: how long a real run takes, ``params -> float`` (drives the progress bar).
    progress:  the public function takes ``progress=callable(fraction, text)``.
    plot:      what the generic figure and panel draw.
    """

    name: str
    title: str
    doc: str
    params: tuple[Param, ...]
    summary: tuple[Key, ...]
    tables: tuple[Table, ...]
    timeline: tuple[str, ...] | None
    grid: tuple[GridPoint, ...]
    real: RealRunner
    sim: SimRunner
    record: tuple[str, ...] = ()
    needs_namespace: str | Callable[[Mapping[str, Any]], str | None] | None = None
    checks: Callable[[dict[str, Any]], None] | None = None
    real_refusal: Callable[[dict[str, Any]], str | None] | None = None
    host_limit: Callable[[dict[str, Any]], str | None] | None = None
    timeout: Callable[[Mapping[str, Any]], float] = lambda p: 30.0
    expected_s: Callable[[Mapping[str, Any]], float] | None = None
    progress: bool = False
    plot: Plot | None = None
    smoke: tuple[Mapping[str, Any], ...] = ()

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: parameter names repeat: {names}")
        reserved = {"mode", "seed", "profile", "progress"} & set(names)
        if reserved:
            raise ValueError(f"{self.name}: {sorted(reserved)} are reserved parameter names")
        keys = [k.name for k in self.summary]
        if len(set(keys)) != len(keys):
            raise ValueError(f"{self.name}: summary keys repeat: {keys}")
        for g in self.grid:
            self.validate(dict(g.params))

    # -- parameters ------------------------------------------------------------
    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def validate(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every parameter: given values checked, defaults filled; unknown names refused.

        The simulator's range (``hi``) applies; real-mode limits are :meth:`refuse_real`'s.
        """
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a dict, not {type(params).__name__}")
        known = {p.name for p in self.params}
        unknown = sorted(set(params) - known)
        if unknown:
            allowed = ", ".join(p.name for p in self.params) or "(none)"
            raise ValueError(f"{self.name} has no parameter {', '.join(map(repr, unknown))} (allowed: {allowed})")
        out = {p.name: p.check(params.get(p.name, p.default)) for p in self.params}
        if self.checks is not None:
            self.checks(out)
        return out

    def refuse_real(self, params: Mapping[str, Any]) -> str | None:
        """Why the real runner cannot run ``params`` (validated), or None."""
        for p in self.params:
            why = p.real_refusal(params[p.name])
            if why:
                return why
        return self.real_refusal(dict(params)) if self.real_refusal is not None else None

    def sysctls(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Sysctls to write in the private namespace for ``params`` (None values skipped)."""
        return {p.sysctl: p.sysctl_value(params[p.name]) for p in self.params
                if p.sysctl is not None and params[p.name] is not None}

    def namespace_reason(self, params: Mapping[str, Any]) -> str | None:
        n = self.needs_namespace
        return n(params) if callable(n) else n

    # -- results ---------------------------------------------------------------
    @property
    def summary_keys(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.summary)

    @property
    def rules(self) -> dict[str, Rule]:
        return {k.name: k.rule for k in self.summary}

    def judge(self, timings: Sequence[Timing], attempts: int = 1) -> Fidelity:
        """The fidelity verdict on a real run that measured ``timings``.

        A timing is held against every summary key that declares a tolerance for its name; a
        timing no key names, against the runner's own ``limit_ms`` (if any). The verdict is lost
        when any is exceeded; its reason names what was measured and which keys it spoils. A
        runner's own limit exceeded spoils every key: no key said it could bear that timing.

        >>> s = Experiment("x", "t", "d", (), (Key("rate", "r", rule="rel10", tolerates={"delay_line": 5}),
        ...                Key("count", "c")), (), None, (), real=None, sim=None)
        >>> s.judge([Timing("delay_line", 2.0, "the delay line was 2 ms late")]).ok
        True
        >>> v = s.judge([Timing("delay_line", 11.0, "the delay line released packets up to 11 ms late")])
        >>> v.ok, v.keys
        (False, ('rate',))
        >>> print(v.reason)
        host busy: the delay line released packets up to 11 ms late (rate tolerates 5 ms), so rate is not the kernel's alone
        >>> v = s.judge([Timing("sampler", 200, "the sampler went 200 ms without the CPU", limit_ms=50)])
        >>> v.keys
        ('rate', 'count')
        >>> print(v.reason)
        host busy: the sampler went 200 ms without the CPU (more than the runner's 50 ms), so no figure of this run is the kernel's alone
        """
        lost: list[str] = []
        keys: list[str] = []
        whole_run = False
        for t in timings:
            named = [k for k in self.summary if t.name in k.tolerates]
            if named:
                over = [k for k in named if t.ms > k.tolerates[t.name]]
                if over:
                    tol = min(k.tolerates[t.name] for k in over)
                    names = [k.name for k in over]
                    lost.append(f"{t.detail} ({', '.join(names)} {'tolerates' if len(names) == 1 else 'tolerate'} "
                                f"{tol:g} ms)")
                    keys += [n for n in names if n not in keys]
            elif t.limit_ms is not None and t.ms > t.limit_ms:
                lost.append(f"{t.detail} (more than the runner's {t.limit_ms:g} ms)")
                whole_run = True
        if not lost:
            held = "; ".join(f"{t.name} {t.ms:g} ms" for t in timings)
            return Fidelity(True, f"timing held ({held})" if held else "no timing measured", tuple(timings),
                            (), attempts)
        if whole_run:
            keys = [k.name for k in self.summary]
            spoiled = ", so no figure of this run is the kernel's alone"
        else:
            spoiled = f", so {', '.join(keys)} {'is' if len(keys) == 1 else 'are'} not the kernel's alone"
        return Fidelity(False, "host busy: " + "; ".join(lost) + spoiled, tuple(timings), tuple(keys), attempts)

    def tables_for(self, params: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
        """Table name -> columns that a run with ``params`` returns."""
        return {t.name: t.columns for t in self.tables if t.is_present(params)}

    def smoke_points(self) -> tuple[dict[str, Any], ...]:
        if self.smoke:
            return tuple(dict(s) for s in self.smoke)
        quick = [dict(g.params) for g in self.grid if g.quick]
        return (quick[0],) if quick else ({},)


def too_long(call: str, expected_s: float, max_seconds: float, also: str = "") -> str | None:
    """The refusal of a real run predicted to take ``expected_s`` when ``max_seconds`` is the
    bound (a spec's ``real_refusal``), or None when it fits.

    >>> too_long("syn_retries(retries=6)", 134.0, 60)
    'syn_retries(retries=6) would run about 134 s, longer than max_seconds=60; pass max_seconds=166 to run it anyway'
    """
    if expected_s <= max_seconds:
        return None
    return (f"{call} would run about {expected_s:.0f} s, longer than max_seconds={max_seconds:g}; pass "
            f"max_seconds={math.ceil(expected_s * 1.2) + 5}{also} to run it anyway")
