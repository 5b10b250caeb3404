"""nagle on the real kernel vs docs/kernel-facts.md ("Data transfer: first probes"), as root and as an
unprivileged user, and the simulator's rules (Nagle + delayed ACK + quick-ACK start)."""

from __future__ import annotations

import dataclasses

import pandas  # noqa: F401 - imported before forking to uid 65534 (it cannot read the venv afterwards)
import pytest

from tcplab.errors import RealModeUnavailable
from tcplab.experiments import nagle, simulate
from tcplab.experiments.nagle import delack_jiffies, simulate_requests
from tcplab.model.profiles import get_profile
from tests.conftest import skip_unless_trusted

# docs/kernel-facts.md: write(100), write(100), read(100) x 20: median 44 ms (40 ms TCP_DELACK_MIN + one
# 4 ms jiffy at HZ=250), the first request fast (quick-ACK mode), TCP_NODELAY ~0.01 ms.
MEDIAN_STALL_S = 0.044


def _run(kw, mode="real"):
    r = nagle(mode=mode, **kw)
    return r.mode, r.summary, r.tables["requests"]["segments"].tolist(), r.tables["requests"]["latency_ms"].tolist()


def _trusted_run(kw):
    """A real run whose counts are the kernel's: its own timing held (``Result.trusted``; a stall no
    delayed ACK explains, e.g. the thread kept off the CPU between two writes, loses it). A run the
    host disturbed twice proves nothing about the kernel, so the test says why it could not look."""
    r = nagle(mode="real", **kw)
    if not r.trusted:
        pytest.skip(f"the host disturbed the run and its repeat: {r.fidelity.reason}")
    return r.mode, r.summary, r.tables["requests"]["segments"].tolist(), r.tables["requests"]["latency_ms"].tolist()


def _extra_delayed_acks_allowed(latencies_ms):
    """On a loaded machine the kernel may send one more delayed ACK: if the process is descheduled for
    40 ms between the held segment's arrival and the reply, the server's next delayed ACK fires too (the
    request then takes over 80 ms). Allowed only when such a request is there to show it."""
    return sum(1 for x in latencies_ms if x > 80)


def _within(measured, expected, rel=0.10):
    return abs(measured - expected) <= rel * expected


def _run_judged(kw):
    r = nagle(mode="real", **kw)
    return (r.mode, r.summary, r.tables["requests"]["segments"].tolist(),
            r.tables["requests"]["latency_ms"].tolist(), r.trusted, r.fidelity.reason)


def _real_or_skip(as_user, kw):
    """A real run (as root, or as an unprivileged user) whose own timing held: one the host disturbed
    twice says so in its verdict, and proves nothing about the kernel's medians."""
    try:
        mode, s, per_request, latencies, trusted, reason = as_user(_run_judged, kw)
    except RealModeUnavailable as e:  # pragma: no cover - depends on the machine
        pytest.skip(str(e))
    if not trusted:
        pytest.skip(f"the host disturbed the run and its repeat: {reason}")
    return mode, s, per_request, latencies


@pytest.mark.real
def test_the_stall_as_kernel_md_measured_it(as_user):
    mode, s, per_request, latencies = _real_or_skip(as_user, dict(requests=20))
    assert mode == "real"
    assert _within(s["median_latency_s"], MEDIAN_STALL_S), s
    assert _within(s["median_stall_s"], MEDIAN_STALL_S), s
    assert s["first_latency_s"] < 0.005, s            # quick-ACK mode at the start
    # every request after the first waited for exactly one delayed ACK (tcp_delack_timer_handler)
    assert s["stalled_requests"] == 19, s
    assert 19 <= s["delayed_acks"] <= 19 + _extra_delayed_acks_allowed(latencies), (s, latencies)
    # the first request's two writes left separately (its first segment was ACKed at once);
    # afterwards too, but the second only after the ACK: 2 segments a request
    assert per_request == [2] * 20 and s["segments"] == 40


@pytest.mark.real
@pytest.mark.parametrize("cure", [dict(nodelay=True), dict(quickack=True), dict(request_writes=1)],
                         ids=["TCP_NODELAY", "TCP_QUICKACK", "one-write"])
def test_each_cure_removes_the_stall(cure):
    mode, s, _, _ = _trusted_run(dict(requests=10, **cure))
    assert mode == "real"
    # without the cure 9 of 10 requests stall; on a loaded host one request may still meet a delayed
    # ACK because the process was descheduled for 40 ms before it replied (the kernel is right then)
    assert s["median_latency_s"] < 0.005 and s["stalled_requests"] <= 1 and s["delayed_acks"] <= 1, s
    assert s["segments"] == 10 * (1 if cure.get("request_writes") == 1 else 2)


@pytest.mark.real
def test_nodelay_as_unprivileged_user(as_user):
    mode, s, _, _ = _real_or_skip(as_user, dict(requests=10, nodelay=True))
    assert mode == "real" and s["median_latency_s"] < 0.005 and s["delayed_acks"] == 0, s


