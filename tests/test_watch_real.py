"""tcplab.watch on the live kernel: loopback connections in known states, queues that grow, a
listener's accept queue; what an unprivileged user and a private namespace see; the command;
nothing left behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

import tcplab
import tcplab.watching  # noqa: F401 - import before forking: uid 65534 cannot read /root's stdlib
from tcplab.kernel import diag_watch
from tcplab.kernel.diag_filter import port_address_filter
from tcplab.kernel.tcpinfo import send_recv_queues
from tests.conftest import child_pids, run_as_nobody

pytestmark = pytest.mark.real


def _listener(backlog: int = 8, addr: str = "127.0.0.1") -> socket.socket:
    srv = socket.socket()
    srv.bind((addr, 0))
    srv.listen(backlog)
    return srv


def _wait(predicate, what: str, timeout: float = 10.0) -> None:
    """Wait (bounded) for an event of the kernel, e.g. a handshake completing on a busy host."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _states(port: int) -> set[str]:
    return set(tcplab.watch(port=port, duration=0).state.astype(str))


def test_watch_sees_the_states_of_a_connection_being_closed():
    srv = _listener()
    port = srv.getsockname()[1]
    c1 = socket.create_connection(srv.getsockname())
    a1, _ = srv.accept()
    c2 = socket.create_connection(srv.getsockname())
    a2, _ = srv.accept()
    try:
        c1.shutdown(socket.SHUT_WR)              # c1 -> FIN_WAIT2, a1 -> CLOSE_WAIT (a1 never closes)
        c2.close()                               # c2 closes first ...
        a2.settimeout(10)                        # (bounded: the FIN is on its way)
        _wait(lambda: a2.recv(1) == b"", "a2 to see c2's FIN")
        a2.close()                               # ... so c2 ends in TIME_WAIT
        _wait(lambda: {"FIN_WAIT2", "CLOSE_WAIT", "TIME_WAIT"} <= _states(port), "the closing states")
        df = tcplab.watch(port=port, duration=0.2, interval=0.1)
        by_conn = df.groupby("conn", observed=True).state.last().astype(str)
        c1_name = f"127.0.0.1:{c1.getsockname()[1]}->127.0.0.1:{port}"
        assert by_conn[c1_name] == "FIN_WAIT2"
        assert by_conn[f"127.0.0.1:{port}->127.0.0.1:{c1.getsockname()[1]}"] == "CLOSE_WAIT"
        assert by_conn[f"127.0.0.1:{port} (listen)"] == "LISTEN"
        tw = df[df.state == "TIME_WAIT"]
        assert len(tw) and tw.cwnd.isna().all() and tw.srtt_ms.isna().all()   # no tcp_info in TIME_WAIT
        est = df[df.state == "CLOSE_WAIT"]
        assert (est.cwnd >= 1).all() and (est.srtt_ms > 0).all() and (est.rto_ms >= 200).all()
        # the state mask filters in the kernel: only what was asked comes back
        only = tcplab.watch(port=port, duration=0, state=["LISTEN", "FIN_WAIT2"])
        assert set(only.state.astype(str)) == {"LISTEN", "FIN_WAIT2"}
    finally:
        for s in (c1, a1, c2, a2, srv):
            s.close()


def test_recv_q_grows_when_the_reader_does_not_read_and_send_q_matches_ioctl():
    srv = _listener()
    port = srv.getsockname()[1]
    c = socket.create_connection(srv.getsockname())
    a, _ = srv.accept()
    reader = f"127.0.0.1:{port}->127.0.0.1:{c.getsockname()[1]}"
    try:
        seen: list[int] = []
        samples = tcplab.watch_samples(port=port, duration=10, interval=0.05)
        for k, frame in enumerate(samples):
            row = frame[frame.conn.astype(str) == reader]
            seen.append(int(row.recv_q.iloc[0]))
            if k < 3:
                c.sendall(b"x" * 20_000)          # a (never reading) gets 20 kB more each sample
            elif seen[-1] == 60_000:
                assert int(row.bytes_received.iloc[0]) == 60_000
                break
        samples.close()
        assert seen[0] == 0 and seen[-1] == 60_000 and seen == sorted(seen), seen
        # a sender stalled on a full receive window: Send-Q is what SIOCOUTQ says
        a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.setblocking(False)
        try:
            for _ in range(1000):
                c.send(b"y" * 65536)
        except BlockingIOError:
            pass
        writer = f"127.0.0.1:{c.getsockname()[1]}->127.0.0.1:{port}"
        for _ in range(200):                     # compare while the queues stand still (bounded)
            before = send_recv_queues(c, a)
            df = tcplab.watch(port=port, duration=0)
            if send_recv_queues(c, a) == before:
                break
            time.sleep(0.05)
        send_q, recv_q = before
        assert send_q > 0 and recv_q > 0
        assert int(df[df.conn.astype(str) == writer].send_q.iloc[0]) == send_q
        assert int(df[df.conn.astype(str) == reader].recv_q.iloc[0]) == recv_q
    finally:
        for s in (c, a, srv):
            s.close()


