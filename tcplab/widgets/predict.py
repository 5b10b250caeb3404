"""Commit a prediction, then let a run grade it: the :class:`Prediction` widget, and a learner's
attempts in a notebook (:class:`Attempts`).

The learner sees the question with their own parameters (drawn from their user name: a neighbour's
differ, a re-run's do not), types a number or picks a choice and **commits** it; only then does
the run grade it (auto mode: real where the kernel allows, the badge says which). The committed
answer cannot be edited: a new answer is a new attempt, a new record. A run that does not trust its
figures (a real run on a busy host) grades nothing and offers a re-run. Without a committed answer
(nbval runs a notebook with no learner) the widget builds, and a run shows its result ungraded.

>>> import tempfile, pathlib
>>> from tcplab.experiments.result import Result
>>> path = pathlib.Path(tempfile.mkdtemp()) / "answers.jsonl"
>>> fake = lambda mode, **p: Result("accept_queue", "sim", "asked", p, profile="linux-6.18",
...                                 summary={"established_clients": min(p["backlog"], p["somaxconn"]) + 1})
>>> w = Prediction("03.somaxconn", user="ana", path=path, run=fake)
>>> w.params
{'clients': 20, 'backlog': 8, 'somaxconn': 2}
>>> w.commit(3).state, w.answer_box.disabled
('pending', True)
>>> w.run().status
'right'
>>> w.commit(4)
Traceback (most recent call last):
ValueError: this attempt is committed (3); start a new attempt to answer again
>>> [(a["answer"], a["status"]) for a in w.attempts()]
[(3.0, 'right')]
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from tcplab.grading import store
from tcplab.grading.grade import Grade, explain, grade
from tcplab.grading.question import Question, user_name
from tcplab.grading.questions import question as _question
from tcplab.widgets.common import (ERROR_COLOR, REAL_COLOR, SHOWN_ERRORS, accessible, error_header, header_html,
                                   panel_heading)

if TYPE_CHECKING:
    from tcplab.experiments.result import Result

__all__ = ["Prediction", "Attempts", "attempts_html"]

_STATUS_WORDS = {"right": "✅ right", "wrong": "❌ wrong", "untrusted": "⚠ not graded (host busy)",
                 "ungraded": "not graded (nothing committed)", "error": "⚠ no result", "pending": "committed, not run"}


class Prediction:
    """One question of the course (``"03.somaxconn"``, see ``tcplab.grading.questions``) or a
    :class:`~tcplab.grading.question.Question`, as a widget.

    user: the learner (default: ``JUPYTERHUB_USER`` or the OS user); path: the answers file
    (default ``~/.tcplab/answers.jsonl``); run: the experiment function (default the registry's).
    """

    def __init__(self, question: Question | str, *, user: str | None = None, mode: str = "auto",
                 path: str | Path | None = None, run: Callable[..., Result] | None = None) -> None:
        self.question = _question(question) if isinstance(question, str) else question
        self.user = user or user_name()
        self.mode = mode
        self.path = Path(path) if path is not None else None
        if run is None:
            from tcplab.experiments.registry import functions
            run = functions()[self.question.experiment]
        self._run = run
        self.params = self.question.params_for(self.user)
        self.attempt: str | None = None
        self.answer: Any = None
        self.result: Result | None = None
        self.grade: Grade | None = None
        self.saved_error: str | None = None
        q = self.question
        unit = f" ({q.unit})" if q.unit else ""
        self.prompt = W.HTML(f"<b>{html.escape(q.prompt(self.params))}</b>")
        if q.choices is not None:
            self.answer_box: W.Widget = W.RadioButtons(options=list(q.choices), value=None,
                                                       description="your prediction",
                                                       style={"description_width": "initial"})
        else:
            lo, hi = q.answer_range  # type: ignore[misc]
            self.answer_box = W.Text(value="", placeholder=f"a number, {lo:g}..{hi:g}{unit}",
                                     description=f"your prediction{unit}", style={"description_width": "initial"},
                                     layout=W.Layout(width="320px"))
        self.commit_button = W.Button(description="Commit", icon="lock", button_style="primary",
                                      tooltip="commit your prediction: it cannot be changed afterwards")
        self.commit_button.on_click(lambda _b: self._safe(self.commit))
        self.run_button = W.Button(description="Run and grade", icon="play",
                                   tooltip="run the experiment with your parameters and grade the committed answer")
        self.run_button.on_click(lambda _b: self._safe(self.run))
        self.new_button = W.Button(description="New attempt", icon="refresh",
                                   tooltip="answer again: a new record (the last one stays as it was)")
        self.new_button.on_click(lambda _b: self.new_attempt())
        self.new_button.layout.display = "none"
        self.status = W.HTML("<small>Commit a prediction, then run: the run grades it.</small>")
        self.header = W.HTML("")
        self.feedback = W.HTML("")
        self.widget = accessible(W.VBox(
            [panel_heading("Predict, then let the kernel grade"), self.prompt,
             W.HBox([self.answer_box, self.commit_button, self.run_button, self.new_button]), self.status,
             self.header, self.feedback],
            layout=W.Layout(border="1px solid #d0d7de", padding="6px")))

    # -- the learner's steps -------------------------------------------------------------------
    def _typed(self) -> Any:
        value = self.answer_box.value
        if self.question.choices is not None:
            if value is None:
                raise ValueError(f"answer must be one of {', '.join(map(repr, self.question.choices))}, not None")
            return value
        text = str(value).strip()
        try:
            return float(text)
        except ValueError:
            lo, hi = self.question.answer_range  # type: ignore[misc]
            raise ValueError(f"answer must be a number in {lo:g}..{hi:g}, not {text!r}") from None

    def commit(self, answer: Any = None) -> Prediction:
        """Commit ``answer`` (default: what is typed); it is checked and recorded before any run."""
        if self.attempt is not None:
            raise ValueError(f"this attempt is committed ({_shown(self.answer)}); start a new attempt to answer again")
        value = self.question.check_answer(self._typed() if answer is None else answer)
        if answer is not None:   # checked first: a choice box refuses a label it does not offer with a TraitError
            self.answer_box.value = value if self.question.choices is not None else str(answer)
        self.answer, self.attempt = value, uuid.uuid4().hex[:12]
        self.answer_box.disabled = self.commit_button.disabled = True
        self._save({"event": "commit", "answer": value, "params": self.params})
        self.status.value = (f"<small>🔒 Committed: <b>{html.escape(_shown(value))}</b>{self._unit()}. "
                             f"Now run it.{self._saved_note()}</small>")
        return self

    @property
    def state(self) -> str:
        """``open`` (nothing committed), ``pending`` (committed, not graded), or the last grade's status."""
        if self.attempt is None:
            return "open"
        return self.grade.status if self.grade is not None else "pending"

    def run(self) -> Grade | None:
        """Run the experiment with this learner's parameters and grade the committed answer (None: the
        run failed; the header says why)."""
        self.run_button.disabled = True
        self.header.value = "<i>running…</i>"
        try:
            result = self._run(**self.params, mode=self.mode)
        except SHOWN_ERRORS as e:
            self.header.value = error_header(e)
            self._save({"event": "run", "status": "error", "answer": self.answer, "params": self.params,
                        "check": self.question.id, "correct": None, "error": str(e)[:300]})
            return None
        finally:
            self.run_button.disabled = False
        self.result = result
        g = grade(self.question, self.answer, result)
        self.grade = g
        self._save({"event": "run", "status": g.status, "answer": g.answer, "observed": g.observed,
                    "params": self.params, "check": self.question.id, "correct": g.correct, "rule": g.rule,
                    "mode": g.mode, "badge": g.badge, "kernel": result.kernel, "profile": result.profile})
        self.header.value = header_html(result)
        self.feedback.value = self._feedback(g, result)
        if g.status == "untrusted":
            self.run_button.description = "Re-run"
        else:
            self.run_button.description = "Run and grade"
            if g.graded:
                self.new_button.layout.display = None
        return g

    def new_attempt(self) -> None:
        """Answer again: the input opens, the next commit is a new record."""
        self.attempt, self.answer, self.grade = None, None, None
        self.answer_box.disabled = self.commit_button.disabled = False
        self.new_button.layout.display = "none"
        self.status.value = "<small>New attempt: commit a prediction, then run.</small>"
        self.feedback.value = ""

    def attempts(self) -> list[dict[str, Any]]:
        """This learner's attempts at this question (from the answers file)."""
        return [a for a in store.attempts(store.read(self.path), user=self.user)
                if a["question"] == self.question.id]

    # -- helpers -------------------------------------------------------------------------------
    def _unit(self) -> str:
        return f" {self.question.unit}" if self.question.unit and self.question.choices is None else ""

    def _saved_note(self) -> str:
        return f" <span style='color:{ERROR_COLOR}'>(not saved: {html.escape(self.saved_error)})</span>" \
            if self.saved_error else ""

    def _save(self, record: dict[str, Any]) -> None:
        attempt = self.attempt or f"run-{uuid.uuid4().hex[:8]}"
        try:
            store.append({"user": self.user, "notebook": self.question.notebook, "question": self.question.id,
                          "attempt": attempt, **record}, self.path)
            self.saved_error = None
        except OSError as e:   # a full disk or a read-only home must not break the notebook: say so
            self.saved_error = e.strerror or str(e)

    def _safe(self, step: Callable[[], Any]) -> None:
        try:
            step()
        except (ValueError, TypeError) as e:
            self.status.value = f"<small style='color:{ERROR_COLOR}'>⚠ {html.escape(str(e))}</small>"

    def _feedback(self, g: Grade, result: Result) -> str:
        q = self.question
        who = "kernel" if result.mode == "real" else "simulator"
        line = (f"<div><small><b>Decided in the kernel by</b> <code>{html.escape(q.kernel_line)}</code></small></div>"
                f"<div><small>Tolerance: {html.escape(q.key)} {html.escape(g.tolerance)} ({html.escape(g.rule)}, "
                f"the experiment's own rule)</small></div>")
        why = html.escape(explain(q, g, result, self.params))
        observed = f"{html.escape(_shown(g.observed))}{self._unit()}"
        if g.status == "untrusted":
            return f"<div style='color:{ERROR_COLOR}'><b>⚠ {html.escape(g.why)}</b></div>"
        if g.status == "ungraded":
            return f"<div><b>The {who} says {observed}.</b> {html.escape(g.why)} {why}</div>{line}"
        if g.status == "right":
            return (f"<div style='color:{REAL_COLOR}'>✅ <b>Right: you said {html.escape(_shown(g.answer))}, the "
                    f"{who} says {observed}.</b></div><div>{why}</div>{line}{self._saved_note()}")
        return (f"<div style='color:{ERROR_COLOR}'>❌ <b>You said {html.escape(_shown(g.answer))}; the {who} says "
                f"{observed}.</b></div><div>{why}</div>{line}{self._saved_note()}")

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget)


