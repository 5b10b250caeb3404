"""Counters: tcplab.counters() and a delta vs `nstat` (subprocess + parse), same run."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from bench._common import median_time


def _nstat_delta(env: dict) -> dict[str, int]:
    # nstat keeps its history in NSTAT_HISTORY: each call prints the delta since the last one
    out = subprocess.run(["nstat"], capture_output=True, text=True, env=env).stdout
    values = {}
    for line in out.splitlines()[1:]:
        f = line.split()
        if len(f) >= 2 and f[1].isdigit():
            values[f[0]] = int(f[1])
    return values


def run() -> list[dict]:
    import tcplab

    if not shutil.which("nstat"):
        raise SystemExit("bench_counters needs `nstat` (iproute2) as its reference")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NSTAT_HISTORY=os.path.join(tmp, "hist"))
        subprocess.run(["nstat", "-n"], env=env, check=True)  # prime the history
        ref = median_time(lambda: _nstat_delta(env), repeat=9)
    read = median_time(lambda: tcplab.counters(), repeat=9)
    before = tcplab.counters()
    delta = median_time(lambda: tcplab.counters_delta(before, tcplab.counters()), repeat=9)
    return [{"what": "nstat (delta, subprocess + parse)", "seconds": ref, "ratio_vs_nstat": 1.0},
            {"what": "tcplab.counters()", "seconds": read, "ratio_vs_nstat": read / ref},
            {"what": "tcplab.counters_delta(before, counters())", "seconds": delta, "ratio_vs_nstat": delta / ref}]


if __name__ == "__main__":
    from bench._common import table
    print(table(run(), ["what", "seconds", "ratio_vs_nstat"]))
