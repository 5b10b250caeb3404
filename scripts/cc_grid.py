"""Run the congestion simulator over a grid of parameters and save every output, or compare two
saved grids exactly (every summary figure and every timeline and queue row). How issue 23 proved
that moving the path model onto the simulator's one clock changed nothing:

    mkdir -p /tmp/cc-before && git archive a0693a0 tcplab | tar -x -C /tmp/cc-before
    PYTHONPATH=/tmp/cc-before python scripts/cc_grid.py /tmp/before.pkl
    PYTHONPATH=$PWD python scripts/cc_grid.py /tmp/after.pkl
    python scripts/cc_grid.py --compare /tmp/before.pkl /tmp/after.pkl

The grid: cubic/reno/bbr; loss 0, and 0.01 with seeds 1 and 2; 1-4 flows; buffers of 5, 20, 100
and 400 packets; (10 Mbit/s, 20 ms), (50 Mbit/s, 50 ms), (100 Mbit/s, 5 ms); 1.5 s each (432 runs).
"""

from __future__ import annotations

import dataclasses
import itertools
import pickle
import sys
import time


def run_grid(path: str) -> None:
    try:
        from tcplab.sim.bottleneck import simulate
    except ImportError:                 # before issue 23 the loop lived in the model
        from tcplab.model.cc import simulate  # type: ignore[attr-defined,no-redef]
    from tcplab.sim.engine import SplitMix64

    out = {}
    t0 = time.process_time()
    for algo, (loss, seed), flows, buf, (rate, rtt) in itertools.product(
            ("cubic", "reno", "bbr"), ((0.0, None), (0.01, 1), (0.01, 2)), (1, 2, 3, 4), (5, 20, 100, 400),
            ((10, 20), (50, 50), (100, 5))):
        r = simulate(rate, rtt, buf, algo, flows=flows, duration=1.5, loss=loss or None,
                     rng=SplitMix64(seed) if seed is not None else None)
        out[(algo, loss, seed, flows, buf, rate, rtt)] = dataclasses.asdict(r)
    print(f"{len(out)} runs in {time.process_time() - t0:.1f} s CPU -> {path}")
    with open(path, "wb") as f:
        pickle.dump(out, f)


def compare(a_path: str, b_path: str) -> int:
    with open(a_path, "rb") as f:
        a = pickle.load(f)
    with open(b_path, "rb") as f:
        b = pickle.load(f)
    if a.keys() != b.keys():
        print("the grids differ in their parameters")
        return 1
    bad = [k for k in a if a[k] != b[k]]
    rows = sum(len(v["timeline"]) + len(v["queue"]) for v in a.values())
    print(f"{len(a)} runs, {rows} timeline and queue rows compared; runs that differ: {len(bad)}")
    for k in bad[:5]:
        print("  differs:", k, [key for key in a[k] if a[k][key] != b[k][key]])
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    run_grid(sys.argv[1])
