"""flow_control: a stalled reader on the real kernel (root and uid 65534) against the rules of
tcplab.model.persist, and the model's rules in the simulator."""

from __future__ import annotations

import pandas  # noqa: F401 - imported before forking to uid 65534
import pytest

from tcplab.model.rto import HZ_TICK

from tcplab.experiments import flow_control
from tcplab.kernel.release import running_profile
from tcplab.model.persist import probe0_when, probe_run, probe_times, receive_capacity
from tests.conftest import skip_unless_trusted


def _within(measured, expected, rel=0.10):
    return measured is not None and abs(measured - expected) <= rel * expected


def _real(kw):
    r = flow_control(**kw, mode="real")
    return (r.mode, r.summary, r.counters, r.tables["queues"].to_dict("records"), r.timeline.to_dict("records"),
            r.notes, r.trusted, r.fidelity.reason)


def _trusted(r):
    """A real Result whose own timing held (repeated once if not): one the host disturbed twice
    proves nothing about the kernel's times, so the test says why it could not look."""
    if not r.trusted:
        pytest.skip(f"the host disturbed the run and its repeat: {r.fidelity.reason}")
    return r


@pytest.mark.real
@pytest.mark.parametrize("rcvbuf,nbytes,stall", [(4096, 200_000, 2.0), (2304, 100_000, 4.0)])
def test_stalled_reader(as_user, rcvbuf, nbytes, stall):
    mode, s, counters, queues, timeline, notes, trusted, reason = as_user(
        _real, dict(rcvbuf=rcvbuf, bytes=nbytes, stall_s=stall))
    if not trusted:
        pytest.skip(f"the host disturbed the run and its repeat: {reason}")
    assert mode == "real"
    cap = receive_capacity(rcvbuf, scaling_ratio=running_profile().profile.rcv_scaling_ratio)
    assert s["mss"] == cap.mss and s["max_recv_q"] == cap.max_recv_q
    # Send-Q in bytes on the sender's ESTABLISHED row: everything written but not acknowledged
    assert _within(s["max_send_q"], nbytes - cap.mss, 0.02)
    assert any(q["side"] == "sender" and q["state"] == "ESTABLISHED" and q["send_q"] >= nbytes - cap.max_recv_q
               for q in queues)
    assert any(q["side"] == "receiver" and q["recv_q"] == cap.max_recv_q for q in queues)
    # the zero window arrives with a delayed ACK; probes back off from max(icsk_rto, TCP_RTO_MIN), doubling,
    # each timer run by the timer wheel (a jiffy late, then on 32 ms buckets)
    assert abs(s["zero_window_after_s"] - 0.044) <= 0.05
    expected = probe_times(s["zero_window_after_s"], stall, s["probe_base_s"], tick=HZ_TICK)
    assert s["probes"] == counters["TCPWinProbe"] == len(expected)
    assert all(_within(m, e) for m, e in zip(s["probe_times"], expected)), s["probe_times"]
    gaps = [b - a for a, b in zip(s["probe_times"], s["probe_times"][1:])]
    assert all(g2 > 1.7 * g1 for g1, g2 in zip(gaps, gaps[1:]))       # doubling
    assert s["window_updates"] == counters["TCPFromZeroWindowAdv"] == counters["TCPToZeroWindowAdv"] == 1
    assert timeline[-1]["read"] == nbytes and _within(s["done_after_s"], stall)


@pytest.mark.real
def test_slow_reader_reopens_the_window_many_times():
    s = _trusted(flow_control(rcvbuf=4096, bytes=200_000, reader="slow", reader_rate=100_000, mode="real")).summary
    assert s["window_updates"] >= 5
    assert _within(s["done_after_s"], 2.0, 0.25)


@pytest.mark.real
def test_fast_reader_never_sees_a_zero_window_with_a_large_buffer():
    s = _trusted(flow_control(rcvbuf=1_048_576, bytes=200_000, reader="fast", mode="real")).summary
    assert s["probes"] == 0 and s["window_updates"] == 0


