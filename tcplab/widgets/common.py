"""Pieces every course panel shares: the mode switch, the result header, a progress bar,
the :class:`Panel` base class and the :class:`SelfCheck` quiz.

The pattern (ipywidgets "Widget Events", plotly's FigureWidget app page): build the
controls and one ``plotly.graph_objects.FigureWidget`` **once**, ``observe`` the controls
with ``names="value"``, and on a change run the experiment and redraw inside
``fig.batch_update()``. Costly sliders use ``continuous_update=False`` (see :func:`int_slider`),
so the experiment runs when the slider is released, not for every pixel dragged.

A panel is testable without a browser: set a control's ``value`` (the observer runs
:meth:`Panel.update`) and read ``panel.fig.data``.

>>> from tcplab.widgets.common import mode_toggle, int_slider
>>> mode_toggle().value
'auto'
>>> s = int_slider("backlog", 5, 0, 64); (s.value, s.continuous_update)
(5, False)

Writing a panel: every experiment panel of the course is
:class:`tcplab.widgets.generic.ExperimentPanel` (controls from the spec, the spec's figure), given
a figure function, labels or a bespoke widget where the notebook needs them::

    ExperimentPanel("accept_queue", figure=viz.queues.accept_queue_fill, table="clients",
                    labels={"backlog": "listen() backlog"})

:class:`Panel` below is the machinery they share (one debounce / supersede path, errors in words,
the progress bar); subclass it directly only for a panel over something that is not an experiment.
"""

from __future__ import annotations

import html
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from tcplab.errors import TcpLabError
from tcplab.viz.common import alt_text, caption_html
from tcplab.widgets.a11y_css import FOCUS_CSS, PANEL_CLASS

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from tcplab.experiments.result import Result

__all__ = ["MODES", "panel_heading", "mode_toggle", "result_header", "error_header", "error_words", "ProgressBar", "run_button",
           "int_slider", "float_slider", "sync_figure", "table_html", "Panel", "SelfCheck", "accessible"]

MODES = ("auto", "real", "sim")
REAL_COLOR = "#1a7f37"
SIM_COLOR = "#9a6700"
ERROR_COLOR = "#cf222e"

_MODE_TIPS = {
    "auto": "real kernel where possible, otherwise the simulator (the reason is shown)",
    "real": "the Linux kernel of this machine (in a private network namespace)",
    "sim": "the simulator, which follows the same kernel rules",
}

#: width (px) of a panel's chart: a FigureWidget does not stretch to the notebook's width by
#: itself (plotly's default 700 px squeezes two subplots and their tick labels)
PANEL_FIG_WIDTH = 960

#: a panel waits this long after the last control change before it runs (real and auto mode):
#: four arrow-key presses in a row are one run, not four (each real run may take seconds)
DEBOUNCE_S = 0.35

#: a real run expected to take longer than this shows the progress bar
PROGRESS_FROM_S = 1.0

#: CSS for a figure that no longer shows the controls' values (a run in flight, or an error)
_STALE_CSS = ("<style>.tcplab-stale{opacity:0.3;filter:grayscale(1);transition:opacity .15s}</style>")

#: errors a panel shows in its header instead of raising (a bad combination of
#: slider values, or real mode not possible here)
SHOWN_ERRORS: tuple[type[BaseException], ...] = (TcpLabError, ValueError)


def mode_toggle(default: str = "auto", *, description: str = "mode") -> W.ToggleButtons:
    """The auto / real / sim switch shown next to every experiment.

    >>> t = mode_toggle("sim"); t.options, t.value
    (('auto', 'real', 'sim'), 'sim')
    """
    if default not in MODES:
        raise ValueError(f"default must be one of {', '.join(MODES)}, not {default!r}")
    return W.ToggleButtons(options=list(MODES), value=default, description=description,
                           tooltips=[_MODE_TIPS[m] for m in MODES],
                           style={"button_width": "60px", "description_width": "initial"})


def _badge(result: Result) -> str:
    color = (REAL_COLOR if result.trusted else ERROR_COLOR) if result.mode == "real" else SIM_COLOR
    return (f'<span class="tcplab-badge" style="background:{color};color:white;padding:2px 8px;border-radius:4px;'
            f'font-weight:bold">{html.escape(result.badge)}</span>')


