"""Hardening (a room of learners): long loops leak nothing, a killed namespace child is a
clear error, experiments from separate processes agree with serial runs, and one learner's
load does not pollute another's counters."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import pandas  # noqa: F401 - imported before any fork
import pytest

import tcplab
from tcplab import experiments as ex
from tcplab.kernel.namespace import namespace_support

pytestmark = pytest.mark.real  # every test here runs real experiments or counts live fds/children

# every kind, real and simulated, each short
REAL = [
    lambda: ex.accept_queue(backlog=2, clients=5, settle=0.1, mode="real"),
    lambda: ex.syn_queue(backlog=2, clients=6, syncookies=1, settle=0.1, mode="real"),
    lambda: ex.rebind(old_reuseaddr=True, new_reuseaddr=True, mode="real"),
    lambda: ex.handshake(mode="real"),
    lambda: ex.time_wait(connections=3, duration=0.2, mode="real"),
    lambda: ex.lifecycle("abortive_close", mode="real"),
]
SIM = [
    lambda: ex.accept_queue(mode="sim"), lambda: ex.syn_queue(mode="sim"), lambda: ex.syn_retries(mode="sim"),
    lambda: ex.lifecycle("half_close", mode="sim"), lambda: ex.handshake(mode="sim"),
    lambda: ex.time_wait(mode="sim"), lambda: ex.rebind(mode="sim"), lambda: ex.load(mode="sim"),
]


def _children() -> list[str]:
    """Children of every thread of this process (a child belongs to the thread that forked it)."""
    kids = []
    for tid in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"/proc/{os.getpid()}/task/{tid}/children") as f:
                kids += f.read().split()
        except OSError:
            pass
    return sorted(kids)


def _state():
    return sorted(os.listdir("/proc/self/fd")), _children(), threading.active_count()


@pytest.mark.slow
def test_500_runs_of_every_kind_leak_nothing():
    for run in REAL + SIM:  # warm lazy imports and probes
        run()
    before = _state()
    for i in range(500):
        runs = REAL if i % 4 == 0 else SIM  # 125 real runs, 375 simulated
        runs[i % len(runs)]()
    assert _state() == before


def _poll(fn, timeout: float = 30.0, interval: float = 0.02):
    """``fn()``'s first truthy answer, polled until ``timeout`` s pass (then its last answer)."""
    deadline = time.monotonic() + timeout
    while not (answer := fn()) and time.monotonic() < deadline:
        time.sleep(interval)
    return answer


def test_sigkill_of_the_namespace_child_is_a_clear_error():
    ok, how = namespace_support()  # probed (and cached) now, so the only child below is the experiment's
    assert ok, how
    before = _state()
    outcome = {}
    under_way = threading.Event()

    def go():
        try:
            ex.syn_retries(2, linear_timeouts=0, mode="real", progress=lambda f, t: under_way.set())
        except BaseException as e:  # noqa: BLE001
            outcome["error"] = e

    t = threading.Thread(target=go)
    t.start()
    assert under_way.wait(30), "the experiment never reported progress"
    kids = _poll(_children)
    assert kids, "the experiment did not fork a namespace child"
    os.kill(int(kids[0]), 9)
    t.join(30)
    assert not t.is_alive()
    assert isinstance(outcome.get("error"), tcplab.NamespaceError)
    assert "killed by signal 9" in str(outcome["error"])
    assert _state() == before


def _summary_in_process(name: str, queue) -> None:
    runs = {
        "accept_queue": lambda: ex.accept_queue(backlog=5, clients=20, mode="real"),
        "syn_queue": lambda: ex.syn_queue(backlog=4, clients=60, syncookies=0, mode="real"),
        "rebind": lambda: ex.rebind(old_reuseaddr=False, mode="real"),
        "time_wait": lambda: ex.time_wait(connections=30, port_range=(40000, 40009), tw_reuse=0, duration=0.5,
                                          mode="real"),
    }
    s = dict(runs[name]().summary)
    s.pop("first_failure_at", None)
    queue.put((name, s))


def test_processes_at_once_equal_serial():
    names = ["accept_queue", "syn_queue", "rebind", "time_wait"] * 2
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    serial = {}
    for name in set(names):
        _summary_in_process(name, q)
        serial.update([q.get()])
    procs = [ctx.Process(target=_summary_in_process, args=(n, q)) for n in names]
    for p in procs:
        p.start()
    got = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    for name, summary in got:
        assert summary == serial[name], name


def test_a_neighbours_load_does_not_pollute_counters():
    ok, how = namespace_support()  # probed now: the child awaited below is the neighbour's run
    assert ok, how
    result = {}
    neighbour = threading.Thread(target=lambda: result.setdefault(
        "load", ex.load(rate=300, accept_rate=10, duration=2.0, backlog=4, mode="real")))
    neighbour.start()
    assert _poll(_children), "the neighbour's run did not start"
    mine = ex.accept_queue(backlog=5, clients=20, mode="real")
    neighbour.join(60)
    assert result["load"].counters.get("ListenOverflows", 0) > 0  # the neighbour did overflow
    assert mine.summary["ListenOverflows"] == mine.counters["ListenOverflows"] == 28  # docs/kernel-facts.md case 1
