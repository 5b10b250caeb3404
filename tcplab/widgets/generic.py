"""A panel for any experiment, built from its spec: one control per parameter that has a
slider hint (log-scale sliders keep every small value reachable), the mode switch, the
REAL/SIMULATED header, the spec's figure and the first table.

>>> from tcplab.widgets.generic import ExperimentPanel
>>> p = ExperimentPanel("accept_queue", mode="sim", backlog=3, clients=10)
>>> p.result.summary["established_clients"]
4
>>> p.controls["somaxconn"].value = 2          # a learner picks somaxconn=2 on the log slider
>>> _ = p.wait()                                # the run happens in the background
>>> p.result.summary["established_clients"]
3

Every experiment panel of the course is this class: a new experiment gets it for free, and the
notebooks' named panels (``tcplab.widgets.AcceptQueuePanel``, ``SynQueuePanel``, ``TuningLab`` ...)
are it with a figure function, labels and a few bespoke widgets::

    ExperimentPanel("accept_queue", figure=viz.accept_queue_fill, table="clients",
                    labels={"backlog": "listen() backlog"}, controls=("backlog", "somaxconn", "clients"))

so every panel runs through one path (debounce, supersede, errors in words, progress bar;
:class:`~tcplab.widgets.common.Panel`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from tcplab.experiments.registry import run as registry_run
from tcplab.experiments.registry import spec
from tcplab.experiments.spec import Param
from tcplab.viz.generic import experiment_figure, experiment_table
from tcplab.widgets.common import SIM_COLOR, Panel, float_slider, header_html, int_slider

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from tcplab.experiments.result import Result

__all__ = ["ExperimentPanel", "control_for"]

_WIDTH = W.Layout(width="420px")
#: in auto mode, a real run expected to take longer than this (s) shows the simulator's answer first
PREVIEW_FROM_S = 3.0
#: what a control shows for None ("the kernel's default"); ipywidgets' selections cannot hold None
DEFAULT = "default"
_STYLE = {"description_width": "initial"}


def _label(p: Param) -> str:
    return f"{p.name} ({p.unit})" if p.unit else p.name


def _default_label(p: Param) -> str:
    """The "default" stop's label: with the kernel's value where the parameter is a sysctl the
    default kernel profile knows (``"default (15)"`` for tcp_retries2), so a learner sees the number.

    >>> from tcplab.experiments.registry import spec
    >>> _default_label(spec("retransmission").param("retries2"))
    'default (15)'
    """
    if p.sysctl is None:
        return DEFAULT
    from tcplab.model.profiles import get_profile

    v = get_profile(None).sysctls().get(p.sysctl)
    return DEFAULT if v is None else f"{DEFAULT} ({v})"


def control_for(p: Param, value: Any = None) -> W.ValueWidget | None:
    """The widget for parameter ``p`` starting at ``value`` (default: ``p.default``), or None when
    the spec gives no way to offer it (no slider hint for a number, a port range).

    >>> from tcplab.experiments.spec import Param, Slider
    >>> c = control_for(Param("somaxconn", "int", None, lo=1, hi=65535, optional=True,
    ...                       slider=Slider(1, 4096, scale="log")))
    >>> c.value, c.options[:4]
    ('default', (('default', 'default'), ('1', 1), ('2', 2), ('3', 3)))
    """
    value = p.default if value is None else value
    default_label = _default_label(p)
    if p.kind == "bool":
        return W.Checkbox(value=bool(value), description=_label(p), style=_STYLE, indent=False)
    if p.kind == "choice":
        opts = [(default_label, DEFAULT)] if p.optional else []
        opts += [(str(c), c) for c in p.choices]
        return W.ToggleButtons(options=opts, value=DEFAULT if value is None else value, description=_label(p),
                               style=_STYLE)
    if p.kind not in ("int", "float") or p.slider is None:
        return None
    sl = p.slider
    if sl.scale == "log" or p.optional:
        opts = [(str(v), int(v) if p.kind == "int" else float(v)) for v in sl.options()]
        if p.optional:
            opts.insert(0, (default_label, DEFAULT))
        values = [v for _, v in opts]
        if value is None:
            value = DEFAULT
        elif value not in values:  # a value between two stops: show the nearest
            value = min((v for v in values if v != DEFAULT), key=lambda v: abs(v - value))
        # readout on: a log slider's stops are uneven, so the learner must see the value picked
        return W.SelectionSlider(options=opts, value=value, description=_label(p), continuous_update=False,
                                 readout=True, style=_STYLE, layout=W.Layout(width="480px"))
    if p.kind == "int":
        return int_slider(p.name, int(value), int(sl.lo), int(sl.hi), int(sl.step), description=_label(p))
    return float_slider(p.name, float(value), sl.lo, sl.hi, sl.step, description=_label(p))


class ExperimentPanel(Panel):
    """Sliders from the spec of experiment ``name``; the spec's figure; re-runs on release.

    ``controls``: parameter names to offer (default: every parameter the spec can offer).
    ``figure``: a ``Result -> Figure`` function to draw instead of the spec's (a panel whose
    story needs its own figure); ``table``: a table name or ``Result -> DataFrame`` function.
    ``title``: the heading (default: the spec's title). Other keyword values set a control's
    start value or fix a parameter without a control.

    Every real run reports progress; a run expected to last over a second shows the bar.
    """

    def __init__(self, name: str, *, mode: str = "auto", controls: tuple[str, ...] | None = None,
                 run_first: bool = True, figure: Callable[[Result], go.Figure] | None = None,
                 table: str | Callable[[Result], pd.DataFrame | None] | None = None, title: str | None = None,
                 labels: Mapping[str, str] | None = None, widgets: Mapping[str, W.ValueWidget] | None = None,
                 **values: Any) -> None:
        self.spec = spec(name)
        self.title = self.spec.title if title is None else title
        self._labels = dict(labels or {})
        self._bespoke = dict(widgets or {})
        self.live = True
        self.progress_bar = True
        self._figure_fn = figure
        self._table_of = table
        known = {p.name for p in self.spec.params}
        # a bespoke control that is no parameter (``ports`` for a port range): arguments() maps it
        self._extra = {k: values.pop(k) for k in list(values) if k in self._bespoke and k not in known}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{name} has no parameter {', '.join(map(repr, unknown))} (allowed: {', '.join(known)})")
        if controls is not None:
            bad = sorted(set(controls) - known - set(self._bespoke))
            if bad:
                raise ValueError(f"controls must name parameters of {name}, not {', '.join(map(repr, bad))}")
        self._offered = controls
        self.previewed: Result | None = None   # the simulator's answer drawn while a long real run ran
        self._start = self.spec.validate(values)  # bad start values fail here, before any widget
        self.fixed = {k: v for k, v in self._start.items()}
        super().__init__(mode=mode, run_first=run_first)

    def make_controls(self) -> dict[str, W.ValueWidget]:
        """One control per offered parameter, in the order of ``controls`` (else the spec's): a
        bespoke widget where given (its value ``"default"`` means None), else the spec's."""
        names = self._offered if self._offered is not None else tuple(p.name for p in self.spec.params)
        out = {}
        for name in names:
            start = self._start.get(name)
            if name in self._bespoke:
                c = self._bespoke[name]
                if name in self._start or name in self._extra:
                    start = self._extra.get(name, start)
                    c.value = DEFAULT if start is None else start
            else:
                c = control_for(self.spec.param(name), start)
            if c is None:
                continue
            if name in self._labels:
                c.description = self._labels[name]
            out[name] = c
        return out

    def arguments(self, params: dict[str, Any], mode: str = "auto") -> dict[str, Any]:
        """The experiment's arguments for the controls' values ``params`` in ``mode`` (fixed values
        first); a panel that adapts arguments to the mode (a longer ``max_seconds`` in sim) overrides it."""
        return {**self.fixed, **{k: None if v == DEFAULT else v for k, v in params.items()}}

    def run(self, params: dict[str, Any], mode: str) -> Result:
        args = self.arguments(params, mode)
        if mode == "auto" and self._long_real(params, args):
            self.preview(registry_run(self.spec, args, mode="sim"))
        return registry_run(self.spec, args, mode=mode, progress=self.progress)

    def _long_real(self, params: dict[str, Any], args: dict[str, Any]) -> bool:
        """True when auto mode is about to start a real run longer than ``PREVIEW_FROM_S``."""
        from tcplab.experiments.decision import plan

        try:
            if self.expected_s(params, "auto") <= PREVIEW_FROM_S:
                return False
            return plan(self.spec, self.spec.validate(args), "auto", None).refusal is None
        except (ValueError, TypeError):
            return False            # bad values: the run itself says why

    def preview(self, result: Result) -> None:
        """Draw the simulator's answer at once while a long real run is under way (auto mode): the
        header says so, and the progress bar shows the real run; its result replaces this one."""
        self.previewed = result
        self.draw(result)
        secs = self.expected_s(self.params, "auto")
        self.header.value = (f"<div style='color:{SIM_COLOR}'><b>Showing the simulator's answer now;</b> the real "
                             f"kernel run (about {secs:.0f} s) is under way and will replace it.</div>"
                             + header_html(result))

    def expected_s(self, params: dict[str, Any], mode: str) -> float:
        if mode == "sim" or self.spec.expected_s is None:
            return 0.0
        return float(self.spec.expected_s(self.spec.validate(self.arguments(params, mode))))

    def figure(self, result: Result) -> go.Figure:
        if self._figure_fn is not None:
            return self._figure_fn(result)
        return experiment_figure(result)

    def table(self, result: Result) -> pd.DataFrame | None:
        t = self._table_of
        if callable(t):
            return t(result)
        if isinstance(t, str):
            return result.tables.get(t)
        return experiment_table(result)
