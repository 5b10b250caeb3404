"""rtt_rto: where an RTO comes from - the estimator's arithmetic (tcplab.model.rtt) checked against
hand-computed kernel integers, the simulator, bad input, and the real path (a delay line that changes
the RTT mid-run, a route's rto_min) as root and as uid 65534."""

from __future__ import annotations


import pandas  # noqa: F401 - imported before forking to uid 65534 (it cannot read the venv afterwards)
import pytest

from tcplab.errors import RealModeUnavailable
from tcplab.experiments import rtt_rto
from tcplab.kernel.bottleneck import _check_delay_changes
from tcplab.model.rtt import RttEstimator, karn_sample, rto_min_us, usecs_to_jiffies
from tcplab.sim.rtt import simulate_rtt
from tests.conftest import assert_leaves_nothing_behind, skip_unless_trusted


# -- the model: tcp_rtt_estimator() and tcp_set_rto() by hand ------------------------------------------
def test_the_first_sample_sets_srtt_mdev_and_rttvar_at_the_floor():
    e = RttEstimator(200_000)
    assert e.rto_us == 1_000_000                      # TCP_TIMEOUT_INIT before any sample
    e.sample(40_000, snd_una=1, snd_nxt=1)
    # srtt = m << 3, mdev = m << 1 (x4: 2m), rttvar = max(mdev, rto_min), rto = ceil((40000 + 200000) / 4000) jiffies
    assert (e.srtt_x8, e.mdev_us, e.rttvar_us, e.mdev_max_us, e.rtt_seq) == (320_000, 80_000, 200_000, 200_000, 1)
    assert (e.info_rtt_us, e.info_rttvar_us, e.rto_us) == (40_000, 20_000, 240_000)


def test_a_rise_a_fall_and_the_once_per_round_trip_decay():
    e = RttEstimator(12_000)                           # a route's rto_min of 10 ms at HZ=250
    e.sample(40_000, 1, 1)                             # srtt 40000 x8, mdev 80000, rttvar 80000 (above the floor)
    assert (e.srtt_x8, e.mdev_us, e.rttvar_us, e.rto_us) == (320_000, 80_000, 80_000, 120_000)
    # a rise to 80 ms, rtt_seq not passed (snd_una 1 is not after rtt_seq 1): no decay
    e.sample(80_000, 1, 5)
    # m = 80000 - 40000 = 40000; srtt_x8 = 360000; m -= mdev >> 2 (20000): mdev = 80000 + 20000
    assert (e.srtt_x8, e.mdev_us, e.mdev_max_us, e.rttvar_us) == (360_000, 100_000, 100_000, 100_000)
    assert e.rto_us == 4000 * usecs_to_jiffies(45_000 + 100_000, 4000) == 148_000
    # a fall to 30 ms with snd_una past rtt_seq: err = 30000 - 45000 = -15000; |err| - mdev/4 = 15000 - 25000 < 0,
    # so mdev falls by 10000 (gain 1/4 when |err| is below it); then the round trip's decay:
    # rttvar -= (rttvar - mdev_max) >> 2 = 0 (mdev_max 100000 = rttvar); mdev_max restarts at the floor
    e.sample(30_000, 3, 9)
    assert (e.srtt_x8, e.mdev_us, e.rttvar_us, e.mdev_max_us, e.rtt_seq) == (345_000, 90_000, 100_000, 12_000, 9)
    # a fall larger than mdev/4 moves mdev with gain 1/32: err -33125 -> (33125 - 22500) >> 3 = 1328
    e.sample(10_000, 5, 9)
    assert (e.srtt_x8, e.mdev_us) == (311_875, 91_328)
    # a new round trip (snd_una 11 after rtt_seq 9): err = 10000 - 38984 = -28984, 28984 - (91328 >> 2) = 6152 >> 3 = 769;
    # mdev 92097 is this trip's largest; rttvar decays a quarter of the way to it: 100000 - (7903 >> 2) = 98025
    e.sample(10_000, 11, 13)
    assert (e.srtt_x8, e.mdev_us, e.rttvar_us, e.mdev_max_us, e.rtt_seq) == (282_891, 92_097, 98_025, 12_000, 13)
    assert e.rto_us == 4000 * usecs_to_jiffies((282_891 >> 3) + 98_025, 4000) == 136_000


