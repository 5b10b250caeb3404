"""Each learner's answers: one append-only JSON-lines file in their home, and the attempts read back.

``~/.tcplab/answers.jsonl`` (``TCPLAB_ANSWERS`` names another file: tests, a course that keeps
answers elsewhere). Two events per attempt, joined by the attempt's id:

* ``commit``: the prediction, written when the learner commits it, BEFORE any run (a live view of
  the room can show the predictions while the runs are still going);
* ``run``: what a run made of it: ``right``/``wrong`` (graded), ``untrusted`` (the host disturbed a
  real run: no grade, re-run), ``ungraded`` (run with nothing committed, or the run could not measure the key),
  ``error`` (no result).

Every record carries ``v`` (the schema), ``t`` (UTC), ``user``, ``notebook``, ``question``,
``attempt``, ``event``, and for ``run`` also ``check`` and ``correct``, the fields
``tcplab workshop progress`` reads (docs/grading.md has the schema). A committed answer is never
rewritten: a new answer is a new attempt, a new record.

One record is one ``write()`` on a file opened ``O_APPEND``: Linux appends it whole at the end
(the inode lock serialises writers of a regular file), so two notebooks of the same learner never
interleave lines. The file is bounded: past :data:`MAX_BYTES` it is renamed to ``answers.jsonl.1``
(``os.replace``, atomic; the older one goes) and a new one starts; reading reads both.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "answers.jsonl"
>>> _ = append({"event": "commit", "user": "ana", "notebook": "03", "question": "03.x", "attempt": "a1",
...             "answer": 4}, p)
>>> _ = append({"event": "run", "user": "ana", "notebook": "03", "question": "03.x", "attempt": "a1",
...             "status": "right", "observed": 4}, p)
>>> [(a["question"], a["answer"], a["status"]) for a in attempts(read(p))]
[('03.x', 4, 'right')]
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tcplab._safeio import read_in_home, read_regular

__all__ = ["ANSWERS_ENV", "SCHEMA", "MAX_BYTES", "MAX_LINE", "answers_path", "append", "read", "attempts",
           "read_room", "read_home", "progress_rows"]

ANSWERS_ENV = "TCPLAB_ANSWERS"
SCHEMA = 1
#: one file holds at most this much before it is rotated (two files: at most twice this on disk)
MAX_BYTES = 1 << 20
#: one record at most (a record holds a question's few parameters, never a run's tables)
MAX_LINE = 8192
EVENTS = ("commit", "run")
#: where a learner's answers are, relative to their home
ANSWERS_REL = ".tcplab/answers.jsonl"


def answers_path(home: str | os.PathLike[str] | None = None) -> Path:
    """``$TCPLAB_ANSWERS`` if set (and no ``home`` given), else ``<home>/.tcplab/answers.jsonl``."""
    if home is None and os.environ.get(ANSWERS_ENV):
        return Path(os.environ[ANSWERS_ENV])
    return Path(home if home is not None else os.path.expanduser("~")) / ".tcplab" / "answers.jsonl"


def _rotated(path: Path) -> Path:
    return path.with_name(path.name + ".1")


def append(record: Mapping[str, Any], path: str | os.PathLike[str] | None = None) -> Path:
    """Append one record (``v`` and ``t`` added); the file's path. Raises ``OSError`` when it cannot
    write (the caller says so to the learner) and ``ValueError`` for a record without its keys."""
    missing = [k for k in ("event", "user", "notebook", "question", "attempt") if k not in record]
    if missing:
        raise ValueError(f"record needs {', '.join(missing)}")
    if record["event"] not in EVENTS:
        raise ValueError(f"event must be one of {', '.join(EVENTS)}, not {record['event']!r}")
    entry = {"v": SCHEMA, "t": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
             **dict(record)}
    line = (json.dumps(entry, default=str, sort_keys=False) + "\n").encode()
    if len(line) > MAX_LINE:
        raise ValueError(f"record must be at most {MAX_LINE} bytes as JSON, not {len(line)}")
    p = Path(path) if path is not None else answers_path()
    p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if p.stat().st_size + len(line) > MAX_BYTES:
            os.replace(p, _rotated(p))
    fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return p


def _parse(raw: bytes | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for line in (raw or b"").decode("utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            e = json.loads(line)
            if isinstance(e, dict) and e.get("event") in EVENTS and isinstance(e.get("question"), str) \
                    and isinstance(e.get("attempt"), str):
                out.append(e)
    return out


def _read_one(path: Path) -> list[dict[str, Any]]:
    # only a regular file, never a symlink or a FIFO (_safeio), and bounded
    return _parse(read_regular(path, MAX_BYTES + MAX_LINE))


def read(path: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Every record of the file and of its rotated predecessor, oldest first (bad lines skipped)."""
    p = Path(path) if path is not None else answers_path()
    return _read_one(_rotated(p)) + _read_one(p)


