"""spurious_rto: a spurious RTO and its undo - the timers and the undo rule (tcplab.model.undo) by hand,
the simulator, bad input, and the real path (an RTT spike outliving the RTO) as root and as uid 65534:
timestamps undo, F-RTO undoes, neither goes back N (srtt held: Karn's rule) and a DSACK undo follows."""

from __future__ import annotations

import pandas  # noqa: F401 - imported before forking to uid 65534 (it cannot read the venv afterwards)
import pytest

from tcplab.errors import RealModeUnavailable
from tcplab.experiments import spurious_rto
from tcplab.model.undo import episode, pto_us, undo_rule
from tests.conftest import assert_leaves_nothing_behind, skip_unless_trusted


# -- the model -------------------------------------------------------------------------------------------
def test_the_probe_timeout():
    # 2 * srtt = 40.96 ms -> 11 jiffies (HZ=250), + TCP_TIMEOUT_MIN (2 jiffies) = 52 ms
    assert pto_us(20_480, 13, 224_000) == 52_000
    # one packet in flight: + the RTO floor (the peer's delayed ACK): 11 + 50 jiffies, capped at the RTO (56)
    assert pto_us(20_480, 1, 224_000) == 224_000
    assert pto_us(20_480, 1, 400_000) == 244_000
    # HZ=1000: 41 + 2 jiffies
    assert pto_us(20_480, 13, 224_000, tick=0.001) == 43_000


def test_the_timers_of_a_spike():
    ep = episode(20, 1200, 1.0, timestamps=True, frto=2)
    # srtt 20.48 ms (+ two segments' serialization); RTO = srtt + 200 ms rounded up to a jiffy: 56 jiffies
    assert (ep.srtt_us, ep.rto_us, ep.pto_us) == (20_480, 224_000, 52_000)
    # the last send 5 ms into the spike, the probe 52 ms later, the RTO a full 224 ms after the probe
    assert ep.probe_at_s == pytest.approx(1.057) and ep.rto_at_s == [pytest.approx(1.281)]
    assert ep.ack_back_s == 1.6 and ep.undo_at_s == 1.6 and ep.cwnd_lowest == 1
    # a longer spike: the RTO doubles (448 ms) and fires again before the ACK is back at 1.9 s, not a third time
    assert episode(20, 1800, 1.0, True, 2).rto_at_s == [pytest.approx(1.281), pytest.approx(1.729)]
    # a spike whose held ACKs are back (0.2 s) before the RTO (0.281 s): the probe only
    short = episode(20, 400, 1.0, True, 2)
    assert short.rtos == 0 and short.probe_at_s is not None and short.undone_by is None and short.cwnd_lowest is None
    # a spike shorter than the probe timeout: nothing at all
    assert episode(20, 80, 1.0, True, 2).probe_at_s is None


def test_which_undo():
    assert undo_rule(True, timestamps=True, frto=2) == "timestamps"      # the first ACK decides, before F-RTO
    assert undo_rule(True, timestamps=True, frto=0) == "timestamps"
    assert undo_rule(True, timestamps=False, frto=2) == "F-RTO"
    assert undo_rule(True, timestamps=False, frto=1) == "F-RTO"
    assert undo_rule(True, timestamps=False, frto=0) == "DSACK"
    assert undo_rule(True, timestamps=False, frto=0, dsacks_return=False) is None
    assert undo_rule(False, timestamps=True, frto=2) is None
    # the run must leave the DSACKs time to come back
    assert episode(20, 1200, 1.0, False, 0, seconds=2.5).undone_by is None
    assert episode(20, 1200, 1.0, False, 0, seconds=2.7).undone_by == "DSACK"


def test_going_back_n_times_out_again():
    # the first ACK back (1.6 s) re-arms the RTO still doubled (448 ms: no RTT sample, Karn); the copies sent then
    # cross the spiked line (0.6 s) and come back at 2.21 s: the RTO fires again at 2.048 s (measured: 2 timeouts)
    ep = episode(20, 1200, 1.0, False, 0, seconds=3)
    assert ep.rto_at_s == [pytest.approx(1.281), pytest.approx(2.048)] and ep.undone_by == "DSACK"
    # F-RTO and timestamps undo at that ACK: no second timeout
    assert episode(20, 1200, 1.0, False, 2).rtos == episode(20, 1200, 1.0, True, 0).rtos == 1


