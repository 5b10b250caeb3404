"""Accept queue and SYN queue figures (docs/kernel-facts.md cases 1, 4 and 8).

Pure functions: a :class:`~tcplab.experiments.Result` in, a plotly Figure out. Tests read
``fig.data``: the bars carry the summary's numbers, the dashed lines the kernel's limits.

>>> from tcplab.experiments.result import Result
>>> r = Result("accept_queue", "sim", "t", {"backlog": 5, "somaxconn": None, "clients": 20},
...            summary={"established_clients": 6, "syn_sent_clients": 14, "recv_q": 6, "send_q": 5,
...                     "server_children": 6, "ListenOverflows": 28})
>>> f = accept_queue_fill(r); list(f.data[0].y)
[6, 14, 6]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tcplab.model.listen import Listener
from tcplab.model.profiles import KernelProfile, get_profile
from tcplab.viz.common import DASHES, LIMIT_COLOR, STATE_COLORS, described, mode_tag, style, titled

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from tcplab.experiments.result import Result

__all__ = ["accept_queue_fill", "ack_overflow_fates", "syn_queue_fill", "syn_recv_over_time", "syn_queue_figure", "syn_queue_table", "backlog_sweep", "accept_limit", "syn_recv_limit"]


def accept_limit(backlog: int, somaxconn: int, profile: KernelProfile | str | None = None) -> int:
    """Completed connections a listener holds: the model's ``Listener.accept_capacity``
    (``min(backlog, somaxconn) + 1``: sk_acceptq_is_full uses ``>``).

    >>> accept_limit(5, 4096)
    6
    """
    return Listener(backlog=backlog, somaxconn=somaxconn, profile=profile).accept_capacity


def syn_recv_limit(backlog: int, somaxconn: int, syncookies: int, max_syn_backlog: int,
                   profile: KernelProfile | str | None = None) -> int:
    """Requests in SYN_RECV: the model's ``Listener.syn_capacity`` for that kernel's profile.

    >>> syn_recv_limit(4, 4096, 1, 1024, "linux-6.18"), syn_recv_limit(4, 4096, 0, 16, "linux-6.1")
    (5, 5)
    """
    return Listener(backlog=backlog, somaxconn=somaxconn, syncookies=syncookies, max_syn_backlog=max_syn_backlog,
                    profile=profile).syn_capacity


def profile_of(result: Result) -> KernelProfile:
    """The kernel profile that describes a Result: the simulator's, or the real kernel's release."""
    return get_profile(result.profile or result.kernel)


def _backlog_rule(backlog: int, somaxconn: int, profile: KernelProfile) -> tuple[int, str]:
    """The SYN queue's backlog limit on ``profile``'s kernel, and its name for a legend."""
    limit = syn_recv_limit(backlog, somaxconn, 1, profile.max_syn_backlog, profile)
    return limit, ("backlog+1" if profile.synq_full_strict else "backlog (before 6.13)")


def _somaxconn(result: Result) -> int:
    v = result.params.get("somaxconn")
    if v is None:
        v = result.sysctls.get("net.core.somaxconn")
    return int(v) if v is not None else profile_of(result).somaxconn


def _timeline_is_flat(tl: Any, cols: Sequence[str]) -> bool:
    """True when nothing changes after the first ~0.1 s (loopback, the app never accepts)."""
    late = tl[tl["t"] > 0.1]
    if len(late) < 2:
        return False
    return all(late[c].nunique() <= 1 for c in cols if c in late)


def accept_queue_fill(result: Result) -> go.Figure:
    """Left: clients ESTABLISHED / SYN_SENT and the listener's Recv-Q, against the limit
    ``min(backlog, somaxconn)+1`` (dashed). Right: the same over time, from the timeline, with
    the clients' first SYN retransmission (1 s) marked; when nothing moves (loopback, no
    ``accept()``) the chart says why.

    Trace 0 is the bar chart (y = [established_clients, syn_sent_clients, recv_q]).
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    s = result.summary
    backlog = int(result.params.get("backlog", 0))
    smc = _somaxconn(result)
    limit = accept_limit(backlog, smc, profile_of(result))
    fig = make_subplots(rows=1, cols=2, column_widths=[0.4, 0.6], horizontal_spacing=0.1,
                        subplot_titles=("at the snapshot", "over time"))
    names = ["clients<br>ESTABLISHED", "clients<br>SYN_SENT", "listener<br>Recv-Q"]
    vals = [s.get("established_clients", 0), s.get("syn_sent_clients", 0), s.get("recv_q", 0)]
    colors = [STATE_COLORS["ESTABLISHED"], STATE_COLORS["SYN_SENT"], STATE_COLORS["LISTEN"]]
    ymax = max([*vals, limit]) * 1.2 + 1
    # tall bars carry their number inside, so it never sits on the dashed limit line
    pos = ["inside" if v >= 0.3 * ymax else "outside" for v in vals]
    fig.add_trace(go.Bar(x=names, y=vals, marker_color=colors, text=vals, textposition=pos,
                         insidetextanchor="end", textfont={"size": 14},
                         name="at snapshot", showlegend=False, cliponaxis=False,
                         hovertemplate="%{x}: %{y}<extra></extra>"), row=1, col=1)
    limit_text = f"limit min({backlog}, {smc}) + 1 = {limit}"
    fig.add_hline(y=limit, line_dash="dash", line_color=LIMIT_COLOR, row=1, col=1)
    # the limit is named in the legend, not next to the line, where it would sit on a bar's number
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=limit_text,
                             line={"dash": "dash", "color": LIMIT_COLOR}), row=1, col=1)
    tl = result.timeline
    series = [("recv_q", "listener Recv-Q", STATE_COLORS["LISTEN"]),
              ("established_clients", "clients ESTABLISHED", STATE_COLORS["ESTABLISHED"]),
              ("syn_sent_clients", "clients SYN_SENT", STATE_COLORS["SYN_SENT"]),
              ("accepted", "accepted by the app", "#6e7781")]
    tmax = 1.5
    if tl is not None and len(tl):
        tmax = max(float(tl["t"].max()), 0.5)
        for i, (col, label, color) in enumerate(series):
            if col in tl:
                # a dash of its own per line: the lines are told apart without their colours
                fig.add_trace(go.Scatter(x=list(tl["t"]), y=list(tl[col]), mode="lines", name=label,
                                         line={"color": color, "shape": "hv", "width": 2.5, "dash": DASHES[i % len(DASHES)]},
                                         hovertemplate=f"{label} at %{{x:.2f}} s: %{{y}}<extra></extra>"),
                              row=1, col=2)
        fig.add_hline(y=limit, line_dash="dash", line_color=LIMIT_COLOR, row=1, col=2)
        if tmax >= 1.0:
            fig.add_vline(x=1.0, line_dash="dot", line_color=STATE_COLORS["SYN_SENT"], row=1, col=2,
                          annotation_text="SYN retry (1st RTO)", annotation_position="top right",
                          annotation_font={"color": STATE_COLORS["SYN_SENT"], "size": 11})
        if _timeline_is_flat(tl, [c for c, *_ in series]):
            fig.add_annotation(
                xref="x2 domain", yref="y2 domain", x=0.5, y=0.5, showarrow=False, align="center",
                bgcolor="rgba(255,255,255,0.85)", bordercolor="#d0d7de", borderwidth=1, borderpad=6,
                font={"size": 12, "color": "#24292f"},
                text=("<b>Flat, and that is the result.</b> On loopback every handshake ends<br>"
                      "inside connect(): the queue is full within the first millisecond.<br>"
                      f"Nobody calls accept(), so the {vals[1]} SYN_SENT clients' retries (1 s, 2 s, …)<br>"
                      "find it still full. Pick <i>accept() from</i> to watch it drain."
                      if vals[1] else
                      "<b>Flat:</b> on loopback every handshake ends inside connect(),<br>"
                      "and all clients fitted in the queue at once."))
    fig.update_xaxes(tickangle=0, automargin=True, row=1, col=1)
    fig.update_xaxes(title_text="seconds after the first connect()", range=[-0.03 * tmax, tmax * 1.03],
                     row=1, col=2)
    fig.update_yaxes(title_text="connections", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[0, ymax], row=1, col=1)
    fig.update_yaxes(range=[0, ymax], row=1, col=2)
    clients = result.params.get("clients", "?")
    acc = result.params.get("accept_after")
    titled(fig, f"Accept queue: listen({backlog}), somaxconn={smc}, {clients} clients", result,
           "the server never calls accept()" if acc is None else f"the server accepts from {acc:g} s on")
    style(fig, height=480)
    fig.update_layout(legend={"y": -0.2})
    return fig