def test_listener_accept_queue_and_limit():
    srv = _listener(backlog=4)
    port = srv.getsockname()[1]
    clients = [socket.create_connection(srv.getsockname()) for _ in range(3)]
    try:
        _wait(lambda: tcplab.watch(port=port, duration=0, state="LISTEN").accept_queue.iloc[0] == 3,
              "3 connections in the accept queue")
        df = tcplab.watch(port=port, duration=0.1, interval=0.05, state="LISTEN")
        assert (df.accept_queue == 3).all() and (df.accept_limit == 4).all()
        assert df.recv_q.isna().all() and df.cwnd.isna().all()
        srv.accept()[0].close()
        _wait(lambda: tcplab.watch(port=port, duration=0, state="LISTEN").accept_queue.iloc[0] == 2,
              "the accept queue to shrink by one")
    finally:
        for s in (*clients, srv):
            s.close()


def test_the_kernel_filter_keeps_exactly_the_matching_sockets():
    """The bytecode runs in the kernel: compare with an unfiltered dump filtered in Python."""
    srvs = [_listener(addr="127.0.0.1"), _listener(addr="127.0.0.2")]
    conns = [socket.create_connection(s.getsockname()) for s in srvs]
    accepted = [s.accept()[0] for s in srvs]
    port = srvs[0].getsockname()[1]
    try:
        with diag_watch.DiagSampler() as every:
            everything = every.sample()
        for kw, keep in [({"port": port}, lambda r: port in (r[3], r[5])),
                         ({"address": "127.0.0.2"}, lambda r: bytes([127, 0, 0, 2]) in (r[2][:4], r[4][:4])),
                         ({"local_port": port, "address": "127.0.0.1"},
                          lambda r: r[3] == port and bytes([127, 0, 0, 1]) in (r[2][:4], r[4][:4]))]:
            with diag_watch.DiagSampler(bytecode=port_address_filter(**kw)) as filtered:
                got = {r[6] for r in filtered.sample()}
            want = {r[6] for r in everything if keep(r)}
            assert got == want and got, kw
    finally:
        for s in (*conns, *accepted, *srvs):
            s.close()


def _watch_port(port: int) -> tuple[list[str], list, list]:
    df = tcplab.watch(port=port, duration=0)
    return list(df.state.astype(str)), list(df.uid), [None if pd.isna(v) else int(v) for v in df.cwnd]


def test_an_unprivileged_user_sees_every_socket_of_its_namespace_with_tcp_info():
    if os.geteuid() != 0:
        pytest.skip("needs root to own the sockets and drop to uid 65534")
    _watch_port(1)                               # warm pandas' lazy imports before forking
    srv = _listener()
    port = srv.getsockname()[1]
    c = socket.create_connection(srv.getsockname())
    a, _ = srv.accept()
    try:
        states, uids, cwnds = run_as_nobody(_watch_port, port)
        assert sorted(states) == ["ESTABLISHED", "ESTABLISHED", "LISTEN"]
        assert set(uids) == {0}                  # root's sockets ...
        assert all(w and w >= 1 for s, w in zip(states, cwnds) if s == "ESTABLISHED")   # ... with tcp_info
    finally:
        for s in (c, a, srv):
            s.close()


def _inside_a_namespace(host_port: int) -> tuple[int, list[str]]:
    srv = _listener(backlog=3)
    try:
        seen_host = len(tcplab.watch(port=host_port, duration=0))
        mine = tcplab.watch(port=srv.getsockname()[1], duration=0)
        return seen_host, [f"{s} {q}/{lim}" for s, q, lim in zip(mine.state.astype(str), mine.accept_queue,
                                                                   mine.accept_limit)]
    finally:
        srv.close()