@pytest.mark.real
def test_user_timeout_aborts_a_zero_window_stall_while_the_peer_answers(as_user):
    """tcp_probe_timer(): TCP_USER_TIMEOUT counts from the first probe timer expiry, answers or not."""
    mode, s, counters, queues, timeline, notes, trusted, reason = as_user(
        _real, dict(rcvbuf=4096, bytes=200_000, stall_s=3.0, user_timeout=1000))
    if not trusted:
        pytest.skip(f"the host disturbed the run and its repeat: {reason}")
    assert mode == "real" and s["error"] == "ETIMEDOUT" and s["done_after_s"] is None
    pred = probe_run(s["zero_window_after_s"], 3.0, s["probe_base_s"], user_timeout_ms=1000, tick=HZ_TICK)
    assert pred.why == "TCP_USER_TIMEOUT" and s["probes"] == len(pred.probes) == 2
    assert _within(s["aborted_after_s"], pred.aborted_at)
    # the peer answered every probe: no zero-window update was lost, the window never reopened
    assert s["window_updates"] == 0


@pytest.mark.real
def test_retries2_counts_unanswered_zero_window_probes():
    """A silent peer: the abort comes at the expiry that finds icsk_probes_out >= tcp_retries2."""
    r = _trusted(flow_control(rcvbuf=4096, bytes=200_000, retries2=3, peer="silent", mode="real"))
    s = r.summary
    assert r.mode == "real" and r.sysctls["net.ipv4.tcp_retries2"] == 3
    assert s["probes"] == 3 and s["error"] == "ETIMEDOUT"
    pred = probe_run(s["zero_window_after_s"], float("inf"), s["probe_base_s"], retries2=3, peer_answers=False,
                     tick=HZ_TICK)
    assert pred.why == "tcp_retries2" and _within(s["aborted_after_s"], pred.aborted_at)


@pytest.mark.real
def test_retries2_stops_the_probe_gap_doubling():
    r = _trusted(flow_control(rcvbuf=4096, bytes=200_000, retries2=2, stall_s=4.0, mode="real"))
    s = r.summary
    assert r.mode == "real" and s["aborted_after_s"] is None and s["probes"] == 5
    gaps = [b - a for a, b in zip(s["probe_times"], s["probe_times"][1:])]
    assert gaps[1] > 1.7 * gaps[0] and all(abs(g - gaps[1]) <= 0.1 * gaps[1] for g in gaps[2:]), gaps


def test_probe_run_rules():
    # the peer answers: no count is ever reached, only a user timeout ends it
    assert probe_run(0.0, 1000.0, 0.2, retries2=1, tick=0.004).aborted_at is None
    ut = probe_run(0.044, 10.0, 0.204, user_timeout_ms=1000, tick=0.004)
    assert ut.why == "TCP_USER_TIMEOUT" and 1.0 + ut.probes[0] <= ut.aborted_at <= 1.0 + ut.probes[0] + 0.04
    silent = probe_run(0.044, float("inf"), 0.204, retries2=5, peer_answers=False, tick=0.004)
    assert silent.why == "tcp_retries2" and len(silent.probes) == 5
    assert probe_run(0.044, float("inf"), 0.204, retries2=0, peer_answers=False, tick=0.004).probes == ()


def test_sim_user_timeout_and_retries2():
    s = flow_control(stall_s=3.0, user_timeout=1000, mode="sim").summary
    assert s["aborted_after_s"] == 1.28 and s["error"] == "ETIMEDOUT" and s["done_after_s"] is None
    s = flow_control(retries2=3, peer="silent", mode="sim").summary
    assert s["probes"] == 3 and s["aborted_after_s"] == 3.168


def test_persist_rules():
    assert probe_times(0.0, 2.0, 0.2) == (0.2, 0.6, 1.4)
    assert probe0_when(0.204, 20) == 120.0
    gaps = [round(b - a, 6) for a, b in zip(*(lambda t: (t, t[1:]))(probe_times(0.0, 5000.0, 0.2)))]
    assert max(gaps) == 120.0 and gaps == sorted(gaps)
    assert probe_times(1.0, 1.1) == ()
    # the timer wheel: each probe timer fires at its bucket, never early, and a jiffy or a 32 ms bucket late
    wheel = probe_times(0.044, 2.0, 0.204, tick=0.004)
    exact = probe_times(0.044, 2.0, 0.204)
    assert len(wheel) == len(exact) and all(0 < w - e for w, e in zip(wheel, exact))
    assert wheel[0] - exact[0] <= 0.004 + 1e-9
    with pytest.raises(ValueError, match="rcvbuf"):
        receive_capacity(0)