def syn_queue_fill(result: Result) -> go.Figure:
    """Left: SYN_RECV requests and established children vs the two limits (backlog+1; with
    syncookies=0 also 3/4·tcp_max_syn_backlog+1). Right: the counters that tell the story.

    Trace 0: bars [syn_recv, server_children]; trace 1: counters.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    s = result.summary
    p = result.params
    backlog = int(p.get("backlog", 0))
    smc = _somaxconn(result)
    cookies = int(p.get("syncookies", 1) if p.get("syncookies") is not None
                  else result.sysctls.get("net.ipv4.tcp_syncookies", 1))
    msb = p.get("max_syn_backlog")
    if msb is None:
        msb = result.sysctls.get("net.ipv4.tcp_max_syn_backlog")
    fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55], horizontal_spacing=0.14,
                        subplot_titles=("server side at the snapshot", "counters (deltas)"))
    vals = [s.get("syn_recv", 0), s.get("server_children", 0)]
    prof = profile_of(result)
    lim_b, lim_name = _backlog_rule(backlog, smc, prof)
    ymax = max([*vals, lim_b])
    lim_q = None
    if cookies == 0 and msb is not None:
        lim_q = syn_recv_limit(65535, 65535, 0, int(msb), prof)    # the 3/4 rule alone
        ymax = max(ymax, lim_q)
    top = ymax * 1.25 + 1
    # tall bars carry their number inside; the limits are named in the legend, not on the lines
    pos = ["inside" if v >= 0.3 * top else "outside" for v in vals]
    fig.add_trace(go.Bar(x=["SYN_RECV<br>(requests)", "ESTABLISHED<br>children"], y=vals, text=vals,
                         textposition=pos, insidetextanchor="end", textfont={"size": 14}, cliponaxis=False,
                         showlegend=False, name="server",
                         marker_color=[STATE_COLORS["SYN_RECV"], STATE_COLORS["ESTABLISHED"]]), row=1, col=1)
    fig.add_hline(y=lim_b, line_dash="dash", line_color=LIMIT_COLOR, row=1, col=1)
    legend = [go.Scatter(x=[None], y=[None], mode="lines", name=f"{lim_name} = {lim_b}",
                         line={"dash": "dash", "color": LIMIT_COLOR})]
    if lim_q is not None:
        fig.add_hline(y=lim_q, line_dash="dot", line_color="#CC79A7", row=1, col=1)
        legend.append(go.Scatter(x=[None], y=[None], mode="lines", name=f"3/4·tcp_max_syn_backlog+1 = {lim_q}",
                                 line={"dash": "dot", "color": "#CC79A7"}))
    names = ["ListenDrops", "ListenOverflows", "TCPReqQFullDrop", "TCPReqQFullDoCookies", "SyncookiesSent",
             "SyncookiesRecv"]
    cv = [int(s.get(n) or 0) for n in names]
    fig.add_trace(go.Bar(x=cv, y=names, orientation="h", text=cv, textposition="outside", cliponaxis=False,
                         showlegend=False, name="counters", marker_color="#57606a"), row=1, col=2)
    for tr in legend:                     # after the counters: trace 1 stays the counters
        fig.add_trace(tr, row=1, col=1)
    fig.update_yaxes(range=[0, top], title_text="sockets", row=1, col=1)
    fig.update_xaxes(range=[0, max(cv + [1]) * 1.3], row=1, col=2)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    what = "spoofed SYN flood" if p.get("flood") else "TCP_DEFER_ACCEPT clients that send nothing"
    titled(fig, f"SYN queue: listen({backlog}), syncookies={cookies}, tcp_max_syn_backlog={msb}", result,
           f"{p.get('clients', '?')} {what}")
    legit = s.get("legit_client_connected")
    if legit is not None:
        fig.add_annotation(text=("a normal client <b>got in</b>" if legit else "a normal client was <b>locked out</b>"),
                           xref="paper", yref="paper", x=1.0, y=-0.2, xanchor="right", showarrow=False,
                           font={"color": "#009E73" if legit else LIMIT_COLOR})
    return style(fig, height=440)


def syn_recv_over_time(result: Result) -> go.Figure:
    """SYN_RECV requests over the run (``result.timeline``), with the SYN-ACK timer's firings
    (1, 3, 7, 15, 31 s) marked: a request can only leave at one of them. Right: the counters.

    Trace 0: SYN_RECV over time; trace 1: ESTABLISHED children over time; trace 2: counters.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    s, p, tl = result.summary, result.params, result.timeline
    backlog = int(p.get("backlog", 0))
    lim_b, _ = _backlog_rule(backlog, _somaxconn(result), profile_of(result))
    retries = p.get("synack_retries")
    if retries is None:
        retries = result.sysctls.get("net.ipv4.tcp_synack_retries", 5)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.16,
                        subplot_titles=("SYN_RECV over time", "counters (deltas, at the snapshot)"))
    t = list(tl["t"]) if len(tl) else []
    fig.add_trace(go.Scatter(x=t, y=list(tl["syn_recv"]) if len(tl) else [], mode="lines", line_shape="hv",
                             name="SYN_RECV (requests)", line={"color": STATE_COLORS["SYN_RECV"], "width": 3}),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=t, y=list(tl["server_children"]) if len(tl) else [], mode="lines",
                             line_shape="hv", name="ESTABLISHED children",
                             line={"color": STATE_COLORS["ESTABLISHED"], "dash": "dot"}), row=1, col=1)
    names = ["ListenDrops", "TCPReqQFullDrop", "TCPReqQFullDoCookies", "SyncookiesSent", "SyncookiesRecv"]
    cv = [int(s.get(n) or 0) for n in names]
    fig.add_trace(go.Bar(x=cv, y=names, orientation="h", text=cv, textposition="outside", cliponaxis=False,
                         showlegend=False, name="counters", marker_color="#57606a"), row=1, col=2)
    end = max(t) if t else 0.0
    fire, k = 1.0, 0
    while fire <= end and k < 8:
        fig.add_vline(x=fire, line_dash="dot", line_color="#8c959f", row=1, col=1)
        k += 1
        fire += 2.0 ** k
    fig.add_hline(y=lim_b, line_dash="dash", line_color=LIMIT_COLOR, row=1, col=1)
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"backlog+1 = {lim_b}",
                             line={"dash": "dash", "color": LIMIT_COLOR}), row=1, col=1)
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name="SYN-ACK timer fires (1, 3, 7, 15 s)",
                             line={"dash": "dot", "color": "#8c959f"}), row=1, col=1)
    top = max([lim_b, *(tl["syn_recv"] if len(tl) else [0])]) * 1.2 + 1
    fig.update_yaxes(range=[0, top], title_text="sockets", row=1, col=1)
    fig.update_xaxes(title_text="seconds", range=[0, max(end, 1.0)], row=1, col=1)
    fig.update_xaxes(range=[0, max(cv + [1]) * 1.35], row=1, col=2)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    what = "spoofed SYN flood" if p.get("flood") else "TCP_DEFER_ACCEPT clients that send nothing"
    titled(fig, f"SYN queue over time: listen({backlog}), tcp_synack_retries={retries}", result,
           f"{p.get('clients', '?')} {what}; {s.get('syn_recv')} SYN_RECV at {end:g} s")
    legit = s.get("legit_client_connected")
    if legit is not None:
        fig.add_annotation(text=("then a normal client <b>got in</b>" if legit
                                 else "then a normal client was <b>locked out</b>"),
                           xref="paper", yref="paper", x=1.0, y=-0.2, xanchor="right", showarrow=False,
                           font={"color": "#009E73" if legit else LIMIT_COLOR})
    return style(fig, height=440)


