"""Figures of the timer experiments (notebooks 11 and 12): each packet a timer sent, measured
(filled) over the rules' prediction (open rings, drawn larger so a measured dot inside stays
visible), against the time it left, and the moment and reason the kernel gave up.

>>> from tcplab.experiments import keepalive, retransmission
>>> fig = retransmission_figure(retransmission(retries2=3, mode="sim"))
>>> [t.name for t in fig.data]
['predicted (the kernel rules)', 'measured retransmissions', 'ETIMEDOUT']
>>> fig = keepalive_figure(keepalive(idle=2, interval=1, count=3, peer="close_wait_rst", mode="sim"))
>>> [t.name for t in fig.data]
['predicted (the kernel rules)', 'probes answered by RST', 'EPIPE']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tcplab.viz.common import LIMIT_COLOR, style, titled

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from tcplab.experiments.result import Result

__all__ = ["retransmission_figure", "keepalive_figure", "retransmission_table", "keepalive_table"]

_MEASURED = "#0072B2"
_PREDICTED = "#57606a"
_BUDGET = "#CC79A7"
_ANSWER_COLORS = {"ACK": "#009E73", "RST": LIMIT_COLOR, None: _MEASURED}


def _rows(result: Result, table: str) -> pd.DataFrame | None:
    df = result.tables.get(table)
    return df if df is not None and len(df) else None


def _predicted(fig: go.Figure, df: pd.DataFrame | None) -> None:
    pr = df.dropna(subset=["predicted_s"]) if df is not None else None
    fig.add_scatter(x=list(pr["predicted_s"]) if pr is not None else [],
                    y=list(pr["n"]) if pr is not None else [], mode="markers", name="predicted (the kernel rules)",
                    marker={"size": 20, "symbol": "circle-open", "color": _PREDICTED, "line": {"width": 2}},
                    hovertemplate="#%{y}: predicted at %{x:.3f} s<extra></extra>")


def _end(fig: go.Figure, at: float | None, y: float, error: str | None, why: str) -> None:
    if at is None or error is None:
        return
    fig.add_scatter(x=[at], y=[y + 0.6], mode="markers+text", name=error, text=[f"{error} at {at:.2f} s"],
                    textposition="middle left", textfont={"color": LIMIT_COLOR},
                    marker={"size": 18, "symbol": "x", "color": LIMIT_COLOR},
                    hovertemplate=f"{error} at %{{x:.3f}} s: {why}<extra></extra>")
    fig.add_vline(x=at, line_color=LIMIT_COLOR, line_width=1)


def _count_axis(fig: go.Figure, n: int, title: str) -> None:
    fig.update_yaxes(title_text=title, tickmode="linear", tick0=1, dtick=1 if n <= 12 else max(1, n // 8),
                     range=[0.3, max(n, 1) + 1.1], rangemode="tozero")


def retransmission_figure(result: Result) -> go.Figure:
    """Retransmission #n (y) at the time it left (x), each RTO gap labelled; the give-up budget
    (tcp_retries2's ``tcp_model_timeout`` or TCP_USER_TIMEOUT) shaded from the first RTO
    retransmission, where ``tcp_write_timeout()`` starts counting; ETIMEDOUT where it ended and why."""
    import plotly.graph_objects as go

    p, s = result.params, result.summary
    df = _rows(result, "retransmissions")
    fig = go.Figure()
    _predicted(fig, df)
    xs = list(df["sent_at_s"]) if df is not None else []
    ns = list(df["n"]) if df is not None else []
    kinds = list(df["kind"]) if df is not None else []
    # many retransmissions (the default tcp_retries2=15 spans 929 s): a log time axis, where each
    # doubling RTO is one equal step, and no gap labels (they are in the hover and the table)
    many = len(xs) > 7
    fig.add_scatter(x=xs, y=ns, mode="markers" if many else "markers+text", name="measured retransmissions",
                    text=[f"{k}" for k in kinds], textposition="top center", customdata=[
                        (b - a) * 1000 for a, b in zip([0.0, *xs], xs, strict=False)],
                    marker={"size": 10, "color": _MEASURED}, hovertemplate="#%{y} (%{text}) left at %{x:.3f} s, "
                    "%{customdata:.0f} ms after the one before<extra></extra>")
    if not many:
        for a, b, n in zip([0.0, *xs], xs, ns, strict=False):
            fig.add_annotation(x=(a + b) / 2, y=n - 0.35, text=f"{(b - a) * 1000:.0f} ms", showarrow=False,
                               font={"size": 10, "color": _PREDICTED})
    fail, err, because, limit = s.get("failed_after_s"), s.get("error"), s.get("gave_up_because"), s.get("limit_s")
    first_rto = next((x for x, k in zip(xs, kinds, strict=True) if k == "RTO"), None)
    ut = p.get("user_timeout")
    r2 = p.get("retries2")
    budget = (f"TCP_USER_TIMEOUT={ut} ms" if ut else
              f"tcp_retries2={r2 if r2 is not None else _default_retries2(result)}"
              + (" (default)" if r2 is None else ""))
    if first_rto is not None and limit is not None:
        fig.add_vrect(x0=first_rto, x1=first_rto + limit, fillcolor=_BUDGET, opacity=0.08, line_width=0)
        fig.add_vline(x=first_rto + limit, line_dash="dot", line_color=_BUDGET,
                      annotation_text=f"budget {limit:g} s ({budget}) spent", annotation_position="bottom left",
                      annotation_font_color=_BUDGET)
    why = (f"{because}: the budget was spent, and the kernel checks it only when the RTO timer fires"
           if because else "")
    if fail is not None and xs and not many:
        # with TCP_USER_TIMEOUT the last RTO is clamped to what is left of it
        # (tcp_clamp_rto_to_user_timeout(), net/ipv4/tcp_timer.c), so the timer fires at the deadline
        gap = f"{(fail - xs[-1]) * 1000:.0f} ms"
        last = (f"timer {gap} (RTO clamped to the user timeout)" if because == "TCP_USER_TIMEOUT"
                else f"RTO {gap} expires")
        fig.add_annotation(x=(xs[-1] + fail) / 2, y=ns[-1] + 0.25, text=last,
                           showarrow=False, font={"size": 10, "color": _PREDICTED})
    _end(fig, fail, max(ns) if ns else 1, err, why)
    _count_axis(fig, max(ns) if ns else 1, "retransmission #")
    if many:
        fig.update_xaxes(title_text="seconds after the write, log scale (each doubling RTO one step)", type="log")
    else:
        fig.update_xaxes(title_text="seconds after the write (the gaps are RTOs)", rangemode="tozero")
    sub = (f"gave up after {fail:.2f} s with {err}: {because} ({budget})" if fail is not None and err
           else "still retransmitting when the run stopped")
    titled(fig, f"Retransmissions to a silent peer: {budget}", result, sub)
    style(fig, height=440)
    fig.update_layout(margin={"t": 120})
    return fig


def _default_retries2(result: Result) -> Any:
    v = result.sysctls.get("net.ipv4.tcp_retries2")
    if v is not None:
        return v
    from tcplab.model.profiles import get_profile
    return get_profile(result.profile).retries2


def keepalive_figure(result: Result) -> go.Figure:
    """Keepalive probe #n (y) at the time it left (x) after the connection went idle, colored by
    the peer's answer (none, ACK, RST); the idle time shaded; the error that ended it (ETIMEDOUT
    after ``count`` unanswered probes, EPIPE on a RST) and when."""
    import plotly.graph_objects as go

    p, s = result.params, result.summary
    df = _rows(result, "probes")
    fig = go.Figure()
    _predicted(fig, df)
    peer = p.get("peer")
    answers = list(df["answer"]) if df is not None else []
    for ans in dict.fromkeys(answers) if answers else [None]:
        rows = df[[a == ans for a in answers]] if df is not None else None
        label = {None: "probes, no answer", "ACK": "probes answered by ACK", "RST": "probes answered by RST"}.get(
            ans, f"probes answered by {ans}")
        fig.add_scatter(x=list(rows["sent_at_s"]) if rows is not None else [],
                        y=list(rows["n"]) if rows is not None else [], mode="markers", name=label,
                        marker={"size": 10, "color": _ANSWER_COLORS.get(ans, _MEASURED)},
                        hovertemplate="probe #%{y} at %{x:.3f} s<extra></extra>")
    idle = p.get("idle")
    if idle:
        fig.add_vrect(x0=0, x1=idle, fillcolor=_PREDICTED, opacity=0.07, line_width=0,
                      annotation_text=f"idle {idle} s (TCP_KEEPIDLE)", annotation_position="top left")
    at, err = s.get("detected_after_s"), s.get("error")
    n = int(s.get("probes_sent") or 0)
    why = {"ETIMEDOUT": f"{p.get('count')} probes unanswered (TCP_KEEPCNT)",
           "EPIPE": "the peer answered with RST (it forgot the connection)"}.get(err or "", "")
    _end(fig, at, max(n, 1), err, why)
    _count_axis(fig, max(n, 1), "keepalive probe #")
    fig.update_xaxes(title_text="seconds since the connection went idle", rangemode="tozero")
    if at is not None and err:
        sub = f"{err} after {at:.2f} s: {why}"
    else:
        sub = f"no error: the {peer} peer answered every probe; the connection stays ESTABLISHED"
    titled(fig, f"Keepalive: idle {idle} s, interval {p.get('interval')} s, count {p.get('count')}; peer {peer}",
           result, sub)
    style(fig, height=440)
    fig.update_layout(margin={"t": 120})
    return fig


def retransmission_table(result: Result) -> pd.DataFrame | None:
    """The retransmissions with readable column names (the panel's table)."""
    df = result.tables.get("retransmissions")
    if df is None:
        return None
    return df.rename(columns={"n": "#", "kind": "kind", "sent_at_s": "left at (s)", "predicted_s": "predicted (s)",
                              "rto_ms": "RTO (ms)", "backoff": "backoff"})


def keepalive_table(result: Result) -> pd.DataFrame | None:
    """The probes with readable column names (the panel's table)."""
    df = result.tables.get("probes")
    if df is None:
        return None
    return df.rename(columns={"n": "#", "sent_at_s": "left at (s)", "predicted_s": "predicted (s)",
                              "answer": "peer's answer"})
