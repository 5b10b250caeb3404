"""Real experiments: the overhead of tcplab over a bare stdlib script doing the same work
in the same kind of namespace, and the cost of one in_namespace() call.

Reference for accept_queue(backlog=128, clients=200): in a fresh namespace, listen(128),
200 non-blocking connects, wait the same settle time, read /proc/net/tcp once. Both wait
``settle`` seconds (the kernel's SYN retransmit is part of the experiment), so the figure
that matters is the overhead above that wait.
"""

from __future__ import annotations

import socket
import time

from bench._common import median_time

SETTLE = 1.5


def _bare_accept_queue(backlog: int, clients: int, settle: float) -> int:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(backlog)
    addr = server.getsockname()
    socks = []
    for _ in range(clients):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(addr)
        socks.append(c)
    time.sleep(settle)
    with open("/proc/net/tcp") as f:
        established = sum(1 for line in f if line.split()[3:4] == ["01"]) // 2
    for s in socks + [server]:
        s.close()
    return established


def _noop() -> None:
    return None


def run() -> list[dict]:
    import tcplab
    from tcplab.experiments import accept_queue

    ns = median_time(lambda: tcplab.in_namespace(_noop), repeat=20, warmup=2)
    fork_only = median_time(lambda: _fork_and_wait(), repeat=20, warmup=2)
    bare = median_time(lambda: tcplab.in_namespace(_bare_accept_queue, 128, 200, SETTLE), repeat=3)
    lab = median_time(lambda: accept_queue(backlog=128, clients=200, settle=SETTLE, mode="real"), repeat=3)
    sim = median_time(lambda: accept_queue(backlog=128, clients=200, settle=SETTLE, mode="sim"), repeat=5)
    return [
        {"what": "fork + waitpid (reference)", "seconds": fork_only, "ratio": 1.0},
        {"what": "tcplab.in_namespace(noop)", "seconds": ns, "ratio": ns / fork_only},
        {"what": f"bare stdlib accept_queue in a namespace (settle {SETTLE} s)", "seconds": bare, "ratio": 1.0,
         "overhead_s": bare - SETTLE},
        {"what": "tcplab accept_queue(128, 200) real", "seconds": lab, "ratio": lab / bare,
         "overhead_s": lab - SETTLE},
        {"what": "tcplab accept_queue(128, 200) sim", "seconds": sim, "ratio": sim / bare},
    ]


def _fork_and_wait() -> None:
    import os
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


if __name__ == "__main__":
    from bench._common import table
    print(table(run(), ["what", "seconds", "ratio", "overhead_s"]))
