"""A captured connection replayed through the congestion model (issue 25: "replays it through the model
... to show where the kernel and the model part"): tcplab.model.cc_replay.replay_capture driven by a
timeline's segments, the kernel's cwnd beside it (Timeline.cc_replay)."""

from __future__ import annotations

import pandas  # noqa: F401 - imported before any fork
import pytest

from tcplab.experiments import loss_recovery
from tcplab.experiments.timeline import Timeline, timeline_from_segments, timeline_of
from tcplab.model.cc_replay import replay_capture
from tests.conftest import skip_unless_trusted


def _flow(n, t0=0.0):
    return [{"t": t0, "src_end": "client", "rel_seq": 1 + i * 1448, "len": 1448} for i in range(n)]


def _ack(t, k, sack=()):
    return {"t": t, "src_end": "server", "rel_ack": 1 + k * 1448, "len": 0, "sack": list(sack)}


def test_slow_start_grows_one_packet_for_each_packet_an_ack_delivers():
    steps = replay_capture(_flow(10) + [_ack(0.04, 2), _ack(0.041, 5)], "reno")
    assert [(s.delivered, s.model_cwnd, s.flight) for s in steps] == [(2, 12, 8), (3, 15, 5)]


def test_a_gso_capture_counts_packets_of_one_mss():
    # one 64 KiB super-packet leaves; its ACK delivers ceil(65160 / 1448) = 45 packets
    steps = replay_capture([{"t": 0.0, "src_end": "client", "rel_seq": 1, "len": 65160}, _ack(0.02, 45)], "reno")
    assert steps[0].delivered == 45 and steps[0].model_cwnd == 55


def test_a_retransmission_long_after_the_last_ack_is_a_timeout():
    segs = _flow(10) + [_ack(0.02, 1), {"t": 0.25, "src_end": "client", "rel_seq": 1 + 1448, "len": 1448},
                        _ack(0.27, 10)]
    steps = replay_capture(segs, "cubic")
    assert [(s.event, s.model_cwnd, s.model_state) for s in steps] == [
        ("ack", 11, "Open"), ("retransmit: timeout", 1, "Loss"), ("ack: end of recovery", 7, "Open")]
    assert steps[1].model_ssthresh == 7                 # CUBIC's 0.7 of the 11 it had; slow start back up to it


def test_a_retransmission_without_duplicate_acks_soon_after_is_a_probe_and_changes_nothing():
    segs = _flow(10) + [_ack(0.02, 1), {"t": 0.05, "src_end": "client", "rel_seq": 1 + 9 * 1448, "len": 1448}]
    steps = replay_capture(segs, "cubic")
    assert steps[-1].event == "retransmit: probe, not replayed" and steps[-1].model_cwnd == 11


def test_cwnd_grows_only_while_it_limits_the_sender():
    # 4 packets out of a window of 10: the sender is not cwnd-limited (tcp_is_cwnd_limited(): in slow start,
    # cwnd < 2 x the most it had out), so the ACK delivers without growing it; 6 out: it grows
    assert replay_capture(_flow(4) + [_ack(0.02, 1)], "reno")[0].model_cwnd == 10
    assert replay_capture(_flow(6) + [_ack(0.02, 1)], "reno")[0].model_cwnd == 11


def test_a_simulated_loss_is_replayed_into_recovery():
    df = timeline_of(loss_recovery(drop="5th", mode="sim")).cc_replay()
    assert df["model_cwnd"].tolist()[:4] == [11, 12, 13, 14]
    entry = df[df["event"] == "retransmit: enter recovery"]
    assert len(entry) == 1 and entry["model_ssthresh"].iloc[0] == 9      # cubic_ssthresh(14)
    assert df["kernel_cwnd"].isna().all() and not df["differs"].any()    # a simulated Result: no TCP_INFO


def test_bad_input_names_the_parameter():
    tl = timeline_from_segments([{"t": 0.0, "src": "127.0.0.1", "src_port": 1, "dst": "127.0.0.1", "dst_port": 2,
                                  "flags": "S", "seq": 0, "ack": 0, "window": 1, "options": {}, "payload": 0}], "x")
    with pytest.raises(ValueError, match="algorithm must be 'reno' or 'cubic'"):
        tl.cc_replay("bbr")
    with pytest.raises(ValueError, match="sender"):
        tl.cc_replay(sender="middle")
    with pytest.raises(ValueError, match="conn must name a connection"):
        tl.cc_replay(conn=3)
    with pytest.raises(ValueError, match="conn must name a connection"):
        Timeline("empty").cc_replay()
    with pytest.raises(ValueError, match="mss must be an int in 64..65535"):
        replay_capture([], "reno", mss=10)


@pytest.mark.real
def test_a_real_loss_the_model_follows_the_kernel_except_prr_s_extra_packet():
    """A real CUBIC sender on the bottleneck path (loss_recovery: the 5th segment dropped, a capture at the
    sender, its TCP_INFO read every ms): replayed ACK by ACK, the model's cwnd is the kernel's in slow start
    and after recovery, and its ssthresh at the loss; they part only inside Recovery, where the model's PRR
    (CongestionControl.prr) adds one packet on every ACK and Linux only on an ACK that advanced snd_una
    without a new loss (tcp_cwnd_reduction(), since commit 7e901ee7b6ab "tcp: avoid slow start during fast
    recovery on new losses", 2021: every kernel the course profiles): on a duplicate ACK it does not."""
    r = loss_recovery(drop="5th", mode="real")
    if "segments" not in r.tables or "tcp_info" not in r.tables:
        pytest.skip("; ".join(r.notes) or "no capture here")
    skip_unless_trusted(r)
    df = timeline_of(r).cc_replay()
    # a TCP_INFO sample taken after the ACK was captured may precede the kernel's processing of it: it then
    # shows the window before this ACK, the model's after the event before
    before = df["model_cwnd"].shift(1)
    seen = df[df["kernel_cwnd"].notna()]
    outside = seen[seen["model_state"] == "Open"]
    assert len(outside) >= 3, df.to_string()
    assert ((outside["model_cwnd"] == outside["kernel_cwnd"])
            | (before[outside.index] == outside["kernel_cwnd"])).all(), df.to_string()
    entry = df[df["event"] == "retransmit: enter recovery"]
    assert len(entry) == 1
    kernel_ss = seen[seen["kernel_ssthresh"].notna()]["kernel_ssthresh"]
    assert kernel_ss.nunique() == 1 and kernel_ss.iloc[0] == entry["model_ssthresh"].iloc[0], df.to_string()
    parted = df[df["differs"] & (before != df["kernel_cwnd"])]
    assert (parted["model_state"] == "Recovery").all(), df.to_string()
    assert (parted["model_cwnd"] - parted["kernel_cwnd"] == 1).all(), df.to_string()
