"""Notebook 15's fixed real congestion runs, repeated: utilization and the runner's own timing.

    python scripts/fidelity_bench.py LABEL N            # N x (deep, two), one JSON line per run
    TCPLAB_NO_REALTIME=1 python scripts/fidelity_bench.py user 5   # the delay line without SCHED_FIFO

Each line: utilization, sRTT, the delay line's release lateness (p99 and max, from
``Result.fidelity.timings``), the sender's lag, the scheduling the delay line got, and the verdict
of one real run (mode="real" judges and repeats once: ``attempts`` 2 means the first was lost).
Load beside it as in docs/fidelity.md (every load command there is bounded by ``timeout``).
"""

from __future__ import annotations

import json
import os
import sys
import time

from tcplab.experiments import congestion

RUNS = {"deep": dict(rate_mbit=10, rtt_ms=20, buffer_packets=200, algorithm="cubic", duration=5),
        "two": dict(rate_mbit=20, rtt_ms=30, buffer_packets=40, flows=2, duration=6)}


def main(label: str, n: int) -> None:
    for i in range(n):
        for name, kw in RUNS.items():
            r = congestion(**kw, mode="real")
            t = {x.name: x for x in r.fidelity.timings}
            line = next(x for x in r.notes if x.startswith("delay line:"))
            print(json.dumps({"label": label, "run": name, "i": i, "at": time.strftime("%H:%M:%S"),
                              "utilization": r.summary["utilization"], "srtt_p50_ms": r.summary["srtt_p50_ms"],
                              "delay_line_p99_ms": t["delay_line"].ms,
                              "delay_line_max_ms": float(line.split("max ")[1].split(" ms")[0]),
                              "sender_lag_ms": t["sender"].ms, "scheduling": t["delay_line"].detail.split("; ")[-1][:-1],
                              "trusted": r.trusted, "attempts": r.fidelity.attempts,
                              "load": round(os.getloadavg()[0], 1)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "run", int(sys.argv[2]) if len(sys.argv) > 2 else 3)
