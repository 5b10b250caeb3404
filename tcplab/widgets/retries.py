"""SYN retries panel (notebook 05): slider TCP_SYNCNT, a progress bar for real runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as W

from tcplab.widgets.common import Panel, int_slider

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from tcplab.experiments.result import Result

__all__ = ["SynRetriesPanel"]

#: the "default" choice of tcp_syn_linear_timeouts (passed on as None)
DEFAULT = -1


class SynRetriesPanel(Panel):
    """Slider retries (TCP_SYNCNT) and linear_timeouts -> syn_retries(), drawn as a timeline.

    Like every panel it runs again when a slider is released. Real runs take as long as the
    kernel waits (k=2: 7 s, k=6: 134 s), so it shows a progress bar, and a newer slider value
    supersedes a run still in flight. In sim mode time costs nothing (``max_seconds`` is lifted);
    in real and auto mode runs longer than ``max_seconds`` are refused.
    """

    title = "SYN retransmissions: move a slider, the experiment runs again"
    progress_bar = True
    max_seconds = 20.0

    def make_controls(self) -> dict[str, W.ValueWidget]:
        return {
            "retries": int_slider("retries", 2, 1, 8, description="TCP_SYNCNT (retries)"),
            # a Dropdown shows an empty box for an option whose value is None: "default" is -1 here
            "linear_timeouts": W.Dropdown(options=[("default (4 on 6.x)", DEFAULT), ("0 (older kernels)", 0),
                                                   ("4", 4)], value=DEFAULT, description="tcp_syn_linear_timeouts",
                                          style={"description_width": "initial"}),
        }

    def __init__(self, **kw: Any) -> None:
        if "linear_timeouts" in kw and kw["linear_timeouts"] is None:
            kw["linear_timeouts"] = DEFAULT
        super().__init__(**kw)

    def run(self, params: dict[str, Any], mode: str) -> Result:
        from tcplab.experiments import syn_retries
        params = dict(params)
        if params.get("linear_timeouts") in (None, DEFAULT):
            params["linear_timeouts"] = None     # the kernel's (or profile's) default
        limit = 86400 if mode == "sim" else self.max_seconds
        return syn_retries(**params, max_seconds=limit, progress=self.progress, mode=mode)

    def figure(self, result: Result) -> go.Figure:
        from tcplab.viz.retries import syn_timeline
        return syn_timeline(result)

    def table(self, result: Result) -> pd.DataFrame | None:
        return result.tables.get("syns")
