"""A prediction question: what the learner predicts, with which parameters, graded by which rule.

A :class:`Question` names an experiment and one of its summary keys. The tolerance is NOT the
question's: it is the rule the experiment's spec gives that key for the agreement grid
(``tcplab/experiments/spec.py``, docs/experiments.md): ``Exact`` for a count the kernel decides,
``Rel(0.10)`` for a time, ``Abs(0.01)`` for a latency. A learner's answer is held to the run the
way a simulated value is held to a real one.

Each learner gets their own parameters, drawn from the question's ``vary`` lists by a generator
seeded with their user name and the question's id: neighbours get different values, the same
learner gets the same values every time (a re-run, a reloaded notebook, another day).

>>> q = Question("03.demo", "03", "accept_queue", "listen({backlog}), somaxconn={somaxconn}, 20 clients: "
...              "how many ESTABLISHED?", "established_clients", "include/net/sock.h sk_acceptq_is_full(): >",
...              vary={"backlog": [3, 4, 5, 6], "somaxconn": [2, 3, 4]}, fixed={"clients": 20}, answer_range=(0, 20))
>>> q.params_for("ana") == q.params_for("ana"), q.params_for("ana")["clients"]
(True, 20)
>>> q.rule.name, q.tolerance
('exact', 'equal (the kernel is deterministic here)')
>>> q.check_answer(4)
4.0
>>> q.check_answer(30)
Traceback (most recent call last):
ValueError: answer must be a number in 0..20, not 30
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tcplab.experiments.spec import Experiment, FromRun, NotCompared, Rule, When, Within

__all__ = ["Question", "seed_for", "user_name"]

#: a question may not vary more combinations than this (each is checked against the spec and the rule)
MAX_COMBINATIONS = 4096


def user_name() -> str:
    """The learner: ``JUPYTERHUB_USER`` on a hub (the login the instructor knows), else the OS user.

    >>> isinstance(user_name(), str) and user_name() != ""
    True
    """
    import getpass
    import os

    if os.environ.get("JUPYTERHUB_USER"):
        return os.environ["JUPYTERHUB_USER"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):   # a uid with no passwd entry and no LOGNAME/USER (a bare container)
        return f"uid{os.getuid()}"


def seed_for(user: str, question_id: str) -> int:
    """The seed of ``user``'s parameters for ``question_id``: SHA-256 of both, so it is the same in
    every Python (``hash()`` of a str is salted per process) and unrelated between neighbours.

    >>> seed_for("ana", "03.somaxconn") == seed_for("ana", "03.somaxconn") != seed_for("bo", "03.somaxconn")
    True
    """
    digest = hashlib.sha256(f"{user}\0{question_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _spec(name: str) -> Experiment:
    from tcplab.experiments.registry import spec

    return spec(name)


def _gradeable(rule: Rule, key: str) -> None:
    """Refuse a rule that does not hold one value to another (it could not grade a prediction)."""
    if isinstance(rule, NotCompared):
        raise ValueError(f"key {key!r} is not compared by its experiment ({rule.meaning}): it cannot grade a prediction")
    if isinstance(rule, (FromRun, Within)):
        raise ValueError(f"key {key!r}'s rule {rule.name!r} holds the run to the kernel's own window, not to a "
                         f"second value: it cannot grade a prediction")


@dataclass(frozen=True)
class Question:
    """One prediction, defined once (``tcplab.grading.questions`` holds the course's).

    id:          unique, ``"<notebook>.<name>"`` (``"03.somaxconn"``): the record's and the gradebook's key.
    notebook:    the notebook's number, ``"03"``.
    experiment:  the experiment's name (``tcplab.experiments.<name>``).
    text:        the question, with ``{param}`` fields filled from the learner's parameters.
    key:         the summary key that answers it; its spec rule is the tolerance.
    kernel_line: the kernel source that decides it (file, function, the line), shown with the grade.
    explanation: shown after the grade; may use ``{param}``, summary keys, ``{observed}`` and ``{answer}``.
    vary:        parameter -> the values a learner may get (each checked against the experiment's range).
    fixed:       parameters every learner gets.
    answer_range: (lo, hi) a numeric answer must lie in; None for a choice question.
    unit:        the unit the learner types (``"ms"``); ``scale`` converts it to the key's (0.001 for ms -> s).
    choices:     label -> the key's value it stands for (``{"binds": True, "EADDRINUSE": False}``);
                 None for a number.
    """

    id: str
    notebook: str
    experiment: str
    text: str
    key: str
    kernel_line: str
    explanation: str = ""
    vary: Mapping[str, Sequence[Any]] = field(default_factory=dict, hash=False)
    fixed: Mapping[str, Any] = field(default_factory=dict, hash=False)
    answer_range: tuple[float, float] | None = None
    unit: str = ""
    scale: float = 1.0
    choices: Mapping[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if not self.id or "," in self.id or not self.id.startswith(f"{self.notebook}."):
            raise ValueError(f"id must look like '<notebook>.<name>' without commas, not {self.id!r}")
        spec = _spec(self.experiment)  # ValueError naming the experiments when unknown
        if self.key not in spec.summary_keys:
            raise ValueError(f"key must be one of {', '.join(spec.summary_keys)}, not {self.key!r}")
        _gradeable(spec.rules[self.key], self.key)
        if not self.kernel_line.strip():
            raise ValueError(f"{self.id}: kernel_line must name the kernel source that decides the answer")
        if (self.choices is None) == (self.answer_range is None):
            raise ValueError(f"{self.id}: give answer_range for a number or choices for a choice, not both or neither")
        if self.answer_range is not None:
            lo, hi = self.answer_range
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"answer_range must be (lo, hi) with lo < hi, not {self.answer_range!r}")
        if self.choices is not None and len(self.choices) < 2:
            raise ValueError(f"{self.id}: choices needs at least two labels, not {dict(self.choices)!r}")
        if not self.scale > 0:
            raise ValueError(f"scale must be a positive number, not {self.scale!r}")
        overlap = set(self.vary) & set(self.fixed)
        if overlap:
            raise ValueError(f"{self.id}: {sorted(overlap)} are both varied and fixed")
        for name, values in self.vary.items():
            if isinstance(values, (str, bytes)) or not list(values):
                raise ValueError(f"vary[{name!r}] must be a non-empty list of values, not {values!r}")
        combos = math.prod(len(list(v)) for v in self.vary.values())
        if combos > MAX_COMBINATIONS:
            raise ValueError(f"{self.id}: vary gives {combos} combinations, at most {MAX_COMBINATIONS}")
        # every combination a learner may get: valid for the experiment and graded by its rule
        names = sorted(self.vary)
        for values in itertools.product(*(list(self.vary[n]) for n in names)):
            params = spec.validate({**self.fixed, **dict(zip(names, values))})
            rule = spec.rules[self.key]
            if isinstance(rule, When) and not rule.condition(params) and rule.otherwise is None:
                raise ValueError(f"{self.id}: the rule {rule.name!r} does not compare {self.key} for {params}")

    # -- parameters ----------------------------------------------------------------------------
    def params_for(self, user: str) -> dict[str, Any]:
        """``user``'s parameters: one value of each ``vary`` list (seeded by :func:`seed_for`), and ``fixed``."""
        if not isinstance(user, str) or not user:
            raise ValueError(f"user must be a non-empty str, not {user!r}")
        rng = random.Random(seed_for(user, self.id))
        drawn = {name: rng.choice(list(self.vary[name])) for name in sorted(self.vary)}
        return {**dict(self.fixed), **drawn}

    def prompt(self, params: Mapping[str, Any]) -> str:
        """The question for these parameters (``text`` filled in)."""
        return self.text.format(**params)

    # -- grading rule --------------------------------------------------------------------------
    @property
    def rule(self) -> Rule:
        """The experiment's own rule for :attr:`key` (its agreement-grid tolerance)."""
        return _spec(self.experiment).rules[self.key]

    @property
    def tolerance(self) -> str:
        """The rule in words (``"within 10 %"``)."""
        return self.rule.meaning

    def check_answer(self, answer: Any) -> Any:
        """The answer as graded: a float in :attr:`answer_range`, or one of :attr:`choices`' labels.

        >>> Question("x.y", "x", "rebind", "bind?", "bound", "inet_bind_conflict()",
        ...          choices={"binds": True, "EADDRINUSE": False}).check_answer("maybe")
        Traceback (most recent call last):
        ValueError: answer must be one of 'binds', 'EADDRINUSE', not 'maybe'
        """
        if self.choices is not None:
            if not isinstance(answer, str) or answer not in self.choices:
                shown = ", ".join(map(repr, self.choices))
                raise ValueError(f"answer must be one of {shown}, not {answer!r}")
            return answer
        lo, hi = self.answer_range  # type: ignore[misc]
        if isinstance(answer, bool) or not isinstance(answer, (int, float)) or not math.isfinite(answer) \
                or not lo <= answer <= hi:
            raise ValueError(f"answer must be a number in {lo:g}..{hi:g}{' ' + self.unit if self.unit else ''}, "
                             f"not {answer!r}")
        return float(answer)

    def value_of(self, answer: Any) -> Any:
        """The checked answer in the key's terms: a choice's value, or the number times :attr:`scale`."""
        answer = self.check_answer(answer)
        if self.choices is not None:
            return self.choices[answer]
        return answer * self.scale

    def label_of(self, observed: Any) -> Any:
        """What the learner would have had to answer for ``observed``: the choice's label, or the
        number in the learner's unit."""
        if self.choices is not None:
            return next((label for label, v in self.choices.items() if v == observed), observed)
        if isinstance(observed, (int, float)) and not isinstance(observed, bool):
            value = observed / self.scale
            return int(value) if float(value).is_integer() else round(value, 6)
        return observed
