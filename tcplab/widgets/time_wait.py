"""Panels for notebook 07 (TIME_WAIT and ephemeral ports).

* :class:`TimeWaitPanel`  sliders connections, ports (size of ip_local_port_range) and
                          tw_reuse -> ``experiments.time_wait`` -> the pile-up chart.
* :class:`RebindPanel`    old / new SO_REUSEADDR, who closes first, old listener still open ->
                          ``experiments.rebind``; the 2x2 matrix fills in as you try combinations.

>>> p = TimeWaitPanel(mode="sim", ports=10, tw_reuse=0)      # doctest: +SKIP
>>> p.result.summary["connections_made"]                      # doctest: +SKIP
10
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as W

from tcplab.experiments.time_wait import time_wait
from tcplab.viz.time_wait import pile_up, rebind_matrix
from tcplab.widgets.common import float_slider, int_slider
from tcplab.widgets.generic import ExperimentPanel

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from tcplab.experiments.result import Result

__all__ = ["TimeWaitPanel", "RebindPanel", "FIRST_PORT", "port_range_quiz"]

#: the small port range starts here (ip_local_port_range = FIRST_PORT .. FIRST_PORT + ports - 1)
FIRST_PORT = 40000


class TimeWaitPanel(ExperimentPanel):
    """Connect-and-close in a loop with a tiny ephemeral port range (``ports`` sets
    ip_local_port_range to FIRST_PORT .. FIRST_PORT + ports - 1)."""

    START: dict[str, Any] = {"connections": 30, "ports": 10, "tw_reuse": 0, "duration": 1.5}

    def __init__(self, *, mode: str = "auto", run_first: bool = True, **values: Any) -> None:
        super().__init__(
            "time_wait", mode=mode, run_first=run_first, figure=pile_up, table=time_wait_table,
            title="TIME_WAIT pile-up: connect, close first, repeat",
            controls=("connections", "ports", "tw_reuse", "duration"),
            widgets={
                "connections": int_slider("connections", 30, 1, 100, description="connections wanted"),
                "ports": int_slider("ports", 10, 2, 50, description="ports in ip_local_port_range"),
                "tw_reuse": W.ToggleButtons(options=[0, 1, 2], value=0, description="tcp_tw_reuse",
                                            tooltips=["off", "on", "loopback only (default)"],
                                            style={"button_width": "40px", "description_width": "initial"}),
                "duration": float_slider("duration", 1.5, 0.5, 5.0, 0.5, description="give up after (s)"),
            },
            **{**self.START, **values})

    def arguments(self, params: dict[str, Any], mode: str = "auto") -> dict[str, Any]:
        args = super().arguments(params, mode)
        n = args.pop("ports")
        args["port_range"] = (FIRST_PORT, FIRST_PORT + n - 1)
        return args


def time_wait_table(result: Result) -> pd.DataFrame | None:
    """The pile-up panel's table: the connect attempts (from t = 0)."""
    if "attempts" in result.tables:
        df = result.tables["attempts"]
        return df[df["t"] >= 0] if "t" in df.columns else df
    return next(iter(result.tables.values()), None)


class RebindPanel(ExperimentPanel):
    """Restart a server on its port; each run fills one cell of the old x new SO_REUSEADDR grid
    (for the current 'who closes first' / 'old listener open' settings)."""

    START: dict[str, Any] = {"old_reuseaddr": True, "new_reuseaddr": True, "closer": "server",
                             "old_listener_open": False}

    def __init__(self, *, mode: str = "auto", run_first: bool = True, **values: Any) -> None:
        self.history: dict[tuple[Any, ...], Result] = {}
        box = {"indent": False, "layout": W.Layout(width="auto")}
        super().__init__(
            "rebind", mode=mode, run_first=run_first,
            title="Restart the server on the same port: bound or EADDRINUSE?",
            controls=("old_reuseaddr", "new_reuseaddr", "closer", "old_listener_open"),
            widgets={
                "old_reuseaddr": W.Checkbox(value=True, description="old server set SO_REUSEADDR", **box),
                "new_reuseaddr": W.Checkbox(value=True, description="new server sets SO_REUSEADDR", **box),
                "closer": W.ToggleButtons(options=["server", "client"], value="server", description="closes first",
                                          style={"button_width": "70px", "description_width": "initial"}),
                "old_listener_open": W.Checkbox(value=False, description="old listener still open", **box),
            },
            **{**self.START, **values})

    def run(self, params: dict[str, Any], mode: str) -> Result:
        r = super().run(params, mode)
        p = r.params
        self.history[(p["closer"], p["old_listener_open"], p["old_reuseaddr"], p["new_reuseaddr"])] = r
        return r

    def figure(self, result: Result) -> go.Figure:
        p = result.params
        same = [r for (closer, open_, _, _), r in self.history.items()
                if closer == p["closer"] and open_ == p["old_listener_open"]]
        fig = rebind_matrix(same)
        if p["old_listener_open"]:
            fig.layout.title.text += " — old listener still open"
        return fig


def port_range_quiz(mode: str = "auto", rng: int | None = None) -> Any:
    """Self-check: with a tiny ip_local_port_range and tcp_tw_reuse=0, how many connects work?"""
    from tcplab.widgets.common import SelfCheck

    return SelfCheck(
        time_wait,
        "ip_local_port_range = {port_range}, tcp_tw_reuse = 0, the client wants {connections} connections "
        "within 1.5 s and closes each one first. How many connects succeed?",
        {"port_range": [(40000, 40002), (40000, 40004), (40000, 40007), (40000, 40011)],
         "connections": [4, 6, 10, 15]},
        "connections_made",
        "Each connection leaves its client port in TIME_WAIT for 60 s (TCP_TIMEWAIT_LEN), and with "
        "tcp_tw_reuse=0 tcp_twsk_unique() never hands such a port out again: at most one connect per port, "
        "so min(ports, connections) = {expected}; later attempts fail with EADDRNOTAVAIL.",
        fixed={"tw_reuse": 0, "duration": 1.5}, mode=mode, rng=rng,
        title="Self-check: how far does a small port range go?")
