"""The whole course under nbval, against nbval running one empty notebook (the harness and
kernel start-up cost) in the same run."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _nbval(target: str, cwd: str) -> float:
    import os
    env = dict(os.environ, PYTHONPATH=str(ROOT))  # the notebooks' kernels import tcplab from here
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", target, "-q", "-p", "no:cacheprovider"],
                         cwd=cwd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"nbval failed in {cwd}:\n{out.stdout[-3000:]}")
    return time.perf_counter() - t0


def run() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "x", "metadata": {},
                         "outputs": [], "source": ["1 + 1"]}],
              "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
              "nbformat": 4, "nbformat_minor": 5}
        (pathlib.Path(tmp) / "empty.ipynb").write_text(json.dumps(nb))
        empty = _nbval("empty.ipynb", tmp)
    course = _nbval(".", str(ROOT / "course"))
    n = len(list((ROOT / "course").glob("*.ipynb")))
    return [{"what": "nbval, one trivial notebook (reference)", "seconds": empty, "ratio": 1.0},
            {"what": f"nbval, the whole course ({n} notebooks)", "seconds": course, "ratio": course / empty,
             "per_notebook_s": course / n}]


if __name__ == "__main__":
    from bench._common import table
    print(table(run(), ["what", "seconds", "ratio", "per_notebook_s"]))
