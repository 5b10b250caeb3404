"""The congestion-control state machine is sans-IO: a real run's recorded trace replays through it.

The fixture is a real ``congestion(rate_mbit=20, rtt_ms=40, buffer_packets=50, algorithm="cubic",
duration=4, mode="real")`` run on Linux 6.18 (TCP_INFO every 5 ms; its provenance is in the file).
Only the inputs come from the kernel (packets delivered, RTT, when it entered and left recovery);
every window compared is the model's own (tcplab.model.cc_replay).
"""

from __future__ import annotations

import json
import pathlib

import pytest

from tcplab.model.cc import CongestionControl, cubic_ssthresh
from tcplab.model.cc_replay import replay

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "congestion_real_cubic.json"


@pytest.fixture(scope="module")
def trace():
    d = json.loads(FIXTURE.read_text())
    assert d["provenance"].startswith("REAL (Linux 6.18") and "timing held" in d["provenance"]
    return [dict(zip(d["columns"], r)) for r in d["rows"]]


def _open(steps):
    return [s for s in steps if s.ca_state == "Open"]


def test_slow_start_step_by_step_is_the_kernels(trace):
    # tcp_slow_start(): +1 per packet delivered, sample by sample, until the kernel leaves slow start
    steps = replay(trace, "cubic")
    before_exit = [s for s in steps if s.real_ssthresh is None and s.model_ssthresh is None]
    assert len(before_exit) >= 25 and before_exit[-1].real_cwnd >= 64
    assert [s.model_cwnd for s in before_exit] == [s.real_cwnd for s in before_exit]


def test_hystart_exit_near_the_kernels(trace):
    # the trace lacks the per-ACK RTTs and ACK times HyStart reads: the exit may come a few ACKs apart
    steps = replay(trace, "cubic")
    real_exit = next(s.real_ssthresh for s in steps if s.real_ssthresh is not None)
    model_exit = next(s.model_ssthresh for s in steps if s.model_ssthresh is not None)
    assert real_exit == 74 and abs(model_exit - real_exit) <= 3, (real_exit, model_exit)


def test_every_loss_reduces_as_the_kernel_did(trace):
    # cubictcp_recalc_ssthresh() on the kernel's own window at the loss gives the kernel's ssthresh
    steps = replay(trace, "cubic")
    entries = [(a, b) for a, b in zip(steps, steps[1:]) if a.ca_state == "Open" and b.ca_state == "Recovery"]
    assert len(entries) == 2
    for before, after in entries:
        cc = CongestionControl("cubic")
        cc.cwnd = before.real_cwnd
        cc.enter_recovery()
        assert cc.ssthresh == after.real_ssthresh == cubic_ssthresh(before.real_cwnd)
        assert after.model_ssthresh == cubic_ssthresh(before.model_cwnd)       # the model's own, in the replay


def test_congestion_avoidance_tracks_the_kernel(trace):
    # CUBIC's growth between losses, the model's window against the kernel's at each of ~745 samples
    steps = replay(trace, "cubic")
    gaps = [abs(s.model_cwnd - s.real_cwnd) for s in _open(steps)]
    assert len(gaps) > 700 and max(gaps) <= 5, max(gaps)
    assert max(abs(s.model_cwnd - s.real_cwnd) / s.real_cwnd for s in _open(steps)) <= 0.06


def test_the_replay_can_tell_another_algorithm(trace):
    # the comparison is not loose enough to pass anything: Reno's halving is far from the kernel's CUBIC
    gaps = [abs(s.model_cwnd - s.real_cwnd) for s in _open(replay(trace, "reno"))]
    assert max(gaps) > 5


def test_replay_refuses_bad_input():
    with pytest.raises(ValueError, match="acked_per_ack"):
        replay([], "cubic", acked_per_ack=0)
    with pytest.raises(ValueError, match="algo must be one of"):
        CongestionControl("vegas")
    with pytest.raises(ValueError, match="algorithm must be 'reno' or 'cubic'"):
        replay([], "bbr")