def test_the_floor_route_sysctl_and_jiffies():
    assert rto_min_us(None) == 200_000
    assert rto_min_us(None, route_ms=10) == 12_000            # msecs_to_jiffies(10) = 3 at HZ=250
    assert rto_min_us(None, route_ms=50) == 52_000
    assert rto_min_us(None, route_ms=8) == 8_000
    assert rto_min_us(50_000, route_ms=None) == 52_000         # tcp_rto_min_us sysctl (6.11+)
    assert rto_min_us(200_000, route_ms=20) == 20_000         # the locked route metric wins
    with pytest.raises(ValueError, match=r"route_ms must be None or an int in 1\.\.10000, not 0"):
        rto_min_us(None, route_ms=0)
    with pytest.raises(ValueError, match=r"sysctl_us must be None or an int in 1\.\.120000000"):
        rto_min_us(0)


def test_karns_rule():
    assert karn_sample(40_321, retransmitted=False, timestamps=False) == 40_321
    assert karn_sample(40_321, retransmitted=True, timestamps=False) is None      # ambiguous: no sample
    assert karn_sample(40_321, retransmitted=True, timestamps=True) == 40_000     # the echoed TSval, ms ticks
    assert karn_sample(250_700, retransmitted=True, timestamps=True, ts_rtt_us=40_900) == 40_000


def test_the_rto_is_capped_at_rto_max():
    e = RttEstimator(200_000, rto_max=1.0)
    e.sample(900_000, 1, 1)                                  # 900 ms + rttvar 1.8 s: capped (tcp_bound_rto())
    assert e.rto_us == 1_000_000


# -- the simulator ---------------------------------------------------------------------------------------
def test_sim_the_floor_adds_200_ms_and_srtt_follows_a_change():
    s = rtt_rto(rtt_ms=40, rtt_after_ms=80, change_at_s=2, seconds=4, mode="sim").summary
    assert (s["rto_before_ms"], s["rto_after_ms"], s["rto_floor_ms"]) == (244.0, 284.0, 200.0)
    assert abs(s["srtt_before_ms"] - 40.24) < 0.01 and abs(s["srtt_after_ms"] - 80.24) < 0.01
    # 1/8 per sample, one sample per 10 ms, from the first pair sent after the change (80 ms later)
    assert 0.15 < s["srtt_follow_s"] < 0.25
    assert 15 < s["rttvar_peak_ms"] < 30


def test_sim_a_route_rto_min_lowers_the_rto():
    s = rtt_rto(rtt_ms=40, rto_min_ms=10, seconds=3, mode="sim").summary
    assert s["rto_floor_ms"] == 12.0 and s["rto_before_ms"] == 56.0


def test_sim_the_namespace_floor_and_the_route_over_it():
    s = rtt_rto(rtt_ms=40, rto_min_us=50000, seconds=3, mode="sim").summary
    assert (s["rto_floor_ms"], s["rto_before_ms"]) == (52.0, 96.0)            # usecs_to_jiffies(50000) = 13
    s = rtt_rto(rtt_ms=40, rto_min_us=50000, rto_min_ms=20, seconds=3, mode="sim").summary
    assert s["rto_floor_ms"] == 20.0                                          # the locked route metric wins
    old = rtt_rto(rtt_ms=40, rto_min_us=50000, seconds=3, mode="sim", profile="linux-6.1")
    assert old.summary["rto_floor_ms"] == 200.0 and "has no net.ipv4.tcp_rto_min_us" in " ".join(old.notes)


def test_sim_without_timestamps_two_samples_per_pair():
    one = simulate_rtt(20, 150, 1.5, 4, rto_min_route_ms=None, rate_mbit=50)
    two = simulate_rtt(20, 150, 1.5, 4, rto_min_route_ms=None, rate_mbit=50, acks_per_pair=2)
    assert 1.9 < two.samples / one.samples < 2.1


