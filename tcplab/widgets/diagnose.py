"""The "mystery server" exercise of notebook 08: something went wrong on a server; read the
counters (netstat -s / nstat) and the socket table (ss) and say what.

:class:`MysteryServer` draws one of :data:`INCIDENTS` with hidden parameters, runs it (real or
simulated), shows only the evidence (counter deltas with their netstat -s sentences, the
sockets table, the mode badge) and checks the learner's diagnosis.

>>> m = MysteryServer(mode="sim", rng=0)      # doctest: +SKIP
>>> m.check(m.incident)                        # doctest: +SKIP
True
"""

from __future__ import annotations

import html
import random
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from tcplab.viz.diagnose import counter_table
from tcplab.widgets.common import accessible, error_header, header_html, panel_heading, run_button, table_html

if TYPE_CHECKING:
    from tcplab.experiments.result import Result

__all__ = ["MysteryServer", "INCIDENTS"]

#: incident -> (what it is, why the evidence shows it)
INCIDENTS: dict[str, tuple[str, str]] = {
    "accept queue overflow": (
        "the application does not accept() fast enough: the accept queue (listen backlog) is full",
        "ListenOverflows/ListenDrops ('times the listen queue of a socket overflowed') grow and the LISTEN "
        "row's Recv-Q has reached its Send-Q + 1 (min(backlog, somaxconn) + 1)"),
    "CLOSE_WAIT leak": (
        "the application never close()s sockets the peer has closed",
        "no drop counter moves, but the server's sockets stay in CLOSE_WAIT (the peer's FIN arrived, "
        "the program never called close(); CLOSE_WAIT has no timer)"),
    "ephemeral ports exhausted": (
        "the client opens a new connection per request and closes first: TIME_WAIT holds every local port",
        "TW counts a TIME_WAIT per connection and connect() fails with EADDRNOTAVAIL once every port of "
        "ip_local_port_range is in TIME_WAIT"),
    "connections reset by the client": (
        "the client closes with SO_LINGER {1, 0}: RST instead of FIN",
        "OutRsts/EstabResets and TCPAbortOnData move; the server's recv() gets ECONNRESET and no "
        "TIME_WAIT is left behind"),
}


def _run_incident(name: str, rnd: random.Random, mode: str) -> Result:
    from tcplab.experiments.accept_queue import accept_queue
    from tcplab.experiments.lifecycle import lifecycle
    from tcplab.experiments.time_wait import time_wait

    if name == "accept queue overflow":
        backlog = rnd.choice([2, 3, 5, 8])
        return accept_queue(backlog=backlog, clients=backlog + rnd.choice([6, 10, 15]), settle=0.5, mode=mode)
    if name == "CLOSE_WAIT leak":
        return lifecycle("server_never_closes", mode=mode)
    if name == "ephemeral ports exhausted":
        n = rnd.choice([4, 6, 8])
        return time_wait(connections=3 * n, port_range=(41000, 41000 + n - 1), tw_reuse=0,
                                     duration=0.5, mode=mode)
    return lifecycle("abortive_close", mode=mode)


def _evidence_sockets(result: Result) -> Any:
    import pandas as pd

    for key in ("sockets", "time_wait_sockets"):
        if key in result.tables and len(result.tables[key]):
            df = result.tables[key]
            if "state" not in df.columns:  # time_wait_sockets lists only TIME_WAIT sockets
                df = df.assign(state="TIME_WAIT")[["state", *df.columns]]
            return df
    s = result.summary
    if "server_states" in s:  # lifecycle: the last state of each end, as ss would list them now
        rows = [{"side": side, "state": (s.get(f"{side}_states") or ["?"])[-1]} for side in ("client", "server")]
        return pd.DataFrame(rows)
    return None


class MysteryServer:
    """Draw an incident, show the evidence, check the diagnosis (``check(name)`` or the dropdown)."""

    def __init__(self, *, mode: str = "auto", rng: int | random.Random | None = None) -> None:
        from tcplab.widgets.common import mode_toggle

        self.rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        self.mode = mode_toggle(mode)
        self.header = W.HTML("")
        self.evidence = W.HTML("")
        self.answer = W.Dropdown(options=["(your diagnosis)", *INCIDENTS], value="(your diagnosis)",
                                 description="diagnosis", style={"description_width": "initial"},
                                 layout=W.Layout(width="420px"))
        self.feedback = W.HTML("")
        self.check_button = run_button("Check", lambda: self.check(), tooltip="compare with what really happened")
        self.new_button = W.Button(description="New incident", icon="refresh")
        self.new_button.on_click(lambda _b: self.new_incident())
        self.widget = accessible(W.VBox([panel_heading("Mystery server: what went wrong?"),
                                         self.mode, self.header, self.evidence,
                                         W.HBox([self.answer, self.check_button, self.new_button]), self.feedback],
                                        layout=W.Layout(border="1px solid #d0d7de", padding="6px")))
        self.incident: str = ""
        self.result: Result | None = None
        self.correct: bool | None = None
        self.new_incident()

    def new_incident(self) -> Result | None:
        """Draw and run a new incident; show its evidence only."""
        self.incident = self.rng.choice(list(INCIDENTS))
        self.correct, self.feedback.value = None, ""
        try:
            r = _run_incident(self.incident, self.rng, self.mode.value)
        except Exception as e:  # noqa: BLE001 - shown to the learner, the notebook goes on
            self.result = None
            self.header.value = error_header(e)
            return None
        self.result = r
        # the header names the experiment, which would give the answer away: badge and reason only
        self.header.value = header_html(r).replace(f"<b>{html.escape(r.name)}</b>", "<b>incident</b>")
        extra = ""
        if r.summary.get("error"):
            extra = f"<p>the client's log: <code>connect() failed: {html.escape(str(r.summary['error']))}</code></p>"
        if r.summary.get("server_error"):
            extra = f"<p>the server's log: <code>recv() failed: {html.escape(str(r.summary['server_error']))}</code></p>"
        keep = counter_table(r)
        keep = keep[keep["netstat -s says"] != ""] if (keep["netstat -s says"] != "").any() else keep
        self.evidence.value = (table_html(keep, caption="netstat -s / nstat: counters that moved")
                               + table_html(_evidence_sockets(r), caption="ss -tan: sockets on the machine")
                               + extra)
        return r

    def check(self, answer: str | None = None) -> bool:
        """Compare ``answer`` (default: the dropdown) with the hidden incident and explain."""
        if answer is not None:
            self.answer.value = answer
        ok = self.answer.value == self.incident
        self.correct = ok
        what, why = INCIDENTS[self.incident]
        color = "#1a7f37" if ok else "#cf222e"
        verdict = "✅ Right" if ok else f"❌ Not quite: it was <b>{html.escape(self.incident)}</b>"
        self.feedback.value = (f"<div style='color:{color}'>{verdict}.</div><div>{html.escape(what)}. "
                               f"The evidence: {html.escape(why)}.</div>")
        return ok

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget)
