"""loss_recovery: the delay line's deterministic drops (tcplab.kernel.droprule), the model's rules
(tcplab.model.recovery) in the simulator, and the real path as root and as uid 65534."""

from __future__ import annotations

import os

import pandas  # noqa: F401 - imported before forking to uid 65534 (it cannot read the venv afterwards)
import pytest

from tcplab.errors import RealModeUnavailable
from tcplab.experiments import loss_recovery
from tcplab.kernel.droprule import DropRule, SegmentFilter, tcp_packet
from tcplab.model.recovery import MSS, plan_drop, pto_ms, rto_ms
from tests.conftest import skip_unless_trusted


# -- the delay line's filter (pure: crafted packets) -------------------------------------------------
def _flow(f: SegmentFilter, seqs: list[int], isn: int = 0xFFFFFF00) -> list[bool]:
    """Feed the filter a SYN and data segments at relative offsets ``seqs`` (MSS bytes each)."""
    f.forward(tcp_packet(seq=isn, flags=0x02), 0.0)
    return [f.forward(tcp_packet(seq=isn + 1 + s, payload=MSS), 0.001 * i) for i, s in enumerate(seqs)]


def test_the_filter_counts_segments_by_first_transmission_and_drops_a_retransmission_too():
    f = SegmentFilter(DropRule(segments=(3,), times=2))
    # segments 1..4, then segment 3 again (dropped: its first retransmission), again (passes)
    got = _flow(f, [0, MSS, 2 * MSS, 3 * MSS, 2 * MSS, 2 * MSS])      # the ISN wraps past 2**32 too
    assert got == [True, True, False, True, False, True]
    assert [(d.seq, d.length, d.segment, d.transmission) for d in f.dropped] == [(2 * MSS, MSS, 3, 1),
                                                                                (2 * MSS, MSS, 3, 2)]


def test_the_filter_drops_a_burst_and_the_segment_ending_at_an_offset():
    f = SegmentFilter(DropRule(segments=(2, 3)))
    assert _flow(f, [k * MSS for k in range(5)]) == [True, False, False, True, True]
    last = SegmentFilter(DropRule(last_offset=5 * MSS))
    assert _flow(last, [k * MSS for k in range(5)] + [4 * MSS]) == [True, True, True, True, False, True]


def test_the_filter_passes_other_traffic_and_acks_and_traces_sack_blocks():
    f = SegmentFilter(DropRule(segments=(1,)), trace=True)
    f.forward(tcp_packet(seq=100, flags=0x02), 0.0)
    f.forward(tcp_packet(seq=500, ack=101, flags=0x12, sport=5001, dport=40000), 0.0, to_receiver=False)
    assert f.forward(tcp_packet(seq=101, payload=MSS, sport=40001), 0.1)          # another connection
    assert f.forward(tcp_packet(seq=101, ack=501), 0.1)                          # a pure ACK
    assert not f.forward(tcp_packet(seq=101, payload=MSS, ack=501), 0.2)
    dup = tcp_packet(seq=501, ack=101, sport=5001, dport=40000, sack=((101 + MSS, 101 + 2 * MSS),))
    assert f.forward(dup, 0.3, to_receiver=False)
    assert f.trace[-1].sack == ((MSS, 2 * MSS),) and f.trace[-1].ack == 0 and not f.trace[-1].to_receiver
    assert [r.dropped for r in f.trace] == [False, False, False, True, False]
    assert f.forward(b"\x60" + b"\0" * 60, 0.4)                                  # not IPv4: passes
    with pytest.raises(ValueError, match="times"):
        DropRule(times=0)


# -- the model's rules -----------------------------------------------------------------------------
def test_the_timers_follow_the_kernel():
    # __tcp_set_rto(): SRTT + at least TCP_RTO_MIN, in jiffies (4 ms at HZ=250)
    assert rto_ms(20.3) == 224.0 and rto_ms(40.0) == 240.0
    # tcp_schedule_loss_probe(): 2 SRTT + TCP_RTO_MIN with one packet out (capped by the RTO), + 2 jiffies else
    assert pto_ms(20.3, 1) == rto_ms(20.3) and pto_ms(20.3, 4) == 44.0 + 8.0