@pytest.mark.parametrize("rcvbuf,held", [(1, 1152), (2304, 2304), (3000, 3000), (4096, 4096), (6000, 9000),
                                         (8192, 12288), (12000, 18000), (16384, 24576), (32768, 49152)])
def test_receive_capacity_matches_the_measured_recv_q(rcvbuf, held):
    assert receive_capacity(rcvbuf).max_recv_q == held


# measured on Debian's 6.1.0-57 (tcplab's agreement grid real in the guest, docs/kernels.md)
@pytest.mark.parametrize("rcvbuf", [2304, 4096, 6000, 8192, 16384, 32768])
def test_before_6_6_the_receiver_holds_one_window(rcvbuf):
    assert receive_capacity(rcvbuf, scaling_ratio=False).max_recv_q == rcvbuf


def test_sim_follows_the_kernels_receive_window_rule():
    from tcplab.model.profiles import CHANGES, PROFILES
    change = next(c for c in CHANGES if c.commit == "dfa2f0483360")
    assert change.since == (6, 6) and change.fields == {"rcv_scaling_ratio": True}
    assert not PROFILES["linux-6.1"].rcv_scaling_ratio and PROFILES["linux-6.12"].rcv_scaling_ratio
    old = flow_control(rcvbuf=8192, bytes=500_000, stall_s=1.0, mode="sim", profile="linux-6.1")
    new = flow_control(rcvbuf=8192, bytes=500_000, stall_s=1.0, mode="sim", profile="linux-6.12")
    assert old.summary["max_recv_q"] == 8192 and new.summary["max_recv_q"] == 12288
    assert "dfa2f0483360" in " ".join(old.notes)


def test_sim_stalled_reader():
    r = flow_control(rcvbuf=8192, bytes=500_000, stall_s=1.0, mode="sim", profile="linux-6.18")
    s = r.summary
    assert s["probes"] == 2 and s["probe_times"] == [0.252, 0.672] and s["window_updates"] == 1
    assert s["max_recv_q"] == 12288 and s["max_send_q"] == 500_000 - 4096
    assert list(r.timeline["backoff"])[-2] == 2


def test_sim_says_what_it_does_not_model():
    r = flow_control(reader="slow", reader_rate=50_000, bytes=100_000, mode="sim")
    assert r.summary["probes"] is None and r.summary["done_after_s"] == 2.0
    assert any("not modelled" in n for n in r.notes)


@pytest.mark.parametrize("kw,err,msg", [
    (dict(rcvbuf=0), ValueError, r"rcvbuf must be an int in 1\.\.1048576, not 0"),
    (dict(bytes=0), ValueError, r"bytes must be an int in 1\.\.100000000, not 0"),
    (dict(reader="lazy"), ValueError, r"reader must be one of 'stalled', 'slow', 'fast', not 'lazy'"),
    (dict(reader="stalled", reader_rate=1000), ValueError, r"reader_rate is for reader='slow' only"),
    (dict(reader_rate=5, reader="slow"), ValueError, r"reader_rate must be None or an int in 100\.\.1000000000"),
    (dict(stall_s=-1), ValueError, r"stall_s must be"),
    (dict(sndbuf=0), ValueError, r"sndbuf must be None or an int in 1\.\.16777216"),
    (dict(peer="silent", reader="fast"), ValueError, r"peer='silent' is for reader='stalled' only"),
    (dict(peer="gone"), ValueError, r"peer must be one of 'answers', 'silent'"),
    (dict(user_timeout=0), ValueError, r"user_timeout must be None or an int in 1\.\.3600000"),
])
def test_bad_parameters(kw, err, msg):
    with pytest.raises(err, match=msg):
        flow_control(**kw, mode="sim")


