"""Each data-half experiment's figure draws its key result (issue 21, "The panels show what the
notebook is about"): the notebook's ``experiment_figure(result)`` and the panel draw the same one.
Simulated runs (pure); the real ones were rendered and looked at (tcplab/viz/*.py docstrings)."""

from __future__ import annotations

import pytest

pytest.importorskip("plotly")

from tcplab import experiments as E  # noqa: E402
from tcplab.viz.generic import experiment_figure, experiment_table  # noqa: E402


def _names(fig):
    return [t.name for t in fig.data]


def test_flow_control_window_is_not_flattened_by_send_q_and_probes_are_marked():
    r = E.flow_control(rcvbuf=4096, bytes=200_000, reader="stalled", stall_s=2.0, mode="sim")
    fig = experiment_figure(r)
    by = {t.name: t for t in fig.data}
    assert by["Send-Q (sender, kB)"].yaxis == "y" and by["advertised window (B)"].yaxis == "y2"
    assert max(by["advertised window (B)"].y) == 4096          # on its own bytes axis
    probes = by[f"zero-window probes ({r.summary['probes']})"]
    assert list(probes.x) == r.summary["probe_times"] and set(probes.y) == {0}
    assert any(s.type == "rect" for s in fig.layout.shapes)   # the zero window shaded
    events = list(experiment_table(r)["event"])
    assert events.count("zero window: the receiver is full") == 1
    assert sum(e.startswith("probe ") for e in events) == r.summary["probes"]


def test_flow_control_slow_reader_in_sim_has_a_table_and_says_what_is_not_modelled():
    r = E.flow_control(rcvbuf=4096, bytes=200_000, reader="slow", reader_rate=100_000, mode="sim")
    assert len(experiment_table(r)) >= 2
    assert any("does not model" in a.text for a in experiment_figure(r).layout.annotations)


def test_retransmission_shows_measured_over_predicted_and_why_it_gave_up():
    r = E.retransmission(retries2=3, mode="sim")
    fig = experiment_figure(r)
    names = _names(fig)
    assert names.index("measured retransmissions") > names.index("predicted (the kernel rules)")  # on top
    pred, meas = fig.data[0], fig.data[1]
    assert pred.marker.size > meas.marker.size and pred.marker.symbol == "circle-open"
    assert fig.layout.yaxis.dtick == 1                          # a count: integer ticks
    assert "ETIMEDOUT" in names and "tcp_retries2" in fig.layout.title.text
    assert "sent_at_s" not in experiment_table(r).columns


def test_moving_user_timeout_moves_the_give_up_on_screen():
    a = experiment_figure(E.retransmission(retries2=3, mode="sim"))
    b = experiment_figure(E.retransmission(retries2=3, user_timeout=1500, mode="sim"))
    end = [s.x1 for s in a.layout.shapes if s.type == "rect"], [s.x1 for s in b.layout.shapes if s.type == "rect"]
    assert end[0] != end[1]
    assert "TCP_USER_TIMEOUT=1500 ms" in b.layout.title.text


def test_keepalive_peer_changes_the_figure_and_the_error_is_drawn():
    figs = {peer: experiment_figure(E.keepalive(idle=2, interval=1, count=3, peer=peer, mode="sim"))
            for peer in ("silent", "alive", "close_wait_rst")}
    assert "ETIMEDOUT" in _names(figs["silent"]) and "EPIPE" in _names(figs["close_wait_rst"])
    assert "probes answered by ACK" in _names(figs["alive"])
    assert len({tuple(_names(f)) for f in figs.values()}) == 3
    for f in figs.values():                                   # room between the subtitle and the plot
        assert f.layout.margin.t >= 110


def test_nagle_log_axis_keeps_microseconds_and_the_stall_apart():
    fig = experiment_figure(E.nagle(requests=5, nodelay=True, mode="sim"))
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.range[0] == -2
    assert "e-0" not in fig.layout.title.text


def test_congestion_panel_figure_is_the_notebooks_with_many_flows_readable():
    from tcplab.viz.congestion import congestion_figure

    r = E.congestion(rate_mbit=20, rtt_ms=30, buffer_packets=40, flows=3, duration=1, mode="sim")
    fig = experiment_figure(r)
    assert _names(fig) == _names(congestion_figure(r))
    assert "cwnd, all flows" in _names(fig) and "bottleneck queue (packets)" in _names(fig)
    thin = [t for t in fig.data if t.name and t.name.startswith("cwnd, flow")]
    assert len(thin) == 3 and all(t.line.width == 1 for t in thin)
    table = experiment_table(r)
    assert list(table["flow"]) == [0, 1, 2] and "queue_packets" not in table.columns
