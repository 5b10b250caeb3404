"""Grades out of the records: every attempt as CSV, and a gradebook in nbgrader's export format.

:func:`write_csv` writes one row per attempt (:data:`CSV_COLUMNS`); :func:`read_csv` reads it back
with its types. :func:`write_gradebook` writes the CSV ``nbgrader export`` writes
(nbgrader/plugins/export.py ``CsvExportPlugin``: assignment, duedate, timestamp, student_id,
last_name, first_name, email, raw_score, late_submission_penalty, score, max_score), one row per
notebook (the assignment) and learner: an LMS import or a script that reads nbgrader's export
reads this one. docs/grading.md says why nbgrader's and not Otter-Grader's.

Scoring: a question scores 1 when the learner's FIRST graded attempt at it was right and was
committed before they had seen a run of it (the parameters are theirs for good, so a second
attempt after the run is no prediction); runs that refused to grade (host busy) do not count as
attempts. ``max_score`` is the number of the notebook's questions.

>>> recs = [{"event": "commit", "user": "ana", "notebook": "03", "question": "03.somaxconn", "attempt": "a",
...          "answer": 4, "t": "2026-01-01T10:00:00"},
...         {"event": "run", "user": "ana", "notebook": "03", "question": "03.somaxconn", "attempt": "a",
...          "status": "right", "correct": True, "observed": 4, "t": "2026-01-01T10:00:02"}]
>>> [(r["assignment"], r["student_id"], r["raw_score"], r["max_score"]) for r in gradebook_rows(recs)
...  if r["assignment"] == "03"]
[('03', 'ana', 1.0, 4.0)]
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from tcplab.grading.store import attempts

__all__ = ["CSV_COLUMNS", "GRADEBOOK_COLUMNS", "csv_rows", "write_csv", "read_csv", "scores", "gradebook_rows",
           "write_gradebook", "read_gradebook"]

CSV_COLUMNS = ("user", "notebook", "question", "attempt", "committed_at", "answer", "status", "observed", "correct",
               "rule", "mode", "badge", "ran_at", "seen_before", "params")
#: nbgrader's ``CsvExportPlugin`` columns, in its order
GRADEBOOK_COLUMNS = ("assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                     "raw_score", "late_submission_penalty", "score", "max_score")


def _target(dest: str | os.PathLike[str] | IO[str]) -> tuple[IO[str], bool]:
    if isinstance(dest, (str, os.PathLike)):
        return open(dest, "w", newline="", encoding="utf-8"), True
    return dest, False


def csv_rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per attempt (:func:`tcplab.grading.store.attempts`), the columns of :data:`CSV_COLUMNS`."""
    return [{c: a.get(c) for c in CSV_COLUMNS} for a in attempts(records)]


def write_csv(records: Iterable[Mapping[str, Any]], dest: str | os.PathLike[str] | IO[str]) -> int:
    """Write every attempt as CSV to a path or an open text file; the number of rows."""
    rows = csv_rows(records)
    f, close = _target(dest)
    try:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({**r, "params": json.dumps(r["params"], sort_keys=True),
                        **{k: "" if r[k] is None else r[k] for k in CSV_COLUMNS if k != "params"}})
    finally:
        if close:
            f.close()
    return len(rows)


def _value(text: str) -> Any:
    """A CSV cell back to its type: '' -> None, True/False, a number, else the text."""
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number


def read_csv(src: str | os.PathLike[str] | IO[str]) -> list[dict[str, Any]]:
    """The rows :func:`write_csv` wrote, with their types (``params`` a dict; ids and times stay text)."""
    text = Path(src).read_text(encoding="utf-8") if isinstance(src, (str, os.PathLike)) else src.read()
    out = []
    for r in csv.DictReader(io.StringIO(text)):
        if list(r) != list(CSV_COLUMNS):
            raise ValueError(f"src must have the columns {', '.join(CSV_COLUMNS)}, not {', '.join(r)}")
        row: dict[str, Any] = {k: _value(v) for k, v in r.items()}
        for k in ("user", "notebook", "question", "attempt", "committed_at", "ran_at"):
            row[k] = r[k] or None
        row["params"] = json.loads(r["params"]) if r["params"] else {}
        out.append(row)
    return out


def _questions() -> Mapping[str, Any]:
    from tcplab.grading.questions import QUESTIONS

    return QUESTIONS


def scores(records: Iterable[Mapping[str, Any]],
           questions: Mapping[str, Any] | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """(learner, notebook) -> {"score", "max_score", "timestamp", "questions": {id: 0 or 1}} for every
    learner in ``records`` and every notebook with questions (``questions``: id -> Question, default
    the course's)."""
    bank = _questions() if questions is None else questions
    per_nb: dict[str, list[str]] = {}
    for qid, q in bank.items():
        per_nb.setdefault(q.notebook, []).append(qid)
    rows = attempts(records)
    users = sorted({str(a["user"]) for a in rows})
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for a in rows:   # commit order: the first graded attempt of each (user, question)
        if a["status"] in ("right", "wrong") and a["committed_at"] is not None:
            first.setdefault((str(a["user"]), a["question"]), a)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for user in users:
        for nb, qids in sorted(per_nb.items()):
            got = {q: first.get((user, q)) for q in qids}
            marks = {q: int(bool(a and a["status"] == "right" and not a["seen_before"])) for q, a in got.items()}
            stamps = [a["ran_at"] for a in got.values() if a and a["ran_at"]]
            out[(user, nb)] = {"score": float(sum(marks.values())), "max_score": float(len(qids)),
                               "timestamp": max(stamps) if stamps else "", "questions": marks}
    return out


def gradebook_rows(records: Iterable[Mapping[str, Any]],
                   questions: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """nbgrader's export rows: one per notebook and learner (a learner with no graded answer in a
    notebook scores 0 there, as nbgrader scores a missing submission)."""
    return [{"assignment": nb, "duedate": "", "timestamp": s["timestamp"], "student_id": user, "last_name": "",
             "first_name": "", "email": "", "raw_score": s["score"], "late_submission_penalty": 0.0,
             "score": s["score"], "max_score": s["max_score"]}
            for (user, nb), s in sorted(scores(records, questions).items(), key=lambda kv: (kv[0][1], kv[0][0]))]


def write_gradebook(records: Iterable[Mapping[str, Any]], dest: str | os.PathLike[str] | IO[str],
                    questions: Mapping[str, Any] | None = None) -> int:
    """Write :func:`gradebook_rows` in nbgrader's export CSV; the number of rows."""
    rows = gradebook_rows(records, questions)
    f, close = _target(dest)
    try:
        w = csv.DictWriter(f, fieldnames=GRADEBOOK_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    finally:
        if close:
            f.close()
    return len(rows)


def read_gradebook(src: str | os.PathLike[str] | IO[str]) -> list[dict[str, Any]]:
    """An nbgrader export CSV (ours or nbgrader's own) as rows; the scores as floats."""
    text = Path(src).read_text(encoding="utf-8") if isinstance(src, (str, os.PathLike)) else src.read()
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != GRADEBOOK_COLUMNS:
        raise ValueError(f"src must have nbgrader's export columns {', '.join(GRADEBOOK_COLUMNS)}, "
                         f"not {', '.join(reader.fieldnames or ())}")
    return [{**r, **{k: float(r[k]) for k in ("raw_score", "late_submission_penalty", "score", "max_score")}}
            for r in reader]
