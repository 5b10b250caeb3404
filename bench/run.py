"""Run every benchmark, print the tables and write BENCHMARKS.md.

    make bench            (or: .venv/bin/python bench/run.py [--only sockets,counters,...])

Each figure is a ratio against a reference measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import table  # noqa: E402

# name -> (module, columns, goal text)
SUITES = {
    "startup": ("bench.bench_startup", ["what", "seconds", "ratio", "import_cost_ms"],
                "`import tcplab` well under 150 ms (pandas/plotly load lazily)"),
    "sockets": ("bench.bench_sockets", ["sockets", "tcplab_s", "psutil_s", "ss_s", "vs_psutil", "vs_ss",
                                        "tcplab_listen_s", "ss_listen_s", "listen_vs_ss"],
                "socket table faster than psutil by 3x (vs_psutil >= 3) and within 2x of ss (vs_ss <= 2)"),
    "counters": ("bench.bench_counters", ["what", "seconds", "ratio_vs_nstat"],
                 "counters and a delta cheaper than one nstat call"),
    "sim": ("bench.bench_sim", None,
            ">= 20x a plain SimPy model (same summary) on the public call, mode=\"sim\", at 10k and 100k "
            "attempts; 1M attempts < 2 s; memory linear"),
    "cc": ("bench.bench_cc", None, "a 30 s, 50 Mbit/s, 50 ms congestion-control transfer simulated in under 1 s"),
    "course": ("bench.bench_course", ["what", "seconds", "ratio", "per_notebook_s"],
               "the whole course under nbval in under 3 minutes on 2 cores"),
    "watch": ("bench.bench_watch", ["what", "sockets", "watch_s", "ss_s", "vs_ss", "port_rows", "port_s", "ss_port_s",
                                    "port_vs_ss", "cpu_watch_pct", "cpu_ss_pct", "cpu_vs_ss", "rows", "peak_mb",
                                    "bytes_per_row", "frame_mb", "ten_min_1s_mb"],
              "a watch sample no dearer than `ss -tain` at the same interval (vs_ss <= 1, cpu_vs_ss <= 1) at 1k "
              "and 10k sockets; memory linear in rows"),
    "experiments": ("bench.bench_experiments", None,
                    "accept_queue(128, 200) within 3x of a bare stdlib script in the same kind of namespace"),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(SUITES), help="comma-separated: " + ", ".join(SUITES))
    p.add_argument("--out", default="BENCHMARKS.md")
    args = p.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SUITES]
    if unknown:
        p.error(f"--only must name suites among {', '.join(SUITES)}, not {', '.join(unknown)}")
    import tcplab
    sections = []
    for name in chosen:
        module, columns, goal = SUITES[name]
        t0 = time.perf_counter()
        rows = importlib.import_module(module).run()
        cols = columns or list(dict.fromkeys(k for r in rows for k in r))
        text = table(rows, cols)
        print(f"\n## {name} (goal: {goal})  [{time.perf_counter() - t0:.1f} s]\n{text}", flush=True)
        sections.append(f"## {name}\n\nGoal: {goal}.\n\n{text}\n")
    header = (f"# tcplab benchmarks\n\nMeasured {datetime.date.today()} on Linux {platform.release()}, "
              f"{os.cpu_count()} CPUs, Python {platform.python_version()}, tcplab {tcplab.__version__}.\n"
              f"Rerun: `make bench` (or `.venv/bin/python bench/run.py --only sockets`). Every figure is a "
              f"ratio against a reference measured in the same run; absolute seconds are for orientation.\n\n")
    if set(chosen) == set(SUITES):
        analysis = _analysis(args.out)
        with open(args.out, "w") as f:
            f.write(header + "\n".join(sections) + "\n" + analysis)
        print(f"\nwrote {args.out}")
    return 0


ANALYSIS_HEADING = "## Where the goals stand, and why"


def _analysis(path: str) -> str:
    """The hand-written tail of ``path`` (from :data:`ANALYSIS_HEADING` on), kept across reruns:
    the analysis lives in BENCHMARKS.md only, next to the figures it explains."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return ""
    at = text.find(ANALYSIS_HEADING)
    return text[at:] if at >= 0 else ""


if __name__ == "__main__":
    sys.exit(main())
