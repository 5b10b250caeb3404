"""SYN retries panel (notebook 05): the spec-derived panel with the SYN timeline figure."""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from tcplab.viz.retries import syn_timeline
from tcplab.widgets.generic import DEFAULT, ExperimentPanel

__all__ = ["SynRetriesPanel"]


class SynRetriesPanel(ExperimentPanel):
    """Slider retries (TCP_SYNCNT) and linear_timeouts -> syn_retries(), drawn as a timeline.

    Like every panel it runs again when a slider is released. Real runs take as long as the
    kernel waits (k=2: 7 s, k=6: 134 s), so it shows a progress bar, and a newer slider value
    supersedes a run still in flight. In sim mode time costs nothing (``max_seconds`` is lifted);
    in real and auto mode runs longer than ``max_seconds`` are refused.
    """

    max_seconds = 20.0

    def __init__(self, *, mode: str = "auto", run_first: bool = True, **values: Any) -> None:
        if values.get("linear_timeouts") == -1:
            values["linear_timeouts"] = None   # the old "default" sentinel
        super().__init__(
            "syn_retries", mode=mode, run_first=run_first, figure=syn_timeline, table="syns",
            title="SYN retransmissions: move a slider, the experiment runs again",
            controls=("retries", "linear_timeouts"), labels={"retries": "TCP_SYNCNT (retries)"},
            # a Dropdown shows an empty box for an option whose value is None: "default" is DEFAULT
            widgets={"linear_timeouts": W.Dropdown(options=[("default (4 on 6.x)", DEFAULT), ("0 (older kernels)", 0),
                                                            ("4", 4)], description="tcp_syn_linear_timeouts",
                                                   style={"description_width": "initial"})},
            **values)

    def arguments(self, params: dict[str, Any], mode: str = "auto") -> dict[str, Any]:
        args = super().arguments(params, mode)
        args["max_seconds"] = 86400 if mode == "sim" else self.max_seconds
        return args
