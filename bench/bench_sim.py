"""Benchmark: what users run in the simulator, against a plain SimPy model of the same scenario.

The public calls with their default profile (linux-6.18: 4 ms timer tick, SYN bursts, the
32 ms RTO wheel, phantom FINs in load): ``tcplab.experiments.load/accept_queue/syn_queue(...,
mode="sim")``, which return a Result with pandas tables, and ``tcplab.experiments.simulate(name,
params)``, the simulator under them (plain-data Outcome). The reference is
:mod:`bench.simpy_models`: the same scenario in SimPy with the kernel rules written inline.
Before anything is timed, tcplab's summary must equal the SimPy model's (a ratio between two
different answers means nothing): SystemExit otherwise.

``load`` is asked for 10k, 100k and 1M attempts (rate 2000/s, accept_rate 1500/s, backlog 128,
syn_retries 2: the issue's slider scenario, longer), through the public ``load(mode="sim")``
(which takes up to 20M attempts in sim mode; only real mode is bound by fds and ports) and
through ``simulate("load")`` (the Outcome without pandas). accept_queue and syn_queue take at most 1,000
clients: they are timed at their defaults and at 1,000 clients.

Times are CPU seconds (``time.process_time``, best of ``--repeat`` warm runs: both sides are
single-threaded and CPU-bound; on a shared 2-core VM wall time would also count other
programs). Peak memory is tracemalloc's peak over one extra run.

Run: ``python bench/bench_sim.py [--sizes 10000,100000,1000000] [--simpy-max 100000]``;
``bench/run.py`` calls :func:`run`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import simpy_models  # noqa: E402
from tcplab import experiments  # noqa: E402
from tcplab.experiments import simulate  # noqa: E402
from tcplab.sim.engine import SplitMix64  # noqa: E402
from tcplab.sim.queues import RTO_WHEEL_GRAN  # noqa: E402

LOAD = dict(rate=2000, accept_rate=1500, backlog=128, syn_retries=2)   # + duration = attempts / rate
from tcplab.experiments.load import MAX_SIM_ATTEMPTS as PUBLIC_LOAD_MAX  # noqa: E402
SEED = 0


def cpu_time(fn: Callable[[], Any], repeat: int) -> float:
    """Best CPU seconds of ``repeat`` runs of ``fn()`` (after the caller's warm-up run)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def peak_mib(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _row(what: str, attempts: int, summary: Any, reference: Any, public: Callable[[], Any] | None,
         sim: Callable[[], Any], simpy: Callable[[], Any] | None, repeat: int) -> dict[str, Any]:
    if reference is not None and summary != reference:
        raise SystemExit(f"{what}: summaries differ: tcplab {summary} vs simpy {reference}")
    row: dict[str, Any] = {"scenario": what, "attempts": attempts}
    if public is not None:
        public()                                            # warm: pandas imported, caches filled
        row["public_s"] = cpu_time(public, repeat)
    row["simulate_s"] = cpu_time(sim, repeat)
    row["peak_mib"] = peak_mib(sim)
    if simpy is not None:
        row["simpy_s"] = cpu_time(simpy, max(1, repeat // 2))
        row["simpy_peak_mib"] = peak_mib(simpy) if attempts <= 100_000 else None
        if public is not None:
            row["public_vs_simpy"] = row["simpy_s"] / row["public_s"]
        row["simulate_vs_simpy"] = row["simpy_s"] / row["simulate_s"]
        row["same_summary"] = True
    return row


def load_rows(sizes: tuple[int, ...], simpy_max: int, repeat: int) -> list[dict[str, Any]]:
    rows = []
    phase = SplitMix64(SEED).random() * RTO_WHEEL_GRAN      # the wheel phase simulate() draws for seed 0
    for n in sizes:
        p = dict(LOAD, duration=n / LOAD["rate"])
        summary = simulate("load", p, seed=SEED).summary
        reference = simpy_models.load(**p, phase=phase) if n <= simpy_max else None
        public = (lambda p=p: experiments.load(**p, mode="sim", seed=SEED)) if n <= PUBLIC_LOAD_MAX else None
        rows.append(_row("load", summary["attempts"], summary, reference, public,
                         lambda p=p: simulate("load", p, seed=SEED),
                         (lambda p=p: simpy_models.load(**p, phase=phase)) if reference is not None else None,
                         repeat if n <= 100_000 else 1))
    return rows


def queue_rows(repeat: int) -> list[dict[str, Any]]:
    rows = []
    for name, params, model in (
            ("accept_queue", {}, simpy_models.accept_queue),
            ("accept_queue", dict(backlog=128, clients=1000, accept_after=0.5), simpy_models.accept_queue),
            ("syn_queue", {}, simpy_models.syn_queue),
            ("syn_queue", dict(backlog=128, clients=1000), simpy_models.syn_queue)):
        summary = simulate(name, params).summary
        clients = params.get("clients", 20 if name == "accept_queue" else 60)   # the defaults
        fn = getattr(experiments, name)
        rows.append(_row(f"{name}({', '.join(f'{k}={v}' for k, v in params.items()) or 'defaults'})", clients,
                         summary, model(**params), lambda fn=fn, params=params: fn(**params, mode="sim"),
                         lambda name=name, params=params: simulate(name, params),
                         lambda model=model, params=params: model(**params), repeat))
    return rows


def run(sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000), simpy_max: int = 100_000,
        repeat: int = 3) -> list[dict[str, Any]]:
    """One row per scenario and size: public_s (the public call, mode="sim"), simulate_s,
    peak_mib (of simulate), simpy_s, simpy_peak_mib, public_vs_simpy, simulate_vs_simpy,
    same_summary. SimPy runs up to ``simpy_max`` attempts (1M takes minutes)."""
    return load_rows(sizes, simpy_max, repeat) + queue_rows(repeat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000", help="load() attempts")
    ap.add_argument("--simpy-max", type=int, default=100_000, help="largest load() size also run in SimPy")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per side (best is kept)")
    args = ap.parse_args()
    from bench._common import table
    rows = run(tuple(int(x) for x in args.sizes.split(",")), args.simpy_max, args.repeat)
    print(table(rows, list(dict.fromkeys(k for r in rows for k in r))))
    print("goals: >= 20x SimPy on the public call at 10k and 100k attempts; 1M attempts < 2 s; memory linear")


if __name__ == "__main__":
    main()