@pytest.mark.parametrize("drop,sack,early,repairs,dupacks", [
    ("5th", True, 3, ["fast retransmit"], 3),
    ("5th", False, 3, ["fast retransmit"], 3),
    ("burst 5-7", True, 3, ["fast retransmit"], 3),
    ("last", True, 3, ["tail loss probe"], 0),
    ("last", True, 0, ["RTO"], 0),
    ("last", False, 3, ["RTO"], 0),
])
def test_the_simulator_names_the_mechanism(drop, sack, early, repairs, dupacks):
    s = loss_recovery(drop=drop, sack=sack, early_retrans=early, mode="sim").summary
    assert s["repairs"] == repairs and s["dupacks_before_retransmit"] == dupacks, s
    if drop == "last":          # a timer: ~ one RTT + RTO; a fast retransmit: about one RTT
        assert 200 < s["stall_ms"] < 300
    else:
        assert 20 < s["stall_ms"] < 40


def test_bad_input_names_the_parameter():
    with pytest.raises(ValueError, match="drop must be one of"):
        loss_recovery(drop="6th", mode="sim")
    with pytest.raises(ValueError, match=r"early_retrans must be an int in 0\.\.4"):
        loss_recovery(early_retrans=7, mode="sim")
    with pytest.raises(ValueError, match="rtt_ms"):
        loss_recovery(rtt_ms=0, mode="sim")
    with pytest.raises(ValueError, match=r"bytes must be an int in 14480\.\.2000000"):
        loss_recovery(bytes=1000, mode="sim")
    with pytest.raises(ValueError, match="drop must be one of"):
        plan_drop("7th", 100_000)


# -- real ------------------------------------------------------------------------------------------
def _real(**kw):
    r = loss_recovery(mode="real", **kw)
    return r.mode, r.summary, r.counters, r.sysctls, r.trusted, r.fidelity, r.tables["segments"].to_dict("records")


class _R:
    def __init__(self, got):
        self.mode, self.summary, self.counters, self.sysctls, self.trusted, self.fidelity, self.rows = got


def _run(as_user, **kw) -> _R:
    try:
        return _R(as_user(lambda: _real(**kw)))
    except RealModeUnavailable as e:
        pytest.skip(str(e))


@pytest.mark.real
def test_one_loss_in_the_middle_is_repaired_by_three_dupacks_within_an_rtt(as_user):
    r = _run(as_user, drop="5th")
    s = r.summary
    assert r.mode == "real" and s["dropped"] == [[5, 1]]
    assert s["repairs"] == ["fast retransmit"] and r.counters["TCPSackRecovery"] == 1, s
    assert s["retransmissions"] == 1 and s["sack_blocks"] >= 1
    assert r.sysctls["net.ipv4.tcp_sack"] == 1
    # the table shows segments as the path carried them (the sender's veth sees GSO packets of several):
    # ten of one MSS each, and the one crossed out is the 5th, from byte 4 x 1448
    out = [row for row in r.rows if row["direction"] == "out" and row["kind"] != "retransmit"]
    assert [row["len"] for row in out] == [1448] * 10, out
    assert [row["seq"] for row in out if row["kind"] == "lost"] == [4 * 1448], out
    skip_unless_trusted(r)
    assert s["dupacks_before_retransmit"] == 3, s
    assert s["stall_ms"] < 1.5 * 20 + 10, s               # about one RTT: no timer


@pytest.mark.real
def test_the_same_loss_at_the_tail_waits_for_a_timer(as_user):
    r = _run(as_user, drop="last")
    s = r.summary
    assert s["repairs"] == ["tail loss probe"] and r.counters["TCPLossProbes"] == 1, s
    assert s["dupacks_before_retransmit"] == 0
    skip_unless_trusted(r)
    sim = loss_recovery(drop="last", mode="sim").summary
    assert abs(s["stall_ms"] - sim["stall_ms"]) <= 0.1 * sim["stall_ms"], (s, sim)


@pytest.mark.real
def test_without_sack_the_kernel_counts_dupacks_reno():
    if os.geteuid() != 0:
        pytest.skip("not root")
    r = _run(lambda fn: fn(), drop="5th", sack=False)
    assert r.summary["repairs"] == ["fast retransmit"] and r.counters["TCPRenoRecovery"] == 1
    assert r.summary["sack_blocks"] == 0 and r.sysctls["net.ipv4.tcp_sack"] == 0


@pytest.mark.real
def test_nothing_is_left_behind():
    if os.geteuid() != 0:
        pytest.skip("not root")
    from tests.conftest import child_pids
    before = child_pids()
    loss_recovery(drop="5th", bytes=50_000, mode="real")
    assert child_pids() <= before