def test_long_real_runs_are_refused():
    with pytest.raises(ValueError, match=r"max_seconds=60.*fewer bytes or a faster reader_rate"):
        flow_control(reader="slow", reader_rate=100, bytes=1_000_000, mode="real")


def _synthetic(**kw):
    """The runner's timings for a default stalled run (no kernel), with ``kw`` overriding what it measured."""
    from tcplab.experiments.flow_control import SPEC, _timings
    from tcplab.model.outcome import Outcome

    p = SPEC.validate(kw.pop("params", {}))
    m = dict(gaps={"loop": 0.004, "probe": 0.001, "zero": 0.001, "end": 0.002}, resumed_at=2.001, zero_at=0.044,
             base=0.204, probe_at=[0.252, 0.672, 1.504], probes_polled=False, zero_polled=False, done_at=2.003,
             aborted_at=None)
    m.update(kw)
    out = Outcome()
    _timings(p, out, **m)
    return SPEC.judge(out.timings), {t.name: t for t in out.timings}


def test_a_late_reader_or_sampler_makes_the_run_untrusted():
    held, t = _synthetic()
    assert held.ok and set(t) == {"end_poll", "reader", "writer"}, held.reason
    assert t["reader"].limit_ms == 200.0        # done_after_s within 10 % of stall_s=2 (next probe: 3.168 s)
    late, _ = _synthetic(resumed_at=2.3, done_at=2.3)
    assert not late.ok and "the reader resumed 300 ms after its stall" in late.reason, late.reason
    assert "3.168 s" in late.reason
    # without a capture the probes are timed by the loop: 30 ms late at a probe is more than 10 % of 0.252 s
    polled, t = _synthetic(gaps={"loop": 0.030, "probe": 0.030, "zero": 0.0, "end": 0.0}, probes_polled=True,
                           zero_polled=True)
    assert not polled.ok and t["probe_poll"].limit_ms == 25.2 and "zero-window probe" in polled.reason, polled.reason
    assert t["zero_poll"].limit_ms == 25.0
    # the same lag with kernel timestamps on the wire spoils nothing: the end was seen in time
    wired, t = _synthetic(gaps={"loop": 0.030, "probe": 0.030, "zero": 0.0, "end": 0.0})
    assert wired.ok and "probe_poll" not in t, wired.reason
    # a slow reader is paced by every sample: 60 ms late is past the measured 50 ms
    slow, t = _synthetic(params=dict(reader="slow", bytes=20_000), gaps={"loop": 0.060}, resumed_at=None,
                         done_at=1.0)
    assert not slow.ok and t["reader_pace"].limit_ms == 50.0 and "slow reader" in slow.reason, slow.reason


def test_next_probe_after_follows_the_persist_timer():
    from tcplab.experiments.flow_control import next_probe_after

    p = dict(retries2=None, user_timeout=None, peer="answers")
    assert next_probe_after(p, 0.044, 0.204, 1.0) == 1.504
    # TCP_USER_TIMEOUT=1000 ends the connection at 1.28 s: nothing after 3 s to be late for
    assert next_probe_after(dict(p, user_timeout=1000), 0.044, 0.204, 3.0) is None


@pytest.mark.real
def test_a_real_stalled_run_measures_its_reader_and_sampler():
    r = flow_control(rcvbuf=8192, bytes=500_000, stall_s=1.0, mode="real")
    names = {t.name: t for t in r.fidelity.timings}
    assert {"end_poll", "reader"} <= set(names), names
    assert names["reader"].limit_ms == 100.0 and names["end_poll"].limit_ms == pytest.approx(100.0, abs=5)
    skip_unless_trusted(r)


def _window_run(kw):
    r = flow_control(**kw, mode="real")
    w = r.tables.get("window")
    return (r.mode, r.summary, None if w is None else w.to_dict("records"), list(r.timeline["snd_wnd"]),
            [n for n in r.notes if n.startswith("table window")])


