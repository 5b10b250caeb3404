"""Self-check results in each learner's home, and the instructor's view of a room.

A self-check (``tcplab.widgets.SelfCheck``) appends one JSON line per check to
``~/.tcplab/progress.jsonl`` when the environment variable ``TCPLAB_PROGRESS`` is set (the
workshop hub sets it for every learner; elsewhere nothing is written). An admin reads every
learner's file with ``tcplab workshop progress``. A learner can edit their own file: this is
a view of the room for the instructor, not an exam.

>>> rows = [{"user": "ana", "check": "accept_queue", "correct": False},
...         {"user": "ana", "check": "accept_queue", "correct": True},
...         {"user": "bo", "check": "syn_queue", "correct": False}]
>>> print(progress_table(rows))
learner  accept_queue  syn_queue
ana      passed (2)    -
bo       -             not yet (1)
"""

from __future__ import annotations

import contextlib
import datetime
import getpass
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tcplab._safeio import read_in_home

__all__ = ["record_self_check", "read_room", "progress_table", "PROGRESS_ENV", "progress_path"]

PROGRESS_ENV = "TCPLAB_PROGRESS"
#: a learner's file is read at most this far (an admin command must not hang on a huge file)
MAX_BYTES = 4 << 20


def progress_path(home: str | os.PathLike[str] | None = None) -> Path:
    """``<home>/.tcplab/progress.jsonl`` (``home`` defaults to ``~``)."""
    return Path(home if home is not None else os.path.expanduser("~")) / ".tcplab" / "progress.jsonl"


def record_self_check(check: str, params: Mapping[str, Any], answer: Any, expected: Any, correct: bool | None,
                      mode: str) -> Path | None:
    """Append one self-check result if ``TCPLAB_PROGRESS`` is set; the file's path, or None.

    Never raises: a full disk or a read-only home must not break the learner's notebook.
    """
    if not os.environ.get(PROGRESS_ENV):
        return None
    path = progress_path()
    entry = {"t": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "user": getpass.getuser(), "check": check, "params": dict(params), "answer": answer,
             "expected": expected, "correct": correct, "mode": mode}
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(json.dumps(entry, default=str) + "\n")
    except OSError:
        return None
    return path


def read_room(homes: str | os.PathLike[str] = "/home") -> list[dict[str, Any]]:
    """Every entry of ``<homes>/*/.tcplab/progress.jsonl`` (unreadable files and bad lines skipped);
    ``user`` is the home directory's name, whatever the file claims."""
    root = Path(homes)
    if not root.is_dir():
        raise ValueError(f"homes must be a directory holding the learners' home directories, not {str(root)!r}")
    rows = []
    for home in sorted(p for p in root.iterdir() if p.is_dir()):
        # never follows a learner's symlink nor blocks on their FIFO: this runs as root (_safeio)
        text = (read_in_home(home, ".tcplab/progress.jsonl", MAX_BYTES) or b"").decode("utf-8", errors="replace")
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                e = json.loads(line)
                if isinstance(e, dict) and isinstance(e.get("check"), str):
                    rows.append({**e, "user": home.name})
    return rows


def progress_table(rows: Iterable[Mapping[str, Any]]) -> str:
    """Who passed which self-check: "passed (n)" once any attempt was right, "not yet (n)" otherwise."""
    cells: dict[str, dict[str, list[bool]]] = {}
    checks: list[str] = []
    for r in rows:
        cells.setdefault(r["user"], {}).setdefault(r["check"], []).append(bool(r.get("correct")))
        if r["check"] not in checks:
            checks.append(r["check"])
    if not cells:
        return "no self-check results yet"
    checks.sort()
    table = [["learner", *checks]]
    for user in sorted(cells):
        row = [user]
        for c in checks:
            tries = cells[user].get(c)
            row.append("-" if not tries else f"{'passed' if any(tries) else 'not yet'} ({len(tries)})")
        table.append(row)
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in table)
