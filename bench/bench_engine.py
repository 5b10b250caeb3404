"""Why tcplab.sim.listenq keeps its own heap instead of tcplab.sim.engine.Engine, measured.

Per-event cost of listenq's inline heap of ``(time, seq, kind, client, n)`` tuples against
``Engine.schedule`` + ``Engine.run`` (a callback per event), and how many heap events the
bench's load case (``bench/bench_sim.py``'s LOAD, 100k attempts) runs: the difference times the
events, against the whole run. Run: ``python bench/bench_engine.py`` (CPU seconds, best of 3).
"""
import heapq
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tcplab.sim.engine import Engine, SplitMix64
N = 300_000
rng = SplitMix64(1)
times = [rng.random() * 10 for _ in range(N)]

def inline():
    heap = []; push = heapq.heappush; pop = heapq.heappop; seq = 0; n = 0
    for i, t in enumerate(times):
        seq += 1; push(heap, (t, seq, 0, i, 1))
    while heap:
        t, s, kind, c, k = pop(heap)
        if kind == 0: n += c
        elif kind == 1: n -= c
    return n

def engine():
    eng = Engine(); acc = [0]
    def syn(c): acc[0] += c
    for i, t in enumerate(times):
        eng.schedule(t, syn, i)
    eng.run()
    return acc[0]

res = {}
for fn in (inline, engine) * 3:
    t0 = time.process_time(); fn(); d = time.process_time() - t0
    res[fn.__name__] = min(res.get(fn.__name__, 9e9), d)
for k, v in res.items():
    print(k, f"{v / N * 1e9:.0f} ns/event")
extra = (res["engine"] - res["inline"]) / N

# events of the bench's load case through listenq's heap
import bench.bench_sim as bs
from tcplab.experiments.registry import simulate
count = [0]
orig_push, orig_replace = heapq.heappush, heapq.heapreplace
def push(h, x): count[0] += 1; return orig_push(h, x)
def replace(h, x): count[0] += 1; return orig_replace(h, x)
heapq.heappush, heapq.heapreplace = push, replace
p = dict(bs.LOAD, duration=100_000 / bs.LOAD["rate"])
simulate("load", p)
heapq.heappush, heapq.heapreplace = orig_push, orig_replace
t0 = time.process_time(); simulate("load", p); whole = time.process_time() - t0
print(f"load, 100k attempts: {count[0]} heap events + 100000 arrivals merged lazily; run {whole:.3f} s CPU")
print(f"engine dispatch would add ~{extra * (count[0] + 100_000):.3f} s "
      f"({extra * (count[0] + 100_000) / whole * 100:.0f} % of the run)")