def attempts(records: Iterable[Mapping[str, Any]], *, notebook: str | None = None,
             user: str | None = None) -> list[dict[str, Any]]:
    """One row per attempt, in commit order: its commit joined with its LAST run (a re-run after an
    untrusted run replaces the refusal). Runs with nothing committed are rows of their own.

    Row keys: user, notebook, question, attempt, committed_at, answer, params, status (``pending``
    before any run), observed, correct, rule, mode, badge, ran_at, seen_before (a run of this
    question was shown to this learner before this commit: the prediction was not blind).
    """
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    seen: set[tuple[str, str]] = set()   # (user, question) whose run a learner has seen
    for r in records:
        if notebook is not None and r.get("notebook") != notebook:
            continue
        if user is not None and r.get("user") != user:
            continue
        key = (str(r.get("user")), r["attempt"])
        uq = (str(r.get("user")), r["question"])
        if r["event"] == "commit":
            rows[key] = {"user": r.get("user"), "notebook": r.get("notebook"), "question": r["question"],
                         "attempt": r["attempt"], "committed_at": r.get("t"), "answer": r.get("answer"),
                         "params": r.get("params", {}), "status": "pending", "observed": None, "correct": None,
                         "rule": None, "mode": None, "badge": None, "ran_at": None, "seen_before": uq in seen}
            continue
        row = rows.setdefault(key, {"user": r.get("user"), "notebook": r.get("notebook"), "question": r["question"],
                                    "attempt": r["attempt"], "committed_at": None, "answer": None,
                                    "params": r.get("params", {}), "seen_before": uq in seen})
        row.update({k: r.get(k) for k in ("status", "observed", "correct", "rule", "mode", "badge")})
        row["ran_at"] = r.get("t")
        if r.get("status") in ("right", "wrong", "ungraded"):
            seen.add(uq)
    return list(rows.values())


def read_room(homes: str | os.PathLike[str] = "/home") -> list[dict[str, Any]]:
    """Every learner's records from ``<homes>/*/.tcplab/answers.jsonl``; ``user`` is the home
    directory's name, whatever a record claims (a learner can write their own file)."""
    root = Path(homes)
    if not root.is_dir():
        raise ValueError(f"homes must be a directory holding the learners' home directories, not {str(root)!r}")
    out: list[dict[str, Any]] = []
    for home in sorted(p for p in root.iterdir() if p.is_dir()):
        out += [{**r, "user": home.name} for r in read_home(home)]
    return out


def read_home(home: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of ``<home>/.tcplab/answers.jsonl`` (and its rotated predecessor) read as an admin:
    nothing under the home is followed through a symlink, a FIFO is never blocked on, only regular
    files owned by the home's owner count, at most :data:`MAX_BYTES` + :data:`MAX_LINE` each."""
    rel = ANSWERS_REL
    return _parse(read_in_home(home, rel + ".1", MAX_BYTES + MAX_LINE)) + \
        _parse(read_in_home(home, rel, MAX_BYTES + MAX_LINE))


def progress_rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The graded runs as ``tcplab workshop progress`` rows (user, check, correct)."""
    return [{"user": r.get("user"), "check": r["question"], "correct": r.get("correct")}
            for r in records if r["event"] == "run" and r.get("status") in ("right", "wrong")]
