"""Every figure for every learner (issue 24, part 4): a text alternative built from the run, a
colour-blind-safe palette with dashes or symbols where colour carries meaning, named controls.

Over the whole registry in sim mode: a new experiment is checked without being listed here."""

from __future__ import annotations

import re

import pytest

from tcplab.experiments import registry
from tcplab.experiments._describe import HEADLINES, describe, fmt
from tcplab.experiments.result import Result
from tcplab.model.outcome import Fidelity

NAMES = registry.names()


def _sim(name: str) -> Result:
    s = registry.spec(name)
    return registry.run(s, dict(s.smoke_points()[0]) if s.smoke_points() else {}, mode="sim")


@pytest.fixture(scope="module")
def results() -> dict[str, Result]:
    return {n: _sim(n) for n in NAMES}


def _numbers(v: object) -> list[str]:
    """How the text writes each number of a summary value (a list's first five items)."""
    if isinstance(v, bool) or v is None:
        return []
    if isinstance(v, (int, float)):
        return [fmt(v)]
    if isinstance(v, (list, tuple)):
        return [n for x in v[:5] for n in _numbers(x)]
    return []


@pytest.mark.parametrize("name", NAMES)
def test_every_experiment_has_a_specific_text_with_its_own_numbers(results: dict[str, Result], name: str) -> None:
    r = results[name]
    text = r.alt_text
    assert text.endswith("SIMULATED (linux-6.18)."), text
    cited = [k for k, v in r.summary.items() if any(re.search(rf"(?<![\d.]){re.escape(n)}(?![\d])", text) for n in _numbers(v))]
    # two of the run's own summary numbers at least (a headline is not a caption that fits any run)
    numeric = [k for k, v in r.summary.items() if _numbers(v)]
    assert len(cited) >= min(2, len(numeric)), (name, text, r.summary)
    assert 40 < len(text) < 400, text
    assert text.count(". ") <= 2, f"one or two sentences, not a table: {text}"


@pytest.mark.parametrize("name", NAMES)
def test_the_text_follows_the_run(name: str) -> None:
    """The same experiment with other numbers says other numbers (nothing is fixed per figure)."""
    r = _sim(name)
    other = Result(r.name, r.mode, r.reason, dict(r.params), profile=r.profile,
                   summary={k: (v + 7 if isinstance(v, int) and not isinstance(v, bool) else
                                v * 3 + 1 if isinstance(v, float) else v) for k, v in r.summary.items()})
    if any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r.summary.values()):
        assert other.alt_text != r.alt_text


@pytest.mark.parametrize("name", NAMES)
def test_every_registry_figure_carries_its_results_text(results: dict[str, Result], name: str) -> None:
    from tcplab.viz.common import alt_text
    from tcplab.viz.generic import experiment_figure

    fig = experiment_figure(results[name])
    assert fig.layout.meta["description"] == results[name].alt_text
    assert alt_text(fig) == results[name].alt_text
    assert fig.to_dict()["layout"]["meta"]["description"] == results[name].alt_text


def test_the_accept_queue_sentence_of_the_issue() -> None:
    r = registry.functions()["accept_queue"](backlog=5, clients=20, mode="sim")
    assert r.alt_text.startswith(
        f"Backlog 5 admitted {r.summary['established_clients']} of 20 clients; "
        f"the other {r.summary['syn_sent_clients']} stayed in SYN_SENT")
    assert r.summary["established_clients"] == 6 and r.summary["syn_sent_clients"] == 14


def test_a_real_run_says_real_and_when_the_host_disturbed_it() -> None:
    r = Result("syn_retries", "real", "netns", {}, kernel="6.18.4",
               summary={"syns_sent": 2, "retransmit_times": [1.0], "failed_after": 3.0, "error": "ETIMEDOUT"})
    assert describe(r).endswith("REAL (Linux 6.18.4).")
    r.fidelity = Fidelity(False, "host busy: timers fired 40 ms late")
    assert describe(r).endswith("REAL, host busy (Linux 6.18.4): host busy: timers fired 40 ms late.")


def test_an_experiment_without_a_headline_reads_its_summary() -> None:
    r = Result("aqm_like_new_one", "sim", "asked", {}, profile="linux-6.18",
               summary={"drops": 12, "sojourn_ms": 4.25, "note": None})
    assert describe(r) == "Drops 12; sojourn_ms 4.25. SIMULATED (linux-6.18)."   # "drops": a word, capitalized


def test_a_new_experiments_text_leads_with_its_numbers() -> None:
    r = Result("spurious_like", "sim", "asked", {}, profile="linux-6.18",
               summary={"detected_by": "F-RTO", "undone": True, "rto_ms": 212.0, "cwnd_after": [10, 10]})
    assert describe(r) == "rto_ms 212; cwnd_after 10, 10; detected_by F-RTO; undone yes. SIMULATED (linux-6.18)."


def test_every_headline_names_an_experiment_of_the_registry() -> None:
    assert set(HEADLINES) <= set(NAMES)