# -- bad input -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw,msg", [
    (dict(rtt_ms=0), r"rtt_ms must be a number in 1\.\.1000, not 0"),
    (dict(rtt_after_ms=2000), r"rtt_after_ms must be None or a number in 1\.\.1000"),
    (dict(rto_min_ms=0), r"rto_min_ms must be None or an int in 1\.\.1000, not 0"),
    (dict(seconds=0.5), r"seconds must be a number in 1\.\.120"),
    (dict(rto_min_us=500), r"rto_min_us must be None or an int in 1000\.\.1000000, not 500"),
    (dict(rtt_after_ms=80, change_at_s=3.5, seconds=4), r"change_at_s must be at most seconds - 1 = 3 s"),
    (dict(rtt_ms=40, rtt_after_ms=300), r"rtt_after_ms must be at most 234 ms here \(10 ms under the 244 ms RTO"),
    (dict(rtt_ms=40, rto_min_ms=10, rtt_after_ms=60), r"rtt_after_ms must be at most 46 ms here"),
])
def test_bad_parameters(kw, msg):
    with pytest.raises(ValueError, match=msg):
        rtt_rto(**kw, mode="sim")


def test_real_mode_refuses_what_the_path_cannot_do():
    with pytest.raises(ValueError, match=r"rtt_ms must be at most 200 ms in real mode"):
        rtt_rto(rtt_ms=300, mode="real")


def test_bad_delay_changes():
    assert _check_delay_changes([(2, 80), (0.5, 20)]) == ((0.5, 20.0), (2.0, 80.0))
    for bad in ([(1.0, 0)], [(-1, 40)], [(1, 2, 3)], [("x", 40)], [(True, 40)]):
        with pytest.raises(ValueError, match=r"delay_changes must be \(seconds >= 0, rtt_ms in 0\.1\.\.10000\) pairs"):
            _check_delay_changes(bad)


def test_a_late_delay_line_is_not_shown_as_the_kernel():
    from tcplab.experiments.rtt_rto import SPEC
    from tcplab.model.outcome import Timing
    v = SPEC.judge([Timing("delay_line_p50", 3.0, "the delay line released half of its packets 3 ms late")])
    assert not v.ok and {"srtt_before_ms", "rto_before_ms", "rto_after_ms"} <= set(v.keys)
    assert "rto_floor_ms" not in v.keys and "timestamps" not in v.keys
    assert SPEC.judge([Timing("delay_line", 0.2, "on time"), Timing("delay_line_p50", 0.05, "on time"),
                       Timing("sender", 3.0, "the sender kept up")]).ok


# -- the real path ---------------------------------------------------------------------------------------
def _changed():
    r = rtt_rto(rtt_ms=40, rtt_after_ms=80, change_at_s=1.5, seconds=3, mode="real")
    return r.mode, r.summary, r.timeline.to_dict("records"), r


def _floors():
    out = []
    for kw in (dict(rtt_ms=30, rto_min_ms=10, seconds=2), dict(rtt_ms=30, seconds=2, timestamps=False)):
        r = rtt_rto(**kw, mode="real")
        out.append((r.mode, r.summary, r.sysctls, r))
    try:                    # net.ipv4.tcp_rto_min_us is 6.11+: an older kernel refuses this one run
        r = rtt_rto(rtt_ms=30, rto_min_us=50000, seconds=2, mode="real")
        out.append((r.mode, r.summary, r.sysctls, r))
    except RealModeUnavailable:
        out.append((None, None, {}, None))
    return out


def _jiffy_ceil(ms):
    return usecs_to_jiffies(round(ms * 1000), 4000) * 4


