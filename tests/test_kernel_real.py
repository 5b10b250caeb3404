"""The kernel layer against this machine's real kernel, compared with `ss`."""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import time

import pytest

import tcplab
from tcplab.errors import NamespaceTimeout, NamespaceUnavailable
from tcplab.kernel.loopback import tcp_state, wait_for, wait_until
from tcplab.kernel.procnet import read_proc_net_tcp
from tcplab.kernel.release import running_profile
from tests.conftest import child_pids, run_as_nobody


def _ss_listen_row(port: int) -> tuple[int, int]:
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    fields = out.split()
    return int(fields[1]), int(fields[2])


def _listener_and_clients(backlog: int, clients: int) -> dict:
    """In the caller's namespace: a listener, `clients` connects, the tcplab and ss views."""
    server = socket.socket()
    conns = []
    try:
        server.bind(("127.0.0.1", 0))
        server.listen(backlog)
        port = server.getsockname()[1]
        before = tcplab.sockets(state="LISTEN", port=port).iloc[0]
        for _ in range(clients):
            conns.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        # a client is ESTABLISHED once it processed the SYN-ACK; its ACK, which puts the connection
        # in the accept queue, may still wait in ksoftirqd on a busy host: wait for the queue itself
        after = wait_for(lambda: tcplab.sockets(state="LISTEN", port=port).iloc[0],
                         lambda row: int(row.recv_q) >= clients, 5, f"{clients} connections in the accept queue")
        out = {"before": (int(before.recv_q), int(before.send_q)), "after": (int(after.recv_q), int(after.send_q))}
        if shutil.which("ss"):
            out["ss"] = _ss_listen_row(port)
        return out
    finally:
        for c in conns:
            c.close()
        server.close()


@pytest.mark.real
def test_listener_backlog_7_matches_ss():
    view = _listener_and_clients(7, 3)
    assert view["before"] == (0, 7)
    assert view["after"] == (3, 7)
    if "ss" in view:
        assert view["ss"] == (3, 7)


@pytest.mark.real
@pytest.mark.parametrize("backlog,somaxconn,expected_limit", [(7, 4096, 7), (100, 16, 16), (0, 4096, 0)])
def test_send_q_is_min_backlog_somaxconn(backlog, somaxconn, expected_limit):
    view = tcplab.in_namespace(_listener_and_clients, backlog, 0, sysctls={"net.core.somaxconn": somaxconn})
    assert view["before"] == (0, expected_limit)


@pytest.mark.real
def test_sockets_filters_and_columns():
    df = tcplab.sockets()
    assert list(df.columns[:7]) == ["state", "local_address", "local_port", "remote_address", "remote_port",
                                    "recv_q", "send_q"]
    with pytest.raises(ValueError, match="state must be None or one of ESTABLISHED"):
        tcplab.sockets(state="OPEN")
    with pytest.raises(ValueError, match=r"port must be None or an int in 0..65535, not 70000"):
        tcplab.sockets(port=70000)
    with pytest.raises(TypeError, match="port must be None or an int"):
        tcplab.sockets(port="80")


@pytest.mark.real
def test_sockets_send_q_is_na_without_sock_diag(monkeypatch):
    from tcplab.errors import SockDiagUnavailable
    from tcplab.kernel import diag

    def refuse(*a, **k):
        raise SockDiagUnavailable("test: sock_diag refused")
    monkeypatch.setattr(diag, "dump_tcp_rows", refuse)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(3)
    try:
        row = tcplab.sockets(state="LISTEN", port=s.getsockname()[1]).iloc[0]
        assert row.recv_q == 0 and str(row.send_q) == "<NA>"
    finally:
        s.close()


def _has_time_wait(port: int) -> bool:
    return any(r.state == "TIME_WAIT" for r in read_proc_net_tcp() if port in (r.local_port, r.remote_port))


