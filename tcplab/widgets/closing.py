"""Panels for notebook 06 (closing a connection).

* :class:`ClosingPanel`  pick a scenario (four-way close, RST, half-close, CLOSE_WAIT leak…),
                         see both ends' states as lanes.
* :class:`CloseWaitLeak` a tiny buggy server on loopback that never close()s accepted
                         sockets: ``n`` CLOSE_WAIT sockets to find with
                         ``tcplab.sockets(state="CLOSE_WAIT", port=leak.port)``. It opens real
                         sockets, so it lives in :mod:`tcplab.kernel.loopback`; it is
                         re-exported here, where the notebooks import it.

>>> from tcplab.widgets.closing import ClosingPanel
>>> p = ClosingPanel(scenario="abortive_close", mode="sim")   # doctest: +SKIP
>>> p.result.summary["server_error"]                          # doctest: +SKIP
'ECONNRESET'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as W

from tcplab.experiments.lifecycle import SCENARIOS, lifecycle
from tcplab.observe import CloseWaitLeak
from tcplab.viz.closing import state_timeline
from tcplab.widgets.generic import ExperimentPanel

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from tcplab.experiments.result import Result

__all__ = ["ClosingPanel", "CloseWaitLeak", "SCENARIO_LABELS", "closing_quiz", "time_wait_ends"]

#: what each lifecycle scenario shows, for the dropdown
SCENARIO_LABELS = {
    "client_closes_first": "four-way close, client first (FIN)",
    "server_closes_first": "four-way close, server first (FIN)",
    "server_never_closes": "server never closes (CLOSE_WAIT leak)",
    "abortive_close": "client SO_LINGER {1, 0} close (RST)",
    "half_close": "client shutdown(SHUT_WR) (half-close)",
    "simultaneous_open": "simultaneous open (one socket)",
}


class ClosingPanel(ExperimentPanel):
    """Scenario dropdown -> ``experiments.lifecycle`` -> both ends' state lanes."""

    def __init__(self, *, mode: str = "auto", run_first: bool = True, **values: Any) -> None:
        super().__init__(
            "lifecycle", mode=mode, run_first=run_first, figure=state_timeline, table=closing_table,
            title="How does the connection end? Both sides, state by state", controls=("scenario",),
            widgets={"scenario": W.Dropdown(options=[(SCENARIO_LABELS.get(s, s), s) for s in SCENARIOS],
                                            value="client_closes_first", description="scenario",
                                            style={"description_width": "initial"}, layout=W.Layout(width="460px"))},
            **values)


def closing_table(result: Result) -> pd.DataFrame | None:
    """The closing panel's table: the events (or the packets) of the run."""
    for name in ("events", "packets"):
        if name in result.tables:
            return result.tables[name]
    return next(iter(result.tables.values()), None)


def time_wait_ends(result: Result) -> int:
    """How many of the two ends passed through TIME_WAIT in a lifecycle result (0, 1 or 2)."""
    s = result.summary
    return sum("TIME_WAIT" in (s.get(f"{side}_states") or []) for side in ("client", "server"))


def closing_quiz(mode: str = "auto", rng: int | None = None) -> Any:
    """Self-check: for a random scenario, how many ends go through TIME_WAIT?"""
    from tcplab.widgets.common import SelfCheck

    return SelfCheck(
        lifecycle,
        "Scenario '{scenario}': how many of the two ends (0, 1 or 2) pass through TIME_WAIT?",
        {"scenario": ["client_closes_first", "server_closes_first", "abortive_close", "half_close",
                      "server_never_closes"]},
        time_wait_ends,
        "TIME_WAIT is entered only by the side that sent the first FIN and then received the peer's FIN "
        "(tcp_time_wait(), TCP_TIMEWAIT_LEN = 60 s). A RST (SO_LINGER {{1, 0}}) skips it on both ends; "
        "a FIN that is never answered leaves the closer in FIN_WAIT2 and the peer in CLOSE_WAIT. "
        "The chart of the run above shows which side it was.",
        mode=mode, rng=rng, title="Self-check: who ends in TIME_WAIT?")
