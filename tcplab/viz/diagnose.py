"""ss / netstat -s / nstat equivalents, as tables and charts.

* ``ss -tan | awk '{print $1}' | sort | uniq -c``  ->  :func:`state_counts` / :func:`state_summary`
* ``netstat -s`` (sentences) and ``nstat`` (counter names, deltas)  ->  :func:`counter_table`
* counters of one Result, with their netstat -s sentence  ->  :func:`counters_figure`

Also the title helper every figure of the course's second half uses (:func:`titled`), so that a
figure always says whether the kernel or the simulator produced it.

>>> counter_table({"ListenOverflows": 28, "TW": 0}).to_dict("records")[0]["counter"]
'ListenOverflows'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import plotly.graph_objects as go

if TYPE_CHECKING:
    import pandas as pd

    from tcplab.experiments.result import Result

__all__ = ["mode_label", "titled", "counter_table", "counters_figure", "state_counts", "state_summary",
           "STATE_ORDER", "STATE_COLORS"]

#: the 11 TCP states (plus CLOSED) in the order a connection meets them
STATE_ORDER = ("LISTEN", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "CLOSE_WAIT",
               "CLOSING", "LAST_ACK", "TIME_WAIT", "CLOSE", "CLOSED")

#: one colour per state, shared by every chart of the course's second half
STATE_COLORS = {
    "LISTEN": "#8c8c8c", "SYN_SENT": "#56B4E9", "SYN_RECV": "#56B4E9", "ESTABLISHED": "#009E73",
    "FIN_WAIT1": "#E69F00", "FIN_WAIT2": "#E69F00", "CLOSE_WAIT": "#D55E00", "CLOSING": "#CC79A7",
    "LAST_ACK": "#F0E442", "TIME_WAIT": "#7f7f7f", "CLOSE": "#c7c7c7", "CLOSED": "#c7c7c7",
}

MODE_COLORS = {"real": "#009E73", "sim": "#E69F00"}


def mode_label(result: Result) -> str:
    """``REAL (Linux 6.18.4)``, ``REAL, host busy (Linux 6.18.4)`` (a real run that lost fidelity)
    or ``SIMULATED (linux-6.18)``: what produced ``result``."""
    from tcplab.viz.common import mode_tag
    return mode_tag(result)


def titled(fig: go.Figure, text: str, results: Result | list[Result] | None) -> go.Figure:
    """Set ``fig``'s title to ``text`` followed by the mode badge of ``results``.

    Several results with different modes give e.g. ``REAL + SIMULATED``. The figure's text
    alternative is read off the figure (its bars are counters, not the Results' headlines).
    """
    from tcplab.viz.common import COLORWAY, described

    described(fig)
    # the course's look (white, the colour-blind-safe colorway, as in viz.common.style)
    fig.update_layout(template="plotly_white", colorway=list(COLORWAY))
    if results is None:
        fig.update_layout(title={"text": f"<b>{text}</b>", "x": 0.01})
        return fig
    rs = results if isinstance(results, list) else [results]
    labels = list(dict.fromkeys(mode_label(r) for r in rs))
    modes = {r.mode for r in rs}
    # the badge is text: darker shades than the traces' MODE_COLORS (contrast over 4.5:1 on white)
    color = "#1a7f37" if modes == {"real"} and all(r.trusted for r in rs) else "#9a6700"
    badge = " + ".join(labels)
    fig.update_layout(title={"text": f"<b>{text}</b> <span style='color:{color}'>— {badge}</span>", "x": 0.01},
                      margin={"t": 60})
    return fig


def _sentences() -> dict[str, str]:
    """counter name -> netstat -s sentence (the inverse of tcplab.NETSTAT_SENTENCES)."""
    from tcplab.model.counters import NETSTAT_SENTENCES

    out: dict[str, str] = {}
    for sentence, counter in NETSTAT_SENTENCES.items():
        out.setdefault(counter, sentence)
    return out


def counter_table(deltas: Mapping[str, int] | Result, *, nonzero: bool = True) -> pd.DataFrame:
    """nstat and netstat -s side by side: one row per counter with its delta and the
    sentence ``netstat -s`` prints for it (empty when netstat has none).

    ``deltas``: a dict from :func:`tcplab.counters_delta`, or a Result (its ``counters``).
    """
    import pandas as pd

    d = deltas.counters if hasattr(deltas, "counters") else deltas
    sent = _sentences()
    rows = [{"counter": k, "delta": int(v),
             "netstat -s says": f"{int(v)} {sent[k]}" if k in sent else ""}
            for k, v in d.items() if v or not nonzero]
    rows.sort(key=lambda r: (-(r["netstat -s says"] != ""), -r["delta"], r["counter"]))
    return pd.DataFrame(rows, columns=["counter", "delta", "netstat -s says"])


def counters_figure(result: Result, *, keep: tuple[str, ...] | None = None) -> go.Figure:
    """Horizontal bars of a result's nonzero counter deltas (``keep`` limits the names);
    hovering a bar shows the netstat -s sentence."""
    table = counter_table(result)
    if keep is not None:
        table = table[table["counter"].isin(keep)]
    table = table.iloc[::-1]
    fig = go.Figure(go.Bar(x=table["delta"].tolist(), y=table["counter"].tolist(), orientation="h",
                           text=table["delta"].tolist(), textposition="auto",
                           hovertext=table["netstat -s says"].tolist(), marker_color="#0072B2",
                           name="counter delta"))
    fig.update_layout(xaxis_title="delta over the run (nstat)", height=max(250, 28 * len(table) + 120))
    if table.empty:
        fig.add_annotation(text="no counter changed", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    return titled(fig, f"{result.name}: kernel counters", result)


def state_counts(sockets: pd.DataFrame) -> pd.DataFrame:
    """``ss -tan | awk '{print $1}' | sort | uniq -c`` as a DataFrame (state, count), in
    lifecycle order. ``sockets`` is :func:`tcplab.sockets` (or any frame with a ``state`` column)."""
    import pandas as pd

    counts = sockets["state"].value_counts() if len(sockets) else pd.Series(dtype=int)
    order = [s for s in STATE_ORDER if s in counts.index] + sorted(set(counts.index) - set(STATE_ORDER))
    return pd.DataFrame({"state": order, "count": [int(counts[s]) for s in order]})


def state_summary(sockets: pd.DataFrame, *, title: str = "sockets by state (ss -tan | uniq -c)",
                  result: Result | None = None) -> go.Figure:
    """Bar chart of :func:`state_counts`, coloured by state."""
    c = state_counts(sockets)
    fig = go.Figure(go.Bar(x=c["state"].tolist(), y=c["count"].tolist(), text=c["count"].tolist(),
                           textposition="auto", name="sockets",
                           marker_color=[STATE_COLORS.get(s, "#0072B2") for s in c["state"]]))
    fig.update_layout(yaxis_title="sockets", xaxis_title="state", height=320)
    return titled(fig, title, result)