def test_a_figure_without_a_result_is_read_off_the_figure() -> None:
    from tcplab import viz

    fig = viz.failure_curve(max_retries=3)
    from tcplab.viz.common import alt_text

    text = alt_text(fig)
    # the title, then each trace's name, points and range: the curves' own numbers
    assert text.startswith("Time to ETIMEDOUT vs SYN retries"), text
    assert "2^(k+1) − 1 (the articles) (3 points, 3 to 15)" in text, text   # 2^2-1, 2^3-1, 2^4-1


def test_a_notebook_shows_the_text_under_the_figure(capsys: pytest.CaptureFixture[str]) -> None:
    """Displayed in IPython, a course figure is the plotly figure then the disclosure with its text."""
    from unittest import mock

    import plotly.graph_objects as go

    from tcplab.viz.generic import experiment_figure

    r = _sim("syn_retries")
    fig = experiment_figure(r)
    assert isinstance(fig, go.Figure)
    shown: list[object] = []
    with mock.patch("IPython.display.display", side_effect=lambda *a, **k: shown.extend(a)), \
            mock.patch("plotly.basedatatypes.BaseFigure._ipython_display_") as show:
        fig._ipython_display_()
    assert show.call_count == 1
    assert len(shown) == 1 and r.alt_text.replace("'", "&#x27;") in shown[0].data and "<details" in shown[0].data


def test_a_panel_shows_the_text_and_keeps_it_in_the_figure_widget() -> None:
    from tcplab.widgets.generic import ExperimentPanel

    p = ExperimentPanel("accept_queue", mode="sim", backlog=3, clients=10)
    assert p.result is not None and p.result.alt_text in p.alt.value
    assert p.fig.layout.meta["description"] == p.result.alt_text
    assert p.alt in p.widget.children
    p.controls["clients"].value = 4
    p.wait()
    assert "of 4 clients" in p.alt.value


# -- colour: Okabe-Ito, and never colour alone -------------------------------------------------

#: the red/green pairs the figures used before (GitHub Primer and plotly's defaults), pure ones too
RED_GREEN = {"#cf222e", "#1a7f37", "#2da44e", "#2ca02c", "#d62728", "#ff0000", "#00ff00", "#008000", "red", "green"}


def _rgb(c: str) -> tuple[int, int, int] | None:
    c = c.strip().lower()
    if c.startswith("#") and len(c) in (4, 7):
        h = c[1:] if len(c) == 7 else "".join(ch * 2 for ch in c[1:])
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)
    m = re.fullmatch(r"rgba?\((\d+),\s*(\d+),\s*(\d+)(?:,\s*[\d.]+)?\)", c)
    if m:
        return int(m[1]), int(m[2]), int(m[3])
    return {"white": (255, 255, 255), "black": (0, 0, 0)}.get(c)


def _allowed(c: str) -> bool:
    from tcplab.viz.common import OKABE_ITO

    rgb = _rgb(c)
    if rgb is None:
        return False
    grey = max(rgb) - min(rgb) <= 24          # greys and black/white carry no hue to confuse
    return grey or rgb in {_rgb(h) for h in OKABE_ITO.values()}


def _colours(fig) -> list[str]:
    out: list[str] = []

    def add(v: object) -> None:
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, (list, tuple)):
            out.extend(x for x in v if isinstance(x, str))

    for t in fig.data:
        for part, attr in (("line", "color"), ("marker", "color"), ("", "fillcolor")):
            obj = getattr(t, part, None) if part else t
            if obj is not None and attr in getattr(obj, "_valid_props", ()):
                add(getattr(obj, attr))
        if "colorscale" in t._valid_props and t.colorscale is not None:
            add([c for _, c in t.colorscale])
        marker = getattr(t, "marker", None)
        if marker is not None and "line" in marker._valid_props:
            add(marker.line.color)
    for sh in fig.layout.shapes:
        add(sh.line.color)
        add(sh.fillcolor)
    return out


@pytest.fixture(scope="module")
def figures() -> dict[str, object]:
    from tests.a11y_figures import figure_makers

    return {name: make() for name, make in figure_makers().items()}


def test_every_figure_is_drawn_from_the_okabe_ito_palette_and_greys(figures: dict[str, object]) -> None:
    bad = {name: sorted({c for c in _colours(f) if not _allowed(c)}) for name, f in figures.items()}
    assert not {k: v for k, v in bad.items() if v}, bad
    red_green = {name: sorted({c for c in _colours(f) if c.lower() in RED_GREEN}) for name, f in figures.items()}
    assert not {k: v for k, v in red_green.items() if v}


def _look(t) -> tuple[object, ...]:
    """What tells a trace apart besides its colour."""
    mode = getattr(t, "mode", None) or ""
    line = getattr(t, "line", None)
    marker = getattr(t, "marker", None)
    dash = (line.dash or "solid") if line is not None and "lines" in mode else None
    symbol = (marker.symbol or "circle") if marker is not None and "markers" in mode else None
    pattern = marker.pattern.shape or "" if t.type == "bar" and marker is not None else None
    return (t.type, mode, str(dash), str(symbol), str(pattern))