# -- the simulator ---------------------------------------------------------------------------------------
def test_sim_the_three_cases():
    ts = spurious_rto(mode="sim")
    assert ts.mode == "sim"
    s = ts.summary
    assert (s["rtos"], s["undone"], s["undone_by"], s["cwnd_lowest"], s["cwnd_restored"]) == (1, True, "timestamps", 1, True)
    assert (s["first_probe_s"], s["first_rto_s"], s["undo_s"]) == (0.057, 0.281, 0.6)
    assert spurious_rto(timestamps=False, mode="sim").summary["undone_by"] == "F-RTO"
    neither = spurious_rto(timestamps=False, frto=0, mode="sim").summary
    assert neither["undone_by"] == "DSACK" and neither["undo_s"] is None and neither["srtt_moved_in_loss_ms"] == 0.0
    assert list(ts.timeline["ca_state"]) == ["Open", "Open", "Loss", "Open"]
    assert ts.sysctls == {"net.ipv4.tcp_timestamps": 1, "net.ipv4.tcp_frto": 2}


def test_the_timers_at_hz_1000():
    ep = episode(20, 1200, 1.0, True, 2, tick=0.001)
    # RTO: 220.48 ms rounded up to 221 jiffies; PTO: 41 + 2 jiffies
    assert (ep.rto_us, ep.pto_us) == (221_000, 43_000)
    assert ep.rto_at_s == [pytest.approx(1.005 + 0.043 + 0.221)]


# -- bad input -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw,msg", [
    (dict(rtt_ms=1), r"rtt_ms must be a number in 5\.\.200, not 1"),
    (dict(spike_ms=5), r"spike_ms must be a number in 10\.\.10000, not 5"),
    (dict(frto=3), r"frto must be one of 0, 1, 2"),
    (dict(spike_at_s=0.1), r"spike_at_s must be a number in 0\.5\.\.60"),
    (dict(spike_s=0), r"spike_s must be None or a number in 0\.01\.\.60"),
    (dict(rtt_ms=100, spike_ms=80), r"spike_ms must be more than rtt_ms \(100 ms\)"),
    (dict(spike_ms=3000), r"seconds must be at least spike_at_s \+ the spike \+ 0\.5 = 4\.5 s"),
])
def test_bad_parameters(kw, msg):
    with pytest.raises(ValueError, match=msg):
        spurious_rto(**kw, mode="sim")


def test_real_mode_refuses_a_long_run():
    with pytest.raises(ValueError, match=r"seconds must be at most 15 s in real mode"):
        spurious_rto(seconds=20, mode="real")


# -- the real path ---------------------------------------------------------------------------------------
def _three():
    out = []
    for kw in (dict(), dict(timestamps=False), dict(timestamps=False, frto=0)):
        r = spurious_rto(**kw, mode="real")
        out.append((r.mode, r.summary, r.sysctls, r))
    return out


@pytest.mark.real
def test_real_timestamps_f_rto_and_neither(as_user):
    try:
        (mode, ts, ts_sysctls, r1), (_, frto, frto_sysctls, r2), (_, neither, n_sysctls, r3) = as_user(_three)
    except RealModeUnavailable as e:
        pytest.skip(str(e))
    assert mode == "real"
    assert ts_sysctls["net.ipv4.tcp_timestamps"] == 1 and frto_sysctls["net.ipv4.tcp_timestamps"] == 0
    assert n_sysctls["net.ipv4.tcp_frto"] == 0 and frto_sysctls["net.ipv4.tcp_frto"] == 2
    assert ts["timestamps"] is True and frto["timestamps"] is False
    # the RTO fired in all three (the spike held every ACK 0.6 s), the cwnd fell to 1 ...
    for s in (ts, frto, neither):
        assert s["cwnd_lowest"] == 1 and s["loss_probes"] >= 1, s
    # one timeout each when the first ACK back undoes; going back N, usually a second one (a race, see below)
    assert (ts["rtos"], frto["rtos"]) == (1, 1) and neither["rtos"] in (1, 2), (ts, frto, neither)
    # ... and came back: by the timestamp echo, by F-RTO, or by the DSACKs after going back N
    assert (ts["undone"], ts["undone_by"], ts["cwnd_restored"]) == (True, "timestamps", True), ts
    assert (frto["undone"], frto["undone_by"], frto["cwnd_restored"]) == (True, "F-RTO", True), frto
    # going back N the DSACKs undo the RTO, unless its undo record is replaced first: by a fast recovery (RACK finds a
    # retransmission lost while in Loss: tcp_enter_recovery() -> tcp_init_undo()) or by a second RTO after Loss
    # ended without an undo; the DSACK undo counted is then that one's (a race). Either way the summary agrees
    assert neither["undone_by"] in ("DSACK", None) and neither["undone"] == (neither["undone_by"] == "DSACK"), neither
    assert neither["cwnd_restored"] == neither["undone"], neither
    assert neither["undone"] != bool(neither["undo_replaced_by"]), neither
    # a spurious RTO undone at the first ACK costs the probe and one copy per RTO; going back N, every segment
    assert ts["retrans_segs"] <= 4 and frto["retrans_segs"] <= 4, (ts, frto)
    assert neither["retrans_segs"] > 2 * frto["retrans_segs"] and neither["dsacks"] > 2 * frto["dsacks"], (neither, frto)
    # Karn's rule: no RTT sample from an ACK of a retransmitted segment (no timestamps): srtt held through go-back-N
    assert neither["srtt_moved_in_loss_ms"] == 0.0, neither
    skip_unless_trusted(r1)
    skip_unless_trusted(r3)
    # going back N: the RTO, re-armed at the held flight's last ACK still doubled (448 ms), fires before the copies'
    # ACKs are back (~610 ms later). Measured 2 in 15 of 16 runs; the one 1 came with the probe 35 ms late
    assert neither["rtos"] == 2 or neither["first_probe_s"] > 0.07, neither
    sim = spurious_rto(mode="sim").summary
    assert abs(ts["first_rto_s"] - sim["first_rto_s"]) <= 0.1 * sim["first_rto_s"], (ts, sim)
    assert abs(ts["undo_s"] - sim["undo_s"]) <= 0.1 * sim["undo_s"], (ts, sim)


