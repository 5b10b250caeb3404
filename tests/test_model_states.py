"""The TCP state table and the sans-IO endpoint, in the style of h11's test_state.py."""

from __future__ import annotations

import pytest

from tcplab.model.endpoint import Endpoint
from tcplab.model.states import (TRANSITIONS, IllegalTransition, TcpState, edges, next_state,
                                 reachable)

S = TcpState


def test_linux_numbers_and_names():
    assert [(s.name, s.value) for s in S] == [
        ("ESTABLISHED", 1), ("SYN_SENT", 2), ("SYN_RECV", 3), ("FIN_WAIT1", 4), ("FIN_WAIT2", 5),
        ("TIME_WAIT", 6), ("CLOSE", 7), ("CLOSE_WAIT", 8), ("LAST_ACK", 9), ("LISTEN", 10), ("CLOSING", 11)]


def test_every_state_reachable_from_close():
    assert reachable(S.CLOSE) == set(S)


def test_every_state_has_a_row_and_edges_cover_table():
    assert set(TRANSITIONS) == set(S)
    assert len(list(edges())) == sum(len(r) for r in TRANSITIONS.values())
    assert all(e.label for e in edges())


def test_close_wait_has_no_timeout():
    assert not any(ev.startswith("timeout") for ev in TRANSITIONS[S.CLOSE_WAIT])


@pytest.mark.parametrize("src,event,dst", [
    (S.CLOSE, "app_connect", S.SYN_SENT), (S.LISTEN, "rcv_syn", S.SYN_RECV),
    (S.SYN_SENT, "rcv_syn", S.SYN_RECV), (S.FIN_WAIT1, "rcv_fin", S.CLOSING),
    (S.CLOSING, "rcv_ack", S.TIME_WAIT), (S.TIME_WAIT, "timeout_2msl", S.CLOSE),
])
def test_legal(src, event, dst):
    assert next_state(src, event) is dst


@pytest.mark.parametrize("src,event", [(S.CLOSE, "rcv_fin"), (S.TIME_WAIT, "app_connect"),
                                       (S.LISTEN, "rcv_fin"), (S.CLOSE_WAIT, "rcv_fin")])
def test_illegal_raises(src, event):
    with pytest.raises(IllegalTransition) as info:
        next_state(src, event)
    assert isinstance(info.value, ValueError)


def _handshake():
    a, b = Endpoint(40000, isn=100), Endpoint(5000, isn=900)
    b.listen(0.0)
    (syn,) = a.connect(0.0, 5000)
    (synack,) = b.receive(0.0, syn)
    (ack,) = a.receive(0.0, synack)
    assert b.receive(0.0, ack) == []
    return a, b


def deliver(dst, segs, now=0.0):
    out = []
    for s in segs:
        out += dst.receive(now, s)
    return out


def test_handshake_then_illegal_event_changes_nothing():
    a, b = _handshake()
    assert a.state is S.ESTABLISHED and b.state is S.ESTABLISHED
    with pytest.raises(IllegalTransition):
        a.listen(1.0)
    assert a.state is S.ESTABLISHED and a.history[-1] is S.ESTABLISHED
    with pytest.raises(IllegalTransition):
        a.connect(1.0, 5000)
    assert a.state is S.ESTABLISHED and a.peer == 5000


def test_active_close_and_time_wait_lasts_60s_whatever_fin_timeout():
    a, b = _handshake()
    a.fin_timeout = 5
    fin = a.close(1.0)
    assert a.state is S.FIN_WAIT1
    ack = b.receive(1.0, fin[0])
    assert b.state is S.CLOSE_WAIT
    deliver(a, ack, 1.0)
    assert a.state is S.FIN_WAIT2
    fin2 = b.close(2.0)
    assert b.state is S.LAST_ACK
    last = deliver(a, fin2, 2.0)
    assert a.state is S.TIME_WAIT and a.next_timer() == 62.0
    deliver(b, last, 2.0)
    assert b.state is S.CLOSE
    a.on_timer(61.9)
    assert a.state is S.TIME_WAIT
    a.on_timer(62.0)
    assert a.state is S.CLOSE


def test_orphaned_fin_wait2_times_out_after_fin_timeout_but_half_close_does_not():
    a, b = _handshake()
    a.fin_timeout = 5
    deliver(a, b.receive(0.0, a.close(0.0)[0]))
    assert a.state is S.FIN_WAIT2 and a.next_timer() == 5.0
    a.on_timer(5.0)
    assert a.state is S.CLOSE
    assert b.state is S.CLOSE_WAIT and b.next_timer() is None   # CLOSE_WAIT never times out
    c, d = _handshake()
    deliver(c, d.receive(0.0, c.shutdown_write(0.0)[0]))
    assert c.state is S.FIN_WAIT2 and c.next_timer() is None


def test_simultaneous_open():
    a, b = Endpoint(40000, isn=1), Endpoint(40001, isn=500)
    sa, sb = a.connect(0.0, 40001), b.connect(0.0, 40000)
    ra, rb = deliver(a, sb), deliver(b, sa)
    assert a.state is S.SYN_RECV and b.state is S.SYN_RECV
    deliver(a, rb), deliver(b, ra)
    assert a.state is S.ESTABLISHED and b.state is S.ESTABLISHED
    assert a.history == [S.CLOSE, S.SYN_SENT, S.SYN_RECV, S.ESTABLISHED]


def test_simultaneous_close_goes_through_closing():
    a, b = _handshake()
    fa, fb = a.close(1.0), b.close(1.0)
    assert a.state is S.FIN_WAIT1 and b.state is S.FIN_WAIT1
    ra, rb = deliver(a, fb, 1.0), deliver(b, fa, 1.0)
    assert a.state is S.CLOSING and b.state is S.CLOSING
    deliver(a, rb, 1.0), deliver(b, ra, 1.0)
    assert a.state is S.TIME_WAIT and b.state is S.TIME_WAIT


def test_linger0_close_sends_rst_and_peer_gets_econnreset():
    a, b = _handshake()
    (rst,) = a.close(1.0, linger0=True)
    assert rst.rst and a.state is S.CLOSE
    b.receive(1.0, rst)
    assert b.state is S.CLOSE and b.error == "ECONNRESET"


def test_syn_retransmits_follow_schedule_then_etimedout():
    a = Endpoint(40000, syn_retries=3)
    a.connect(0.0, 5000)
    times = [0.0]
    while a.state is S.SYN_SENT:
        t = a.next_timer()
        if a.on_timer(t):
            times.append(t)
    assert times == [0, 1, 2, 3, 4, 5, 7, 11] and a.error == "ETIMEDOUT"
