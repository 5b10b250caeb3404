"""Accept-queue and SYN-queue panels (notebooks 03 and 04): the spec-derived
:class:`~tcplab.widgets.generic.ExperimentPanel` with the notebooks' figures and labels.

>>> p = AcceptQueuePanel(mode="sim", backlog=3, clients=10)     # doctest: +SKIP
>>> p.controls["backlog"].value = 5; p.result.summary["established_clients"]   # doctest: +SKIP
6
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as W

from tcplab.viz.queues import accept_queue_fill, ack_overflow_fates, syn_queue_figure, syn_queue_table
from tcplab.widgets.common import float_slider
from tcplab.widgets.generic import DEFAULT, ExperimentPanel, registry_run

if TYPE_CHECKING:
    from tcplab.experiments.result import Result

__all__ = ["AcceptQueuePanel", "AckOverflowPanel", "SynQueuePanel"]

#: the "accept() from: never" choice of older versions (now the "default" stop, passed on as None)
NEVER = -1.0

_STYLE = {"description_width": "initial"}


class AcceptQueuePanel(ExperimentPanel):
    """Sliders backlog, somaxconn, clients, abort_on_overflow, accept_after -> accept_queue(),
    drawn by :func:`~tcplab.viz.queues.accept_queue_fill`, the clients' table under it."""

    def __init__(self, *, mode: str = "auto", run_first: bool = True, **values: Any) -> None:
        if values.get("accept_after") == NEVER:
            values["accept_after"] = None      # AcceptQueuePanel(accept_after=-1.0) meant "never" too
        super().__init__(
            "accept_queue", mode=mode, run_first=run_first, figure=accept_queue_fill, table="clients",
            title="Accept queue: move a slider, the experiment runs again",
            controls=("backlog", "somaxconn", "clients", "abort_on_overflow", "accept_after"),
            labels={"backlog": "listen() backlog", "somaxconn": "net.core.somaxconn", "clients": "clients",
                    "abort_on_overflow": "tcp_abort_on_overflow"},
            # a Dropdown shows an empty box for an option whose value is None: "never" is "default"
            widgets={"accept_after": W.Dropdown(options=[("never", DEFAULT), ("0.5 s", 0.5), ("1.0 s", 1.0)],
                                                description="accept() from", style=_STYLE)},
            **values)


class AckOverflowPanel(ExperimentPanel):
    """tcp_abort_on_overflow, syncookies, backlog, burst -> ack_overflow() (a slowed loopback).

    A burst larger than the run allows for the backlog (2·(backlog+1), at most 12) is clamped,
    and the header says so, rather than refusing a slider position.
    """

    def __init__(self, *, mode: str = "auto", run_first: bool = True, **values: Any) -> None:
        super().__init__(
            "ack_overflow", mode=mode, run_first=run_first, figure=ack_overflow_fates, table="clients",
            title="The final ACK meets a full accept queue (loopback in slow motion)",
            controls=("abort_on_overflow", "syncookies", "backlog", "burst"),
            labels={"abort_on_overflow": "tcp_abort_on_overflow", "syncookies": "tcp_syncookies",
                    "backlog": "listen() backlog (queue pre-filled)", "burst": "clients in the burst"},
            **values)

    def arguments(self, params: dict[str, Any], mode: str = "auto") -> dict[str, Any]:
        from tcplab.experiments.ack_overflow import max_burst

        args = super().arguments(params, mode)
        args["burst"] = min(args["burst"], max_burst(args["backlog"]))
        return args

    def run(self, params: dict[str, Any], mode: str) -> Result:
        args = self.arguments(params, mode)
        r = registry_run(self.spec, args, mode=mode, progress=self.progress)
        if args["burst"] < params["burst"]:
            r.notes.append(f"burst clamped to {args['burst']}: at most 2 x (backlog + 1) for this run")
        return r


class SynQueuePanel(ExperimentPanel):
    """Sliders backlog, tcp_max_syn_backlog, syncookies, synack_retries, clients, flood and
    ``settle`` (how long to watch) -> syn_queue().

    Watching 2 s or more draws SYN_RECV over time (:func:`~tcplab.viz.queues.syn_recv_over_time`),
    where ``tcp_synack_retries`` shows: a flood's requests leave at the SYN-ACK timer's 3rd, 7th,
    15th… second. Shorter, the snapshot bars (:func:`~tcplab.viz.queues.syn_queue_fill`); see
    :func:`~tcplab.viz.queues.syn_queue_figure`.
    """

    #: the panel's start values where they differ from the spec's defaults
    START: dict[str, Any] = {"backlog": 8, "max_syn_backlog": 16, "synack_retries": 5}

    def __init__(self, *, mode: str = "auto", run_first: bool = True, **values: Any) -> None:
        super().__init__(
            "syn_queue", mode=mode, run_first=run_first, figure=syn_queue_figure, table=syn_queue_table,
            title="SYN queue: requests in SYN_RECV",
            controls=("backlog", "max_syn_backlog", "syncookies", "synack_retries", "clients", "flood", "settle"),
            labels={"backlog": "listen() backlog", "max_syn_backlog": "tcp_max_syn_backlog",
                    "syncookies": "tcp_syncookies", "synack_retries": "tcp_synack_retries",
                    "clients": "clients / spoofed SYNs", "flood": "spoofed SYN flood (else TCP_DEFER_ACCEPT clients)"},
            widgets={"settle": float_slider("settle", 0.5, 0.5, 20.0, 0.5, description="watch for (s)")},
            **{**self.START, **values})
