"""The tcplab command: real output, exit 2 and one line on bad input."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

import tcplab.doctor  # noqa: F401 - import before forking: uid 65534 cannot read /root's stdlib
from tests.conftest import run_as_nobody


def tcplab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tcplab", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.real
def test_doctor_as_root():
    out = tcplab("doctor", "--workshop")
    assert out.returncode == 0, out.stderr
    assert "netns_unprivileged" in out.stdout and "net.core.somaxconn" in out.stdout
    assert "Workshop host checks" in out.stdout


def _doctor_in_process() -> str:
    from tcplab.doctor import doctor_report
    return doctor_report()


@pytest.mark.real
def test_doctor_as_unprivileged_user():
    _doctor_in_process()  # warm every lazy import: uid 65534 cannot read /root's stdlib
    text = run_as_nobody(_doctor_in_process)
    assert "netns_root" in text and "not root" in text


@pytest.mark.real
def test_ss_shows_listener_send_q():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(7)
    try:
        port = s.getsockname()[1]
        out = tcplab("ss", "-l", "--port", str(port))
        assert out.returncode == 0, out.stderr
        row = [line for line in out.stdout.splitlines() if f":{port}" in line][0].split()
        assert row[:3] == ["LISTEN", "0", "7"]
    finally:
        s.close()


@pytest.mark.real
def test_counters_watch_bounded():
    out = tcplab("counters", "--watch", "0.1", "--count", "2")
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 2


@pytest.mark.parametrize("args,message", [
    (["ss", "--port", "-1"], "--port must be an int in 0..65535"),
    (["ss", "--port", "http"], "--port must be an int in 0..65535, not 'http'"),
    (["ss", "--state", "OPEN"], "state must be None or one of"),
    (["counters", "--watch", "0"], "SECONDS must be a number in 0.1..3600"),
    (["counters", "--watch", "nan"], "SECONDS must be a number"),
    (["watch", "--port", "65536"], "--port must be an int in 0..65535, not 65536"),
    (["watch", "--duration", "-1"], "--duration must be a number in 0..86400, not -1"),
    (["watch", "--interval", "0"], "--interval must be a number in 0.05..3600, not 0"),
    (["watch", "--interval", "soon"], "--interval must be a number in 0.05..3600, not 'soon'"),
    (["watch", "--rows", "0"], "--rows must be an int in 1..10000, not 0"),
    (["watch", "--state", "OPEN"], "state must be None or among ESTABLISHED"),
    (["watch", "--address", "nowhere"], "address must be None or an IP address or network"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
])
def test_bad_arguments_exit_2_one_line(args, message):
    out = tcplab(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_run_an_experiment_simulated():
    out = tcplab("run", "accept_queue", "--mode", "sim", "--set", "backlog=3", "--set", "clients=10")
    assert out.returncode == 0, out.stderr
    assert "SIMULATED" in out.stdout or "SIM" in out.stdout
    assert "established_clients=4" in out.stdout


@pytest.mark.real
def test_run_an_experiment_for_real():
    out = tcplab("run", "accept_queue", "--mode", "real", "--set", "backlog=2", "--set", "clients=6",
                 "--set", "settle=0.2")
    assert out.returncode == 0, out.stderr
    assert "REAL" in out.stdout and "established_clients=3" in out.stdout


@pytest.mark.parametrize("args,message", [
    (["run", "teleport"], "invalid choice: 'teleport' (choose from 'accept_queue'"),
    (["run", "load", "--mode", "real", "--set", "rate=9000"], 'rate must be at most 5000 connects/s in real mode'),
    (["run", "time_wait", "--set", "port_range=1-2-3"], "port_range must look like LOW-HIGH"),
    (["run", "lifecycle", "--set", "scenario=teleport"], "scenario must be one of client_closes_first"),
    (["run", "accept_queue", "--set", "backlog=-1"], "backlog must be an int in 0..65535, not -1"),
    (["run", "accept_queue", "--set", "nonsense"], "--set must look like NAME=VALUE"),
    (["run", "accept_queue", "--set", "colour=3"], "colour"),
    (["run", "accept_queue", "--mode", "warp"], "invalid choice"),
])
def test_run_bad_arguments(args, message):
    out = tcplab(*args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_run_help_lists_every_parameter_with_range_and_default():
    from tcplab.experiments.registry import spec
    out = tcplab("run", "load", "--help")
    assert out.returncode == 0, out.stderr
    for p in spec("load").params:
        assert p.name in out.stdout and p.describe() in out.stdout
    assert "sysctl net.core.somaxconn" in out.stdout and "(real mode: up to 5000)" in out.stdout


def test_run_sim_beyond_real_bounds():
    out = tcplab("run", "load", "--mode", "sim", "--set", "rate=20000", "--set", "duration=5")
    assert out.returncode == 0, out.stderr
    assert "attempts=100000" in out.stdout
