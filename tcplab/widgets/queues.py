"""Accept-queue and SYN-queue panels (notebooks 03 and 04).

>>> p = AcceptQueuePanel(mode="sim", backlog=3, clients=10)     # doctest: +SKIP
>>> p.controls["backlog"].value = 5; p.result.summary["established_clients"]   # doctest: +SKIP
6
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as W

from tcplab.widgets.common import Panel, float_slider, int_slider
from tcplab.widgets.generic import spec_control

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from tcplab.experiments.result import Result

__all__ = ["AcceptQueuePanel", "AckOverflowPanel", "SynQueuePanel"]

#: the "accept() from: never" choice (a Dropdown cannot display an option whose value is None)
NEVER = -1.0


class AcceptQueuePanel(Panel):
    """Sliders backlog, somaxconn, clients, abort_on_overflow, accept_after -> accept_queue()."""

    title = "Accept queue: move a slider, the experiment runs again"

    def __init__(self, **kw: Any) -> None:
        if "accept_after" in kw and kw["accept_after"] is None:
            kw["accept_after"] = NEVER      # AcceptQueuePanel(accept_after=None) means "never" too
        super().__init__(**kw)

    def make_controls(self) -> dict[str, W.ValueWidget]:
        return {
            "backlog": int_slider("backlog", 5, 0, 64, description="listen() backlog"),
            # log scale from the spec: 3 is as easy to pick as 4096
            "somaxconn": spec_control("accept_queue", "somaxconn", 4096, description="net.core.somaxconn"),
            "clients": int_slider("clients", 20, 1, 100, description="clients"),
            "abort_on_overflow": W.Checkbox(value=False, description="tcp_abort_on_overflow", indent=False,
                                            layout=W.Layout(width="auto")),
            # ipywidgets shows an empty box for an option whose value is None, so "never" is
            # the sentinel -1.0 here and becomes accept_after=None in run()
            "accept_after": W.Dropdown(options=[("never", NEVER), ("0.5 s", 0.5), ("1.0 s", 1.0)], value=NEVER,
                                       description="accept() from", style={"description_width": "initial"}),
        }

    def run(self, params: dict[str, Any], mode: str) -> Result:
        from tcplab.experiments import accept_queue
        params = dict(params)
        if params.get("accept_after") in (None, NEVER):
            params["accept_after"] = None
        return accept_queue(**params, settle=1.5, mode=mode)

    def figure(self, result: Result) -> go.Figure:
        from tcplab.viz.queues import accept_queue_fill
        return accept_queue_fill(result)

    def table(self, result: Result) -> pd.DataFrame | None:
        return result.tables.get("clients")


class AckOverflowPanel(Panel):
    """tcp_abort_on_overflow, syncookies, backlog, burst -> ack_overflow() (a slowed loopback).

    A burst larger than the run allows for the backlog (2·(backlog+1), at most 12) is clamped,
    and the header says so, rather than refusing a slider position.
    """

    title = "The final ACK meets a full accept queue (loopback in slow motion)"

    def make_controls(self) -> dict[str, W.ValueWidget]:
        return {
            "abort_on_overflow": W.Checkbox(value=False, description="tcp_abort_on_overflow", indent=False,
                                            layout=W.Layout(width="auto")),
            "syncookies": W.ToggleButtons(options=[0, 1, 2], value=1, description="tcp_syncookies",
                                          style={"description_width": "initial", "button_width": "40px"}),
            "backlog": int_slider("backlog", 4, 0, 8, description="listen() backlog (queue pre-filled)"),
            "burst": int_slider("burst", 6, 1, 12, description="clients in the burst"),
        }

    def run(self, params: dict[str, Any], mode: str) -> Result:
        from tcplab.experiments import ack_overflow
        from tcplab.experiments.ack_overflow import max_burst
        params = dict(params)
        hi = max_burst(params["backlog"])
        clamped = params["burst"] > hi
        params["burst"] = min(params["burst"], hi)
        r = ack_overflow(**params, mode=mode)
        if clamped:
            r.notes.append(f"burst clamped to {hi}: at most 2 x (backlog + 1) for this run")
        return r

    def figure(self, result: Result) -> go.Figure:
        from tcplab.viz.queues import ack_overflow_fates
        return ack_overflow_fates(result)

    def table(self, result: Result) -> pd.DataFrame | None:
        return result.tables.get("clients")


class SynQueuePanel(Panel):
    """Sliders backlog, tcp_max_syn_backlog, syncookies, synack_retries, clients, flood and
    ``settle`` (how long to watch) -> syn_queue().

    Watching 2 s or more draws SYN_RECV over time (:func:`~tcplab.viz.queues.syn_recv_over_time`),
    where ``tcp_synack_retries`` shows: a flood's requests leave at the SYN-ACK timer's 3rd, 7th,
    15th… second. Shorter, the snapshot bars (:func:`~tcplab.viz.queues.syn_queue_fill`).
    """

    title = "SYN queue: requests in SYN_RECV"
    #: watching at least this long draws the timeline
    TIMELINE_FROM_S = 2.0

    def make_controls(self) -> dict[str, W.ValueWidget]:
        return {
            "backlog": spec_control("syn_queue", "backlog", 8, description="listen() backlog"),
            "max_syn_backlog": spec_control("syn_queue", "max_syn_backlog", 16, description="tcp_max_syn_backlog"),
            "syncookies": W.ToggleButtons(options=[0, 1, 2], value=1, description="tcp_syncookies",
                                          style={"description_width": "initial", "button_width": "40px"}),
            "synack_retries": int_slider("synack_retries", 5, 0, 10, description="tcp_synack_retries"),
            "clients": int_slider("clients", 60, 10, 200, step=10, description="clients / spoofed SYNs"),
            "flood": W.Checkbox(value=False, description="spoofed SYN flood (else TCP_DEFER_ACCEPT clients)",
                                indent=False, layout=W.Layout(width="auto")),
            "settle": float_slider("settle", 0.5, 0.5, 20.0, 0.5, description="watch for (s)"),
        }

    def run(self, params: dict[str, Any], mode: str) -> Result:
        from tcplab.experiments import syn_queue
        return syn_queue(**params, mode=mode)

    def figure(self, result: Result) -> go.Figure:
        from tcplab.viz.queues import syn_queue_fill, syn_recv_over_time
        if float(result.params.get("settle", 0)) >= self.TIMELINE_FROM_S:
            return syn_recv_over_time(result)
        return syn_queue_fill(result)

    def table(self, result: Result) -> pd.DataFrame | None:
        df = result.tables.get("sockets")
        if df is None or len(df) == 0:
            return df
        from tcplab.viz.states import state_count_table
        return state_count_table(df)