def _through_the_path(drop, trace):
    """Inside a private namespace: 20 segments through the bottleneck path with ``drop``; what its delay
    line reports."""
    import socket
    import time

    from tcplab.kernel.bottleneck import bottleneck_path

    with bottleneck_path(10, 10, 100, max_seconds=20, drop=drop, trace=trace) as path:
        s = socket.socket()
        try:
            s.settimeout(5)
            s.connect(path.receiver)
            s.sendall(b"x" * 20 * MSS)
            s.shutdown(socket.SHUT_WR)
            end = time.monotonic() + 5
            while time.monotonic() < end and s.recv(1):            # the receiver closes once it read all
                pass
        finally:
            s.close()
    st = path.stats
    return st.dropped, [(r.to_receiver, r.seq, r.length, r.dropped, r.sack) for r in st.trace], st.packets


@pytest.mark.real
def test_the_delay_line_drops_the_chosen_segment_and_its_retransmission_passes():
    from tcplab.kernel.namespace import in_namespace
    try:
        dropped, trace, packets = in_namespace(_through_the_path, DropRule(segments=(3,)), True)
    except RealModeUnavailable as e:
        pytest.skip(str(e))
    assert [(d.seq, d.length, d.segment, d.transmission) for d in dropped] == [(2 * MSS, MSS, 3, 1)]
    data = [t for t in trace if t[0] and t[2]]
    assert [t[3] for t in data if t[1] == 2 * MSS] == [True, False]          # lost once, then delivered
    assert any(t[4] for t in trace if not t[0])                              # the receiver SACKed past the hole
    # the default path parses nothing and drops nothing (congestion's runs are unchanged)
    dropped, trace, packets = in_namespace(_through_the_path, None, False)
    assert dropped == [] and trace == [] and packets > 20


def _captured(dup_tsvals, echo, retx_after):
    """What the sender's capture would hold: SYN, 10 segments, ACKs of 1-4, duplicate ACKs with
    ``dup_tsvals``, and the retransmission of the 5th echoing ``echo``, after ``retx_after`` dupACKs arrived."""
    isn = 1000
    segs = [{"out": True, "flags": "S", "seq": isn - 1, "ack": 0, "payload": 0, "options": {}, "mono": 0.0}]
    segs += [{"out": True, "flags": "A", "seq": isn + n * MSS, "ack": 1, "payload": MSS, "options": {"ts_ecr": 1},
              "mono": 0.001} for n in range(10)]
    t = 0.020
    for n in range(1, 5):
        t += 0.001
        segs.append({"out": False, "flags": "A", "seq": 1, "ack": isn + n * MSS, "payload": 0,
                     "options": {"ts_val": 90 + n}, "mono": t})
    for k, tsval in enumerate(dup_tsvals):
        t += 0.001
        segs.append({"out": False, "flags": "A", "seq": 1, "ack": isn + 4 * MSS, "payload": 0, "mono": t,
                     "options": {"ts_val": tsval, "sack_blocks": [(isn + 5 * MSS, isn + (6 + k) * MSS)]}})
        if k + 1 == retx_after:
            segs.append({"out": True, "flags": "A", "seq": isn + 4 * MSS, "ack": 1, "payload": MSS,
                         "options": {"ts_ecr": echo}, "mono": t + 0.0001})
    return segs


def test_the_dupacks_counted_are_those_the_kernel_had_processed():
    from tcplab.experiments.loss_recovery import _analyse
    plan = plan_drop("5th", 14_480)
    # five arrived before the retransmission left, but it echoes the third's TSval: the kernel acted on 3
    rows, found = _analyse(_captured([100, 101, 102, 103, 104], 102, 5), plan)
    assert found["dupacks"] == 3 and not found["ambiguous"] and found["sack_blocks"] == 1
    assert [r["kind"] for r in rows].count("dupack") == 5 and [r["kind"] for r in rows].count("lost") == 1
    # the third and fourth share a millisecond: which of them the kernel had seen is unknown
    assert _analyse(_captured([100, 101, 102, 102, 104], 102, 5), plan)[1]["ambiguous"]
    # stall: from the first transmission to the retransmission that arrived
    assert found["stall_ms"] == pytest.approx((0.024 + 0.005 + 0.0001 - 0.001) * 1000, abs=0.01)   # ACKs to 24 ms, 5 dupACKs


