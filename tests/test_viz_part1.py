"""Figures of the first half of the course: fig.data reflects the Result (sim mode: fast, exact)."""

from __future__ import annotations

import pytest

pytest.importorskip("plotly")

from tcplab import experiments as E  # noqa: E402
from tcplab.model.retries import syn_schedule  # noqa: E402
from tcplab.model.states import TRANSITIONS, TcpState  # noqa: E402
from tcplab.viz import handshake, queues, retries, states  # noqa: E402


def _title(fig) -> str:
    return fig.layout.title.text


def test_accept_queue_fill_bars_are_the_summary():
    r = E.accept_queue(backlog=5, somaxconn=3, clients=20, mode="sim")
    fig = queues.accept_queue_fill(r)
    s = r.summary
    assert list(fig.data[0].y) == [s["established_clients"], s["syn_sent_clients"], s["recv_q"]] == [4, 16, 4]
    assert "SIMULATED" in _title(fig)
    assert any(sh.y0 == 4 for sh in fig.layout.shapes)          # the limit line min(5,3)+1
    assert any("recv" in (t.name or "").lower() for t in fig.data[1:])   # timeline traces


def test_syn_queue_fill_shows_both_limits_with_cookies_off():
    r = E.syn_queue(backlog=100, syncookies=0, max_syn_backlog=16, clients=60, mode="sim")
    fig = queues.syn_queue_fill(r)
    assert fig.data[0].y[0] == r.summary["syn_recv"] == 13
    ys = sorted(sh.y0 for sh in fig.layout.shapes)
    assert ys == [13, 101]
    assert dict(zip(fig.data[1].y, fig.data[1].x, strict=True))["ListenDrops"] == r.summary["ListenDrops"]


def test_backlog_sweep_rule_line():
    rs = [E.accept_queue(backlog=b, somaxconn=4, clients=12, mode="sim") for b in (0, 2, 6)]
    fig = queues.backlog_sweep(rs)
    assert list(fig.data[0].y) == [1, 3, 5]
    assert list(fig.data[1].y) == [min(b, 4) + 1 for b in range(0, 7)]


def test_syn_timeline_markers_at_send_times():
    r = E.syn_retries(3, mode="sim")
    fig = retries.syn_timeline(r)
    assert list(fig.data[0].x) == [0.0, *r.summary["retransmit_times"]]
    assert list(fig.data[1].x) == list(syn_schedule(3, 4).send_times)
    assert list(fig.data[2].x) == [r.summary["failed_after"]]
    assert "SIMULATED" in _title(fig)


def test_failure_curve_compares_with_the_classic_formula():
    rs = [E.syn_retries(k, mode="sim", max_seconds=86400) for k in (1, 3)]
    fig = retries.failure_curve(rs, max_retries=6)
    assert list(fig.data[0].y) == [2 ** (k + 1) - 1 for k in range(1, 7)]
    assert list(fig.data[2].y) == [3.0, 19.0]


def test_state_diagram_is_drawn_from_the_table():
    fig = states.state_diagram(show_aborts=True)
    assert set(fig.data[-1].text) == {s.name for s in TcpState}
    labels = " / ".join(fig.data[-2].text)
    for row in TRANSITIONS.values():
        for event in row:
            assert event in labels
    fewer = states.state_diagram(show_aborts=False)
    assert len(fewer.data[-2].text) < len(fig.data[-2].text)


def test_state_counts_from_a_result():
    r = E.accept_queue(backlog=3, clients=8, mode="sim")
    fig = states.state_counts(r)
    counts = dict(zip(fig.data[0].x, fig.data[0].y, strict=True))
    assert len(counts) == 11
    assert counts["LISTEN"] == 1
    assert "SIMULATED" in _title(fig)


def test_handshake_sequence_diagram_sim():
    r = E.handshake(mode="sim")
    fig = handshake.sequence_diagram(r)
    assert list(fig.data[0].text[:3]) == ["SYN seq=0", "SYN,ACK seq=0 ack=1", "ACK seq=1 ack=1"]


@pytest.mark.real
def test_handshake_sequence_diagram_real():
    r = E.handshake(mode="auto")
    fig = handshake.sequence_diagram(r)
    assert fig.data[0].text[0].startswith("SYN seq=0")
    if r.mode == "real":
        assert "mss=" in fig.data[0].customdata[0]
        assert "REAL" in _title(fig)


def test_accept_queue_fill_names_the_limit_in_the_legend_and_explains_a_flat_timeline():
    r = E.accept_queue(backlog=5, clients=20, mode="sim")
    fig = queues.accept_queue_fill(r)
    names = [t.name for t in fig.data if t.showlegend is not False]
    assert "limit min(5, 4096) + 1 = 6" in names
    texts = " ".join(a.text or "" for a in fig.layout.annotations)
    assert "Flat" in texts and "14 SYN_SENT" in texts and "SYN retry" in texts
    moving = queues.accept_queue_fill(E.accept_queue(backlog=5, clients=20, accept_after=0.5, mode="sim"))
    assert "Flat" not in " ".join(a.text or "" for a in moving.layout.annotations)


def test_state_diagram_labels_stay_off_the_state_boxes():
    fig = states.state_diagram(show_aborts=True)
    boxes = [(x - states._BW + 0.03, x + states._BW - 0.03, y - states._BH + 0.05, y + states._BH - 0.05)
             for x, y in states.POSITIONS.values()]
    for a in fig.layout.annotations:
        if not a.text or a.showarrow:
            continue
        hw, hh = states._label_half_size(a.text)
        lab = (a.x - hw, a.x + hw, a.y - hh, a.y + hh)
        # the size estimate is generous (19 px per line): allow a sliver, not a covered box
        assert sum(states._overlap(lab, b) for b in boxes) < 0.01, a.text