def _shown(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def attempts_html(rows: list[dict[str, Any]]) -> str:
    """An HTML table of attempts (newest last), or a sentence when there are none.

    >>> attempts_html([])
    '<i>No attempts in this notebook yet.</i>'
    """
    if not rows:
        return "<i>No attempts in this notebook yet.</i>"
    esc = html.escape
    body = "".join(
        f"<tr><td>{esc(str(a['question']))}</td><td>{esc(str(a.get('committed_at') or '')[:19])}</td>"
        f"<td>{esc(_shown(a['answer'])) if a['answer'] is not None else '-'}</td>"
        f"<td>{esc(_shown(a['observed'])) if a.get('observed') is not None else '-'}</td>"
        f"<td>{esc(_STATUS_WORDS.get(str(a.get('status')), str(a.get('status'))))}</td>"
        f"<td>{esc(str(a.get('badge') or ''))}</td></tr>" for a in rows)
    return ("<table><thead><tr><th>question</th><th>committed (UTC)</th><th>your answer</th><th>the run</th>"
            f"<th>grade</th><th>run</th></tr></thead><tbody>{body}</tbody></table>")


class Attempts:
    """Your attempts in this notebook, read from your answers file (press Refresh after a run).

    >>> import tempfile, pathlib
    >>> Attempts("03", user="nobody", path=pathlib.Path(tempfile.mkdtemp()) / "a.jsonl").table.value
    '<i>No attempts in this notebook yet.</i>'
    """

    def __init__(self, notebook: str, *, user: str | None = None, path: str | Path | None = None) -> None:
        self.notebook, self.user = notebook, user or user_name()
        self.path = Path(path) if path is not None else None
        self.table = W.HTML("")
        self.refresh_button = W.Button(description="Refresh", icon="refresh", tooltip="read your attempts again")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.widget = accessible(W.VBox([panel_heading(f"Your attempts in notebook {notebook}"), self.refresh_button, self.table]))
        self.refresh()

    def rows(self) -> list[dict[str, Any]]:
        """The attempts (see ``tcplab.grading.store.attempts``)."""
        return store.attempts(store.read(self.path), notebook=self.notebook, user=self.user)

    def refresh(self) -> None:
        """Read the file again and redraw."""
        self.table.value = attempts_html(self.rows())

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget)