@pytest.mark.real
def test_a_lost_retransmission_rack_finds_it_reno_waits_for_the_rto(as_user):
    rack = _run(as_user, drop="5th twice", bytes=100_000)
    assert rack.summary["dropped"] == [[5, 1], [5, 2]]
    # tcp_rack_detect_loss(): data sent after the retransmission was SACKed, so it is lost too (TCPLostRetransmit)
    assert rack.summary["repairs"] == ["fast retransmit", "fast retransmit"], rack.summary
    assert rack.counters.get("TCPLostRetransmit", 0) >= 1 and rack.summary["TCPTimeouts"] == 0, rack.counters
    reno = _run(as_user, drop="5th twice", bytes=100_000, sack=False)
    assert reno.summary["repairs"] == ["fast retransmit", "RTO"] and reno.summary["TCPTimeouts"] == 1, reno.summary
    skip_unless_trusted(reno)
    assert reno.summary["stall_ms"] > 200 > rack.summary["stall_ms"], (rack.summary, reno.summary)


# -- PRR's pacing of the recovery (RFC 6937, tcp_cwnd_reduction()) -----------------------------------------------
def test_prr_paces_the_recovery_ssthresh_of_prior_cwnd_then_one_per_ack():
    s = loss_recovery(drop="5th", bytes=100_000, mode="sim").summary
    # 13 duplicate ACKs; while more than ssthresh (9 of prior_cwnd 14) is in flight, 9/14 of what is delivered
    # leaves (the first being the fast retransmit), then packet conservation: one per ACK
    assert s["recovery_ssthresh"] == 9 and s["prr_sent_per_ack"] == [1, 1, 0, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1]
    # one window of 10 segments: nothing new is left to send, only the retransmission
    assert loss_recovery(drop="5th", mode="sim").summary["prr_sent_per_ack"] == [1, 0, 0]
    for kw in (dict(drop="last"), dict(drop="5th twice"), dict(drop="burst 5-7", sack=False), dict(drop="none")):
        s = loss_recovery(mode="sim", **kw).summary
        assert s["prr_sent_per_ack"] is None and s["recovery_ssthresh"] is None, kw


def test_the_capture_gives_each_segment_to_the_ack_it_echoes():
    from tcplab.experiments.loss_recovery import _prr_rows

    def ack(t, a, ts):
        return {"t_ms": t, "direction": "in", "seq": None, "len": 0, "ack": a, "kind": "dupack", "_ts": ts}

    def seg(t, seq, ts, kind="new"):
        return {"t_ms": t, "direction": "out", "seq": seq, "len": 1448, "ack": None, "kind": kind, "_ts": ts}
    retx = seg(1.1, 0, 100, "retransmit")
    rows = [seg(0.0, 1448, 90), ack(1.0, 0, 100), retx,
            ack(2.0, 0, 101), ack(2.1, 0, 102),          # captured back to back ...
            seg(2.2, 2896, 101), seg(2.3, 4344, 102),     # ... the kernel answered each: its TSval echoed
            ack(3.0, 0, 103), ack(4.0, 2896, 104),        # the last recovery ACK, then the ACK of high_seq
            seg(4.1, 5792, 103),                          # a late answer to the recovery's last ACK
            seg(4.2, 7240, 104)]                          # the answer to the ACK of high_seq: not counted
    assert [r["sent"] for r in _prr_rows(rows, retx)] == [1, 1, 1, 1]
    assert _prr_rows(rows[:-3], retx) is None             # the capture ended inside the recovery


def _prr_pair():
    r = loss_recovery(mode="real", drop="5th", bytes=100_000)
    return r.summary, loss_recovery(mode="sim", drop="5th", bytes=100_000).summary, r.trusted, r.provenance


@pytest.mark.real
def test_real_prr_sends_what_the_model_says_on_each_ack_of_the_recovery(as_user):
    try:
        real, sim, trusted, provenance = as_user(_prr_pair)
    except RealModeUnavailable as e:
        pytest.skip(str(e))
    if real["prr_sent_per_ack"] is None:
        pytest.skip("no capture in this namespace (CAP_NET_RAW): the segments were not seen")
    assert sum(real["prr_sent_per_ack"]) >= 1 and real["prr_sent_per_ack"][0] == 1, real   # the fast retransmit
    if not trusted:
        pytest.skip(f"the host disturbed the run: {provenance}")
    # deterministic: the ACKs the recovery gets and what tcp_cwnd_reduction() lets out on each
    assert real["recovery_ssthresh"] == sim["recovery_ssthresh"] == 9, (real, sim)
    assert real["prr_sent_per_ack"] == sim["prr_sent_per_ack"], (real, sim)
