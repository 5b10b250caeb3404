"""Panels and self-checks, headless: set a control's value, the FigureWidget's data follows."""

from __future__ import annotations

import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")

from tcplab.experiments.result import Result  # noqa: E402
from tcplab.widgets.common import ProgressBar, SelfCheck, mode_toggle, result_header  # noqa: E402
from tcplab.widgets.queues import AcceptQueuePanel, SynQueuePanel  # noqa: E402
from tcplab.widgets.quiz import accept_queue_quiz, syn_retries_quiz  # noqa: E402
from tcplab.widgets.retries import SynRetriesPanel  # noqa: E402
from tcplab.widgets.states import StateDiagramPanel  # noqa: E402


def test_accept_queue_panel_follows_the_backlog_slider():
    p = AcceptQueuePanel(mode="sim", backlog=3, clients=12)
    assert p.fig.data[0].y[0] == 4
    p.controls["backlog"].value = 6           # the observer re-runs and redraws
    assert p.runs == 2
    assert p.fig.data[0].y[0] == 7 == p.result.summary["established_clients"]
    assert "SIMULATED" in p.header.value
    p.controls["somaxconn"].value = 2
    assert p.fig.data[0].y[0] == 3


def test_syn_queue_panel_cookies_toggle():
    p = SynQueuePanel(mode="sim", backlog=100, syncookies=0, max_syn_backlog=16, clients=60)
    assert p.fig.data[0].y[0] == 13
    p.controls["syncookies"].value = 1
    assert p.fig.data[0].y[0] == 60


def test_syn_retries_panel_reruns_on_release_and_shows_progress():
    p = SynRetriesPanel(mode="sim", retries=1)
    assert len(p.fig.data[0].x) == 3
    p.controls["retries"].value = 3            # live like every panel: runs on release
    assert p.runs == 2
    assert len(p.fig.data[0].x) == 8
    assert p.progress.bar.value == 100


class _SlowPanel(SynRetriesPanel):
    """A panel whose runs block until the test lets them finish (no sleeps: events)."""

    background = True

    def __init__(self, **kw):
        import threading
        self.started = threading.Semaphore(0)
        self.release = threading.Semaphore(0)
        self.ran_with = []
        super().__init__(**kw)

    def run(self, params, mode):
        if self.runs or self.ran_with:          # the first (synchronous) run does not block
            self.started.release()
            assert self.release.acquire(timeout=30)
        self.ran_with.append(params["retries"])
        return super().run(params, mode)


def test_newer_slider_value_supersedes_a_run_in_flight():
    p = _SlowPanel(mode="sim", retries=1)
    p.controls["retries"].value = 2            # starts a background run
    assert p.started.acquire(timeout=30)
    p.controls["retries"].value = 3            # arrive while retries=2 is running
    p.controls["retries"].value = 4
    p.release.release()                        # retries=2 finishes: superseded, not drawn
    assert p.started.acquire(timeout=30)
    p.release.release()
    p.wait(30)
    assert p.ran_with == [1, 2, 4]             # 3 was never run: only the newest value counts
    assert p.superseded == 1 and p.runs == 2
    assert p.result.params["retries"] == 4 and len(p.fig.data[0].x) == 9


def test_syn_queue_panel_draws_syn_recv_over_time_when_watching():
    p = SynQueuePanel(mode="sim", backlog=128, syncookies=1, clients=200, flood=True, settle=9.0,
                      synack_retries=2)
    y = list(p.fig.data[0].y)
    assert y[0] == 129 and y[-1] == 0          # synack_retries 2: all gone at 7 s
    p.controls["synack_retries"].value = 5
    assert list(p.fig.data[0].y)[-1] == 64     # half the queue stays: the slider matters


def test_panel_shows_errors_instead_of_raising():
    p = SynRetriesPanel(mode="real", run_first=False, retries=6)   # 134 s > max_seconds
    p.update()
    assert p.error is not None and "max_seconds" in p.header.value


def test_state_diagram_panel():
    p = StateDiagramPanel()
    n = len(p.fig.data[-2].text)
    p.show_aborts.value = True
    assert len(p.fig.data[-2].text) > n
    p.path.value = "simultaneous close"
    sizes = dict(zip(p.fig.data[-1].text, p.fig.data[-1].textfont.size, strict=False))
    assert sizes["CLOSING"] > sizes["LISTEN"]


def test_selfcheck_right_and_wrong():
    q = accept_queue_quiz(rng=3, mode="sim")
    p = q.params
    right = min(p["backlog"], p["somaxconn"]) + 1
    assert q.check(right) is True and "Right" in q.feedback.value
    assert q.check(right + 1) is False
    assert "min(backlog, somaxconn) + 1" in q.feedback.value and "SIMULATED" in q.header.value


def test_selfcheck_is_seeded():
    assert accept_queue_quiz(rng=7).params == accept_queue_quiz(rng=7).params
    q = syn_retries_quiz(rng=1)
    assert q.check(-1) is False and q.expected == q.result.summary["syns_sent"]


def test_selfcheck_custom_experiment():
    def fake(mode, **p):
        return Result("demo", "sim", "test", p, summary={"n": p["k"] * 2})
    q = SelfCheck(fake, "k={k}?", {"k": [1, 2, 3]}, "n", "twice k is {expected}", rng=0, tolerance=0.5)
    assert q.check(q.params["k"] * 2 + 0.4) is True


def test_small_pieces():
    assert mode_toggle().options == ("auto", "real", "sim")
    bar = ProgressBar()
    bar(0.25, "x")
    assert bar.bar.value == 25
    h = result_header(Result("x", "real", "netns", {}, kernel="6.18"))
    assert "REAL" in h.value and "netns" in h.value


def test_ack_overflow_panel_abort_checkbox_turns_dropped_acks_into_resets():
    from tcplab.widgets.queues import AckOverflowPanel
    p = AckOverflowPanel(mode="sim")
    # bars: connected, ACK dropped (SYN_RECV), cookie discarded, RST, SYN dropped
    assert list(p.fig.data[0].y) == [1, 4, 1, 0, 0]
    p.controls["abort_on_overflow"].value = True
    assert list(p.fig.data[0].y) == [1, 0, 1, 4, 0] and p.result.summary["EmbryonicRsts"] == 4
    assert list(p.fig.data[1].y) == [0, 0, 1, 0, 0]       # only the cookie one completes later
    p.controls["syncookies"].value = 0
    assert list(p.fig.data[0].y) == [1, 0, 0, 4, 1]
    p.controls["backlog"].value = 0                        # burst 6 > 2 x (0 + 1): clamped
    assert p.result.params["burst"] == 2 and "clamped" in p.result.notes[-1]


def test_ack_overflow_quiz_checks_against_the_run():
    from tcplab.widgets.quiz import ack_overflow_quiz
    for seed in range(6):
        q = ack_overflow_quiz(rng=seed, mode="sim")
        p = q.params
        # the rule the explanation teaches: backlog+1 requests, one finds room, the rest are reset
        requests = 0 if p["syncookies"] == 2 else min(p["burst"], p["backlog"] + 1)
        resets = max(0, requests - 1) if p["abort_on_overflow"] else 0
        assert q.check(resets) is True, p
        assert q.check(resets + 1) is False and "EmbryonicRsts" in q.feedback.value
