#!/usr/bin/env python3
"""Measure the per-kernel facts of docs/kernels.md on the running kernel (host or guest), with
nothing but the standard library (Python inside a TCG guest is 20-100x slower: no tcplab import).

    python3 scripts/kernel-facts.py [--json FILE] [--syncnt 1,2,3] [--only syn,qdiscs,tw_reuse]
    python3 scripts/kernel-facts.py render A.json B.json ...   (Markdown tables, one column per kernel)

Everything runs in a fresh user+network namespace (``unshare -Urn``, re-executed by this script):
no host sysctl changes, traffic only on the namespace's own loopback.

* ``sysctls``: every /proc/sys/net/ipv4/tcp_* file, plus net.core.somaxconn and
  net.ipv4.ip_local_port_range, as a fresh namespace has them.
* ``syn``: SYN retransmission times for TCP_SYNCNT=1,2,3 (all at once, one listener each).
  Each listener has backlog 0 and already holds one connection, so its accept queue is full
  and every later SYN is dropped (ListenOverflows) -- the method of tcplab's syn_retries.
  The SYNs are timed by an AF_PACKET capture on lo with kernel timestamps (SO_TIMESTAMPNS),
  so Python's slowness in the guest does not enter the times; connect()'s failure is timed by
  poll() on the socket (its error, ETIMEDOUT, is read with SO_ERROR). Where the kernel has
  tcp_syn_linear_timeouts, the same is also measured with it set to 0.
* ``tw_reuse``: how long after TIME_WAIT begins a connect() may reuse the 4-tuple (tcp_tw_reuse=2).
* ``qdiscs``: which of tbf, htb, pfifo, netem, fq, fq_codel ``tc qdisc add dev lo root`` accepts.
CONFIG_HZ is not measured here: it comes from the kernel package's /boot/config-*.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import fcntl
import json
import os
import select
import socket
import struct
import sys
import threading
import time

TCP_SYNCNT = 7
SO_TIMESTAMPNS = 35
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
LINEAR = "/proc/sys/net/ipv4/tcp_syn_linear_timeouts"


def lo_up() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifr = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, ifr)[:18])[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))
    finally:
        s.close()


def read(path: str) -> str | None:
    try:
        with open(path) as f:
            return " ".join(f.read().split())
    except OSError as e:
        return f"<{errno.errorcode.get(e.errno, e.errno)}>"


def sysctls() -> dict[str, str | None]:
    base = "/proc/sys/net/ipv4/"
    out = {f"net.ipv4.{n}": read(base + n) for n in sorted(os.listdir(base)) if n.startswith("tcp_")}
    out["net.core.somaxconn"] = read("/proc/sys/net/core/somaxconn")
    out["net.ipv4.ip_local_port_range"] = read(base + "ip_local_port_range")
    return dict(sorted(out.items()))


class Capture(threading.Thread):
    """Outgoing pure SYNs on lo, kernel-timestamped, keyed by source port (the client's)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind(("lo", 0))
        self.syns: dict[int, list[float]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            r, _, _ = select.select([self.sock], [], [], 0.2)
            if not r:
                continue
            data, anc, _, addr = self.sock.recvmsg(256, socket.CMSG_SPACE(16))
            if addr[2] != PACKET_OUTGOING or len(data) < 14 + 20 + 20:
                continue
            if struct.unpack("!H", data[12:14])[0] != 0x0800:
                continue
            ip = data[14:]
            ihl = (ip[0] & 0xF) * 4
            if ip[9] != socket.IPPROTO_TCP:
                continue
            tcp = ip[ihl:]
            sport = struct.unpack("!H", tcp[0:2])[0]
            flags = tcp[13]
            if flags & 0x02 and not flags & 0x10:  # SYN without ACK
                ts = None
                for level, typ, val in anc:
                    if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("qq", val[:16])
                        ts = sec + nsec / 1e9
                self.syns.setdefault(sport, []).append(ts if ts is not None else time.time())


def syn_times(syncnts: list[int], linear: int | None) -> dict[str, object]:
    """One blocked listener per TCP_SYNCNT; every client started at once; bounded by 70 s."""
    if linear is not None:
        with open(LINEAR, "w") as f:
            f.write(str(linear))
    cap = Capture()
    cap.start()
    socks = []
    runs = []
    try:
        for k in syncnts:
            lst = socket.socket()
            lst.bind(("127.0.0.1", 0))
            lst.listen(0)
            port = lst.getsockname()[1]
            fill = socket.create_connection(("127.0.0.1", port), timeout=5)
            time.sleep(0.05)
            c = socket.socket()
            c.setsockopt(socket.IPPROTO_TCP, TCP_SYNCNT, k)
            c.setblocking(False)
            socks += [lst, fill, c]
            runs.append({"syncnt": k, "port": port, "sock": c})
        t_start = {}
        for r in runs:
            t_start[r["port"]] = time.time()
            try:
                r["sock"].connect(("127.0.0.1", r["port"]))
            except BlockingIOError:
                pass
            r["cport"] = r["sock"].getsockname()[1]
        poller = select.poll()
        by_fd = {}
        for r in runs:
            poller.register(r["sock"], select.POLLOUT | select.POLLERR | select.POLLHUP)
            by_fd[r["sock"].fileno()] = r
        pending = set(by_fd)
        deadline = time.monotonic() + 70
        while pending and time.monotonic() < deadline:
            for fd, _ev in poller.poll(200):
                if fd in pending:
                    r = by_fd[fd]
                    r["failed_wall"] = time.time()
                    err = r["sock"].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    r["error"] = errno.errorcode.get(err, str(err)) if err else "connected"
                    poller.unregister(fd)
                    pending.discard(fd)
        time.sleep(0.3)
    finally:
        cap.stop.set()
        cap.join(2)
        for s in socks:
            s.close()
    out = {}
    for r in runs:
        syns = sorted(cap.syns.get(r["cport"], []))
        t0 = syns[0] if syns else t_start[r["port"]]
        out[str(r["syncnt"])] = {
            "syns_sent": len(syns),
            "send_times_s": [round(t - t0, 3) for t in syns],
            "gaps_s": [round(b - a, 3) for a, b in zip(syns, syns[1:])],
            "failed_after_s": round(r["failed_wall"] - t0, 3) if "failed_wall" in r else None,
            "error": r.get("error", "still pending after 70 s"),
        }
    return out


def tw_reuse_delays(trials: int = 8) -> dict[str, object]:
    """How long after the client's TIME_WAIT began a new connect() reuses its port
    (tcp_tw_reuse=2 on loopback, timestamps on). The namespace's ip_local_port_range is one port,
    so connect() must take the TIME_WAIT's port (``__inet_hash_connect`` -> ``tcp_twsk_unique``
    with its reuse delay); it is retried every 5 ms until it stops failing with EADDRNOTAVAIL.
    (A connect() from an explicitly bound port skips the delay: twsk_unique's ``!twp`` case.)"""
    rng = "/proc/sys/net/ipv4/ip_local_port_range"
    old = open(rng).read()
    with open(rng, "w") as f:
        f.write("40000 40000")
    lst = socket.socket()
    lst.bind(("127.0.0.1", 5000))
    lst.listen(16)
    addr = lst.getsockname()
    delays = []
    try:
        for i in range(trials):
            c = None
            for _wait in range(400):       # the previous trial's TIME_WAIT holds the one port
                try:
                    c = socket.create_connection(addr, timeout=5)
                    break
                except OSError as e:
                    if e.errno != errno.EADDRNOTAVAIL:
                        raise
                    time.sleep(0.005)
            if c is None:
                raise RuntimeError("port 40000 never came free")
            s, _ = lst.accept()
            # the wait above ended just after a whole second (pre-6.14 reuse is second-grained):
            # start each TIME_WAIT at another phase of the second
            time.sleep((i * 0.13) % 1.0)
            c.close()                      # client FIN first: the client end gets TIME_WAIT
            s.recv(1)
            s.close()                      # server FIN: its timestamp is the TIME_WAIT's ts_recent
            t0 = time.monotonic()
            time.sleep(0.002)
            done = None
            while time.monotonic() - t0 < 5:
                n = socket.socket()
                try:
                    n.connect(addr)
                    done = time.monotonic() - t0
                    a, _ = lst.accept()
                    n.close()              # client first again: its TIME_WAIT on 40000 ends
                    a.recv(1)
                    a.close()
                    break
                except OSError as e:
                    n.close()
                    if e.errno != errno.EADDRNOTAVAIL:
                        raise
                time.sleep(0.005)
            delays.append(None if done is None else round(done, 3))
    finally:
        lst.close()
        with open(rng, "w") as f:
            f.write(old)
    got = [d for d in delays if d is not None]
    return {"delays_s": delays, "min_s": min(got) if got else None, "max_s": max(got) if got else None}


QDISCS = {"tbf": "rate 1mbit burst 32kb latency 50ms", "htb": "default 1", "pfifo": "limit 100",
          "netem": "delay 1ms", "fq": "", "fq_codel": ""}


def qdiscs() -> dict[str, str]:
    """Which qdiscs `tc qdisc add dev lo root KIND` accepts in this namespace (modules autoload
    through the kernel's request_module where the kernel allows it)."""
    import shutil
    import subprocess
    tc = shutil.which("tc") or ("/usr/sbin/tc" if os.path.exists("/usr/sbin/tc") else None)
    if tc is None:
        return {q: "no tc binary" for q in QDISCS}
    out = {}
    for q, extra in QDISCS.items():
        r = subprocess.run([tc, "qdisc", "add", "dev", "lo", "root", q, *extra.split()],
                           capture_output=True, text=True, timeout=30)
        out[q] = "ok" if r.returncode == 0 else (r.stderr.strip().splitlines() or ["failed"])[0]
        subprocess.run([tc, "qdisc", "del", "dev", "lo", "root"], capture_output=True, timeout=30)
    return out


def inner(args: argparse.Namespace) -> dict[str, object]:
    facts: dict[str, object] = {"uname": " ".join(os.uname()), "release": os.uname().release}
    facts["sysctls"] = sysctls()  # before lo is touched: a fresh namespace's defaults
    lo_up()
    syncnts = [int(x) for x in args.syncnt.split(",") if x]
    has_linear = os.path.exists(LINEAR)
    only = {x for x in args.only.split(",") if x}
    t = time.monotonic()
    if not only or "syn" in only:
        facts["syn"] = {"default": syn_times(syncnts, None)}
        if has_linear:
            facts["syn"]["linear_timeouts=0"] = syn_times(syncnts, 0)
    if not only or "qdiscs" in only:
        facts["qdiscs"] = qdiscs()
    if not only or "tw_reuse" in only:
        facts["tw_reuse"] = tw_reuse_delays()
    facts["syn_measure_s"] = round(time.monotonic() - t, 1)
    return facts


USED = ("tcp_syn_linear_timeouts", "tcp_tw_reuse_delay", "tcp_rto_min_us", "tcp_rto_max_ms", "tcp_tw_reuse",
        "tcp_syn_retries", "tcp_retries2", "tcp_early_retrans", "tcp_max_syn_backlog", "tcp_syncookies")


def render(paths: list[str]) -> str:
    """Markdown tables from facts JSON files (one column per kernel): the sysctls tcplab uses,
    the SYN times, the qdiscs, and every sysctl ("-" = absent)."""
    facts = [json.load(open(p)) for p in paths]
    head = "| | " + " | ".join(f["release"] for f in facts) + " |\n|---|" + "---|" * len(facts)
    sy = [f["sysctls"] for f in facts]

    def row(name: str, vals: list[object], mark: bool = True) -> str:
        diff = mark and len({str(v) for v in vals}) > 1
        cells = " | ".join("-" if v is None else str(v) for v in vals)
        return f"| {'**' + name + '**' if diff else name} | {cells} |"

    out = ["### Sysctls tcplab uses (fresh `unshare -Urn` namespace; - = absent)", "", head]
    out += [row(f"net.ipv4.{n}", [s.get(f"net.ipv4.{n}") for s in sy]) for n in USED]
    out += [row(n, [s.get(n) for s in sy]) for n in ("net.core.somaxconn", "net.ipv4.ip_local_port_range")]
    out += ["", "### SYN send times (s after the first SYN) and connect() failure, TCP_SYNCNT=k", "", head]
    for mode in ("default", "linear_timeouts=0"):
        for k in sorted({k for f in facts for k in f["syn"].get(mode, {})}, key=int):
            vals = []
            for f in facts:
                r = f["syn"].get(mode, {}).get(k)
                vals.append(None if r is None else f"{r['syns_sent']} SYNs at {r['send_times_s']}; "
                            f"{r['error']} at {r['failed_after_s']}")
            out.append(row(f"k={k}" + ("" if mode == "default" else ", tcp_syn_linear_timeouts=0"), vals, False))
    out += ["", "### Qdiscs `tc qdisc add dev lo root KIND` accepts in the namespace", "", head]
    for q in ("tbf", "htb", "pfifo", "netem", "fq", "fq_codel"):
        out.append(row(q, [f.get("qdiscs", {}).get(q) for f in facts], False))
    out += ["", "### TIME_WAIT reuse delay (tcp_tw_reuse=2, loopback): seconds from the server's FIN to a "
            "successful connect() from the same port", "", head]
    out.append(row("delays", [f.get("tw_reuse", {}).get("delays_s") for f in facts], False))
    out.append(row("min..max", [f"{f['tw_reuse']['min_s']}..{f['tw_reuse']['max_s']}" if f.get("tw_reuse") else None
                                for f in facts], False))
    out += ["", "### Every sysctl dumped (bold: differs between the kernels)", "", head]
    for n in sorted(set().union(*sy)):
        out.append(row(n, [s.get(n) for s in sy]))
    return "\n".join(out) + "\n"


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "render":
        sys.stdout.write(render(sys.argv[2:]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the facts here too")
    ap.add_argument("--syncnt", default="1,2,3")
    ap.add_argument("--only", default="", help="comma-separated parts besides sysctls: syn, qdiscs, tw_reuse "
                    "(default: all)")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.inner:
        import subprocess
        cmd = ["unshare", "-Urn", sys.executable, os.path.abspath(__file__), "--inner", "--syncnt", args.syncnt,
               "--only", args.only]
        if args.json:
            cmd += ["--json", os.path.abspath(args.json)]
        return subprocess.run(cmd, timeout=300).returncode
    facts = inner(args)
    text = json.dumps(facts, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
