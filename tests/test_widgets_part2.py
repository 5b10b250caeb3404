"""Panels of the course's second half, headless: set a control's value, the FigureWidget changes."""

import pytest

import tcplab
from tcplab.widgets.closing import ClosingPanel, CloseWaitLeak, closing_quiz
from tcplab.widgets.diagnose import INCIDENTS, MysteryServer
from tcplab.widgets.load import TuningLab, queue_quiz
from tcplab.widgets.time_wait import RebindPanel, TimeWaitPanel, port_range_quiz


def test_time_wait_panel_tw_reuse_changes_the_curve():
    p = TimeWaitPanel(mode="sim", connections=30, ports=10, tw_reuse=0, duration=2.5)
    assert p.fig.data[0].y[-1] == 10
    p.controls["tw_reuse"].value = 1
    assert p.fig.data[0].y[-1] == 30 and p.result.summary["reused_ports"] == 20
    p.controls["ports"].value = 40
    assert p.result.params["port_range"] == (40000, 40039) and p.fig.data[0].y[-1] == 30


def test_rebind_panel_fills_the_matrix():
    p = RebindPanel(mode="sim")
    assert [list(r) for r in p.fig.data[0].z] == [[None, None], [None, 1]]
    p.controls["old_reuseaddr"].value = False
    assert [list(r) for r in p.fig.data[0].z] == [[None, 0], [None, 1]]


def test_closing_panel_scenario_changes_lanes():
    p = ClosingPanel(mode="sim")
    assert "TIME_WAIT" in {tr.name for tr in p.fig.data}
    p.controls["scenario"].value = "abortive_close"
    assert "TIME_WAIT" not in {tr.name for tr in p.fig.data}
    assert p.result.summary["server_error"] == "ECONNRESET"


def test_tuning_lab_accept_rate_meets_target():
    lab = TuningLab(mode="sim", rate=200, accept_rate=150, duration=3.0)
    assert lab.met is False and max(lab.fig.data[0].y) == 17
    lab.controls["accept_rate"].value = 400
    assert lab.met is True and max(lab.fig.data[0].y) < 17
    assert "target met" in lab.verdict.value


@pytest.mark.real
def test_close_wait_leak_is_visible_and_cleaned_up():
    with CloseWaitLeak(3) as leak:
        assert len(tcplab.sockets(state="CLOSE_WAIT", port=leak.port)) == 3
    assert len(tcplab.sockets(state="CLOSE_WAIT", port=leak.port)) == 0


def test_mystery_server_checks_diagnosis():
    seen = set()
    for seed in range(8):
        m = MysteryServer(mode="sim", rng=seed)
        seen.add(m.incident)
        assert m.check(m.incident) is True
        wrong = next(i for i in INCIDENTS if i != m.incident)
        assert m.check(wrong) is False and m.incident in m.feedback.value
    assert len(seen) >= 3


def test_quizzes_check_against_the_run():
    for quiz in (closing_quiz(mode="sim", rng=0), port_range_quiz(mode="sim", rng=0), queue_quiz(mode="sim", rng=0)):
        assert quiz.check(-1) is False
        assert quiz.check(quiz.expected) is True


def test_dropdowns_show_their_default_label():
    """A Dropdown whose value is None shows an empty box: panels use sentinels instead."""
    from tcplab.widgets.queues import AcceptQueuePanel
    from tcplab.widgets.retries import SynRetriesPanel
    p = AcceptQueuePanel(mode="sim", backlog=3, clients=8, accept_after=None)
    d = p.controls["accept_after"]
    assert d.index == 0 and d.label == "never" and p.result.params["accept_after"] is None
    d.value = 0.5
    assert p.result.params["accept_after"] == 0.5
    q = SynRetriesPanel(mode="sim", retries=2)
    assert q.controls["linear_timeouts"].index == 0 and q.controls["linear_timeouts"].label.startswith("default")
    q.update()
    assert q.result.summary["syns_sent"] == 6