def test_in_a_private_namespace_only_its_sockets_are_seen(as_user):
    """``unshare -Urn`` (what tcplab.in_namespace does for an unprivileged user): a new network
    namespace has its own socket table; the host's listener is not in it."""
    _watch_port(1)
    host = _listener()
    try:
        seen_host, mine = as_user(tcplab.in_namespace, _inside_a_namespace, host.getsockname()[1])
    except tcplab.NamespaceUnavailable as e:
        pytest.skip(f"no namespace here: {e}")
    finally:
        host.close()
    assert seen_host == 0 and mine == ["LISTEN 0/3"]


def test_watch_is_bounded_and_leaves_nothing_behind():
    srv = _listener()
    port = srv.getsockname()[1]
    fds, kids = sorted(os.listdir("/proc/self/fd")), child_pids()
    try:
        t0 = time.monotonic()
        df = tcplab.watch(port=port, duration=0.3, interval=0.1)
        assert time.monotonic() - t0 < 5 and 1 <= df.attrs["samples"] <= df.attrs["planned_samples"] == 4
        assert df.attrs["fell_behind"] == (df.attrs["samples"] < 4)
        assert tcplab.watch(port=port, duration=60, interval=0.01, max_samples=3).attrs["samples"] == 3
        cut = tcplab.watch(port=port, duration=10, interval=0.01, max_rows=2)
        assert cut.attrs["truncated"] and len(cut) == 2
        it = tcplab.watch_samples(port=port, duration=60, interval=0.01)
        next(it)
        it.close()                               # leaving early closes the netlink socket
        for _ in tcplab.watch_samples(port=port, duration=60, interval=0.01):
            break
        import gc
        gc.collect()
        assert sorted(os.listdir("/proc/self/fd")) == fds and child_pids() == kids
    finally:
        srv.close()


def _tcplab(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tcplab", *args], capture_output=True, text=True, timeout=60, **kw)


def test_the_command_prints_one_block_per_sample_without_a_tty():
    srv = _listener(backlog=5)
    port = srv.getsockname()[1]
    c = socket.create_connection(srv.getsockname())
    try:
        out = _tcplab("watch", "--port", str(port), "--duration", "0.5", "--interval", "0.1")
        assert out.returncode == 0, out.stderr
        blocks = out.stdout.strip().split("\n\n")
        assert 2 <= len(blocks) <= 6 and "\x1b[" not in out.stdout
        listen = [line for line in blocks[-1].splitlines() if line.startswith("LISTEN")]
        assert listen and listen[0].split()[1:4] == ["1", "5", f"127.0.0.1:{port}"]
    finally:
        c.close()
        srv.close()


def test_ctrl_c_ends_the_command_cleanly():
    proc = subprocess.Popen([sys.executable, "-m", "tcplab", "watch", "--duration", "60", "--interval", "0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()           # the first block began: the watch is running
        assert first.startswith("sample 1")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "stopped by Ctrl-C" in err and "Traceback" not in err


def test_on_a_terminal_the_command_redraws_in_place():
    import pty
    srv = _listener()
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "tcplab", "watch", "--port", str(srv.getsockname()[1]),
                                 "--duration", "0.5", "--interval", "0.1"], stdout=secondary,
                                stderr=subprocess.PIPE, text=True)
        os.close(secondary)
        secondary = -1
        out = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                chunk = os.read(primary, 65536)
            except OSError:                          # EIO: the child closed its end
                break
            if not chunk:
                break
            out += chunk
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        proc.stderr.close()
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)
        srv.close()
    text = out.decode()
    blocks = text.count("sample ")
    # 6 samples planned; a host that stalls the watch past its duration ends it sooner, never 1
    assert 2 <= blocks <= 6 and text.count("\x1b[") == 2 * (blocks - 1)   # cursor up + clear, per redraw
    assert "\n\nsample" not in text.replace("\r", "")


def test_ipv6_sockets_and_an_ipv6_address_filter():
    srv = socket.socket(socket.AF_INET6)
    try:
        srv.bind(("::1", 0))
    except OSError as e:
        srv.close()
        pytest.skip(f"no IPv6 loopback here: {e}")
    srv.listen(2)
    port = srv.getsockname()[1]
    c = socket.create_connection(("::1", port))
    a, _ = srv.accept()
    try:
        df = tcplab.watch(address="::1", port=port, duration=0)
        assert sorted(df.state.astype(str)) == ["ESTABLISHED", "ESTABLISHED", "LISTEN"]
        assert set(df.family) == {6} and f"[::1]:{port} (listen)" in set(df.conn.astype(str))
        assert len(tcplab.watch(address="127.0.0.0/8", port=port, duration=0)) == 0
    finally:
        for s in (c, a, srv):
            s.close()