def header_html(result: Result) -> str:
    """HTML of :func:`result_header` (a badge, where it ran, why, how long).

    A real run that lost fidelity (``result.fidelity``, decided in ``tcplab.experiments._mode``)
    says so up front, and its badge reads "REAL, host busy".
    """
    esc = html.escape
    real = result.mode == "real"
    where = f"Linux {esc(str(result.kernel))}" if real else f"simulator, profile {esc(str(result.profile))}"
    notes = "".join(f"<li>{esc(n)}</li>" for n in result.notes)
    f = result.fidelity
    busy = (f"<div style='color:{ERROR_COLOR};font-weight:bold'>⚠ {esc(f.reason)}</div>"
            if f is not None and not f.ok else "")
    # the class and data-mode: what the course site's check (tests/test_site.py) finds results by
    return (f"<div class='tcplab-result' data-mode='{esc(result.mode)}' style='line-height:1.5'>{busy}{_badge(result)} <b>{esc(result.name)}</b> "
            f"<small>{where} · {result.duration_s:.2f} s</small><br>"
            f"<small><i>why this mode:</i> {esc(result.reason)}</small>"
            + (f"<ul style='margin:2px 0;font-size:smaller'>{notes}</ul>" if notes else "") + "</div>")


def result_header(result: Result) -> W.HTML:
    """REAL / SIMULATED badge, the reason for the mode, kernel or simulator profile.

    >>> from tcplab.experiments.result import Result
    >>> h = result_header(Result("accept_queue", "sim", "mode='sim' was asked for", {}, profile="linux-6.18"))
    >>> "SIMULATED" in h.value and "linux-6.18" in h.value
    True
    """
    return W.HTML(header_html(result))


def error_words(exc: BaseException) -> str:
    """An error as a learner reads it: what happened in words, then the library's message (no
    exception class names).

    >>> from tcplab.errors import RealModeUnavailable
    >>> error_words(RealModeUnavailable("namespaces are not allowed here"))
    'This cannot run on the real kernel here: namespaces are not allowed here. Switch the mode to auto or sim to see the simulator.'
    >>> error_words(ValueError("backlog must be an int in 0..65535, not -1"))
    'These settings cannot run: backlog must be an int in 0..65535, not -1.'
    """
    from tcplab.errors import KernelUnavailable, RealModeUnavailable

    msg = str(exc).strip().rstrip(".") or type(exc).__name__
    if isinstance(exc, (RealModeUnavailable, KernelUnavailable)):
        return (f"This cannot run on the real kernel here: {msg}. Switch the mode to auto or sim to see the "
                f"simulator.")
    if isinstance(exc, (ValueError, TypeError)):
        return f"These settings cannot run: {msg}."
    return f"The experiment could not run: {msg}."


def error_header(exc: BaseException) -> str:
    """HTML for an error shown in place of a result (e.g. real mode unavailable), in words.

    >>> "ValueError" in error_header(ValueError("rate must be at most 5000"))
    False
    """
    return (f"<div style='color:{ERROR_COLOR}'><b>⚠ No result.</b> "
            f"{html.escape(error_words(exc))}</div>")


class ProgressBar:
    """An ``IntProgress`` and a label, usable as an experiment's ``progress(fraction, text)``.

    Experiments call it from a helper thread about every 0.25 s, and with ``(1.0, "done")``
    at the end.

    >>> bar = ProgressBar("SYN retries")
    >>> bar(0.5, "3.5 s of ~7 s"); bar.bar.value, bar.label.value
    (50, '3.5 s of ~7 s')
    >>> bar(1.0, "done"); bar.bar.bar_style
    'success'

    In a notebook: ``bar = ProgressBar(); display(bar.widget)`` or just ``bar`` as the last
    line of a cell, then ``syn_retries(2, progress=bar)``.
    """

    def __init__(self, description: str = "running") -> None:
        self.bar = W.IntProgress(value=0, min=0, max=100, description=description,
                                 style={"description_width": "initial"})
        self.label = W.Label("")
        self.widget = W.HBox([self.bar, self.label])

    def __call__(self, fraction: float, text: str = "") -> None:
        fraction = min(1.0, max(0.0, float(fraction)))
        self.bar.value = int(round(fraction * 100))
        self.bar.bar_style = "success" if fraction >= 1.0 else "info"
        self.label.value = text

    def reset(self, text: str = "") -> None:
        """Back to 0 % (before a new run)."""
        self.bar.value = 0
        self.bar.bar_style = ""
        self.label.value = text

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget)


