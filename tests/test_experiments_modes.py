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

    def fake(s, params, *, profile=None, seed=0):
        calls.append((s.name, params, profile, seed))
        return Outcome(summary={"x": 1}, profile="linux-5.15")

    monkeypatch.setattr(tcplab.experiments.registry, "simulate_validated", fake)
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


# -- fidelity: one verdict, decided in _mode.run ------------------------------------------------------
from dataclasses import replace  # noqa: E402

from tcplab.experiments import _mode, congestion, registry  # noqa: E402
from tcplab.experiments.spec import Key  # noqa: E402
from tcplab.model.outcome import Timing  # noqa: E402
from tcplab.widgets.common import header_html  # noqa: E402


def _judged_run(monkeypatch, lags_ms, mode):
    """_mode.run on the host (no namespace), with a real runner that reports a sampler lag from
    ``lags_ms`` per attempt, judged by a key that tolerates 50 ms of it."""
    monkeypatch.setenv("TCPLAB_FORBID_NAMESPACES", "1")
    monkeypatch.setattr(_mode, "_read_counters", lambda: {})      # pure: no /proc
    spec = replace(accept_queue.spec, summary=(Key("n", "a count", tolerates={"sampler": 50}),))
    attempts = []

    def real(params):
        attempts.append(lags_ms[len(attempts)])
        return Outcome(summary={"n": len(attempts)},
                       timings=[Timing("sampler", attempts[-1], f"the sampler went {attempts[-1]} ms without the CPU")])

    def sim(params):
        return Outcome(summary={"n": -1})

    r = _mode.run("x", {}, mode=mode, seed=0, profile=None, real=real, sim=sim, sysctls={}, judge=spec.judge)
    return r, attempts


def test_fidelity_held_is_one_run(monkeypatch):
    r, attempts = _judged_run(monkeypatch, [10], "auto")
    assert (r.mode, r.summary["n"], attempts) == ("real", 1, [10])
    assert r.trusted and r.fidelity.ok and r.fidelity.attempts == 1 and r.badge == "REAL"


def test_fidelity_lost_once_is_repeated_and_the_repeat_kept(monkeypatch):
    r, attempts = _judged_run(monkeypatch, [400, 10], "real")
    assert (r.mode, r.summary["n"], attempts) == ("real", 2, [400, 10])
    assert r.trusted and r.fidelity.attempts == 2
    assert any("first real run lost fidelity" in n and "400 ms" in n for n in r.notes), r.notes


def test_fidelity_lost_twice_real_is_flagged(monkeypatch):
    r, attempts = _judged_run(monkeypatch, [400, 300], "real")
    assert (r.mode, r.summary["n"], attempts) == ("real", 2, [400, 300])
    assert not r.trusted and not r.fidelity.ok and r.fidelity.keys == ("n",)
    assert r.fidelity.reason == ("host busy: the sampler went 300 ms without the CPU (n tolerates 50 ms), "
                                 "so n is not the kernel's alone")
    assert r.badge == "REAL, host busy" and "REAL, host busy" in repr(r) and "300 ms" in repr(r)
    assert "REAL, host busy" in r._repr_html_() and "⚠" in header_html(r) and "300 ms" in header_html(r)


def test_fidelity_lost_twice_auto_simulates_with_the_reason(monkeypatch):
    r, attempts = _judged_run(monkeypatch, [400, 300], "auto")
    assert (r.mode, r.summary["n"], attempts) == ("sim", -1, [400, 300])
    assert r.trusted and not r.fidelity.ok            # the simulator's figures; the rejected real run's verdict
    assert "lost fidelity both times" in r.reason and "300 ms without the CPU" in r.reason
    assert r.badge == "SIMULATED" and "300 ms" in header_html(r)


def test_lost_twice_where_the_simulator_cannot_stand_in_says_why(monkeypatch):
    # congestion(algorithm="bbr") in auto mode on a busy host: the simulator refuses bbr; the learner
    # must read that a real run was made and why it was not kept, not only "cannot be simulated"
    monkeypatch.setenv("TCPLAB_FORBID_NAMESPACES", "1")
    monkeypatch.setattr(_mode, "_read_counters", lambda: {})
    spec = replace(accept_queue.spec, summary=(Key("n", "a count", tolerates={"sampler": 50}),))

    def real(params):
        return Outcome(summary={"n": 1}, timings=[Timing("sampler", 300, "the sampler went 300 ms without the CPU")])

    def sim(params):
        raise ValueError("algorithm='bbr' cannot be simulated")

    with pytest.raises(ValueError, match="cannot be simulated") as e:
        _mode.run("x", {}, mode="auto", seed=0, profile=None, real=real, sim=sim, sysctls={}, judge=spec.judge)
    assert "real run was made but not kept" in str(e.value) and "300 ms without the CPU" in str(e.value)


