"""BBR's state machine (tcplab.model.bbr) driven by the congestion simulator: each phase of
tcp_bbr.c observed in runs of the model (the cwnd, pacing rate and queue it produces), not by
reading the module's constants back."""

from __future__ import annotations

import statistics

import pytest

from tcplab.model.bbr import Bbr, MinMax
from tcplab.model.cc import MSS, WIRE_BYTES
from tcplab.sim.bottleneck import simulate


def _bdp(rate_mbit, rtt_ms):
    return rate_mbit * 1e6 / 8 / WIRE_BYTES * rtt_ms / 1000


def _modes(run):
    return run.modes[0]


def _link_pacing_mbit(rate_mbit):
    """What the link carries in payload, Mbit/s (the pacing rate counts payload bytes)."""
    return rate_mbit * MSS / WIRE_BYTES


def test_startup_doubles_delivery_every_round_like_slow_start():
    # 2/ln 2 is the smallest gain that doubles the sending rate each RTT: on a long path with a deep
    # buffer, what one RTT delivers doubles while Startup lasts
    rtt = 0.2
    run = simulate(10, 200, 1000, "bbr", duration=1.2, sample_s=0.005)
    rows = run.timeline
    per_round = []
    for k in range(1, 6):       # the first window is ACKed from 0.2 s on
        a = max((r["delivered_bytes"] for r in rows if r["t"] <= k * rtt), default=0)
        b = max((r["delivered_bytes"] for r in rows if r["t"] <= (k + 1) * rtt), default=0)
        per_round.append((b - a) / MSS)
    growth = [b / a for a, b in zip(per_round, per_round[1:]) if a]
    # round by round the paced bursts straddle the boundaries; over four rounds it is doubling
    assert all(1.5 <= g <= 2.5 for g in growth), (per_round, growth)
    mean = (per_round[-1] / per_round[0]) ** (1 / (len(per_round) - 1))
    assert 1.8 <= mean <= 2.2, (per_round, mean)
    assert _modes(run)[-1][1] == "Startup"        # the pipe (167 packets) is not full yet


def test_startup_ends_three_rounds_after_the_bandwidth_stops_growing_then_drain_empties_the_queue():
    rate, rtt_ms = 20, 40
    run = simulate(rate, rtt_ms, 500, "bbr", duration=3.0, sample_s=0.002)
    modes = _modes(run)
    names = [m for _, m in modes]
    assert names[:3] == ["Startup", "Drain", "ProbeBW"], names
    t_drain, t_probe = modes[1][0], modes[2][0]
    # once the bandwidth estimate (the Startup pacing rate over its gain) reaches the link's rate,
    # Startup needs 3 more rounds without 25 % growth (bbr_full_bw_cnt); a round is one sRTT, which
    # the queue Startup builds stretches from 40 to 125 ms
    bdp = _bdp(rate, rtt_ms)
    startup = [r for r in run.timeline if r["t"] < t_drain]
    full = next(r["t"] for r in startup if r["pacing_rate_mbit"] >= 0.97 * 2.885 * 0.99 * _link_pacing_mbit(rate))
    rounds = sum(0.002 / (r["srtt_ms"] / 1000) for r in startup if r["t"] >= full)
    assert 2.0 <= rounds <= 4.5, (full, t_drain, rounds)
    # Drain paces at ~1/2.89 of the link (its pacing rate, sampled while it lasts)
    drain = [r["pacing_rate_mbit"] for r in run.timeline if t_drain < r["t"] < t_probe]
    assert drain and min(drain) / _link_pacing_mbit(rate) == pytest.approx(1 / 2.885, rel=0.05)
    # ... until in flight is down to about one BDP: the queue Startup built is gone
    q_after = [q["queue_packets"] for q in run.queue if t_probe + 0.05 < q["t"] < t_probe + 0.15]
    q_peak = max(q["queue_packets"] for q in run.queue if q["t"] < t_drain)
    assert q_peak > 2 * bdp and max(q_after) < 0.25 * q_peak, (q_peak, q_after)


def test_probe_bw_cycles_eight_phases_of_one_min_rtt():
    rate, rtt_ms = 20, 40
    run = simulate(rate, rtt_ms, 500, "bbr", duration=4.0, sample_s=0.002)
    t_probe = next(t for t, m in _modes(run) if m == "ProbeBW")
    rows = [r for r in run.timeline if r["t"] > t_probe + 0.5]
    base = statistics.median(r["pacing_rate_mbit"] for r in rows)
    # cruising: the bandwidth estimate is the link's rate, paced 1 % under
    assert base == pytest.approx(0.99 * _link_pacing_mbit(rate), rel=0.01)
    gains = sorted({round(r["pacing_rate_mbit"] / base, 2) for r in rows})
    assert gains == [0.75, 1.0, 1.25], gains
    # the 1.25 phase comes back every 8 phases of about min_rtt (40 ms plus what the queue adds)
    ups = [r["t"] for a, r in zip(rows, rows[1:]) if r["pacing_rate_mbit"] > 1.1 * base >= a["pacing_rate_mbit"]]
    periods = [b - a for a, b in zip(ups, ups[1:])]
    assert len(periods) >= 5 and all(8 * 0.040 <= p <= 8 * 0.050 for p in periods), periods
    # each 1.25 phase is followed by a 0.75 one
    for t in ups[:-1]:
        after = [r["pacing_rate_mbit"] / base for r in rows if t < r["t"] < t + 0.1]
        assert min(after) == pytest.approx(0.75, abs=0.02)