def run_button(description: str = "Run", on_click: Callable[[], Any] | None = None, *,
               tooltip: str = "run the experiment with these settings") -> W.Button:
    """A primary button; ``on_click`` takes no argument (unlike ipywidgets' callback).

    >>> hits = []
    >>> b = run_button("Go", lambda: hits.append(1)); b.click(); hits
    [1]
    """
    b = W.Button(description=description, button_style="primary", tooltip=tooltip, icon="play")
    if on_click is not None:
        b.on_click(lambda _b: on_click())
    return b


def int_slider(name: str, value: int, min: int, max: int, step: int = 1, *,  # noqa: A002
               description: str | None = None, continuous_update: bool = False) -> W.IntSlider:
    """An IntSlider for an experiment parameter (``continuous_update=False``: each value runs a kernel experiment)."""
    return W.IntSlider(value=value, min=min, max=max, step=step, description=description or name,
                       continuous_update=continuous_update, style={"description_width": "initial"},
                       layout=W.Layout(width="420px"))


def float_slider(name: str, value: float, min: float, max: float, step: float = 0.1, *,  # noqa: A002
                 description: str | None = None, continuous_update: bool = False) -> W.FloatSlider:
    """A FloatSlider for an experiment parameter, ``continuous_update=False``."""
    return W.FloatSlider(value=value, min=min, max=max, step=step, description=description or name,
                         continuous_update=continuous_update, style={"description_width": "initial"},
                         layout=W.Layout(width="420px"))


def panel_heading(title: str) -> W.HTML:
    """A panel's title as a level-3 heading: the course's notebooks put panels under their ``##``
    sections, and a heading one level below keeps the page's outline (axe-core's heading-order rule on
    the course site flagged the h4 that skipped a level).

    >>> panel_heading("Backlog & clients").value
    "<h3 style='margin:4px 0;font-size:1.05em'>Backlog &amp; clients</h3>"
    """
    return W.HTML(f"<h3 style='margin:4px 0;font-size:1.05em'>{html.escape(title)}</h3>")


def accessible(box: W.Box) -> W.Box:
    """Make ``box`` a panel for assistive technology: the :class:`~tcplab.widgets.a11y.A11y` script
    (named slider handles announcing their values, toggles' pressed state, labelled figures) and a
    visible focus ring on its controls. Returns ``box``; every widget of the course goes through it.

    >>> box = accessible(W.VBox([W.IntSlider(description="backlog")]))
    >>> PANEL_CLASS in box._dom_classes, type(box.children[1]).__name__
    (True, 'A11y')
    """
    try:
        from tcplab.widgets.a11y import A11y
    except ImportError:     # pragma: no cover - anywidget ships with the course's extras (plotly needs it)
        script: tuple[W.Widget, ...] = ()
    else:
        script = (A11y(),)
    box.children = (W.HTML(f"<style>{FOCUS_CSS}</style>"), *script, *box.children)
    box.add_class(PANEL_CLASS)
    return box


def sync_figure(fw: go.FigureWidget, fig: go.Figure) -> None:
    """Make FigureWidget ``fw`` show ``fig`` without building a new widget.

    Same number and types of traces: every trace and the layout are updated in place
    inside one ``batch_update()`` (one message to the browser). Otherwise the traces are
    replaced.
    """
    new = fig.to_dict()
    same = len(fw.data) == len(fig.data) and all(a.type == b.type for a, b in zip(fw.data, fig.data, strict=True))
    if not same:
        fw.data = ()
        fw.add_traces(list(fig.data))
    with fw.batch_update():
        if same:
            for tr, d in zip(fw.data, new["data"], strict=True):
                d = dict(d)
                d.pop("type", None)
                # clear what the new trace does not set (e.g. an old text array)
                tr.update(_cleared(tr, d), overwrite=True)
        layout = new.get("layout", {})
        layout.pop("template", None)
        fw.layout.shapes = ()
        fw.layout.annotations = ()
        fw.layout.update(layout, overwrite=True)


def _cleared(trace: Any, d: dict[str, Any]) -> dict[str, Any]:
    out = {k: None for k in ("x", "y", "text", "customdata", "hovertext", "name") if k not in d}
    out.update(d)
    return out