def test_run_log_records_every_verdict(monkeypatch, tmp_path):
    # TCPLAB_RUN_LOG: how docs/reliability.md counts, over a whole nbval run, the runs that lost fidelity
    import json
    log = tmp_path / "runs.jsonl"
    monkeypatch.setenv("TCPLAB_RUN_LOG", str(log))
    _judged_run(monkeypatch, [400, 10], "real")
    _judged_run(monkeypatch, [400, 300], "auto")
    first, second = (json.loads(line) for line in log.read_text().splitlines())
    assert (first["mode"], first["trusted"], first["fidelity"]["attempts"], first["fidelity"]["ok"]) == ("real", True, 2, True)
    assert "400 ms" in first["discarded"][0] and first["fidelity"]["timings"][0]["ms"] == 10
    assert (second["mode"], second["badge"], second["fidelity"]["ok"]) == ("sim", "SIMULATED", False)
    assert "300 ms without the CPU" in second["reason"]
    monkeypatch.setenv("TCPLAB_RUN_LOG", str(tmp_path / "no-such-dir" / "x.jsonl"))   # unwritable: the run goes on
    assert _judged_run(monkeypatch, [10], "real")[0].trusted


def test_a_timing_no_key_names_is_held_to_the_runners_own_limit(monkeypatch):
    spec = accept_queue.spec              # no key tolerates anything: LagMeter's own limit decides
    assert spec.judge([Timing("sampler", 40, "40 ms", limit_ms=50)]).ok
    lost = spec.judge([Timing("sampler", 60, "the sampler went 60 ms without the CPU", limit_ms=50)])
    assert not lost.ok and "more than the runner's 50 ms" in lost.reason
    # the runner did not say which figures bear its lag, so none is vouched for, and the run says so
    assert lost.keys == tuple(k.name for k in spec.summary) and "no figure of this run" in lost.reason


@pytest.mark.real
def test_a_real_congestion_run_held_to_a_tiny_lateness_tolerance_loses_fidelity():
    # the real delay line is held to 1 µs of p99 release lateness, which no run meets (an
    # undisturbed one has ~2-5 ms): both real runs lose fidelity
    tiny = {"delay_line": 0.001}
    s = congestion.spec
    strict = replace(s, summary=tuple(replace(k, tolerates=tiny) if k.tolerates else k for k in s.summary))
    kw = dict(rate_mbit=10, rtt_ms=20, buffer_packets=20, algorithm="reno", duration=1)
    try:
        r = registry.run(strict, kw, mode="real")
    except RealModeUnavailable as e:
        pytest.skip(str(e))
    assert r.mode == "real" and not r.trusted and r.fidelity.attempts == 2
    assert r.fidelity.reason.startswith("host busy: the delay line released 1 % of its ")
    assert "utilization" in r.fidelity.keys and "srtt_p50_ms" in r.fidelity.keys
    assert "REAL, host busy" in repr(r)
    auto = registry.run(strict, kw, mode="auto")
    assert auto.mode == "sim" and "the delay line released" in auto.reason
    # the spec's own tolerance: the same run, judged as the course judges it
    ok = congestion(**kw, mode="real")
    assert {t.name for t in ok.fidelity.timings} == {"delay_line", "sender"}


def test_progress_never_goes_back_when_a_run_is_repeated(monkeypatch):
    monkeypatch.setenv("TCPLAB_FORBID_NAMESPACES", "1")
    monkeypatch.setattr(_mode, "_read_counters", lambda: {})
    spec = replace(accept_queue.spec, summary=(Key("n", "a count", tolerates={"sampler": 50}),))
    seen, lags = [], [400, 10]

    def real(params):
        import time
        time.sleep(0.6)                   # long enough for the 0.25 s progress ticks
        lag = lags.pop(0)
        return Outcome(summary={"n": 1}, timings=[Timing("sampler", lag, f"{lag} ms")])

    r = _mode.run("x", {}, mode="real", seed=0, profile=None, real=real, sim=lambda p: Outcome(), sysctls={},
                  judge=spec.judge, progress=lambda f, text: seen.append((f, text)), expected_s=0.6)
    assert r.trusted and r.fidelity.attempts == 2
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and seen[-1] == (1.0, "done")
    assert any(text.startswith("repeating (the host was busy)") for _, text in seen), seen