@pytest.mark.real
def test_three_writes_coalesce_behind_the_first():
    """Nagle holds writes 2 and 3 together: 2 segments a request, except the quick first one (3)."""
    mode, s, per_request, latencies = _trusted_run(dict(requests=6, request_writes=3, write_size=700))
    assert mode == "real"
    assert per_request == [3, 2, 2, 2, 2, 2], (per_request, s)
    assert 5 <= s["delayed_acks"] <= 5 + _extra_delayed_acks_allowed(latencies), (s, latencies)


# -- the simulator: the same rules, other values ------------------------------------------------

@pytest.mark.parametrize("requests,writes", [(1, 2), (2, 2), (7, 3), (33, 4), (5, 1)])
def test_simulated_counts_follow_the_rules(requests, writes):
    s = nagle(requests=requests, request_writes=writes, mode="sim").summary
    stalls = requests - 1 if writes > 1 else 0
    assert s["stalled_requests"] == s["delayed_acks"] == stalls
    assert s["segments"] == writes + (requests - 1) * min(writes, 2)
    assert s["first_latency_s"] == 0.0
    if stalls:  # 40-44 ms: the first stall starts within a jiffy, the later ones at its edge
        assert 0.040 <= s["median_stall_s"] <= MEDIAN_STALL_S + 1e-9


@pytest.mark.parametrize("cure", [dict(nodelay=True), dict(quickack=True)])
def test_simulated_cures(cure):
    s = nagle(requests=30, request_writes=3, mode="sim", **cure).summary
    assert s["median_latency_s"] == 0.0 and s["delayed_acks"] == 0 and s["median_stall_s"] is None
    assert s["segments"] == 3 * 30 if cure.get("nodelay") else 3 + 29 * 2


@pytest.mark.parametrize("hz,stall_ms", [(100, 50.0), (250, 44.0), (300, 43.33), (1000, 41.0)])
def test_the_stall_follows_hz(hz, stall_ms):
    """TCP_DELACK_MIN is HZ/25 jiffies, plus the timer wheel's one jiffy: 40 ms + 1/HZ."""
    assert (delack_jiffies(hz) + 1) / hz * 1000 == pytest.approx(stall_ms, abs=0.01)
    profile = dataclasses.replace(get_profile(None), timer_tick=1 / hz)
    s = simulate("nagle", dict(requests=9), profile=profile).summary
    assert s["median_stall_s"] == pytest.approx(stall_ms / 1000, abs=1e-5)


def test_a_stall_after_a_fast_request_depends_on_the_phase():
    rows = simulate_requests(3, 2, nodelay=False, quickack=False, tick=0.004, first_phase=0.9)
    assert [round(r["latency_s"], 4) for r in rows] == [0.0, 0.0404, 0.044]


def test_long_real_runs_are_refused_unless_raised():
    with pytest.raises(ValueError, match=r"max_seconds=30.*pass max_seconds=\d+"):
        nagle(requests=5000, mode="real")
    r = nagle(requests=5000)                  # auto: simulated, and says why
    assert r.mode == "sim" and "max_seconds" in r.reason


@pytest.mark.parametrize("kw,err,msg", [
    (dict(requests=0), ValueError, r"requests must be an int in 1\.\.100000, not 0"),
    (dict(request_writes=5), ValueError, r"request_writes must be an int in 1\.\.4, not 5"),
    (dict(write_size=9000), ValueError, r"write_size must be an int in 1\.\.8192, not 9000"),
    (dict(nodelay="yes"), TypeError, r"nodelay must be True or False"),
    (dict(max_seconds=0), ValueError, r"max_seconds must be"),
])
def test_bad_parameters(kw, err, msg):
    with pytest.raises(err, match=msg):
        nagle(**kw, mode="sim")


def _starved_request_3(monkeypatch, nagle_mod):
    """In the runner (the forked namespace child inherits the patches): request 3's server read is
    held 25 ms, and the thread's run-queue wait (run_delay) grows by those 25 ms, as if the host had
    kept it off the CPU; no delayed ACK is involved."""
    import time as _time

    calls = {"recv": 0, "delay": 0.0}
    real_recv = nagle_mod._recv_exactly

    def recv(sock, n, quickack):
        calls["recv"] += 1
        if calls["recv"] == 5:          # requests alternate server/client reads: this is request 3's server read
            _time.sleep(0.025)
            calls["delay"] += 0.025
        return real_recv(sock, n, quickack)

    monkeypatch.setattr(nagle_mod, "_recv_exactly", recv)
    monkeypatch.setattr(nagle_mod, "run_delay_s", lambda: calls["delay"])


@pytest.mark.real
def test_a_stall_made_by_waiting_for_the_cpu_loses_fidelity(monkeypatch):
    # a cure run (no request should stall) whose request 3 took 25 ms because the thread waited for a
    # CPU: the runner's own scheduler timing says so, so the stall count is not shown as the kernel's
    import sys

    nagle_mod = sys.modules["tcplab.experiments.nagle"]    # the package's `nagle` is the function
    _starved_request_3(monkeypatch, nagle_mod)
    try:
        r = nagle(requests=5, nodelay=True, mode="real")
    except RealModeUnavailable as e:  # pragma: no cover - depends on the machine
        pytest.skip(str(e))
    assert r.summary["stalled_requests"] == 1           # the number is what was measured ...
    assert not r.trusted and r.badge == "REAL, host busy" and r.fidelity.attempts == 2
    assert "stalled_requests" in r.fidelity.keys        # ... and it says whose it is
    assert "request 3 took" in r.fidelity.reason and "no delayed ACK explains it" in r.fidelity.reason, r.fidelity.reason
    auto = nagle(requests=5, nodelay=True)              # the course's mode: the simulator, with the reason
    assert auto.mode == "sim" and "no delayed ACK explains it" in auto.reason and auto.summary["stalled_requests"] == 0