def table_html(df: pd.DataFrame | None, *, max_rows: int = 12, caption: str = "") -> str:
    """A small HTML table of a DataFrame (first ``max_rows`` rows, with a "+ N more" line)."""
    if df is None or len(df) == 0:
        return f"<i>{html.escape(caption)} (empty)</i>" if caption else ""
    extra = len(df) - max_rows
    head = df.head(max_rows).copy()
    for col in head.columns:                                  # 40004.0 -> 40004 (a column with gaps is float)
        v = head[col]
        if v.dtype.kind == "f" and v.notna().any() and (v.dropna() % 1 == 0).all():
            head[col] = v.astype("Int64")
    head = head.astype(object).where(head.notna(), "")      # None / NaN print as an empty cell
    body = head.to_html(index=False, border=0, na_rep="")
    body = body.replace("<table", "<table style='border-spacing:10px 0'", 1)
    cap = f"<b>{html.escape(caption)}</b>" if caption else ""
    more = f"<small>+ {extra} more rows</small>" if extra > 0 else ""
    # a scrolling region is reached by keyboard (tabindex) and named (axe: scrollable-region-focusable)
    name = html.escape(caption or "table of the run", quote=True)
    return (f"<div style='font-size:smaller;max-height:320px;overflow:auto' tabindex='0' role='region' "
            f"aria-label='{name}'>{cap}{body}{more}</div>")


