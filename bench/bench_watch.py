"""tcplab.watch vs `ss -ti` polling at the same interval, and the memory of a long watch.

Inside a private network namespace (the host's table is untouched and the count is exact):
N sockets as established loopback pairs (the fd limit raised where allowed; ``ulimit -n`` here
is 20000 for root), a listener, and one small watched server (a listener with 5 connections on
its own port). Every figure is measured in the same child, side by side:

* ``watch_s`` / ``ss_s``: one sample of all N sockets with tcp_info: watch's per-interval work
  (sock_diag dump + decode + append to the columns) vs ``ss -tain`` (fork/exec, the same dump,
  text out, read through a pipe). ``vs_ss`` = watch_s / ss_s.
* ``port_s`` / ``ss_port_s``: the same with a port filter matching the 11 sockets of the small
  server (the kernel filters both: our bytecode, ss's ``sport = :P or dport = :P``).
* ``cpu_watch_pct`` / ``cpu_ss_pct``: CPU (user + system, ss's children included) spent by
  polling every 0.5 s for 5 s, as a percentage of one core: the overhead a watch adds to a host.
* memory: tracemalloc peak of a watch of 1000 sockets over 100 samples 0.1 s apart (the DataFrame built at
  the end included), per row, extrapolated to a 10-minute watch at 1 s; and a real 60 s watch at
  1 s of 1000 sockets (tracemalloc peak and bytes per row).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import tracemalloc

from bench._common import median_time
from bench.bench_sockets import _raise_fd_limit

SIZES = (1_000, 10_000)
_NS_SYSCTLS = {"net.ipv4.ip_local_port_range": (1024, 65535)}
_SERVER_ADDRS = [f"127.0.0.{i}" for i in range(1, 9)]


def _make_sockets(n: int) -> tuple[list[socket.socket], int]:
    """~n sockets: established pairs to listeners on 8 addresses, and a small server (1 listener,
    5 connections = 11 sockets) on its own port. Returns (sockets, the small server's port)."""
    soft = _raise_fd_limit(n + 1000)
    servers = []
    for addr in _SERVER_ADDRS:
        srv = socket.socket()
        srv.bind((addr, 9000))
        srv.listen(4096)
        servers.append(srv)
    socks = list(servers)
    small = socket.socket()
    small.bind(("127.0.0.1", 7000))
    small.listen(16)
    socks.append(small)
    for _ in range(5):
        c = socket.create_connection(("127.0.0.1", 7000))
        socks += [c, small.accept()[0]]
    pairs = min((n - len(socks)) // 2, (soft - 200) // 2)
    for i in range(pairs):
        srv = servers[i % len(servers)]
        c = socket.create_connection(srv.getsockname())
        socks += [c, srv.accept()[0]]
    return socks, 7000


def _ss(args: list[str]) -> int:
    return len(subprocess.run(["ss", *args], capture_output=True, check=True).stdout)


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _polling_cpu(fn, interval: float = 0.5, duration: float = 5.0) -> float:
    """CPU seconds (this process and its children) of calling fn every interval for duration, as %
    of one core."""
    start, c0 = time.monotonic(), _cpu()
    k = 0
    while k * interval <= duration:
        due = start + k * interval
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        fn()
        k += 1
    return 100 * (_cpu() - c0) / (time.monotonic() - start)


def _measure(n: int) -> dict:
    from tcplab.kernel import diag_watch
    from tcplab.kernel.diag_filter import port_address_filter
    from tcplab.watching import _Columns

    socks, port = _make_sockets(n)
    try:
        sampler = diag_watch.DiagSampler()
        filtered = diag_watch.DiagSampler(bytecode=port_address_filter(port=port))
        cols = _Columns()

        def one_sample(s=sampler):
            cols.add(0.0, s.sample())   # a watch's work per interval: dump, decode, append

        rows = len(sampler.sample())
        port_rows = len(filtered.sample())
        ss_filter = ["-tain", f"( sport = :{port} or dport = :{port} )"]
        row = {"sockets": rows, "port_rows": port_rows,
               "watch_s": median_time(one_sample, repeat=7),
               "ss_s": median_time(lambda: _ss(["-tain"]), repeat=7),
               "port_s": median_time(lambda: one_sample(filtered), repeat=7),
               "ss_port_s": median_time(lambda: _ss(ss_filter), repeat=7)}
        row["cpu_watch_pct"] = _polling_cpu(one_sample)
        row["cpu_ss_pct"] = _polling_cpu(lambda: _ss(["-tain"]))
        sampler.close()
        filtered.close()
        return row
    finally:
        for s in socks:
            s.close()


def _memory(samples: int, interval: float) -> dict:
    import pandas  # noqa: F401 - its import is not the watch's memory

    import tcplab

    socks, _ = _make_sockets(1000)
    try:
        tracemalloc.start()
        t0 = time.monotonic()
        # max_samples is the bound (duration only a backstop): under tracemalloc a sample of 1000 sockets
        # can take longer than a short interval, and a watch that falls behind its duration stops early
        df = tcplab.watch(duration=10 * samples * interval, interval=interval, max_samples=samples)
        seconds = time.monotonic() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return {"samples": df.attrs["samples"], "rows": len(df), "seconds": seconds, "peak_mb": peak / 1e6,
                "bytes_per_row": peak / max(1, len(df)), "frame_mb": df.memory_usage(deep=True).sum() / 1e6}
    finally:
        for s in socks:
            s.close()


def run() -> list[dict]:
    import tcplab

    if not shutil.which("ss"):
        raise SystemExit("bench_watch needs `ss` (iproute2) as its reference")
    rows = []
    for n in SIZES:
        r = tcplab.in_namespace(_measure, n, sysctls=_NS_SYSCTLS, timeout=900)
        r["vs_ss"] = r["watch_s"] / r["ss_s"]
        r["port_vs_ss"] = r["port_s"] / r["ss_port_s"]
        r["cpu_vs_ss"] = r["cpu_watch_pct"] / r["cpu_ss_pct"]
        rows.append({"what": f"{r['sockets']} sockets, every 0.5 s", **r})
    quick = tcplab.in_namespace(_memory, 100, 0.1, sysctls=_NS_SYSCTLS, timeout=900)
    ten_min_rows = 600 * 1000
    rows.append({"what": "memory: 100 samples of ~1000 sockets (tracemalloc peak)", "rows": quick["rows"],
                 "peak_mb": quick["peak_mb"], "bytes_per_row": quick["bytes_per_row"],
                 "ten_min_1s_mb": quick["bytes_per_row"] * ten_min_rows / 1e6})
    real = tcplab.in_namespace(_memory, 61, 1.0, sysctls=_NS_SYSCTLS, timeout=900)
    rows.append({"what": f"memory: a real {real['seconds']:.0f} s watch at 1 s of ~1000 sockets",
                 "rows": real["rows"], "peak_mb": real["peak_mb"], "bytes_per_row": real["bytes_per_row"],
                 "frame_mb": real["frame_mb"], "ten_min_1s_mb": real["bytes_per_row"] * ten_min_rows / 1e6})
    return rows


COLUMNS = ["what", "sockets", "watch_s", "ss_s", "vs_ss", "port_rows", "port_s", "ss_port_s", "port_vs_ss",
           "cpu_watch_pct", "cpu_ss_pct", "cpu_vs_ss", "rows", "peak_mb", "bytes_per_row", "frame_mb",
           "ten_min_1s_mb"]

if __name__ == "__main__":
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench._common import table
    print(table(run(), COLUMNS))
