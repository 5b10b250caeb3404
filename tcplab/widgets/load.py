"""The tuning lab of notebook 09: a server under load with every knob.

:class:`TuningLab`: sliders rate, accept_rate, backlog, somaxconn, syncookies, syn_retries and
duration -> ``experiments.load`` -> queue / drops / connect-time dashboard, and a verdict
against a target p99 connect() time. Long runs belong in the simulator (the default mode here).

>>> lab = TuningLab(mode="sim", target_p99=0.5)    # doctest: +SKIP
>>> lab.met                                          # doctest: +SKIP
False
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from tcplab.viz.load import connect_latency, dashboard
from tcplab.viz.retries import linear_timeouts_of
from tcplab.widgets.common import float_slider, int_slider
from tcplab.widgets.generic import ExperimentPanel

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from tcplab.experiments.result import Result

__all__ = ["TuningLab", "run_load", "meets_target", "retries_note", "queue_quiz"]


def run_load(**params: Any) -> Result:
    """``tcplab.experiments.load(**params)`` (a named function so a SelfCheck can call it)."""
    from tcplab.experiments.load import load

    return load(**params)


def meets_target(result: Result, target_p99: float) -> bool:
    """True when every client connected (none failed or still waiting) and p99 connect() <= target."""
    s = result.summary
    p99 = s.get("p99_connect_s")
    return p99 is not None and s.get("established") == s.get("attempts") and p99 <= target_p99


class TuningLab(ExperimentPanel):
    """Every knob of a loaded server; the verdict says whether the target is met."""

    START: dict[str, Any] = {"rate": 200, "accept_rate": 150, "backlog": 16, "somaxconn": 4096, "syncookies": 1,
                             "syn_retries": 6, "duration": 5.0}

    def __init__(self, *, target_p99: float = 0.5, mode: str = "sim", run_first: bool = True, **values: Any) -> None:
        self.target_p99 = float(target_p99)
        self.verdict = W.HTML("")
        self.latency = None
        super().__init__(
            "load", mode=mode, run_first=False, figure=dashboard, table=summary_table,
            title="Tuning lab: a server under load",
            controls=("rate", "accept_rate", "backlog", "somaxconn", "syncookies", "syn_retries", "duration"),
            labels={"backlog": "listen() backlog", "somaxconn": "net.core.somaxconn"},
            widgets={
                "rate": int_slider("rate", 200, 10, 2000, 10, description="clients per second"),
                "accept_rate": int_slider("accept_rate", 150, 0, 2000, 10, description="accept() per second"),
                "syncookies": W.ToggleButtons(options=[0, 1, 2], value=1, description="tcp_syncookies",
                                              style={"button_width": "40px", "description_width": "initial"}),
                "syn_retries": int_slider("syn_retries", 6, 1, 8, description="tcp_syn_retries"),
                "duration": float_slider("duration", 5.0, 1.0, 30.0, 1.0, description="seconds of load"),
            },
            **{**self.START, **values})
        self.widget.children = (*self.widget.children[:-2], self.verdict, *self.widget.children[-2:])
        if run_first:
            self.update()

    @property
    def met(self) -> bool | None:
        return None if self.result is None else meets_target(self.result, self.target_p99)

    def draw(self, result: Result) -> None:
        super().draw(result)
        r = result
        if r is not None:
            s = r.summary
            p99 = s.get("p99_connect_s")
            ok = meets_target(r, self.target_p99)
            color = "#1a7f37" if ok else "#cf222e"
            p99_text = "n/a" if p99 is None else f"{p99:.3f} s"
            self.verdict.value = (
                f"<div style='color:{color};font-size:larger'>{'✅ target met' if ok else '❌ target missed'}: "
                f"p99 connect() {html.escape(p99_text)} (target ≤ {self.target_p99} s), "
                f"{s.get('established')}/{s.get('attempts')} connected, "
                f"{s.get('ListenOverflows')} ListenOverflows</div>"
                f"<div style='font-size:smaller'>{html.escape(retries_note(r))}</div>")


def summary_table(result: Result) -> pd.DataFrame:
    """The tuning lab's table: the run's summary as one row."""
    import pandas as pd
    return pd.DataFrame([result.summary])


def retries_note(result: Result) -> str:
    """Why ``tcp_syn_retries`` did or did not change this run: a client gives up only at its
    ``syn_schedule(k).fail_after`` (3 s for k=1, 7 s for k=2, 19 s for k=3, 131 s for 6), so a run
    shorter than that cannot show the difference.

    >>> from tcplab.experiments.result import Result
    >>> retries_note(Result("load", "sim", "t", {"duration": 5.0, "syn_retries": 2}, summary={"failed": 0}))[:60]
    'tcp_syn_retries=2: a client whose SYNs are all dropped gives'
    """
    from tcplab.model.retries import syn_schedule

    p = result.params
    k = p.get("syn_retries")
    if k is None:
        k = int(result.sysctls.get("net.ipv4.tcp_syn_retries", 6))
    lt = linear_timeouts_of(result)
    fail = syn_schedule(int(k), lt).fail_after
    dur = float(p.get("duration", 0))
    failed = result.summary.get("failed") or 0
    text = (f"tcp_syn_retries={k}: a client whose SYNs are all dropped gives up (ETIMEDOUT) {fail:g} s after "
            f"its first SYN. ")
    if fail >= dur:
        return text + (f"This run lasts {dur:g} s, so no client can reach that limit: every value of "
                       f"tcp_syn_retries that gives up after {dur:g} s looks the same here. "
                       "Try 1 (3 s), or a longer run (2 gives up at 7 s, 3 at 19 s).")
    return text + f"{failed} clients reached it in this {dur:g} s run."


def queue_quiz(mode: str = "sim", rng: int | None = None) -> Any:
    """Self-check: a server accepting slower than clients arrive; how full does the accept queue get?"""
    from tcplab.widgets.common import SelfCheck

    return SelfCheck(
        run_load,
        "{rate} clients/s for 3 s, the server accept()s {accept_rate}/s, listen({backlog}), "
        "somaxconn {somaxconn}. What is the largest accept-queue length (ss Recv-Q) during the run?",
        {"rate": [200, 300, 400], "accept_rate": [0, 20, 50], "backlog": [4, 8, 32, 128],
         "somaxconn": [16, 64, 4096]},
        "max_recv_q",
        "The queue fills because accept() is slower than the arrivals; it holds min(backlog, somaxconn) + 1 = "
        "{expected} (the backlog is clamped to somaxconn in __sys_listen_socket(), and sk_acceptq_is_full() "
        "uses '>'). Further SYNs are dropped (ListenOverflows = {ListenOverflows}).",
        fixed={"duration": 3.0}, mode=mode, rng=rng, title="Self-check: how full does the accept queue get?")