@pytest.mark.real
def test_the_sliding_window_from_the_wire_agrees_with_the_kernels_own_numbers(as_user):
    """Table window, read from the capture, against what the kernel reports by other means:
    Recv-Q (ioctl) at the zero window, the sender's tcp_info snd_wnd, and the simulator's stall."""
    kw = dict(rcvbuf=4096, bytes=20_000, reader="stalled", stall_s=1.0)
    mode, s, rows, snd_wnd, notes = as_user(_window_run, kw)
    assert mode == "real" and len(notes) == 1
    if rows is None:
        if "dropped" in notes[0]:            # a capture that missed packets on a busy host: no table, said so
            pytest.skip(notes[0])
        assert "CAP_NET_RAW" in notes[0]     # uid 65534 on the host: no capture
        return
    assert all(r["in_flight"] <= r["window"] and r["usable"] >= 0 for r in rows)     # never beyond the window
    # every window the sender's kernel held (tcp_info snd_wnd, polled) is one the capture derived
    assert set(snd_wnd) <= {r["window"] for r in rows}, (sorted(set(snd_wnd)), rows[:6])
    closed = [i for i, r in enumerate(rows) if r["window"] == 0]
    assert closed, rows
    stall = [r for r in rows[closed[0]:] if r["t_s"] < 1.0]
    assert all(r["snd_una"] == r["snd_nxt"] == r["right_edge"] == s["max_recv_q"] for r in stall), stall
    reopen = next(r for r in rows[closed[0]:] if r["window"] > 0)
    assert reopen["t_s"] >= 1.0 - 0.01 and rows[-1]["snd_una"] >= 20_000
    # the simulator's table (the stall only) has the same edges
    sim = flow_control(**kw, mode="sim").tables["window"].to_dict("records")
    assert {(r["snd_una"], r["snd_nxt"], r["right_edge"]) for r in sim} == \
           {(r["snd_una"], r["snd_nxt"], r["right_edge"]) for r in stall}


@pytest.mark.real
def test_a_large_buffer_gets_a_scaled_window():
    """SO_RCVBUF=1 MB: the SYN-ACK offers a window scale, and windows beyond 65535 bytes appear -
    which only the shift read from the SYN-ACK can give; tcp_info's snd_wnd agrees."""
    mode, s, rows, snd_wnd, notes = _window_run(dict(rcvbuf=1_000_000, bytes=3_000_000, reader="fast"))
    if rows is None:
        pytest.skip(notes[0])
    assert "window scale" in notes[0] and "no window scaling" not in notes[0]
    assert max(r["window"] for r in rows) > 65535
    assert set(snd_wnd) <= {r["window"] for r in rows}
    assert all(r["usable"] >= 0 for r in rows) and rows[-1]["snd_una"] >= 3_000_000


def test_sim_window_is_the_stall_only_and_says_so():
    r = flow_control(rcvbuf=4096, bytes=200_000, stall_s=2.0, mode="sim")
    w = r.tables["window"]
    assert list(w["t_s"]) == [r.summary["zero_window_after_s"], 2.0]
    assert (w["snd_una"] == 4096).all() and (w["right_edge"] == w["snd_una"]).all() and (w["window"] == 0).all()
    assert any("zero-window stall only" in n for n in r.notes)
    # a user timeout ends the stall at the abort
    ut = flow_control(rcvbuf=4096, bytes=200_000, stall_s=3.0, user_timeout=1000, mode="sim")
    assert list(ut.tables["window"]["t_s"])[-1] == ut.summary["aborted_after_s"]
    # where the model has no window, no table - and a note, not an invented one
    for kw in (dict(reader="slow", bytes=20_000), dict(reader="fast"), dict(bytes=2000)):
        r = flow_control(**kw, mode="sim")
        assert "window" not in r.tables and any(n.startswith("table window left out") for n in r.notes), kw


def test_writes_spread_past_the_delayed_ack_spoil_only_max_send_q():
    """Send-Q peaks when the whole write is queued before the receiver's first delayed ACK (40 ms); a
    guest's writes spread over more met that ACK midway (one 32768-byte window less)."""
    from tcplab.experiments.flow_control import SPEC
    from tcplab.model.outcome import Timing
    assert SPEC.judge([Timing("write_span", 9.5, "the writes took 9.5 ms")]).ok
    v = SPEC.judge([Timing("write_span", 45.0, "the sender's writes of all 300000 bytes took 45.0 ms")])
    assert not v.ok and v.keys == ("max_send_q",), v