def _assert_srtt_plus_floor(r, floor_ms):
    """The RTO is never below srtt + the floor; it is exactly that (rounded up to a jiffy) unless the run
    says a packet the delay line held past the floor lifted rttvar_us (rtt_rto._RTO)."""
    s = r.summary
    assert s["rto_before_ms"] >= _jiffy_ceil(s["srtt_before_ms"] + floor_ms), s
    if "rto_before_ms" not in r.fidelity.keys:
        assert s["rto_before_ms"] == _jiffy_ceil(s["srtt_before_ms"] + floor_ms), (s, r.fidelity.reason)


@pytest.mark.real
def test_real_the_rto_is_srtt_plus_the_200_ms_floor_and_follows_an_rtt_change(as_user):
    try:
        mode, s, rows, r = as_user(_changed)
    except RealModeUnavailable as e:
        pytest.skip(str(e))
    assert mode == "real"
    # the floor: rto - srtt never below 200 ms (rttvar_us >= tcp_rto_min), whatever the RTT
    assert s["rto_floor_ms"] == 200.0, s
    assert all(row["rto_ms"] - row["srtt_ms"] >= 200 for row in rows if row["t"] > 0.5), rows[:5]
    # and the RTO is srtt + 200 rounded up to a jiffy (usecs_to_jiffies()), from the run's own srtt
    assert s["rto_before_ms"] == _jiffy_ceil(s["srtt_before_ms"] + 200), s
    assert s["rto_after_ms"] == _jiffy_ceil(s["srtt_after_ms"] + 200), s
    # the delay line really changed the path: min_rtt stays at the shorter RTT, srtt follows the longer one
    assert 40 <= s["srtt_before_ms"] < 44 and 80 <= s["srtt_after_ms"] < 84, s
    assert 40 <= s["min_rtt_ms"] < 42, s
    # the estimator's surprise: the mean deviation rises while srtt catches up, then decays
    assert s["rttvar_peak_ms"] > 10 * max(s["rttvar_before_ms"], 0.5), s
    skip_unless_trusted(r)
    sim = rtt_rto(rtt_ms=40, rtt_after_ms=80, change_at_s=1.5, seconds=3, mode="sim").summary
    assert abs(s["srtt_follow_s"] - sim["srtt_follow_s"]) <= 0.05, (s, sim)
    assert abs(s["rttvar_peak_ms"] - sim["rttvar_peak_ms"]) <= 0.2 * sim["rttvar_peak_ms"], (s, sim)


@pytest.mark.real
def test_real_a_route_rto_min_takes_the_rto_below_200_ms(as_user):
    try:
        (mode, routed, _, r1), (_, plain, sysctls, r2), (_, ns_floor, ns_sysctls, r3) = as_user(_floors)
    except RealModeUnavailable as e:
        pytest.skip(str(e))
    assert mode == "real"
    # ip route change ... rto_min 10ms: tcp_rto_min() takes 3 jiffies (12 ms) instead of 200 ms
    assert routed["rto_floor_ms"] == 12.0 and routed["rto_before_ms"] < 60, routed
    _assert_srtt_plus_floor(r1, 12.003)
    assert plain["rto_floor_ms"] == 200.0 and plain["rto_before_ms"] >= 230, plain
    # timestamps=0 in the sender's namespace: no option on the SYN
    assert plain["timestamps"] is False and sysctls["net.ipv4.tcp_timestamps"] == 0
    assert routed["timestamps"] is True
    # net.ipv4.tcp_rto_min_us=50000 in the sender's namespace: the socket's floor, usecs_to_jiffies(): 13 jiffies
    if ns_floor is not None:
        assert ns_sysctls["net.ipv4.tcp_rto_min_us"] == 50000, ns_sysctls
        assert ns_floor["rto_floor_ms"] == 52.0, ns_floor
        _assert_srtt_plus_floor(r3, 52.003)



@pytest.mark.real
def test_a_real_run_leaves_nothing_behind_also_when_it_fails(monkeypatch):
    assert_leaves_nothing_behind(monkeypatch, "tcplab.experiments.rtt_rto", lambda: rtt_rto(
        rtt_ms=20, rtt_after_ms=30, change_at_s=0.5, seconds=1.5, rto_min_ms=20, mode="real"))