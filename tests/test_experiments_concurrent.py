"""Eight experiments at once give the serial summaries; runs leak no fds or children."""

from __future__ import annotations

import os
import threading

import pandas  # noqa: F401
import pytest

from tcplab import experiments as ex

pytestmark = pytest.mark.real  # real runs at once, fds and children counted

# deterministic on the kernel (lifecycle in slow motion so that no state is too short to see)
RUNS = {
    "accept_queue": lambda: ex.accept_queue(backlog=5, clients=20, mode="real"),
    "syn_queue": lambda: ex.syn_queue(backlog=4, clients=60, syncookies=0, mode="real"),
    "syn_retries": lambda: ex.syn_retries(1, linear_timeouts=0, mode="real"),
    "time_wait": lambda: ex.time_wait(connections=30, port_range=(40000, 40009), tw_reuse=0, duration=0.5,
                                      mode="real"),
    "rebind": lambda: ex.rebind(old_reuseaddr=False, mode="real"),
    # 200 ms per segment: a state must outlast a sampler thread starved by 7 busy neighbours on 2 CPUs
    "lifecycle": lambda: ex.lifecycle("client_closes_first", slow_motion=200, mode="real"),
    "handshake": lambda: ex.handshake(mode="real"),
    "load": lambda: ex.load(rate=50, accept_rate=200, duration=1.0, mode="real"),
}
TIMES = {"first_failure_at", "failed_after", "p50_connect_s", "p99_connect_s", "retransmit_times"}


def _comparable(name, summary):
    out = {}
    for k, v in summary.items():
        if k in TIMES or k == "max_recv_q" and name == "load":
            continue
        out[k] = v
    return out


def test_eight_at_once_equal_serial():
    serial = {name: run().summary for name, run in RUNS.items()}
    results, errors = {}, {}

    def go(name):
        try:
            results[name] = RUNS[name]().summary
        except BaseException as e:  # noqa: BLE001
            errors[name] = e

    threads = [threading.Thread(target=go, args=(n,)) for n in RUNS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for name in RUNS:
        assert _comparable(name, results[name]) == _comparable(name, serial[name]), name
        for k in TIMES & set(serial[name]) - {"p50_connect_s", "p99_connect_s"}:  # load latencies vary
            a, b = results[name][k], serial[name][k]
            a, b = (a, b) if isinstance(b, list) else ([a], [b])
            assert len(a) == len(b), (name, k)
            assert all(x is y is None or abs(x - y) <= max(0.1 * y, 0.05) for x, y in zip(a, b)), (name, k, a, b)


def _fds():
    return sorted(os.listdir("/proc/self/fd"))


def _children():
    with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as f:
        return f.read().split()


def test_200_runs_leak_nothing():
    ex.rebind(mode="real")  # warm up lazy imports and the namespace probe
    before_fds, before_kids = _fds(), _children()
    for i in range(200):
        ex.rebind(old_reuseaddr=bool(i % 2), mode="real")
    assert _fds() == before_fds and _children() == before_kids


def test_20_runs_leak_nothing_in_either_namespace(monkeypatch):
    ex.rebind(mode="real")
    before_fds, before_kids = _fds(), _children()
    for i in range(10):
        ex.accept_queue(backlog=1, clients=3, settle=0.1, mode="real")
    monkeypatch.setenv("TCPLAB_FORBID_NAMESPACES", "1")  # sockets now live in this very process
    for i in range(10):
        ex.accept_queue(backlog=1, clients=3, settle=0.1, mode="real")
    with pytest.raises(ValueError):
        ex.accept_queue(backlog=-1, mode="real")
    assert _fds() == before_fds and _children() == before_kids


@pytest.mark.parametrize("forbid", ["0", "1"])
def test_keyboard_interrupt_leaves_nothing(monkeypatch, forbid):
    import signal

    monkeypatch.setenv("TCPLAB_FORBID_NAMESPACES", forbid)
    ex.rebind(mode="real")
    before_fds, before_kids = _fds(), _children()
    pressed = threading.Event()

    def press_ctrl_c_once(fraction, text):  # called while the run is under way
        if not pressed.is_set():
            pressed.set()
            os.kill(os.getpid(), signal.SIGINT)

    # Python installs its SIGINT handler only if SIGINT was not ignored at start-up, and a
    # non-interactive shell starts background jobs (`make test &`) with SIGINT ignored: install the
    # handler this test relies on, as an interactive terminal would have it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            ex.syn_retries(2, mode="real", progress=press_ctrl_c_once)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert pressed.is_set()
    # the run's own cleanup (kill and reap the child, close the sockets, join the progress
    # thread) is done when the KeyboardInterrupt reaches us: nothing to wait for
    assert _fds() == before_fds and _children() == before_kids