@pytest.mark.real
def test_a_real_run_leaves_nothing_behind_also_when_it_fails(monkeypatch):
    assert_leaves_nothing_behind(monkeypatch, "tcplab.experiments.spurious_rto", lambda: spurious_rto(
        spike_ms=400, seconds=2, mode="real"))


def test_the_undo_is_judged_against_the_rtos_prior_cwnd_and_what_replaced_its_record():
    from tcplab.experiments.spurious_rto import _from_timeline, _undo_replaced_by

    def row(t, cwnd, state, ss=None):
        return {"t": t, "cwnd": cwnd, "ssthresh": ss, "ca_state": state, "srtt_ms": 20.0, "retrans": 0}
    p = {"spike_at_s": 1.0}
    # the sample before the RTO saw cwnd 40; the RTO's ssthresh 26 says prior_cwnd was 38 (tcp_cwnd_validate()
    # shrank it in between): the undo back to 38 is a restore
    rows = [row(0.9, 40, "Open"), row(1.28, 1, "Loss", 26), row(2.2, 14, "Open", 26), row(2.48, 38, "Open")]
    s = _from_timeline(rows, p)
    assert s["cwnd_restored"] is True and s["undo_s"] == 1.48 and _undo_replaced_by(rows, p, True) is None
    # Loss straight into Recovery (RACK found a retransmission lost): the RTO's undo record is gone
    rows = [row(0.9, 40, "Open"), row(1.28, 1, "Loss", 26), row(2.2, 2, "Recovery", 2), row(2.48, 8, "Open")]
    s = _from_timeline(rows, p)
    assert s["cwnd_restored"] is False and s["undo_s"] is None
    assert _undo_replaced_by(rows, p, False) == "fast recovery"
    # out of Loss without an undo (the first ACK covered all; copies not yet DSACKed), then a second RTO from Open
    rows = [row(0.9, 26, "Open"), row(1.28, 1, "Loss", 18), row(1.6, 14, "Open", 18), row(2.11, 12, "Loss", 9),
            row(2.48, 12, "Open", 9)]
    assert _from_timeline(rows, p)["cwnd_restored"] is False
    assert _undo_replaced_by(rows, p, False) == "second RTO"
    # Karn's rule is read in the first Loss stretch only: a later RTO's Loss starts from the srtt new data made
    rows = [row(0.9, 26, "Open"), row(1.28, 1, "Loss", 18), row(2.2, 2, "Recovery", 2),
            {**row(2.3, 3, "Open", 2), "srtt_ms": 168.0}, {**row(2.9, 1, "Loss", 2), "srtt_ms": 168.0}]
    assert _from_timeline(rows, p)["srtt_moved_in_loss_ms"] == 0.0
    # a second RTO still in Loss, after an ACK advanced snd_una: a new ssthresh (7 from cwnd 11)
    rows = [row(0.9, 26, "Open"), row(1.28, 1, "Loss", 18), row(2.11, 1, "Loss", 7), row(2.47, 7, "Open", 7)]
    assert _undo_replaced_by(rows, p, False) == "second RTO"
