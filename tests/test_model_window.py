"""tcplab.model.window.sender_window: the sender's window edges from synthetic segments (pure)."""

from __future__ import annotations

import pytest

from tcplab.model.window import WINDOW_COLUMNS, sender_window, unwrap_seq

S, R = 40000, 5000


def seg(t, src, flags, seq, ack=0, window=0, payload=0, **options):
    return {"t": t, "src_port": src, "dst_port": R if src == S else S, "flags": flags, "seq": seq % 2**32,
            "ack": ack % 2**32, "window": window, "options": options, "payload": payload}


def handshake(isn=1000, risn=7000, snd_ws=7, rcv_ws=3, syn_window=65535):
    opts_s = {} if snd_ws is None else {"wscale": snd_ws}
    opts_r = {} if rcv_ws is None else {"wscale": rcv_ws}
    return [seg(0.0, S, "S", isn, window=65495, **opts_s),
            seg(0.001, R, "SA", risn, ack=isn + 1, window=syn_window, **opts_r),
            seg(0.002, S, "A", isn + 1, ack=risn + 1, window=100)]


def edges(w):
    return [(r["snd_una"], r["snd_nxt"], r["right_edge"]) for r in w.rows]


def test_rows_have_the_declared_columns_and_relations():
    segs = handshake(rcv_ws=None) + [seg(0.01, S, "PA", 1001, 7001, payload=1000),
                                     seg(0.02, R, "A", 7001, ack=2001, window=3000)]
    w = sender_window(segs, S)
    assert all(tuple(r) == WINDOW_COLUMNS for r in w.rows)
    for r in w.rows:
        assert r["window"] == r["right_edge"] - r["snd_una"]
        assert r["in_flight"] == r["snd_nxt"] - r["snd_una"] and r["usable"] == r["right_edge"] - r["snd_nxt"]
    assert edges(w) == [(0, 0, 65535), (0, 1000, 65535), (1000, 1000, 4000)]


def test_the_receivers_window_scale_from_its_syn_ack_shifts_later_windows_not_the_syn_acks():
    segs = handshake(snd_ws=7, rcv_ws=3, syn_window=4000) + [
        seg(0.01, S, "PA", 1001, 7001, payload=500), seg(0.02, R, "A", 7001, ack=1501, window=1000)]
    w = sender_window(segs, S)
    assert (w.snd_wscale, w.rcv_wscale, w.scaling, w.shift) == (7, 3, True, 3)
    assert w.rows[0]["right_edge"] == 4000                     # the SYN-ACK's own window: never scaled
    assert w.rows[-1]["right_edge"] == 500 + 1000 * 8           # 1000 << 3, the receiver's shift (not the sender's 7)


@pytest.mark.parametrize("snd_ws,rcv_ws", [(None, 3), (7, None), (None, None)])
def test_no_scaling_unless_both_syns_offer_it(snd_ws, rcv_ws):
    segs = handshake(snd_ws=snd_ws, rcv_ws=rcv_ws) + [seg(0.02, R, "A", 7001, ack=1001, window=1000)]
    w = sender_window(segs, S)
    assert not w.scaling and w.shift == 0 and w.rows[-1]["right_edge"] == 1000


def test_sequence_numbers_are_relative_and_unwrapped_across_2_32():
    isn = 2**32 - 3000                       # the data crosses 2**32 after 2999 bytes
    segs = handshake(isn=isn, rcv_ws=0)
    t = 0.01
    for i in range(4):                       # four 2000-byte segments, each ACKed
        segs.append(seg(t, S, "PA", isn + 1 + 2000 * i, 7001, payload=2000))
        segs.append(seg(t + 0.001, R, "A", 7001, ack=isn + 1 + 2000 * (i + 1), window=4000))
        t += 0.01
    w = sender_window(segs, S)
    assert [r["snd_una"] for r in w.rows][-1] == 8000 and w.rows[-1]["right_edge"] == 12000
    assert all(b["snd_una"] >= a["snd_una"] for a, b in zip(w.rows, w.rows[1:]))


def test_a_zero_window_probe_moves_no_edge_and_the_zero_window_holds_until_the_update():
    segs = handshake(rcv_ws=0, syn_window=2000) + [
        seg(0.01, S, "PA", 1001, 7001, payload=2000),
        seg(0.05, R, "A", 7001, ack=3001, window=0),                 # zero window: right edge == left edge
        seg(0.25, S, "A", 3000, 7001),                               # probe: seq = snd_una - 1, no data
        seg(0.25, R, "A", 7001, ack=3001, window=0),                 # its answer
        seg(1.00, R, "A", 7001, ack=3001, window=2000),              # the window update
        seg(1.01, S, "PA", 3001, 7001, payload=2000)]
    w = sender_window(segs, S)
    assert edges(w) == [(0, 0, 2000), (0, 2000, 2000), (2000, 2000, 2000), (2000, 2000, 4000), (2000, 4000, 4000)]
    assert [r["t_s"] for r in w.rows][2:4] == [0.05, 1.0]


def test_an_old_ack_or_a_smaller_window_with_the_same_ack_and_seq_moves_nothing():
    segs = handshake(rcv_ws=0, syn_window=4000) + [
        seg(0.01, S, "PA", 1001, 7001, payload=2000),
        seg(0.02, R, "A", 7001, ack=3001, window=4000),
        seg(0.03, R, "A", 7001, ack=2001, window=9000),              # older than snd_una (reordered)
        seg(0.04, R, "A", 7001, ack=3001, window=3000)]              # same ack, same seq, smaller: ignored
    w = sender_window(segs, S)
    assert edges(w)[-1] == (2000, 2000, 6000) and len(w.rows) == 3


def test_fin_takes_one_sequence_number_and_t0_shifts_time():
    segs = handshake(rcv_ws=0) + [seg(0.01, S, "FA", 1001, 7001)]
    w = sender_window(segs, S, t0=0.001)
    assert w.rows[-1]["snd_nxt"] == 1 and w.rows[0]["t_s"] == 0.0


def test_without_the_handshake_it_refuses_rather_than_guess_the_scale():
    with pytest.raises(ValueError, match="handshake"):
        sender_window(handshake()[2:] + [seg(0.02, R, "A", 7001, ack=1001, window=1000)], S)


@pytest.mark.parametrize("port", [0, 65536, True, "40000", None])
def test_bad_sender_port(port):
    with pytest.raises(ValueError, match="sender_port"):
        sender_window(handshake(), port)


def test_unwrap_seq():
    assert unwrap_seq(10, 2**32 - 10) == 2**32 + 10
    assert unwrap_seq(2**32 - 10, 10) == -10
    with pytest.raises(ValueError, match="raw"):
        unwrap_seq(2**32, 0)
