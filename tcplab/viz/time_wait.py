"""TIME_WAIT: the pile-up, ephemeral ports running out, tcp_tw_reuse, and rebinding a port.

* :func:`pile_up`        one ``time_wait`` run: connects that worked (and with a new or a reused
                         port) and failed attempts (EADDRNOTAVAIL) over time, against the size of
                         ip_local_port_range.
* :func:`compare_runs`   several ``time_wait`` runs (e.g. tw_reuse 0 / 1 / 2): successful
                         connects over time, one line each.
* :func:`rebind_matrix`  ``rebind`` runs: old x new SO_REUSEADDR -> bound or EADDRINUSE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from tcplab.viz.diagnose import titled
from tcplab.viz.common import COLORWAY, DASHES

if TYPE_CHECKING:
    import pandas as pd

    from tcplab.experiments.result import Result

__all__ = ["attempt_curves", "pile_up", "compare_runs", "rebind_matrix", "run_label"]

OK_COLOR, NEW_COLOR, FAIL_COLOR, LIMIT_COLOR = "#009E73", "#7f7f7f", "#D55E00", "#0072B2"


def _attempts(result: Result) -> pd.DataFrame:
    import pandas as pd

    df = result.tables.get("attempts")   # t, ok, local_port, reused, error (real and sim)
    if df is None or not len(df):
        return pd.DataFrame({"t": [], "ok": [], "reused": [], "error": []})
    return df.sort_values("t", kind="stable").reset_index(drop=True)


def attempt_curves(result: Result) -> dict[str, list[Any]]:
    """Cumulative counts after every attempt: ``t``, ``ok`` (connects that worked),
    ``new_ports`` (worked on a port not used before in the run: each of these left a
    TIME_WAIT behind when the client closed first), ``failed`` (connect() errors)."""
    df = _attempts(result)
    ok = df["ok"].astype(bool).tolist()
    reused = df["reused"].fillna(False).astype(bool).tolist()
    t, c_ok, c_new, c_fail = [], [], [], []
    n_ok = n_new = n_fail = 0
    for ti, o, re in zip(df["t"].tolist(), ok, reused):
        n_ok += o
        n_new += o and not re
        n_fail += not o
        t.append(float(ti))
        c_ok.append(n_ok)
        c_new.append(n_new)
        c_fail.append(n_fail)
    return {"t": t, "ok": c_ok, "new_ports": c_new, "failed": c_fail}


def _range_size(result: Result) -> int | None:
    pr = result.params.get("port_range") or result.sysctls.get("net.ipv4.ip_local_port_range")
    if pr is None:
        return None
    lo, hi = (int(x) for x in pr)
    return hi - lo + 1


def run_label(result: Result) -> str:
    """Short label of a time_wait run's knobs, e.g. ``tw_reuse=1, 10 ports``."""
    p = result.params
    parts = []
    for k in ("tw_reuse", "timestamps", "max_tw_buckets"):
        v = p.get(k)
        if v is None:
            v = result.sysctls.get({"tw_reuse": "net.ipv4.tcp_tw_reuse", "timestamps": "net.ipv4.tcp_timestamps",
                                    "max_tw_buckets": "net.ipv4.tcp_max_tw_buckets"}[k])
            if k != "tw_reuse":
                continue  # only show non-default knobs besides tw_reuse
        if v is not None:
            parts.append(f"{k}={int(v) if isinstance(v, bool) else v}")
    n = _range_size(result)
    if n is not None and n < 1000:
        parts.append(f"{n} ports")
    return ", ".join(parts) or "defaults"