def backlog_sweep(results: Sequence[Result]) -> go.Figure:
    """Established clients for several backlogs (one accept_queue Result each), against the
    rule ``min(backlog, somaxconn) + 1``. Trace 0: measured points; trace 1: the rule."""
    import plotly.graph_objects as go

    if not results:
        raise ValueError("backlog_sweep needs at least one accept_queue Result")
    rows: list[dict[str, Any]] = []
    for r in results:
        rows.append({"backlog": int(r.params["backlog"]), "somaxconn": _somaxconn(r),
                     "established": r.summary["established_clients"], "clients": r.params.get("clients")})
    rows.sort(key=lambda d: d["backlog"])
    smc = rows[0]["somaxconn"]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[d["backlog"] for d in rows], y=[d["established"] for d in rows],
                             mode="markers", marker={"size": 12, "color": STATE_COLORS["ESTABLISHED"]},
                             name="measured: clients ESTABLISHED"))
    lo, hi = rows[0]["backlog"], rows[-1]["backlog"]
    xs = list(range(lo, hi + 1))
    fig.add_trace(go.Scatter(x=xs, y=[accept_limit(b, smc) for b in xs], mode="lines",
                             line={"dash": "dash", "color": LIMIT_COLOR},
                             name=f"rule: min(backlog, somaxconn={smc}) + 1"))
    fig.update_xaxes(title_text="listen() backlog")
    fig.update_yaxes(title_text="clients ESTABLISHED", rangemode="tozero")
    modes = {r.mode for r in results}
    titled(fig, "How many connections does listen(backlog) hold?", results[0] if len(modes) == 1 else "REAL + SIMULATED")
    tag = mode_tag(results[0]) if len(modes) == 1 else "REAL + SIMULATED"
    measured = ", ".join(f"backlog {d['backlog']}: {d['established']}" for d in rows)
    described(fig, f"Clients ESTABLISHED against the listen() backlog ({measured}), each run against the rule "
                   f"min(backlog, somaxconn={smc}) + 1. {tag}.")
    return style(fig, height=400)


