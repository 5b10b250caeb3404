"""Bad input, every public entry point: a ValueError/TypeError naming the parameter, the
allowed range and the value — raised before anything is opened (no child, no new fd)."""

from __future__ import annotations

import math
import os

import pytest

import tcplab
from tcplab import experiments as ex

BIG = 10**9

# (callable, kwargs, exception, text the message must contain)
CASES = [
    # ack_overflow
    (ex.ack_overflow, {"backlog": -1}, ValueError, "backlog must be an int in 0..8, not -1"),
    (ex.ack_overflow, {"burst": 10**9}, ValueError, f"burst must be an int in 1..12, not {10**9}"),
    (ex.ack_overflow, {"slow_motion": float("nan")}, ValueError, "slow_motion must be"),
    (ex.ack_overflow, {"syncookies": None}, TypeError, "syncookies must be one of 0, 1, 2, not None"),
    # accept_queue
    (ex.accept_queue, {"backlog": -1}, ValueError, "backlog must be an int in 0..65535, not -1"),
    (ex.accept_queue, {"backlog": BIG}, ValueError, f"backlog must be an int in 0..65535, not {BIG}"),
    (ex.accept_queue, {"backlog": "5"}, TypeError, "backlog must be an int"),
    (ex.accept_queue, {"backlog": 5.0}, TypeError, "backlog must be an int"),
    (ex.accept_queue, {"backlog": None}, TypeError, "backlog must be an int"),
    (ex.accept_queue, {"backlog": True}, TypeError, "backlog must be an int"),
    (ex.accept_queue, {"somaxconn": 0}, ValueError, "somaxconn must be None or an int in 1..65535"),
    (ex.accept_queue, {"clients": 0}, ValueError, "clients must be an int in 1..1000, not 0"),
    (ex.accept_queue, {"clients": 10**6}, ValueError, "clients must be an int in 1..1000"),
    (ex.accept_queue, {"settle": math.nan}, ValueError, "settle must be a number"),
    (ex.accept_queue, {"settle": -1}, ValueError, "settle must be a number"),
    (ex.accept_queue, {"accept_after": "soon"}, TypeError, "accept_after must be None or a number"),
    (ex.accept_queue, {"abort_on_overflow": "yes"}, TypeError, "abort_on_overflow must be True or False"),
    (ex.accept_queue, {"mode": "fast"}, ValueError, "mode must be one of 'auto', 'real', 'sim'"),
    (ex.accept_queue, {"seed": -1}, ValueError, "seed must be an int"),
    (ex.accept_queue, {"profile": 5}, TypeError, "profile must be None or"),
    (ex.accept_queue, {"profile": "linux-1.0", "mode": "sim"}, ValueError, "profile"),
    # syn_queue
    (ex.syn_queue, {"syncookies": 3}, ValueError, "syncookies must be one of 0, 1, 2"),
    (ex.syn_queue, {"max_syn_backlog": 0}, ValueError, "max_syn_backlog must be None or an int in 1..65535"),
    (ex.syn_queue, {"synack_retries": -1}, ValueError, "synack_retries must be None or an int in 0..255"),
    (ex.syn_queue, {"flood": None}, TypeError, "flood must be True or False"),
    # syn_retries
    (ex.syn_retries, {"retries": 0}, ValueError, "retries must be an int in 1..127, not 0"),
    (ex.syn_retries, {"retries": 128}, ValueError, "retries must be an int in 1..127, not 128"),
    (ex.syn_retries, {"retries": 2.5}, TypeError, "retries must be an int in 1..127"),
    (ex.syn_retries, {"retries": 8, "mode": "real"}, ValueError, "max_seconds"),
    # lifecycle / handshake
    (ex.lifecycle, {"scenario": "teardown"}, ValueError, "scenario must be one of"),
    (ex.lifecycle, {"slow_motion": 1e6}, ValueError, "slow_motion must be a number in 0..500"),
    (ex.handshake, {"mode": None}, TypeError, "mode must be one of"),
    # time_wait / rebind
    (ex.time_wait, {"connections": 0}, ValueError, "connections must be an int in 1..5000, not 0"),
    (ex.time_wait, {"port_range": (50000, 40000)}, ValueError, "port_range must be a (low, high) pair with low <= high"),
    (ex.time_wait, {"port_range": (80, 90)}, ValueError, "port_range[0] must be an int in 1024..65535, not 80"),
    (ex.time_wait, {"port_range": "40000-40009"}, TypeError, "port_range must be None or a (low, high) pair"),
    (ex.time_wait, {"tw_reuse": 3}, ValueError, "tw_reuse must be"),
    (ex.time_wait, {"closer": "both"}, ValueError, "closer must be one of 'client', 'server'"),
    (ex.rebind, {"old_reuseaddr": "1"}, TypeError, "old_reuseaddr must be True or False"),
    (ex.rebind, {"closer": "nobody"}, ValueError, "closer must be one of"),
    # load
    (ex.load, {"rate": 0}, ValueError, "rate must be"),
    (ex.load, {"rate": math.inf}, ValueError, "rate must be"),
    (ex.load, {"duration": 3601}, ValueError, "duration must be a number in 0.1..3600"),
    (ex.load, {"duration": 3600, "mode": "real"}, ValueError, "duration must be at most 60 s in real mode"),
    (ex.load, {"rate": 6000, "mode": "real"}, ValueError, 'rate must be at most 5000 connects/s in real mode'),
    (ex.load, {"rate": 5000, "duration": 10, "mode": "real"}, ValueError, "at most 20000 connections in real mode"),
    (ex.load, {"syn_retries": 0}, ValueError, "syn_retries must be None or an int in 1..127"),
    # observers and namespaces
    (tcplab.sockets, {"state": "open"}, ValueError, "state must be None or one of ESTABLISHED"),
    (tcplab.sockets, {"port": -1}, ValueError, "port must be None or an int in 0..65535, not -1"),
    (tcplab.sockets, {"port": "80"}, TypeError, "port must be None or an int in 0..65535"),
    (tcplab.sockets, {"source": "magic"}, ValueError, "source must be one of"),
    (tcplab.watch, {"port": 65536}, ValueError, "port must be None or an int in 0..65535, not 65536"),
    (tcplab.watch, {"port": "80"}, TypeError, "port must be None or an int in 0..65535"),
    (tcplab.watch, {"local_port": -1}, ValueError, "local_port must be None or an int in 0..65535, not -1"),
    (tcplab.watch, {"remote_port": 1.5}, TypeError, "remote_port must be None or an int in 0..65535"),
    (tcplab.watch, {"duration": -1}, ValueError, "duration must be a number in 0..604800, not -1"),
    (tcplab.watch, {"duration": math.inf}, ValueError, "duration must be a number in 0..604800"),
    (tcplab.watch, {"interval": 0}, ValueError, "interval must be a number in 0.01..3600, not 0"),
    (tcplab.watch, {"interval": math.nan}, ValueError, "interval must be a number in 0.01..3600"),
    (tcplab.watch, {"interval": "1"}, TypeError, "interval must be a number in 0.01..3600"),
    (tcplab.watch, {"state": "OPEN"}, ValueError, "state must be None or among ESTABLISHED"),
    (tcplab.watch, {"state": 10}, TypeError, "state must be None, a state name or a list"),
    (tcplab.watch, {"state": []}, TypeError, "state must be None, a state name or a list"),
    (tcplab.watch, {"address": "300.1.1.1"}, ValueError, "address must be None or an IP address or network"),
    (tcplab.watch, {"address": 127}, TypeError, "address must be None or an IP address or network"),
    (tcplab.watch, {"max_samples": 0}, ValueError, "max_samples must be an int in 1..1000000, not 0"),
    (tcplab.watch, {"max_rows": 0}, ValueError, "max_rows must be an int in 1..50000000, not 0"),
    (tcplab.watch, {"on_sample": 5}, TypeError, "on_sample must be None or a callable"),
    (tcplab.watch_samples, {"interval": 1e9}, ValueError, "interval must be a number in 0.01..3600"),
    (tcplab.watch_samples, {"port": -5}, ValueError, "port must be None or an int in 0..65535, not -5"),
    (tcplab.counters_delta, {"before": None, "after": {}}, TypeError, "before must be a mapping"),
    (tcplab.counter_for_sentence, {"sentence": "the cat sat"}, ValueError, "sentence is not a known netstat -s line"),
    (tcplab.in_namespace, {"fn": print, "sysctls": {"kernel.panic": 1}}, ValueError, "sysctl name must be a 'net.*'"),
    (tcplab.in_namespace, {"fn": print, "timeout": math.nan}, ValueError, "timeout must be a number"),
]


def _children() -> int:
    me = str(os.getpid())
    n = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    n += f.read().rsplit(")", 1)[1].split()[1] == me
            except OSError:
                pass
    return n


@pytest.mark.parametrize("fn,kwargs,exc,text", CASES,
                         ids=[f"{c[0].__name__}-{'-'.join(map(str, c[1]))}" for c in CASES])
def test_bad_input_is_refused_before_anything_opens(fn, kwargs, exc, text):
    fds, kids = len(os.listdir("/proc/self/fd")), _children()
    with pytest.raises(exc) as e:
        fn(**kwargs)
    assert text in str(e.value), str(e.value)
    assert len(os.listdir("/proc/self/fd")) == fds and _children() == kids


def test_non_loopback_addresses_are_refused():
    from tcplab._validate import check_loopback
    for addr in ("10.0.0.1", "8.8.8.8", "::2", "0.0.0.0", "localhost.example"):
        with pytest.raises(ValueError, match="must be a loopback address"):
            check_loopback("host", addr)
    assert check_loopback("host", "127.0.0.9") == "127.0.0.9"
    assert check_loopback("host", "::1") == "::1"