@pytest.mark.real
def test_a_delayed_ack_stall_stays_the_kernels_whatever_the_cpu_wait():
    # the stall itself (Nagle + delayed ACK): every stalled request is explained by a delayed ACK,
    # so a run on a quiet or a busy host alike keeps its stall count as the kernel's
    try:
        r = nagle(requests=6, mode="real")
    except RealModeUnavailable as e:  # pragma: no cover
        pytest.skip(str(e))
    sched = {t.name: t for t in r.fidelity.timings}
    assert {"host_stall", "between", "scheduler_first", "median_shift"} <= set(sched) <= {
        "host_stall", "between", "scheduler_first", "median_shift", "stall_shift"}
    if r.summary["delayed_acks"] >= r.summary["stalled_requests"]:
        assert sched["host_stall"].ms == 0.0, sched


def test_cpu_waits_that_move_the_medians_make_the_run_untrusted():
    # synthetic timings (no kernel): the verdict reads the medians' shift, not only the first request
    from tcplab.experiments.nagle import SPEC, host_shift
    from tcplab.model.outcome import Timing

    held = SPEC.judge([Timing("host_stall", 0.0, "none"), Timing("median_shift", 1.0, "1 ms"),
                       Timing("stall_shift", 1.0, "1 ms")])
    assert held.ok, held.reason
    late = SPEC.judge([Timing("host_stall", 0.0, "none"),
                       Timing("median_shift", 8.0, "waiting for a CPU moved the median request latency by 8.0 ms")])
    assert not late.ok and late.keys == ("median_latency_s",), late
    stall = SPEC.judge([Timing("stall_shift", 6.0, "waiting for a CPU moved the median stall by 6.0 ms")])
    assert not stall.ok and stall.keys == ("median_stall_s",) and "tolerates 4 ms" in stall.reason
    # 19 stalls of 44 ms, 10 of them with 8 ms of CPU wait: the median stall moved by 8 ms
    lat = [0.0001] + [0.052] * 10 + [0.044] * 9
    waits = [0.0] + [0.008] * 10 + [0.0] * 9
    med, st = host_shift(lat, waits)
    assert round(st * 1000, 3) == 8.0 and round(med * 1000, 3) == 4.0    # the median of 20: (44 + 52) / 2 - 44


@pytest.mark.real
def test_a_real_run_on_this_host_judges_its_medians_and_is_trusted():
    try:
        r = nagle(requests=10, mode="real")
    except RealModeUnavailable as e:  # pragma: no cover
        pytest.skip(str(e))
    names = {t.name for t in r.fidelity.timings}
    if "median_shift" not in names:     # pragma: no cover - a kernel without schedstat
        pytest.skip("no /proc/thread-self/schedstat here")
    assert "stall_shift" in names
    skip_unless_trusted(r)


@pytest.mark.real
def test_the_timeline_shows_the_held_write_leave_with_the_delayed_ack():
    """Real, with a capture on lo (root): the second write of a stalled request leaves right after the
    server's delayed ACK of the first, 40 ms + a jiffy after it (tcp_nagle_check(), then tcp_ack())."""
    import tcplab
    r = nagle(requests=3, mode="real")
    if "segments" not in r.tables:
        pytest.skip(r.notes[-1])           # no CAP_NET_RAW here: the Result says why
    if not r.trusted:
        pytest.skip(f"the host disturbed the run and its repeat: {r.fidelity.reason}")
    segs = tcplab.timeline_of(r).segments
    data = [s for s in segs if s["src_end"] == "client" and s["len"] > 0]
    first, second = data[2], data[3]             # request 2's two writes (request 1 is quick-ACKed)
    acks = [s for s in segs if s["src_end"] == "server" and s["len"] == 0 and first["t"] < s["t"] <= second["t"]]
    assert acks and acks[0]["rel_ack"] == first["rel_seq"] + first["len"]      # the delayed ACK of the first
    assert 0.030 <= acks[0]["t"] - first["t"] <= 0.060, (first, acks[0])
    assert second["t"] - acks[0]["t"] <= 0.005                                   # released by that ACK


@pytest.mark.real
def test_an_unprivileged_real_run_says_why_it_has_no_segments(as_user):
    mode, notes, tables = as_user(_notes_and_tables)
    if mode != "real":
        pytest.skip(f"not real here ({mode})")
    assert "segments" in tables or any("no segments table" in n for n in notes)


def _notes_and_tables():
    r = nagle(requests=2, mode="real")
    return r.mode, r.notes, list(r.tables)
