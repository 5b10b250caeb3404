"""Mode resolution: real in a namespace, real on the host for per-socket parameters,
refusal or simulator fallback for sysctls, and the simulator wiring."""

from __future__ import annotations

import pytest

import tcplab.experiments.registry
from tcplab.errors import RealModeUnavailable
from tcplab.experiments import Result, accept_queue, handshake, syn_queue, syn_retries, time_wait
from tcplab.model.outcome import Outcome


def test_sim_mode_passes_validated_params_seed_and_profile(monkeypatch):
    calls = []

    def fake(name, params, *, profile=None, seed=0):
        calls.append((name, params, profile, seed))
        return Outcome(summary={"x": 1}, sysctls={"tcplab.profile": "linux-5.15"})

    monkeypatch.setattr(tcplab.experiments.registry, "simulate", fake)
    r = accept_queue(backlog=3, mode="sim", seed=7, profile="linux-5.15")
    assert calls == [("accept_queue", {"backlog": 3, "somaxconn": None, "clients": 20, "abort_on_overflow": False,
                                       "accept_after": None, "settle": 1.5}, "linux-5.15", 7)]
    assert (r.mode, r.profile, r.kernel, r.summary) == ("sim", "linux-5.15", None, {"x": 1})
    assert "SIMULATED" in r._repr_html_()


@pytest.mark.real
def test_real_sim_same_keys():
    for fn in (accept_queue, handshake):
        assert list(fn(mode="sim").summary) == list(fn(mode="real").summary)


@pytest.mark.real
def test_auto_falls_back_to_sim_with_the_reason(monkeypatch):
    monkeypatch.setenv("TCPLAB_FORBID_NAMESPACES", "1")
    r = syn_queue(syncookies=0, mode="auto")
    assert r.mode == "sim" and "net.ipv4.tcp_syncookies=0" in r.reason and "TCPLAB_FORBID_NAMESPACES" in r.reason
    r = accept_queue(backlog=2, clients=5, settle=0.2, mode="auto")  # per-socket only: still real, on the host
    assert r.mode == "real" and "host network namespace" in r.reason and r.summary["established_clients"] == 3


@pytest.mark.real
def test_real_refuses_sysctls_without_namespace(monkeypatch):
    monkeypatch.setenv("TCPLAB_FORBID_NAMESPACES", "1")
    with pytest.raises(RealModeUnavailable, match=r"tcp_tw_reuse=0.*TCPLAB_FORBID_NAMESPACES.*mode='sim'"):
        time_wait(tw_reuse=0, mode="real")
    with pytest.raises(RealModeUnavailable, match="tcp_syn_linear_timeouts"):
        syn_retries(1, linear_timeouts=0, mode="real")


@pytest.mark.parametrize("kw,exc", [(dict(mode="REAL"), ValueError), (dict(mode=None), TypeError),
                                    (dict(seed=1.5), TypeError), (dict(profile=6), TypeError)])
def test_shared_arguments(kw, exc):
    with pytest.raises(exc, match=next(iter(kw))):
        accept_queue(**kw)


def test_result_repr_is_readable():
    r = Result.from_outcome("x", "real", "because", {"a": 1}, Outcome(summary={"n": 2}, counters={"TW": 0}),
                            kernel="6.18")
    assert repr(r).startswith("<Result x REAL (kernel 6.18; because)") and "n=2" in repr(r)
    assert r.timeline is None and r.tables == {}


def test_sim_result_names_its_profile_and_only_sysctls_in_sysctls():
    r = accept_queue(mode="sim")
    assert r.profile == "linux-6.18" and r.mode == "sim"
    assert all(k.startswith("net.") for k in r.sysctls), r.sysctls