def pile_up(result: Result) -> go.Figure:
    """One time_wait run over time. The dashed line is the number of ephemeral ports: with the
    client closing first and tw_reuse off, 'new ports' cannot cross it and connect() fails."""
    c = attempt_curves(result)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=c["t"], y=c["ok"], name="connects that worked", mode="lines",
                             line={"color": OK_COLOR, "width": 3, "shape": "hv"}))
    fig.add_trace(go.Scatter(x=c["t"], y=c["new_ports"], name="… on a fresh port (→ TIME_WAIT)", mode="lines",
                             line={"color": NEW_COLOR, "dash": "dot", "shape": "hv"}))
    # failures can outnumber successes 30:1 (a retry every 10 ms): they get the right-hand axis
    fig.add_trace(go.Scatter(x=c["t"], y=c["failed"], name=f"failed connects ({result.summary.get('error') or 'none'}, right axis)",
                             mode="lines", line={"color": FAIL_COLOR, "width": 2, "shape": "hv", "dash": "dash"}, yaxis="y2"))
    n = _range_size(result)
    if n is not None and n <= max(c["ok"] + [1]) * 1.5:
        fig.add_hline(y=n, line_dash="dash", line_color=LIMIT_COLOR,
                      annotation_text=f"ip_local_port_range: {n} ports", annotation_position="top left")
    ff = result.summary.get("first_failure_at")
    if ff is not None:
        fig.add_vline(x=ff, line_dash="dot", line_color=FAIL_COLOR,
                      annotation_text=f"first {result.summary.get('error')} at {ff:.2f} s",
                      annotation_position="bottom right")
    s = result.summary
    fig.update_layout(xaxis_title="seconds", yaxis_title="connects that worked (cumulative)", height=420,
                      yaxis={"range": [0, 1.15 * max([*c["ok"], n or 0, 1])]},
                      yaxis2={"title": {"text": "failed connects", "font": {"color": FAIL_COLOR}}, "overlaying": "y",
                              "side": "right", "rangemode": "tozero", "showgrid": False, "tickformat": "d",
                              "tickfont": {"color": FAIL_COLOR}},
                      legend={"orientation": "h", "y": -0.2})
    return titled(fig, f"TIME_WAIT pile-up ({run_label(result)}): {s.get('connections_made')} connects, "
                       f"{s.get('time_wait')} in TIME_WAIT", result)


def compare_runs(results: list[Result], labels: list[str] | None = None) -> go.Figure:
    """Successful connects over time, one line per run (e.g. tw_reuse 0 vs 1 vs 2)."""
    palette = COLORWAY
    labels = labels or [run_label(r) for r in results]
    fig = go.Figure()
    for i, (r, lab) in enumerate(zip(results, labels)):
        c = attempt_curves(r)
        fig.add_trace(go.Scatter(x=c["t"], y=c["ok"], mode="lines", name=f"{lab}: {r.summary.get('connections_made')}",
                                 line={"shape": "hv", "width": 3, "color": palette[i % len(palette)],
                                       "dash": DASHES[i % len(DASHES)]}))
    fig.update_layout(xaxis_title="seconds", yaxis_title="connects that worked (cumulative)", height=400,
                      legend_title_text="setting: connects")
    return titled(fig, "new connections with a small port range", list(results))


def rebind_matrix(results: list[Result]) -> go.Figure:
    """A 2x2 grid (old SO_REUSEADDR x new SO_REUSEADDR) from ``rebind`` results: bluish
    green 'bound ✔', vermillion 'EADDRINUSE ✘' (Okabe-Ito, light; the mark says it without colour). Results with the same pair are not expected (the last wins)."""
    cell: dict[tuple[bool, bool], Result] = {}
    for r in results:
        cell[(bool(r.params.get("old_reuseaddr")), bool(r.params.get("new_reuseaddr")))] = r
    xs = ["new: no SO_REUSEADDR", "new: SO_REUSEADDR"]
    ys = ["old: no SO_REUSEADDR", "old: SO_REUSEADDR"]
    z, text = [], []
    for old in (False, True):
        zr, tr = [], []
        for new in (False, True):
            r = cell.get((old, new))
            if r is None:
                zr.append(None)
                tr.append("not run")
            else:
                b = bool(r.summary.get("bound"))
                zr.append(1 if b else 0)
                tr.append("bound ✔" if b else f"{r.summary.get('error') or 'failed'} ✘")
        z.append(zr)
        text.append(tr)
    fig = go.Figure(go.Heatmap(z=z, x=xs, y=ys, text=text, texttemplate="%{text}", textfont={"size": 18},
                               colorscale=[[0, "rgba(213,94,0,0.35)"], [1, "rgba(0,158,115,0.35)"]], zmin=0, zmax=1, showscale=False,
                               hoverinfo="text", xgap=4, ygap=4))
    closer = {r.params.get("closer") for r in results}
    fig.update_layout(height=300, xaxis={"side": "top"}, yaxis={"autorange": "reversed"},
                      margin={"t": 110})
    return titled(fig, f"restart a server on its port (closer: {', '.join(sorted(map(str, closer)))})", list(results))
