"""The one path from a control change to the figure (tcplab.widgets.common.Panel), headless:
debounce, supersede, an error clears the figure and says it in words, the progress bar."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")

from tcplab.errors import RealModeUnavailable  # noqa: E402
from tcplab.experiments.result import Result  # noqa: E402
from tcplab.widgets.common import Panel, int_slider  # noqa: E402
from tcplab.widgets.generic import ExperimentPanel  # noqa: E402


class _Fake(Panel):
    """A panel over a fake experiment: y = [k, k]; k == 13 is refused, k == 7 has no real kernel."""

    background = True
    debounce_s = 0.2

    def __init__(self, **kw):
        self.calls: list[int] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        super().__init__(**kw)

    def make_controls(self):
        return {"k": int_slider("k", 1, 0, 20)}

    def run(self, params, mode):
        self.calls.append(params["k"])
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(30)
        if params["k"] == 13:
            raise ValueError("k must not be 13")
        if params["k"] == 7:
            raise RealModeUnavailable("user namespaces are disabled on this host")
        return Result("fake", "sim", "test", dict(params), summary={"k": params["k"]})

    def figure(self, result):
        import plotly.graph_objects as go
        return go.Figure(go.Scatter(x=[0, 1], y=[result.params["k"]] * 2))

    def table(self, result):
        return None


def test_arrow_key_presses_in_a_row_are_one_run():
    p = _Fake(mode="auto")
    assert p.calls == [1]
    for k in (2, 3, 4, 5):                    # four presses faster than the debounce
        p.controls["k"].value = k
    assert p.stale                            # the old figure is greyed meanwhile
    p.wait(30)
    assert p.calls == [1, 5]                  # one run, with the last value
    assert p.runs_started == 2 and p.runs == 2 and p.superseded == 0
    assert list(p.fig.data[0].y) == [5, 5] and not p.stale


def test_sim_mode_does_not_wait_for_the_controls_to_settle():
    p = _Fake(mode="sim")
    p.debounce_s = 30.0                       # would time the test out if sim mode waited
    p.controls["k"].value = 2
    p.wait(10)
    assert p.calls == [1, 2] and list(p.fig.data[0].y) == [2, 2]


def test_a_change_during_a_run_supersedes_it_and_only_the_newest_is_drawn():
    p = _Fake(mode="auto")
    p.gate = threading.Event()
    p.entered.clear()
    p.controls["k"].value = 2
    assert p.entered.wait(30)                 # k=2 is running
    p.controls["k"].value = 3
    p.controls["k"].value = 4
    p.gate.set()                              # k=2 finishes: dropped, then one run with 4
    p.wait(30)
    assert p.calls == [1, 2, 4]
    assert p.superseded == 1 and p.runs == 2
    assert list(p.fig.data[0].y) == [4, 4]


def test_an_error_clears_the_old_figure_and_says_it_in_words():
    p = _Fake(mode="sim", k=3)
    assert list(p.fig.data[0].y) == [3, 3]
    p.controls["k"].value = 13
    p.wait(30)
    assert len(p.fig.data) == 0               # the k=3 figure is gone, not left as if current
    words = p.fig.layout.annotations[0].text
    assert "k must not be 13" in words and "These settings cannot run" in words
    assert "ValueError" not in p.header.value and "k must not be 13" in p.header.value
    assert isinstance(p.error, ValueError) and not p.stale
    p.controls["k"].value = 7
    p.wait(30)
    assert "RealModeUnavailable" not in p.header.value
    assert "cannot run on the real kernel here" in p.header.value
    p.controls["k"].value = 6                 # a good value draws again, axes back
    p.wait(30)
    assert list(p.fig.data[0].y) == [6, 6] and p.error is None
    assert p.fig.layout.xaxis.visible is not False and len(p.fig.layout.annotations) == 0


def test_experiment_panel_refused_real_run_is_an_error_in_words():
    # tcp_retries2=15 (the default) takes ~929 s on the kernel: real mode refuses it (max_seconds=60)
    p = ExperimentPanel("retransmission", mode="real", retries2=3, run_first=False)
    p.background = False
    p.controls["retries2"].value = "default"
    assert p.result is None and len(p.fig.data) == 0
    assert "would run about" in p.header.value and "ValueError" not in p.header.value


def test_progress_bar_shows_only_for_a_long_real_run(monkeypatch):
    import tcplab.widgets.generic as G

    seen = []
    real_run = G.registry_run

    def fake(spec, args, *, mode, progress=None):   # auto mode that ends up simulated (no namespaces)
        if mode == "auto":
            seen.append(p.progress.widget.layout.display)
        return real_run(spec, args, mode="sim")

    monkeypatch.setattr(G, "registry_run", fake)
    p = ExperimentPanel("retransmission", mode="sim", retries2=3)
    assert p.progress is not None
    assert p.progress.widget.layout.display == "none"       # sim: instant, no bar
    assert p.expected_s(p.params, "real") > 1.0
    assert p.expected_s(p.params, "sim") == 0.0
    p.background = False
    p.mode.value = "auto"                      # shown while it runs; hidden again as it simulated
    assert seen == [None] and p.progress.widget.layout.display == "none"


def test_log_slider_shows_its_value():
    p = ExperimentPanel("nagle", mode="sim", requests=3, write_size=100)
    c = p.controls["write_size"]
    assert c.readout and c.value == 100 and c.label == "100"


def test_a_long_real_run_in_auto_mode_shows_the_simulator_first(monkeypatch):
    import tcplab.widgets.generic as G

    calls = []
    real_run = G.registry_run

    def fake(spec, args, *, mode, progress=None):
        calls.append(mode)
        r = real_run(spec, args, mode="sim")
        if mode == "auto" and calls == ["sim", "auto"]:   # the long real run, checked as it starts
            assert p.previewed is not None and "Showing the simulator's answer now" in p.header.value
            assert len(p.fig.data) > 0 and not p.stale
        return r

    monkeypatch.setattr(G, "registry_run", fake)
    p = ExperimentPanel("retransmission", mode="auto", retries2=3, run_first=False)   # ~6.5 s real
    p.background = False
    p.update()
    assert calls == ["sim", "auto"] and p.result is not None
    assert "Showing the simulator" not in p.header.value
    calls.clear()
    p.controls["retries2"].value = 0      # 0.6 s: no preview
    assert calls == ["auto"]


def test_after_an_error_the_previous_result_is_not_the_answer():
    # the previous session read a refused run's panel.result and got the run before it (18.488 Mbit/s
    # "for BBR" was the two-flow CUBIC run): after an error, .result and wait() give None
    p = _Fake(mode="sim", k=3)
    assert p.result.summary == {"k": 3}
    p.controls["k"].value = 13
    assert p.wait(30) is None and p.result is None and isinstance(p.error, ValueError)
    p.controls["k"].value = 4
    assert p.wait(30).summary == {"k": 4} and p.error is None


def _shown(p: ExperimentPanel) -> dict:
    """What the congestion panel displays: the figure's title line (its throughput) and the header's badge."""
    import re

    title = p.fig.layout.title.text or ""
    mbit = re.search(r"· ([0-9.]+) Mbit/s", title)
    return {"title": title, "mbit": None if mbit is None else float(mbit.group(1)), "header": p.header.value}


@pytest.mark.real
@pytest.mark.slow
def test_congestion_panel_shows_the_result_of_the_displayed_parameters():
    """Drive notebook 15's panel as a learner does (background thread, debounce, supersede):
    real BBR, then sim two-flow CUBIC, then back; every displayed result is the run of the
    parameters and mode the controls show, and its figure carries that run's own throughput."""
    p = ExperimentPanel("congestion", rate_mbit=20, rtt_ms=40, buffer_packets=50, duration=2.0, run_first=False)
    p.background = True
    p.debounce_s = 0.2
    steps = [
        ("auto", {"algorithm": "bbr"}),
        ("sim", {"flows": 2, "algorithm": "cubic"}),
        ("auto", {"flows": 1, "algorithm": "bbr"}),
        ("sim", {"algorithm": "reno"}),
        ("sim", {"algorithm": "bbr", "flows": 2}),
    ]
    seen = []
    for mode, values in steps:
        p.mode.value = mode
        for k, v in values.items():
            p.controls[k].value = v
        r = p.wait(180)
        assert r is not None, p.header.value
        assert r is p.result and p.error is None and not p.stale
        shown = _shown(p)
        for k, v in p.params.items():                       # the run of the controls' values
            assert r.params[k] == v, (k, r.params[k], v)
        if mode == "sim":
            assert r.mode == "sim" and "SIMULATED" in shown["header"]
        else:
            assert r.mode in ("real", "sim")                   # auto: real, or simulated saying why
            assert (("REAL" in shown["header"]) if r.mode == "real" else ("SIMULATED" in shown["header"]))
        assert r.params["algorithm"] in shown["title"]
        assert (f"{r.params['flows']} flows" in shown["title"]) == (r.params["flows"] > 1)
        assert shown["mbit"] == pytest.approx(r.summary["throughput_mbit"], abs=0.0015)
        seen.append((mode, dict(p.params), r.mode, r.summary["throughput_mbit"]))
    # the two sim runs of different parameters are different runs (the simulator is deterministic)
    assert seen[1][3] != seen[3][3], seen
