#!/usr/bin/env python3
"""Run every course question once (auto mode) for one learner and print what graded it.

    PYTHONPATH=. python scripts/grade_questions.py [--user ana] [--mode auto] [--only 03.java ...]

Nothing is committed, so nothing is graded: each line shows the learner's values, the run's badge
(REAL / SIMULATED / REAL, host busy), the value a prediction is held to, the rule, and the seconds
the run took. The answers go to a temporary file, never to ~/.tcplab.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--user", default="ana", help="the learner whose values are drawn (default ana)")
    ap.add_argument("--mode", choices=["auto", "real", "sim"], default="auto")
    ap.add_argument("--only", nargs="*", metavar="ID", help="these questions (default: all)")
    args = ap.parse_args()
    from tcplab.grading.questions import QUESTIONS
    from tcplab.widgets.predict import Prediction

    path = pathlib.Path(tempfile.mkdtemp()) / "answers.jsonl"
    total = time.monotonic()
    ids = args.only or list(QUESTIONS)
    unknown = sorted(set(ids) - set(QUESTIONS))
    if unknown:
        ap.error(f"--only must name questions among {', '.join(QUESTIONS)}, not {', '.join(unknown)}")
    for qid in ids:
        w = Prediction(qid, user=args.user, path=path, mode=args.mode)
        t0 = time.monotonic()
        g = w.run()
        dt = time.monotonic() - t0
        if g is None:
            print(f"{qid:22} no result ({w.header.value[:100]})")
            continue
        r = w.result
        print(f"{qid:22} {r.badge:16} trusted={r.trusted!s:5} {w.params} -> {g.observed!r} ({g.rule}) {dt:.1f} s")
    print(f"{len(ids)} questions in {time.monotonic() - total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