class Panel:
    """Base class: controls + mode switch + header + one FigureWidget + a table, built once.

    Subclasses set ``title`` and implement:

    * ``make_controls() -> {param_name: widget}``: each widget's ``value`` is passed to
      ``run`` under its name;
    * ``run(params, mode) -> Result``: one call into ``tcplab.experiments``;
    * ``figure(result) -> plotly Figure``: a pure function from ``tcplab.viz``;
    * optionally ``table(result) -> DataFrame | None`` (default: the first table) and
      ``expected_s(params, mode) -> float`` (how long a run takes; over a second, the progress
      bar shows).

    ``live=True`` re-runs on every control change (sliders have ``continuous_update=False``);
    ``live=False`` waits for the Run button (long real runs). ``progress_bar=True`` adds a
    :class:`ProgressBar` (``self.progress``), shown while a run expected to last over a second runs.

    **The one path from a control change to the figure** (every panel, hand-written or derived
    from a spec): in a notebook the change is handled in a helper thread, so the kernel keeps
    reading slider messages. The thread waits until the controls have been still for
    ``debounce_s`` (four arrow-key presses in a row are one run), runs once with the newest
    values, and if values changed meanwhile drops that result (``superseded``) and runs again.
    While it waits or runs, the old figure is greyed (it no longer shows the controls' values);
    an error (settings the kernel refuses, real mode unavailable) clears the figure and says in
    words what happened. Outside a kernel (tests, scripts) a change runs at once, in the caller.

    After construction ``.result`` is the first run's Result (``run_first=True``), ``.fig`` the
    FigureWidget, ``.controls`` the dict of controls, ``.mode`` the toggle, ``.header`` the HTML
    header, ``.widget`` the whole box. ``.update()`` re-runs and redraws; ``.error`` is the
    last error shown (or None; after an error ``.result`` is None, never the previous settings'
    Result); ``.runs_started`` counts runs started, ``.runs`` runs drawn.
    """

    title: str = ""
    live: bool = True
    progress_bar: bool = False
    #: run control changes in a helper thread (newest value wins); None: only inside a kernel
    background: bool | None = None
    #: seconds of stillness before a background run starts (see the class docstring)
    debounce_s: float = DEBOUNCE_S

    def __init__(self, *, mode: str = "auto", run_first: bool = True, **values: Any) -> None:
        import plotly.graph_objects as go

        self.controls: dict[str, W.ValueWidget] = self.make_controls()
        for k, v in values.items():
            if k not in self.controls:
                raise ValueError(f"{type(self).__name__} has no control {k!r} (controls: {', '.join(self.controls)})")
            self.controls[k].value = v
        self.mode = mode_toggle(mode)
        self.header = W.HTML("")
        self.table_out = W.HTML("")
        #: the figure's text alternative (viz.common.alt_text), under it, opened on request
        self.alt = W.HTML("")
        self.progress = ProgressBar() if self.progress_bar else None
        self.result: Result | None = None
        self.error: BaseException | None = None
        self.runs = 0
        self.runs_started = 0    # runs started (a superseded run counts here, not in runs)
        self.superseded = 0      # background runs whose result was dropped for a newer value
        self._lock = threading.RLock()
        self._changes = 0
        self._last_change = 0.0
        self._worker: threading.Thread | None = None
        self.fig = go.FigureWidget(layout={"width": PANEL_FIG_WIDTH, "template": "plotly_white"})
        self.fig_box = W.Box([self.fig])
        self.button = run_button("Run", self.update)
        box = [W.HTML(_STALE_CSS)]
        if self.title:
            box.append(panel_heading(self.title))
        box += [W.VBox(list(self.controls.values())), W.HBox([self.mode, self.button])]
        if self.progress is not None:
            self.progress.widget.layout.display = "none"
            box.append(self.progress.widget)
        self._timeline_init()
        box += [self.header, self.fig_box, self.alt, self.timeline_toggle, self.timeline_box, self.table_out]
        # the A11y script names the sliders, says which toggle is pressed and labels the figure
        self.widget = accessible(W.VBox(box))
        if self.live:
            for c in [*self.controls.values(), self.mode]:
                c.observe(self._on_change, names="value")
        if run_first:
            self.update()

    # -- the timeline view ---------------------------------------------------------
    def _timeline_init(self) -> None:
        """The "Timeline" toggle under the figure and the (empty) box it opens; nothing is drawn until it
        is opened (the timeline's figure is the costliest of a panel)."""
        #: pressed: the current Result's connection timeline (:func:`tcplab.timeline_of`) is drawn under
        #: the figure, and redrawn on each new run while open. Hidden for an experiment without one
        #: connection (:data:`tcplab.experiments.timeline.CONNECTIONLESS`)
        self.timeline_toggle = W.ToggleButton(
            value=False, description="Timeline", icon="",
            tooltip="show this run's connection on one time axis: segments, TCP states, TCP_INFO, queues",
            layout=W.Layout(width="auto", display="none"))
        self.timeline_toggle.add_class("tcplab-timeline-toggle")
        #: the timeline's own figure (made at the first opening), its words (notes, or why there is none)
        #: and its text alternative
        self.timeline_fig: Any = None
        self.timeline_note = W.HTML("")
        self.timeline_alt = W.HTML("")
        self.timeline_box = W.VBox([self.timeline_note], layout=W.Layout(display="none"))
        self.timeline_draws = 0       # timelines drawn (a test reads it: lazily, once per run while open)
        self._timeline_of: Result | None = None   # the Result the timeline shows
        self.timeline_toggle.observe(self._timeline_toggled, names="value")

    def _timeline_offered(self, result: Result | None) -> bool:
        from tcplab.experiments.timeline import CONNECTIONLESS

        return result is not None and result.name not in CONNECTIONLESS

    def _timeline_toggled(self, change: Mapping[str, Any]) -> None:
        self.timeline_box.layout.display = None if change["new"] else "none"
        if change["new"]:
            self._draw_timeline(self.result)

    def _draw_timeline(self, result: Result | None) -> None:
        """Draw ``result``'s timeline in the open box (once per Result); words instead where it has none."""
        if result is None or result is self._timeline_of or not self.timeline_toggle.value:
            return
        from tcplab.experiments.timeline import timeline_of
        from tcplab.viz.timeline import timeline_figure

        self._timeline_of = result
        try:
            tl = timeline_of(result)
        except ValueError as e:       # a Result without a connection's data (e.g. no capture allowed): say why
            self.timeline_box.children = (self.timeline_note,)
            self.timeline_note.value = (f"<div style='color:#57606a'>No timeline for this run: "
                                        f"{html.escape(str(e))}</div>")
            return
        fig = timeline_figure(tl)
        fig.update_layout(width=PANEL_FIG_WIDTH)
        import plotly.graph_objects as go

        if self.timeline_fig is None:
            self.timeline_fig = go.FigureWidget(layout={"width": PANEL_FIG_WIDTH, "template": "plotly_white"})
        sync_figure(self.timeline_fig, fig)
        self.timeline_draws += 1
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in tl.notes)
        self.timeline_note.value = (f"<div style='font-size:smaller;color:#57606a'>{html.escape(repr(tl))}"
                                    f"{f'<ul>{notes}</ul>' if notes else ''}</div>")
        self.timeline_alt.value = caption_html(alt_text(fig))
        self.timeline_box.children = (self.timeline_fig, self.timeline_alt, self.timeline_note)

    def _timeline_update(self, result: Result | None) -> None:
        """After a run (or an error): offer the toggle where the Result has a connection; redraw if open."""
        if result is None:            # an error: the old timeline is not the answer to these settings either
            self._timeline_of = None
            self.timeline_box.children = (self.timeline_note,)
            self.timeline_note.value = "<div style='color:#57606a'>No timeline: no result for these settings.</div>"
            return
        offered = self._timeline_offered(result)
        self.timeline_toggle.layout.display = None if offered else "none"
        if not offered:
            self.timeline_toggle.value = False
            self._timeline_of = None
            return
        self._draw_timeline(result)

    # -- to implement -------------------------------------------------------------
    def make_controls(self) -> dict[str, W.ValueWidget]:
        raise NotImplementedError

    def run(self, params: dict[str, Any], mode: str) -> Result:
        raise NotImplementedError

    def figure(self, result: Result) -> go.Figure:
        raise NotImplementedError

    def table(self, result: Result) -> pd.DataFrame | None:
        return next(iter(result.tables.values()), None)

    def expected_s(self, params: dict[str, Any], mode: str) -> float:
        """How long a run with ``params`` in ``mode`` is expected to take (0: unknown or instant)."""
        return 0.0

    # -- machinery ----------------------------------------------------------------
    @property
    def params(self) -> dict[str, Any]:
        """The controls' current values, by parameter name."""
        return {k: c.value for k, c in self.controls.items()}

    @property
    def stale(self) -> bool:
        """True while the figure does not show the controls' values (greyed in the notebook)."""
        return "tcplab-stale" in self.fig_box._dom_classes

    def _set_stale(self, stale: bool) -> None:
        if stale and not self.stale:
            self.fig_box.add_class("tcplab-stale")
            self.timeline_box.add_class("tcplab-stale")
        elif not stale and self.stale:
            self.fig_box.remove_class("tcplab-stale")
            self.timeline_box.remove_class("tcplab-stale")

    def _on_change(self, change: Mapping[str, Any]) -> None:
        if not self._background():
            self.update()
            return
        with self._lock:
            self._changes += 1
            self._last_change = time.monotonic()
            self._set_stale(True)
            self.header.value = "<i>running… (once the controls settle)</i>"
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name=f"{type(self).__name__}-run", daemon=True)
                self._worker.start()

    def _background(self) -> bool:
        if self.background is not None:
            return self.background
        try:
            from IPython import get_ipython
        except ImportError:     # pragma: no cover - ipywidgets depends on IPython
            return False
        return getattr(get_ipython(), "kernel", None) is not None

    def _settle(self) -> None:
        """Return once no control has changed for ``debounce_s`` (a learner still pressing arrow
        keys keeps it waiting; each press restarts the wait). Not in sim mode: a simulated run
        costs milliseconds, less than the wait, and supersede alone keeps the newest value."""
        while True:
            with self._lock:
                if self.mode.value == "sim":
                    return
                left = self.debounce_s - (time.monotonic() - self._last_change)
            if left <= 0:
                return
            time.sleep(min(left, 0.1))

    def _work(self) -> None:
        while True:
            self._settle()
            with self._lock:
                seen, params, mode = self._changes, self.params, self.mode.value
            self.header.value = "<i>running…</i>"
            try:
                result: Result | BaseException = self._run_now(params, mode)
            except Exception as e:      # noqa: BLE001 - shown in the header: a thread has nobody to raise to
                result = e
            with self._lock:
                if seen != self._changes:
                    self.superseded += 1
                    continue            # newer values came in meanwhile: run again with them
                self._worker = None
                self._show(result)
                return

    def wait(self, timeout: float = 120.0) -> Result | None:
        """Wait until a background run started by a control change is drawn (tests, scripts); the
        Result drawn, or None when the run ended in an error (``.error`` says which)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            worker = self._worker
            if worker is None:
                break
            worker.join(max(0.0, deadline - time.monotonic()))
        return self.result

    def _run_now(self, params: dict[str, Any], mode: str) -> Result | BaseException:
        self.runs_started += 1
        if self.progress is not None:
            self.progress.reset()
            try:
                show = self.expected_s(params, mode) > PROGRESS_FROM_S
            except Exception:  # noqa: BLE001 - bad values: run() says why, in the header
                show = False
            self.progress.widget.layout.display = None if show or type(self).expected_s is Panel.expected_s else "none"
        try:
            return self.run(params, mode)
        except SHOWN_ERRORS as e:
            return e

    def _show(self, result: Result | BaseException) -> None:
        if isinstance(result, BaseException):
            self.error = result
            # the previous Result is not the answer to these settings: a script reading ``.result`` (or
            # ``wait()``) after an error must not take it for this run's (issue 20: a refused BBR run read
            # as the two-flow CUBIC run before it)
            self.result = None
            self.clear(error_words(result))
            self.header.value = error_header(result)
            return
        self.runs += 1
        self.error = None
        self.result = result
        if self.progress is not None and result.mode == "sim" and type(self).expected_s is not Panel.expected_s:
            self.progress.widget.layout.display = "none"    # auto mode simulated: no real run to follow
        self.draw(result)

    def clear(self, why: str) -> None:
        """Empty the figure and the table, and write ``why`` where the chart was: after an error
        the old figure must not stand as if it were the answer to the new settings."""
        import textwrap

        lines = "<br>".join(html.escape(x) for x in textwrap.wrap(why, 90)[:6])
        with self.fig.batch_update():
            self.fig.data = ()
            self.fig.layout.shapes = ()
            self.fig.layout.annotations = ()
            self.fig.layout.update(
                title={"text": "no result for these settings", "x": 0.01, "xanchor": "left"},
                xaxis={"visible": False}, yaxis={"visible": False}, showlegend=False,
                annotations=[{"text": lines, "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.5,
                              "y": 0.5, "font": {"size": 14, "color": "#57606a"}}])
        self.table_out.value = ""
        self.alt.value = caption_html(f"No result for these settings: {why}")
        self._timeline_update(None)
        self._set_stale(False)

    def draw(self, result: Result) -> None:
        """Show ``result``: figure (one ``batch_update``), header, table. Subclasses may add to it.

        Everything is computed first (building the plotly figure is most of a sim-mode update),
        then sent in three messages back to back, the figure first: the browser starts its redraw
        (the slowest step on its side) at once, and header, chart and table change together
        instead of a new header sitting over the old chart.
        """
        fig = self.figure(result)
        alt = caption_html(alt_text(fig))
        table = table_html(self.table(result))
        header = header_html(result)
        if self.fig.layout.xaxis.visible is False:     # after clear(): axes, legend and title back
            self.fig.layout.update(xaxis={"visible": None}, yaxis={"visible": None}, showlegend=None, title=None)
        sync_figure(self.fig, fig)
        self.header.value = header
        self.alt.value = alt
        self.table_out.value = table
        self._timeline_update(result)
        self._set_stale(False)

    def update(self) -> Result | None:
        """Run the experiment with the current values and redraw, in this thread."""
        self.button.disabled = True
        self.header.value = "<i>running…</i>"
        self._set_stale(True)
        try:
            result = self._run_now(self.params, self.mode.value)
        finally:
            self.button.disabled = False
        self._show(result)
        return None if isinstance(result, BaseException) else result

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget)


def _fmt(template: str, values: Mapping[str, Any]) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError) as e:
        raise ValueError(f"template {template!r} uses {e} which is not among {sorted(values)}") from None


class SelfCheck:
    """A prediction exercise: random parameters, your numeric answer, the real (or simulated) run.

    experiment:  e.g. ``tcplab.experiments.accept_queue``; called as
                 ``experiment(**params, mode=<toggle>)``.
    question:    text with ``{param}`` fields, e.g. ``"listen({backlog}), {clients} clients: how
                 many clients end ESTABLISHED?"``.
    choices:     ``{param: sequence}``; each exercise draws one value per parameter with ``rng``.
    answer:      a summary key of the Result, or ``callable(result) -> number``.
    explanation: shown when the answer is wrong (and, shorter, when right); may use ``{param}``,
                 ``{expected}``, ``{yours}`` and summary keys.
    fixed:       parameters that do not vary.
    derived:     ``{param: callable(params) -> value}`` computed after drawing (e.g. a
                 condition between two drawn values); optional.
    rng:         an ``int`` seed or a ``random.Random``: same seed, same exercises.
    tolerance:   accepted absolute error (e.g. 0.5 s for a time).

    >>> from tcplab.experiments.result import Result
    >>> fake = lambda mode, **p: Result("demo", "sim", "test", p, summary={"n": p["k"] + 1})
    >>> q = SelfCheck(fake, "k={k}: n?", {"k": [3]}, "n", "n is k+1 = {expected}", rng=0)
    >>> q.params, q.question.value
    ({'k': 3}, '<b>k=3: n?</b>')
    >>> q.answer.value = 4; q.check()
    True
    >>> q.answer.value = 3; q.check(), "k+1 = 4" in q.feedback.value
    (False, True)
    """

    def __init__(self, experiment: Callable[..., Result], question: str, choices: Mapping[str, Sequence[Any]],
                 answer: str | Callable[[Result], float], explanation: str, *,
                 fixed: Mapping[str, Any] | None = None,
                 derived: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None,
                 rng: int | random.Random | None = None, mode: str = "auto", tolerance: float = 0.0,
                 title: str = "Self-check: predict, then check") -> None:
        self.experiment = experiment
        self.question_template = question
        self.choices = {k: list(v) for k, v in choices.items()}
        for k, v in self.choices.items():
            if not v:
                raise ValueError(f"choices[{k!r}] is empty")
        self.answer_of = answer
        self.explanation = explanation
        self.fixed = dict(fixed or {})
        self.derived = dict(derived or {})
        self.rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        self.tolerance = float(tolerance)
        self.params: dict[str, Any] = {}
        self.result: Result | None = None
        self.expected: float | None = None
        self.correct: bool | None = None

        self.question = W.HTML("")
        self.answer = W.FloatText(value=0, description="your answer", style={"description_width": "initial"},
                                  layout=W.Layout(width="220px"))
        self.mode = mode_toggle(mode)
        self.check_button = run_button("Check", self.check, tooltip="run the experiment and compare")
        self.new_button = W.Button(description="New question", icon="refresh")
        self.new_button.on_click(lambda _b: self.new_question())
        self.header = W.HTML("")
        self.feedback = W.HTML("")
        self.widget = accessible(W.VBox([panel_heading(title), self.question,
                                         W.HBox([self.answer, self.check_button, self.new_button]), self.mode,
                                         self.header, self.feedback],
                                        layout=W.Layout(border="1px solid #d0d7de", padding="6px")))
        self.new_question()

    def new_question(self) -> dict[str, Any]:
        """Draw new parameters (and clear the last check)."""
        p = {k: self.rng.choice(v) for k, v in self.choices.items()}
        p.update(self.fixed)
        for k, f in self.derived.items():
            p[k] = f(p)
        self.params = p
        self.result, self.expected, self.correct = None, None, None
        self.question.value = f"<b>{html.escape(_fmt(self.question_template, p))}</b>"
        self.header.value = ""
        self.feedback.value = ""
        return p

    def check(self, answer: float | None = None) -> bool | None:
        """Run the experiment and compare with ``answer`` (default: the text box). None on error."""
        if answer is not None:
            self.answer.value = answer
        yours = self.answer.value
        self.check_button.disabled = True
        self.header.value = "<i>running…</i>"
        try:
            result = self.experiment(**self.params, mode=self.mode.value)
        except SHOWN_ERRORS as e:
            self.header.value = error_header(e)
            self.feedback.value = ""
            return None
        finally:
            self.check_button.disabled = False
        self.result = result
        self.header.value = header_html(result)
        expected = result.summary[self.answer_of] if isinstance(self.answer_of, str) else self.answer_of(result)
        self.expected = expected
        ok = expected is not None and abs(float(yours) - float(expected)) <= self.tolerance + 1e-9
        self.correct = ok
        from tcplab.observe import record_self_check  # ~/.tcplab/progress.jsonl on a workshop hub
        record_self_check(getattr(self.experiment, "__name__", "?"), self.params, _num(yours), _num(expected), ok,
                          result.mode)
        values = {**dict(result.summary),
                  **self.params, "expected": _num(expected), "yours": _num(yours)}
        why = html.escape(_fmt(self.explanation, values))
        graded = graded_by(result)
        if ok:
            self.feedback.value = (f"<div style='color:{REAL_COLOR}'>✅ <b>Right: {_num(expected)}.</b> "
                                   f"{why}</div>{graded}")
        else:
            self.feedback.value = (f"<div style='color:{ERROR_COLOR}'>❌ <b>You said {_num(yours)}; the "
                                   f"{'kernel' if result.mode == 'real' else 'simulator'} says "
                                   f"{_num(expected)}.</b></div><div>{why}</div>{graded}")
        return ok

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget)


def graded_by(result: Result) -> str:
    """One line saying who graded a self-check: the real kernel, or the simulator and why.

    >>> from tcplab.experiments.result import Result
    >>> graded_by(Result("nagle", "sim", "simulator asked for", {}, profile="linux-6.18"))
    '<div><small><b>Graded by the SIMULATOR</b> (profile linux-6.18): simulator asked for</small></div>'
    """
    esc = html.escape
    if result.mode == "real":
        return (f"<div><small><b>Graded by the REAL kernel</b> (Linux {esc(str(result.kernel))}): "
                f"{esc(result.reason)}</small></div>")
    return (f"<div><small><b>Graded by the SIMULATOR</b> (profile {esc(str(result.profile))}): "
            f"{esc(result.reason)}</small></div>")


def _num(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v