def test_traces_that_compare_things_differ_by_dash_symbol_or_pattern_too(figures: dict[str, object]) -> None:
    """Two legend entries on the same axes whose colours differ also differ by dash (lines), marker
    symbol (markers) or hatch (bars); bars that write their own name inside (state lanes) are read."""
    clashes = []
    for name, fig in figures.items():
        seen: dict[tuple[object, ...], str] = {}
        for t in fig.data:
            if t.showlegend is False or not t.name or (t.type == "bar" and t.text is not None and t.textposition == "inside"):
                continue
            if getattr(t, "x", None) is not None and list(t.x) == [None]:
                pass                       # a legend-only entry (a limit drawn as a shape): still compared
            key = (getattr(t, "xaxis", None), getattr(t, "yaxis", None), *_look(t))
            if key in seen:
                clashes.append(f"{name}: {seen[key]!r} and {t.name!r} differ only by colour")
            seen[key] = t.name
    assert not clashes, "\n".join(clashes)


# -- panels: what the page gets ------------------------------------------------------------------

def test_a_panel_carries_the_a11y_script_its_class_and_a_focus_ring() -> None:
    from tcplab.widgets.a11y import A11y
    from tcplab.widgets.a11y_css import FOCUS_CSS, PANEL_CLASS
    from tcplab.widgets.generic import ExperimentPanel

    p = ExperimentPanel("accept_queue", mode="sim", backlog=3, clients=10)
    assert PANEL_CLASS in p.widget._dom_classes
    assert any(isinstance(c, A11y) for c in p.widget.children)
    assert FOCUS_CSS in p.widget.children[0].value
    # what the script sets, by name (the browser test checks it is set: tests/test_browser_a11y.py)
    for attr in ("aria-label", "aria-valuetext", "aria-pressed", '"role", "img"'):
        assert attr in A11y._esm


def test_a_panels_table_is_a_named_region_reachable_by_keyboard() -> None:
    import pandas as pd

    from tcplab.widgets.common import table_html

    out = table_html(pd.DataFrame({"a": range(30)}), caption="clients")
    assert "tabindex='0'" in out and "role='region'" in out and "aria-label='clients'" in out


def test_every_viz_figure_has_a_text_with_numbers_and_its_source(figures: dict[str, object]) -> None:
    from tcplab.viz.common import alt_text

    for name, fig in figures.items():
        text = alt_text(fig)
        assert "SIMULATED" in text or name == "state_diagram", (name, text)
        assert re.search(r"\d", text), (name, text)
        assert len(text) < 900, (name, len(text))


def _contrast(a: str, b: str) -> float:
    def lum(c: str) -> float:
        r, g, b_ = (int(c[i:i + 2], 16) / 255 for i in (1, 3, 5))
        return sum(w * (x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4)
                   for w, x in zip((0.2126, 0.7152, 0.0722), (r, g, b_), strict=True))
    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_the_state_diagrams_names_are_readable_on_their_boxes(figures: dict[str, object]) -> None:
    from tcplab.viz.common import STATE_COLORS

    fig = figures["state_diagram"]
    names = next(t for t in fig.data if t.name == "states")
    for state, colour in zip(names.text, names.textfont.color, strict=True):
        assert _contrast(colour, STATE_COLORS[state]) >= 4.5, (state, colour)


@pytest.mark.parametrize("make", ["StateDiagramPanel", "HandshakeStepper", "MysteryServer", "accept_queue_quiz"])
def test_every_widget_of_the_course_carries_the_a11y_script(make: str) -> None:
    from tcplab import widgets
    from tcplab.widgets.a11y import A11y
    from tcplab.widgets.a11y_css import PANEL_CLASS

    if make == "HandshakeStepper":
        from tcplab.widgets.handshake import HandshakeStepper

        w = HandshakeStepper(registry.functions()["handshake"](mode="sim"))
    elif make == "MysteryServer":
        w = widgets.MysteryServer(mode="sim")
    else:
        w = getattr(widgets, make)(**({"mode": "sim"} if make.endswith("_quiz") else {}))
    assert PANEL_CLASS in w.widget._dom_classes
    assert any(isinstance(c, A11y) for c in w.widget.children)
    if hasattr(w, "alt"):
        assert "<details" in w.alt.value and re.search(r"\d", w.alt.value)


def test_a_described_figure_pickles_and_copies() -> None:
    import copy
    import pickle

    from tcplab.viz.generic import experiment_figure

    fig = experiment_figure(_sim("accept_queue"))
    for back in (pickle.loads(pickle.dumps(fig)), copy.deepcopy(fig)):
        assert type(back) is type(fig) and back.layout.meta["description"] == fig.layout.meta["description"]