def test_probe_bw_cwnd_is_two_bdp_plus_the_quantum():
    # cwnd = 2 x BDP (bbr_cwnd_gain) + 3 TSO bursts of 2 + the ACK-aggregation allowance, even
    rate, rtt_ms = 20, 40
    run = simulate(rate, rtt_ms, 500, "bbr", duration=4.0, sample_s=0.005)
    cw = [r["cwnd"] for r in run.timeline if r["t"] > 2.0]
    bdp = _bdp(rate, rtt_ms)
    assert all(2 * bdp + 6 <= c <= 2 * bdp + 6 + 10 for c in cw), (min(cw), max(cw), 2 * bdp)
    # and BBR keeps the queue short: in flight about one BDP, not cwnd
    q = [x["queue_packets"] for x in run.queue if x["t"] > 2.0]
    assert statistics.median(q) < 0.25 * bdp, statistics.median(q)


def test_probe_rtt_every_ten_seconds_for_200_ms_at_four_packets():
    rtt_ms = 30
    run = simulate(10, rtt_ms, 100, "bbr", duration=12.0, sample_s=0.002)
    modes = _modes(run)
    probe = [(t, m) for t, m in modes if m == "ProbeRTT"]
    assert len(probe) == 1, modes
    t_in = probe[0][0]
    t_out = next(t for t, m in modes if t > t_in)
    # the min-RTT filter expires 10 s after its last sample; the last one at or below the minimum
    # came in the first rounds (the queue never drains to zero in ProbeBW), so ProbeRTT starts just
    # after 10 s
    assert 10.0 < t_in < 10.5, t_in
    low = [r for r in run.timeline if t_in < r["t"] < t_out]
    assert max(r["cwnd"] for r in low) <= 4 and min(r["cwnd"] for r in low) >= 1
    # 200 ms at <= 4 packets in flight, and at least one round of it, then back to ProbeBW
    at4 = [r["t"] for r in low if r["in_flight"] <= 4]
    held = t_out - at4[0]
    assert 0.2 <= held <= 0.2 + 2 * rtt_ms / 1000 + 0.01, held
    assert [m for t, m in modes if t >= t_out][0] == "ProbeBW"
    # the cwnd it saved comes back at once
    before = [r["cwnd"] for r in run.timeline if t_in - 0.2 < r["t"] < t_in]
    after = [r["cwnd"] for r in run.timeline if t_out < r["t"] < t_out + 0.01]
    assert after and min(after) >= min(before) - 2, (before[-3:], after[:3])


def test_bandwidth_filter_forgets_a_max_after_ten_rounds():
    # lib/win_minmax.c: feed one high sample then lower ones, one per round
    m = MinMax()
    win = 10
    m.running_max(win, 0, 100.0)
    seen = [m.running_max(win, t, 50.0 + t) for t in range(1, 15)]
    kept = [t for t, v in zip(range(1, 15), seen) if v == 100.0]
    assert kept == list(range(1, win + 1)), seen
    assert seen[win] == 50.0 + win + 1 or seen[win] >= 50.0 + win - 3     # a recent sample takes over


def test_pacing_rate_is_never_lowered_before_the_pipe_is_full():
    run = simulate(20, 40, 500, "bbr", duration=0.5, sample_s=0.002)
    t_drain = next((t for t, m in _modes(run) if m == "Drain"), 0.5)
    startup = [r["pacing_rate_mbit"] for r in run.timeline if r["t"] < t_drain]
    assert startup == sorted(startup) and startup[-1] > 2 * startup[0]


def test_bbr_init_paces_the_first_window_from_the_handshake_rtt():
    # bbr_init_pacing_rate_from_rtt(): high gain x 10 packets per RTT, 1 % under
    for rtt in (0.01, 0.1):
        b = Bbr(rtt=rtt)
        assert b.pacing_rate == pytest.approx(2.885 * 10 / rtt * MSS * 0.99, rel=0.002)


def test_loss_in_startup_uses_packet_conservation_not_a_multiplicative_cut():
    # a shallow buffer: Startup overflows it; BBR keeps cwnd near what is in flight, then restores
    run = simulate(20, 40, 20, "bbr", duration=2.0, sample_s=0.002)
    rows = run.timeline
    i = next(k for k, r in enumerate(rows) if r["ca_state"] == "Recovery")
    before = rows[i - 1]["cwnd"]
    assert rows[i]["cwnd"] > 0.7 * before            # no 0.5 or 0.7 cut on entering recovery
    assert run.flows[0].rto_timeouts == 0
    assert 0.85 < run.utilization <= 1.0


def test_seeded_starting_phase_differs_between_seeds():
    from tcplab.sim.engine import SplitMix64
    phases = set()
    for seed in range(1, 8):
        run = simulate(20, 40, 500, "bbr", duration=1.0, sample_s=0.005, rng=SplitMix64(seed))
        t = next(t for t, m in run.modes[0] if m == "ProbeBW")
        first = [r["pacing_rate_mbit"] for r in run.timeline if t < r["t"] < t + 0.03]
        phases.add(round(first[-1], 1))
    assert len(phases) >= 2, phases
