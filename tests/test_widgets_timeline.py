"""Every experiment's panel can show its run's timeline (issue 25): the "Timeline" toggle under the figure
(tcplab.widgets.common.Panel), drawn only once opened, redrawn on each new run while open, hidden for
experiments without one connection, headless (no browser)."""

from __future__ import annotations

import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")

import ipywidgets as W  # noqa: E402

import tcplab.widgets as widgets  # noqa: E402
from tcplab.experiments.result import Result  # noqa: E402
from tcplab.experiments.timeline import CONNECTIONLESS, timeline_of  # noqa: E402
from tcplab.model.outcome import Outcome  # noqa: E402
from tcplab.widgets.common import Panel  # noqa: E402
from tcplab.widgets.generic import ExperimentPanel  # noqa: E402
from tests.test_widgets_panel import _Fake  # noqa: E402


def _tree(w):
    yield w
    for c in getattr(w, "children", ()):
        yield from _tree(c)


def _said(p):
    """The segment count the timeline's note must show for the panel's current Result."""
    return f"{len(timeline_of(p.result).segments)} segments"


def test_the_timeline_is_drawn_only_once_opened_and_follows_each_run():
    p = ExperimentPanel("nagle", mode="sim", requests=3)
    t = p.timeline_toggle
    assert isinstance(t, W.ToggleButton) and t.description == "Timeline" and t.tooltip
    assert t in list(_tree(p.widget)) and t.layout.display is None          # offered
    assert p.timeline_fig is None and p.timeline_draws == 0                  # lazily: nothing drawn yet
    assert p.timeline_box.layout.display == "none"
    t.value = True                                                           # opened (Space/Enter on the button)
    assert p.timeline_box.layout.display is None and p.timeline_draws == 1
    assert p.timeline_fig in p.timeline_box.children and len(p.timeline_fig.data) > 0
    assert _said(p) == "16 segments" and _said(p) in p.timeline_note.value  # handshake, 5 + 4 + 4
    assert "Figure as text" in p.timeline_alt.value
    p.controls["requests"].value = 5                                         # a new run while open: redrawn
    assert p.timeline_draws == 2 and _said(p) == "24 segments" and _said(p) in p.timeline_note.value
    t.value = False                                                          # closed: runs draw no timeline
    p.controls["requests"].value = 4
    assert p.timeline_draws == 2 and p.timeline_box.layout.display == "none"
    t.value = True                                                           # reopened: the current run's
    assert p.timeline_draws == 3 and _said(p) == "20 segments" and _said(p) in p.timeline_note.value
    t.value = False
    t.value = True                                                           # the same run: not drawn again
    assert p.timeline_draws == 3


@pytest.mark.parametrize("name", sorted(set(CONNECTIONLESS) - {"rebind"}))
def test_experiments_without_one_connection_offer_no_timeline(name):
    p = ExperimentPanel(name, mode="sim")
    assert p.timeline_toggle.layout.display == "none" and not p.timeline_toggle.value


def test_the_hand_written_panels_offer_it_too():
    p = widgets.SynRetriesPanel(mode="sim")
    assert p.timeline_toggle.layout.display is None and p.timeline_toggle in list(_tree(p.widget))
    p.timeline_toggle.value = True
    assert p.timeline_draws == 1 and "retransmit" in str(p.timeline_fig.data)   # the retransmitted SYNs, in red
    assert widgets.RebindPanel(mode="sim").timeline_toggle.layout.display == "none"
    assert widgets.TimeWaitPanel(mode="sim").timeline_toggle.layout.display == "none"


PANELS = ("AcceptQueuePanel", "AckOverflowPanel", "SynQueuePanel", "SynRetriesPanel", "ClosingPanel", "TimeWaitPanel",
          "RebindPanel", "TuningLab")


@pytest.mark.parametrize("name", PANELS)
def test_every_course_panel_has_the_toggle_where_its_run_has_a_connection(name):
    p = getattr(widgets, name)(mode="sim")
    assert isinstance(p, Panel) and p.timeline_toggle in list(_tree(p.widget))
    offered = p.result.name not in CONNECTIONLESS
    assert (p.timeline_toggle.layout.display is None) == offered, p.result.name
    if offered:
        p.timeline_toggle.value = True
        assert p.timeline_draws == 1 and _said(p) in p.timeline_note.value


def test_a_run_without_a_timeline_says_why_in_its_place():
    p = ExperimentPanel("nagle", mode="sim", requests=2)
    p.timeline_toggle.value = True
    out = Outcome(summary={}, tables={"requests": [{"n": 1, "latency_ms": 44.0}]},
                  notes=["no packet capture here (Operation not permitted: AF_PACKET needs CAP_NET_RAW in the "
                         "namespace): no segments table (timeline_of shows none)"])
    p._timeline_update(Result.from_outcome("nagle", "real", "test", {}, out, kernel="6.18"))
    assert "No timeline for this run" in p.timeline_note.value and "CAP_NET_RAW" in p.timeline_note.value
    assert p.timeline_fig not in p.timeline_box.children                    # the old run's figure is gone


def test_an_error_replaces_the_timeline_with_words():
    p = _Fake(mode="sim")
    p.background = False
    p.timeline_toggle.value = True        # a fake experiment: timeline_of says it has none, in words
    assert "No timeline for this run" in p.timeline_note.value
    p.controls["k"].value = 13            # refused: no result for these settings
    assert p.result is None and "no result for these settings" in p.timeline_note.value
    assert p.timeline_box.children == (p.timeline_note,)
