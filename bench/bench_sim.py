"""Benchmark: the slider scenario (N connection attempts with SYN retries against a listen
queue) in tcplab's simulator vs a plain SimPy model of the same scenario.

Both models get the same deterministic workload (seeded Poisson arrivals at 100/s, backlog 16,
an app that accept()s one connection every 1/90 s) and must produce the same summary before
the times are compared. Run: ``python bench/bench_sim.py [--sizes 10000,100000,1000000]``.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

from tcplab.model.listen import Listener
from tcplab.model.retries import syn_schedule
from tcplab.sim.engine import SplitMix64, poisson_times
from tcplab.sim.listenq import run_listen_world

RATE, BACKLOG, SERVICE = 100.0, 16, 1 / 90.0


def run_tcplab(arrivals, until):
    w = run_listen_world(Listener(backlog=BACKLOG), arrivals, until=until,
                         accept_start=0.0, accept_service=SERVICE)
    return {"established": w.established, "failed": w.failed, "pending": w.syn_sent,
            "accepted": w.accepted, "ListenOverflows": w.listener.counters["ListenOverflows"]}


def run_simpy(arrivals, until):
    import simpy
    env = simpy.Environment()
    sched = syn_schedule(6, 4)
    limit = BACKLOG
    queue = simpy.Store(env)
    stats = {"established": 0, "failed": 0, "accepted": 0, "ListenOverflows": 0}

    def client(a):
        yield env.timeout(a - env.now)
        for k, offset in enumerate(sched.send_times):
            if k:
                yield env.timeout(a + offset - env.now)
            if len(queue.items) > limit:          # sk_acceptq_is_full: len > max
                stats["ListenOverflows"] += 1
                continue
            queue.put(env.now)
            stats["established"] += 1
            return
        yield env.timeout(a + sched.fail_after - env.now)
        stats["failed"] += 1

    def server():
        while True:
            yield queue.get()
            stats["accepted"] += 1
            yield env.timeout(SERVICE)

    def spawner():
        for a in arrivals:
            yield env.timeout(a - env.now)
            env.process(client(a))

    env.process(server())
    env.process(spawner())
    env.run(until=until)
    stats["pending"] = len(arrivals) - stats["established"] - stats["failed"]
    # count accepts the same way as tcplab (those due by `until`)
    return {k: stats[k] for k in ("established", "failed", "pending", "accepted", "ListenOverflows")}


def measure(fn, *args):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn(*args)
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    t0 = time.perf_counter()
    fn(*args)                                # untraced timing (tracemalloc slows Python down)
    return out, min(dt, time.perf_counter() - t0), peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--simpy-max", type=int, default=100000, help="largest size also run in SimPy")
    args = ap.parse_args()
    print(f"{'attempts':>9} {'tcplab s':>9} {'peak MiB':>9} {'simpy s':>9} {'ratio':>7}  summary")
    for n in (int(x) for x in args.sizes.split(",")):
        until = n / RATE
        arrivals = poisson_times(SplitMix64(42), RATE, until)
        ours, t_ours, peak = measure(run_tcplab, arrivals, until)
        simpy_t = ratio = "-"
        if n <= args.simpy_max:
            theirs, t_simpy, _ = measure(run_simpy, arrivals, until)
            if theirs != ours:
                raise SystemExit(f"summaries differ at n={n}: tcplab {ours} vs simpy {theirs}")
            simpy_t, ratio = f"{t_simpy:9.3f}", f"{t_simpy / t_ours:6.1f}x"
        print(f"{len(arrivals):>9} {t_ours:9.3f} {peak / 2**20:9.1f} {simpy_t:>9} {ratio:>7}  {ours}")
    print("targets: 10k < 0.1 s, 1M < 10 s, memory linear, ratio >= 20x")


if __name__ == "__main__":
    main()
