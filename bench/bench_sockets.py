"""Socket table and listener view: tcplab.sockets() vs psutil vs `ss` (subprocess + parse).

The sockets are made inside a private network namespace (so the host's table is
untouched and the count is exact): N/2 loopback connections give N sockets.
"""

from __future__ import annotations

import resource
import shutil
import socket
import subprocess

from bench._common import median_time

SIZES = (1_000, 10_000, 50_000)


def _ss_parse(args: list[str]) -> list[tuple]:
    out = subprocess.run(["ss", *args], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines()[1:]:
        f = line.split()
        local, _, lport = f[3].rpartition(":")
        remote, _, rport = f[4].rpartition(":")
        rows.append((f[0], int(f[1]), int(f[2]), local, lport, remote, rport))
    return rows


def _raise_fd_limit(want: int) -> int:
    """Raise RLIMIT_NOFILE towards ``want`` (root may raise the hard limit too); return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in ((want, max(want, hard)), (min(want, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limit)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


#: listeners on several loopback addresses: an ephemeral port is then shared by connections to
#: different destinations, so connect() does not search an almost full port range each time
#: (with one destination, making 50k sockets takes over a minute, and the first TIME_WAITs expire)
_SERVER_ADDRS = [f"127.0.0.{i}" for i in range(1, 9)]


def _make_sockets(n: int) -> list[socket.socket]:
    """n sockets in this namespace: listeners, open connections (2 sockets each) up to the
    fd limit (raised where allowed), and the rest as client-side TIME_WAIT entries (which
    hold no fd)."""
    soft = _raise_fd_limit(n + 1000)
    servers = []
    for addr in _SERVER_ADDRS:
        srv = socket.socket()
        srv.bind((addr, 9000))
        srv.listen(4096)
        servers.append(srv)
    socks = list(servers)
    open_pairs = min((n - len(socks)) // 2, max(0, (soft - 200) // 2))
    for i in range(open_pairs):
        srv = servers[i % len(servers)]
        c = socket.create_connection(srv.getsockname())
        a, _ = srv.accept()
        socks += [c, a]
    for i in range(n - len(socks)):
        srv = servers[i % len(servers)]
        c = socket.create_connection(srv.getsockname())
        a, _ = srv.accept()
        c.close()  # the client closes first, so the TIME_WAIT lands on its side and outlives the fd
        a.close()
    return socks


_NS_SYSCTLS = {"net.ipv4.ip_local_port_range": (1024, 65535), "net.ipv4.tcp_tw_reuse": 0,
               "net.ipv4.tcp_max_tw_buckets": 200_000}


def _measure(n: int) -> dict:
    import psutil

    import tcplab

    socks = _make_sockets(n)
    try:
        rows = len(tcplab.sockets())
        row = {"sockets": rows,
               "tcplab_s": median_time(lambda: tcplab.sockets(), repeat=5),
               "psutil_s": median_time(lambda: psutil.net_connections("tcp"), repeat=3),
               "ss_s": median_time(lambda: _ss_parse(["-tan"]), repeat=5),
               "tcplab_listen_s": median_time(lambda: tcplab.sockets(state="LISTEN"), repeat=5),
               "ss_listen_s": median_time(lambda: _ss_parse(["-ltn"]), repeat=5)}
        return row
    finally:
        for s in socks:
            s.close()


def run() -> list[dict]:
    import tcplab

    if not shutil.which("ss"):
        raise SystemExit("bench_sockets needs `ss` (iproute2) as its reference")
    rows = []
    for n in SIZES:
        r = tcplab.in_namespace(_measure, n, sysctls=_NS_SYSCTLS, timeout=600)
        r["vs_psutil"] = r["psutil_s"] / r["tcplab_s"]
        r["vs_ss"] = r["tcplab_s"] / r["ss_s"]
        r["listen_vs_ss"] = r["tcplab_listen_s"] / r["ss_listen_s"]
        rows.append(r)
    return rows


if __name__ == "__main__":
    from bench._common import table
    print(table(run(), ["sockets", "tcplab_s", "psutil_s", "ss_s", "vs_psutil", "vs_ss", "tcplab_listen_s",
                        "ss_listen_s", "listen_vs_ss"]))