#: ack_overflow: what a burst client has at the snapshot, from its row of the clients table
_FATES = (
    ("child", "connected", STATE_COLORS["ESTABLISHED"]),
    ("held", "ACK dropped<br>SYN_RECV", STATE_COLORS["SYN_RECV"]),
    ("cookie", "cookie ACK<br>discarded", "#E69F00"),
    ("reset", "RST<br>ECONNRESET", LIMIT_COLOR),
    ("syn_sent", "SYN dropped<br>SYN_SENT", STATE_COLORS["SYN_SENT"]),
)


def _fate(row: Any) -> str:
    if row["error"] == "ECONNRESET":
        return "reset"
    if row["state"] == "SYN_SENT":
        return "syn_sent"
    if row["server_side"] == "ESTABLISHED":
        return "child"
    return "held" if row["server_side"] == "SYN_RECV" else "cookie"


def ack_overflow_fates(result: Result) -> go.Figure:
    """Left: what each burst client has at the 1.5 s snapshot (connected; ACK dropped with the
    request kept in SYN_RECV; cookie ACK discarded; RST; SYN dropped), and how many of each the
    app got in phase 2. Right: the timeline (requests in SYN_RECV, clients reset, accepted).

    Trace 0 is the snapshot bars (x in the order of ``_FATES``), trace 1 "completed later".
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    s, p = result.summary, result.params
    rows = result.tables.get("clients")
    fates = [_fate(r) for _, r in rows.iterrows()] if rows is not None else []
    later = list(rows["accepted_later"]) if rows is not None and "accepted_later" in rows else [False] * len(fates)
    keys = [k for k, *_ in _FATES]
    at_snap = [fates.count(k) for k in keys]
    completed = [sum(1 for f, lt in zip(fates, later) if f == k and lt) for k in keys]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.58, 0.42], horizontal_spacing=0.08,
                        subplot_titles=("the burst's clients at 1.5 s", "over time"))
    names = [label for _, label, _ in _FATES]
    fig.add_trace(go.Bar(x=names, y=at_snap, marker_color=[c for *_, c in _FATES], text=at_snap,
                         textposition="outside", name="clients at the snapshot (1.5 s)", cliponaxis=False,
                         hovertemplate="%{x}: %{y}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=names, y=completed, marker_color="rgba(110,119,129,0.45)", marker_pattern_shape="/",
                         marker_line={"color": "#6e7781", "width": 1}, text=completed, textposition="outside",
                         name="of those, completed after accept() (phase 2)", cliponaxis=False,
                         hovertemplate="%{x}: %{y} completed later<extra></extra>"), row=1, col=1)
    tl = result.timeline
    if tl is not None and len(tl):
        for i, (col, label, color) in enumerate((("syn_recv", "server requests SYN_RECV", STATE_COLORS["SYN_RECV"]),
                                                 ("reset_clients", "clients reset", LIMIT_COLOR),
                                                 ("recv_q", "listener Recv-Q", STATE_COLORS["LISTEN"]),
                                                 ("accepted", "accepted by the app", "#6e7781"))):
            if col in tl:
                fig.add_trace(go.Scatter(x=list(tl["t"]), y=list(tl[col]), mode="lines", name=label,
                                         line={"color": color, "shape": "hv", "width": 2.5, "dash": DASHES[i % len(DASHES)]},
                                         hovertemplate=f"{label} at %{{x:.2f}} s: %{{y}}<extra></extra>"),
                              row=1, col=2)
        fig.add_vline(x=1.5, line_dash="dot", line_color="#57606a", row=1, col=2,
                      annotation_text="snapshot,<br>app drains", annotation_position="bottom right",
                      annotation_font={"size": 11, "color": "#57606a"})
    ymax = max([*at_snap, *completed, 1]) * 1.25 + 0.5
    fig.update_yaxes(title_text="clients", range=[0, ymax], row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_xaxes(tickangle=0, automargin=True, row=1, col=1)
    fig.update_xaxes(title_text="seconds after the burst", row=1, col=2)
    fig.update_layout(barmode="group")
    abort = "1" if p.get("abort_on_overflow") else "0"
    titled(fig, f"Final ACK vs a full accept queue: tcp_abort_on_overflow={abort}, syncookies={p.get('syncookies')}",
           result, f"listen({p.get('backlog')}) holding {p.get('backlog')}, burst of {p.get('burst')}; "
                   f"ListenOverflows {s.get('ListenOverflows', 0)}, EmbryonicRsts {s.get('EmbryonicRsts', 0)}")
    style(fig, height=500)
    fig.update_layout(legend={"y": -0.25})
    return fig


#: watching a SYN queue at least this long draws it over time (where tcp_synack_retries shows)
SYN_TIMELINE_FROM_S = 2.0


def syn_queue_figure(result: Result) -> go.Figure:
    """The SYN-queue panel's figure: SYN_RECV over time (:func:`syn_recv_over_time`) when the run
    watched ``SYN_TIMELINE_FROM_S`` or longer (a flood's requests leave at the SYN-ACK timer's 3rd,
    7th, 15th… second), else the snapshot bars (:func:`syn_queue_fill`)."""
    if float(result.params.get("settle", 0)) >= SYN_TIMELINE_FROM_S:
        return syn_recv_over_time(result)
    return syn_queue_fill(result)


def syn_queue_table(result: Result) -> Any:
    """The SYN-queue panel's table: sockets counted by state (``state_count_table``)."""
    df = result.tables.get("sockets")
    if df is None or len(df) == 0:
        return df
    from tcplab.viz.states import state_count_table
    return state_count_table(df)
