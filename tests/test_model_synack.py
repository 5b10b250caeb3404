"""SYN-ACK retries of request socks: the young/old cut of reqsk_timer_handler() (model/synack.py),
the simulator that uses it, and the kernel it describes (a real flood, SYN_RECV over time)."""

from __future__ import annotations

import pytest

from tcplab.errors import RealModeUnavailable
from tcplab.experiments import syn_queue
from tcplab.model.listen import Listener
from tcplab.model.synack import defer_accept_retrans, syn_ack_recalc, synack_retry_limit


@pytest.mark.parametrize("retries,qlen,young,backlog,limit", [
    (5, 129, 0, 128, 2),      # a full flood queue, every request old: cut to 2
    (5, 64, 0, 128, 5),       # 2*64 > 128 is false: no cut
    (5, 65, 0, 128, 2),
    (5, 129, 129, 128, 5),    # all young: no cut
    (5, 129, 64, 128, 4),     # 2*64 <= 129 < 4*64: one step
    (5, 129, 20, 128, 3),
    (1, 129, 0, 128, 1),      # the cut never raises and never goes below 2 from above 2
    (2, 129, 0, 128, 2),
    (5, 5, 0, 4, 2),          # max(8, backlog): 10 > 8
    (5, 4, 0, 3, 5),          # 8 > 8 is false
])
def test_retry_limit(retries, qlen, young, backlog, limit):
    assert synack_retry_limit(retries, qlen, young, backlog) == limit


def test_recalc_and_defer():
    assert syn_ack_recalc(0, 0) == (True, True)
    assert syn_ack_recalc(4, 5, defer_retrans=5, acked=True) == (False, True)   # last chance resend
    assert syn_ack_recalc(3, 2, defer_retrans=5, acked=True) == (False, False)
    assert syn_ack_recalc(3, 2, defer_retrans=5, acked=False) == (True, True)
    assert [defer_accept_retrans(s) for s in (1, 2, 3, 4, 7, 8, 30, 31, 32)] == [1, 2, 2, 3, 3, 4, 5, 5, 6]


def _changes(result):
    out, last = [], None
    for row in result.timeline.to_dict("records"):
        if row["syn_recv"] != last:
            out.append((row["t"], row["syn_recv"]))
            last = row["syn_recv"]
    return out


def test_listener_flood_clears_at_7s_not_63s():
    L = Listener(backlog=128, syncookies=1)
    for i in range(200):
        L.on_syn(i * 1e-4, ("spoofed", i))
    assert L.syn_recv == 129
    for t in (1.5, 3.5, 6.9):
        while (due := L.next_timer()) is not None and due <= t:
            L.on_timer(due)
        assert L.syn_recv == 129
    while (due := L.next_timer()) is not None and due <= 7.5:
        L.on_timer(due)
    assert L.syn_recv == 64       # 65 old requests cut at their 2nd retransmission; half the queue stays


@pytest.mark.parametrize("retries,at_end", [(1, 0), (2, 0), (3, 64), (5, 64)])
def test_sim_timeline(retries, at_end):
    r = syn_queue(backlog=128, syncookies=1, clients=200, flood=True, settle=9, synack_retries=retries, mode="sim")
    assert r.summary["syn_recv"] == at_end == r.timeline["syn_recv"].iloc[-1]
    assert r.timeline["syn_recv"].iloc[0] == 129


@pytest.mark.real
@pytest.mark.slow
@pytest.mark.parametrize("retries", [1, 3])
def test_real_flood_timeline_matches_sim(retries):
    """The kernel's SYN_RECV count over 9 s of a flood, against the simulator, sample by sample
    (away from the 100 ms around each expiry, where the real timer tick and sampler phase decide)."""
    kw = dict(backlog=128, syncookies=1, clients=200, flood=True, settle=9, synack_retries=retries)
    try:
        real = syn_queue(mode="real", **kw)
    except RealModeUnavailable as e:
        pytest.skip(str(e))
    sim = syn_queue(mode="sim", **kw)
    expiries = [t for t, _ in _changes(sim)[1:]]
    for row in real.timeline.to_dict("records"):
        if any(abs(row["t"] - e) < 0.45 for e in expiries):
            continue
        want = sim.timeline[sim.timeline["t"] <= row["t"]]["syn_recv"].iloc[-1]
        assert row["syn_recv"] == want, (row, _changes(real), _changes(sim))
    assert real.summary["syn_recv"] == sim.summary["syn_recv"]