def _sockets_three_ways() -> dict:
    """In a namespace: listener with 2 queued, an accepted pair, a TIME_WAIT; each source's view."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(9)
    port = server.getsockname()[1]
    tw = socket.create_connection(("127.0.0.1", port))
    tw_peer = server.accept()[0]
    tw.close()  # client closes first: TIME_WAIT on the client side
    assert wait_until(lambda: tcp_state(tw_peer) == "CLOSE_WAIT", 10)  # its FIN has arrived
    tw_peer.close()
    queued = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    accepted, _ = server.accept()  # queued[0]'s server end (the accept queue is FIFO)
    accepted.sendall(b"hello")
    assert select.select([queued[0]], [], [], 10)[0]  # "hello" is in queued[0]'s receive queue
    assert wait_until(lambda: _has_time_wait(port), 10)
    key = ["state", "local_address", "local_port", "remote_address", "remote_port", "recv_q"]
    out = {}
    for source in ("diag", "proc"):
        df = tcplab.sockets(source=source)
        send_q = ["NA" if v is None or str(v) == "<NA>" else str(v) for v in df["send_q"].tolist()]
        rows = [tuple(map(str, r)) + (q,) for r, q in zip(df[key].values.tolist(), send_q)]
        out[source] = sorted(rows)
    out["ss"] = subprocess.run(["ss", "-tanH"], capture_output=True, text=True).stdout if shutil.which("ss") else ""
    for s in queued + [accepted, server]:
        s.close()
    return out


@pytest.mark.real
def test_diag_proc_and_ss_agree():
    views = tcplab.in_namespace(_sockets_three_ways)
    diag_rows, proc_rows = views["diag"], views["proc"]
    # identical but for the listener's Send-Q, which only sock_diag knows
    assert [r[:6] for r in diag_rows] == [r[:6] for r in proc_rows]
    listener = [r for r in diag_rows if r[0] == "LISTEN"][0]
    assert listener[5:] == ("2", "9")  # 3 connected, 1 accepted -> 2 queued; limit 9
    assert [r for r in proc_rows if r[0] == "LISTEN"][0][6] == "NA"
    states = sorted(r[0] for r in diag_rows)
    assert states.count("TIME_WAIT") == 1 and states.count("ESTABLISHED") == 6  # 3 clients + their 3 server children
    if views["ss"]:
        ss_rows = sorted((line.split()[0], line.split()[1]) for line in views["ss"].splitlines())
        ss_names = {"ESTAB": "ESTABLISHED", "TIME-WAIT": "TIME_WAIT", "LISTEN": "LISTEN"}
        assert sorted((ss_names[a], b) for a, b in ss_rows) == sorted((r[0], r[5]) for r in diag_rows)


def _read_somaxconn() -> str:
    with open("/proc/sys/net/core/somaxconn") as f:
        return f.read()


def _read_sysctl_file(name: str) -> str:
    with open("/proc/sys/" + name.replace(".", "/")) as f:
        return f.read()


def _namespace_sysctl_check(name: str) -> str:
    return tcplab.in_namespace(_read_sysctl_file, name, sysctls={name: 16})


def _settable_sysctl(request) -> str:
    """net.core.somaxconn, unless the run is unprivileged on a kernel that hides it from a
    namespace a user namespace owns (6.1: 6b754d7bd007 is v6.3); then a per-netns sysctl every
    kernel shows there."""
    unprivileged = request.node.callspec.params.get("as_user") == "unprivileged" or os.geteuid() != 0
    if unprivileged and not running_profile().profile.somaxconn_in_userns:
        return "net.ipv4.tcp_fin_timeout"
    return "net.core.somaxconn"


@pytest.mark.real
def test_in_namespace_sets_sysctl_not_host(as_user, request):
    name = _settable_sysctl(request)
    host = _read_sysctl_file(name)
    assert as_user(_namespace_sysctl_check, name) == "16\n"
    assert _read_sysctl_file(name) == host


def _somaxconn_unprivileged() -> str:
    try:
        return tcplab.in_namespace(_read_somaxconn, sysctls={"net.core.somaxconn": 16})
    except tcplab.errors.SysctlUnavailable as e:
        return "SysctlUnavailable: " + str(e)


@pytest.mark.real
def test_somaxconn_in_an_unprivileged_namespace_follows_the_kernel():
    """6.1 hides net.core.somaxconn from a namespace an unprivileged user owns (v6.3 exposed it):
    setting it there is refused with the reason, not silently ignored."""
    got = run_as_nobody(_somaxconn_unprivileged)
    if running_profile().profile.somaxconn_in_userns:
        assert got == "16\n"
    else:
        assert got.startswith("SysctlUnavailable: cannot set net.core.somaxconn") and "6.1 hides" in got, got


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))




def _fifty_runs(name: str) -> tuple[int, int, int, int]:
    fds, kids = _fd_count(), len(child_pids())
    for _ in range(50):
        assert tcplab.in_namespace(_read_sysctl_file, name, sysctls={name: 16}) == "16\n"
    return fds, _fd_count(), kids, len(child_pids())


@pytest.mark.real
def test_fifty_runs_leave_nothing_behind(as_user, request):
    fds_before, fds_after, kids_before, kids_after = as_user(_fifty_runs, _settable_sysctl(request))
    assert fds_after == fds_before and kids_after == kids_before


@pytest.mark.real
def test_in_namespace_reraises_child_exception_with_traceback():
    def boom():
        raise KeyError("inside")
    with pytest.raises(KeyError) as e:
        tcplab.in_namespace(boom)
    assert "traceback in the namespace child" in e.value.__notes__[0]


@pytest.mark.real
def test_in_namespace_timeout_kills_child():
    kids = child_pids()
    with pytest.raises(NamespaceTimeout, match="within 0.5 s"):
        tcplab.in_namespace(time.sleep, 30, timeout=0.5)
    assert child_pids() == kids  # killed and reaped, not left to sleep its 30 s


@pytest.mark.real
def test_in_namespace_child_killed_by_signal_is_an_error():
    with pytest.raises(tcplab.NamespaceError, match="killed by signal 9"):
        tcplab.in_namespace(lambda: os.kill(os.getpid(), 9))


@pytest.mark.real
def test_in_namespace_is_isolated_from_host_counters():
    def connect_once():
        before = tcplab.counters()
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        c = socket.create_connection(s.getsockname())
        c.close()
        s.close()
        return tcplab.counters_delta(before, tcplab.counters())["ActiveOpens"], before["ActiveOpens"]
    delta, start = tcplab.in_namespace(connect_once)
    assert (delta, start) == (1, 0)  # a fresh namespace starts from zero


@pytest.mark.real
def test_forbidden_namespaces(monkeypatch):
    monkeypatch.setenv("TCPLAB_FORBID_NAMESPACES", "1")
    with pytest.raises(NamespaceUnavailable, match="TCPLAB_FORBID_NAMESPACES"):
        tcplab.in_namespace(_read_somaxconn)
    caps = tcplab.capabilities()
    assert not caps.real_with_sysctls and "SIMULATED" in caps.summary()


@pytest.mark.parametrize("kwargs,err,match", [
    ({"sysctls": {"kernel.hostname": "x"}}, ValueError, "sysctl name must be a 'net"),
    ({"sysctls": {"net.core.somaxconn": None}}, TypeError, "sysctls\\['net.core.somaxconn'\\]"),
    ({"timeout": -1}, ValueError, "timeout must be a number"),
])
def test_in_namespace_bad_arguments(kwargs, err, match):
    kids = child_pids()
    with pytest.raises(err, match=match):
        tcplab.in_namespace(_read_somaxconn, **kwargs)
    assert child_pids() == kids


def test_unknown_sysctl_is_refused_before_forking():
    kids = child_pids()
    with pytest.raises(ValueError, match="'net.ipv4.tcp_no_such' does not exist here"):
        tcplab.in_namespace(_read_somaxconn, sysctls={"net.ipv4.tcp_no_such": 1})
    assert child_pids() == kids


@pytest.mark.real
def test_sysctl_not_writable_in_the_namespace_is_a_clear_error():
    # netdev_max_backlog is global: a private network namespace has no copy of it
    with pytest.raises(tcplab.errors.SysctlUnavailable, match="cannot set net.core.netdev_max_backlog"):
        tcplab.in_namespace(_read_somaxconn, sysctls={"net.core.netdev_max_backlog": 2000})


@pytest.mark.real
def test_capabilities_real_probe():
    caps = tcplab.capabilities()
    assert caps["kernel"].ok and os.uname().release in caps["kernel"].detail
    assert caps["sock_diag"].ok
    assert caps["netns_unprivileged"].ok and caps["netns_root"].ok  # both hold on this VM


@pytest.mark.real
def test_counters_and_sysctls_tables():
    c = tcplab.counters()
    assert {"ListenOverflows", "ListenDrops", "ActiveOpens", "InReceives"} <= c.keys()
    assert tcplab.counters(qualified=True)["TcpExt.ListenOverflows"] == c["ListenOverflows"]
    with pytest.raises(TypeError, match="before must be a mapping"):
        tcplab.counters_delta(None, c)
    df = tcplab.sysctls()
    need = {"net.core.somaxconn", "net.core.netdev_max_backlog", "net.ipv4.tcp_max_syn_backlog",
            "net.ipv4.tcp_syncookies", "net.ipv4.tcp_abort_on_overflow", "net.ipv4.tcp_syn_retries",
            "net.ipv4.tcp_synack_retries", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_tw_reuse",
            "net.ipv4.tcp_timestamps", "net.ipv4.tcp_max_tw_buckets", "net.ipv4.tcp_max_orphans",
            "net.ipv4.tcp_keepalive_time", "net.ipv4.ip_local_port_range"}
    assert need <= set(df["name"])
    assert list(df.columns) == ["name", "value", "default", "per_netns", "meaning"]
    assert df.set_index("name").loc["net.core.somaxconn", "value"] == int(_read_somaxconn())


def _blocked_sibling(ready_w: int, release_r: int) -> str:
    os.write(ready_w, b"x")
    os.read(release_r, 1)  # until the test releases it
    return "released"


@pytest.mark.real
def test_short_run_is_not_held_up_by_a_long_sibling():
    # A sibling child forked meanwhile inherits this run's pipe; the result must not wait for it.
    import threading
    ready_r, ready_w = os.pipe()
    release_r, release_w = os.pipe()
    long_run = threading.Thread(target=lambda: tcplab.in_namespace(_blocked_sibling, ready_w, release_r, timeout=60))
    try:
        long_run.start()
        assert select.select([ready_r], [], [], 30)[0], "the sibling did not start"
        assert tcplab.in_namespace(_read_somaxconn) == _read_somaxconn()
        assert long_run.is_alive()  # the short run returned while its sibling still ran
    finally:
        os.write(release_w, b"x")
        long_run.join(60)
        for fd in (ready_r, ready_w, release_r, release_w):
            os.close(fd)
