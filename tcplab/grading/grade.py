"""Grade a committed answer by a run: pure, no I/O.

The run grades only when it trusts itself: a real run the host disturbed
(:attr:`tcplab.experiments.Result.trusted` False, badge "REAL, host busy") is refused, with its reason,
and the learner is offered a re-run; the answer stays committed.

>>> from tcplab.experiments.result import Result
>>> from tcplab.grading.question import Question
>>> q = Question("x.aq", "x", "accept_queue", "listen({backlog})?", "established_clients", "sk_acceptq_is_full()",
...              vary={"backlog": [5]}, fixed={"clients": 20}, answer_range=(0, 20))
>>> run = Result("accept_queue", "sim", "asked", {"backlog": 5}, profile="linux-6.18", summary={"established_clients": 6})
>>> g = grade(q, 6, run); g.status, g.observed, g.rule
('right', 6, 'exact')
>>> grade(q, 5, run).status
'wrong'
>>> grade(q, None, run).status
'ungraded'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from tcplab.experiments.result import Result
    from tcplab.grading.question import Question

__all__ = ["Grade", "grade", "explain", "STATUSES"]

Status = Literal["right", "wrong", "untrusted", "ungraded"]
#: right/wrong: graded; untrusted: the run refused to grade (host busy), re-run; ungraded: no answer committed
#: (or the run could not measure the key)
STATUSES: tuple[str, ...] = ("right", "wrong", "untrusted", "ungraded")


@dataclass(frozen=True)
class Grade:
    """The verdict on one committed answer.

    status:   ``right``, ``wrong``, ``untrusted`` (the run judged itself disturbed: no grade) or
              ``ungraded`` (nothing was committed, or the run could not measure the key).
    answer:   what the learner committed (their unit, or a choice's label).
    observed: the run's value in the learner's terms (same unit, or the label), None when untrusted.
    rule:     the spec rule's name (``exact``, ``rel10``...), as the agreement grid shows it.
    tolerance: the rule in words.
    mode, badge, provenance: the run's (``REAL``/``SIMULATED``, which kernel or profile, why).
    why:      a sentence for the learner (the refusal's reason when untrusted).
    """

    status: Status
    answer: Any
    observed: Any
    rule: str
    tolerance: str
    mode: str
    badge: str
    provenance: str
    why: str = ""

    @property
    def graded(self) -> bool:
        """True when the run decided right or wrong."""
        return self.status in ("right", "wrong")

    @property
    def correct(self) -> bool | None:
        """True / False when graded, None otherwise."""
        return None if not self.graded else self.status == "right"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a record."""
        return asdict(self)


def _profile(result: Result) -> str | None:
    return result.profile or (f"linux-{result.kernel}" if result.kernel else None)


def grade(question: Question, answer: Any, result: Result) -> Grade:
    """Grade ``answer`` (as typed; None: nothing committed) by ``result``, a run of the question's experiment.

    The comparison is the key's spec rule, with the run's value in the place of the real value and
    the prediction in the place of the simulated one (``Rule.verdict``): the same tolerance the
    agreement grid allows the simulator.
    """
    if result.name != question.experiment:
        raise ValueError(f"result must be a run of {question.experiment}, not of {result.name}")
    rule = question.rule
    common = {"rule": rule.name, "tolerance": rule.meaning, "mode": result.mode, "badge": result.badge,
              "provenance": result.provenance}
    if not result.trusted:
        reason = result.fidelity.reason if result.fidelity is not None else "the run lost fidelity"
        return Grade("untrusted", answer, None,
                     why=f"Not graded: this run does not trust its own figures ({reason}). Your answer stays "
                         f"committed; run it again.", **common)
    observed = result.summary.get(question.key)
    shown = question.label_of(observed)
    if answer is None:
        return Grade("ungraded", None, shown, why="No prediction was committed, so this run grades nothing.",
                     **common)
    if observed is None and (question.choices is None or None not in question.choices.values()):
        # the run could not measure the key (handshake's packets without a capture): no value, no grade
        return Grade("ungraded", answer, None, why=f"Not graded: this run could not measure {question.key} "
                     f"(see its notes). Your answer stays committed.", **common)
    predicted = question.value_of(answer)
    _, ok = rule.verdict(observed, predicted, result.params, sampled=result.sampled, profile=_profile(result),
                         real_summary=result.summary)
    if ok is None:   # the rule does not compare these parameters (refused at definition; kept safe here)
        return Grade("ungraded", answer, shown, why=f"The rule {rule.name} does not compare {question.key} here.",
                     **common)
    return Grade("right" if ok else "wrong", answer, shown, **common)


class _Values(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return "?"   # a key the run did not report (an older result, a fake in a test): shown, never raised


def explain(question: Question, g: Grade, result: Result, params: Mapping[str, Any]) -> str:
    """The question's explanation filled with the run's summary, the parameters and the two values
    (a field the run lacks shows as ``?``).

    >>> from tcplab.experiments.result import Result
    >>> from tcplab.grading.questions import question
    >>> q = question("03.java"); r = Result("accept_queue", "sim", "", {}, summary={"established_clients": 51})
    >>> explain(q, grade(q, 51, r), r, {"backlog": 50})[:40]
    'backlog + 1 = 51: the others are not ref'
    """
    if not question.explanation:
        return ""
    values = _Values({**dict(result.summary), **dict(params), "observed": g.observed, "answer": g.answer})
    return question.explanation.format_map(values)
