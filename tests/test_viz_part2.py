"""viz for the course's second half: every figure reflects its Result's summary (read fig.data)."""

import pytest

from tcplab import experiments
from tcplab.experiments.lifecycle import lifecycle
from tcplab.viz import closing, diagnose, load, time_wait


@pytest.fixture(scope="module")
def tw_sim():
    return experiments.time_wait(connections=20, port_range=(40000, 40009), tw_reuse=0, duration=1.0, mode="sim")


def test_pile_up_reflects_summary(tw_sim):
    fig = time_wait.pile_up(tw_sim)
    ok = fig.data[0]
    assert ok.y[-1] == tw_sim.summary["connections_made"] == 10
    assert fig.data[2].y[-1] > 0  # failed attempts
    assert "SIMULATED" in fig.layout.title.text and "EADDRNOTAVAIL" in fig.data[2].name


def test_compare_runs_one_line_per_run(tw_sim):
    r1 = experiments.time_wait(connections=20, port_range=(40000, 40009), tw_reuse=1, duration=1.5, mode="sim")
    fig = time_wait.compare_runs([tw_sim, r1])
    assert [tr.y[-1] for tr in fig.data] == [10, 20]


def test_rebind_matrix_only_both_reuseaddr_binds():
    grid = [experiments.rebind(old_reuseaddr=o, new_reuseaddr=n, mode="sim") for o in (False, True) for n in (False, True)]
    z = time_wait.rebind_matrix(grid).data[0].z
    assert [list(row) for row in z] == [[0, 0], [0, 1]]


@pytest.mark.parametrize("mode", ["sim", pytest.param("real", marks=pytest.mark.real)])
def test_state_timeline_lanes(mode):
    r = lifecycle("client_closes_first", mode=mode) if mode == "sim" else lifecycle("client_closes_first")
    fig = closing.state_timeline(r)
    states = {tr.name for tr in fig.data}
    assert {"ESTABLISHED", "CLOSE_WAIT", "TIME_WAIT"} <= states
    tw = next(tr for tr in fig.data if tr.name == "TIME_WAIT")
    assert set(tw.y) == {"client"}
    assert ("REAL" if r.mode == "real" else "SIMULATED") in fig.layout.title.text


def test_compare_closes_stacks_lanes():
    rs = [lifecycle(s, mode="sim") for s in ("client_closes_first", "abortive_close")]
    fig = closing.compare_closes(rs)
    lanes = {y for tr in fig.data for y in tr.y}
    assert lanes == {"client_closes_first · client", "client_closes_first · server",
                     "abortive_close · client", "abortive_close · server"}


def test_segments_without_timeline_use_steps():
    r = lifecycle("half_close", mode="sim")
    r.timeline = None
    segs, timed = closing.state_segments(r)
    assert not timed and [s["state"] for s in segs if s["side"] == "client"] == r.summary["client_states"]


def test_load_dashboard_and_latency():
    r = experiments.load(rate=200, accept_rate=150, duration=3, backlog=16, mode="sim")
    fig = load.dashboard(r)
    recv_q = fig.data[0]
    assert max(recv_q.y) == r.summary["max_recv_q"] == 17
    lat = load.connect_latency(r)
    assert len(lat.data[0].x) == r.summary["established"]
    assert max(lat.data[1].y) <= 1.0


def test_counter_table_has_netstat_sentences():
    t = diagnose.counter_table({"ListenOverflows": 28, "TW": 0, "InSegs": 5})
    assert t["counter"].tolist() == ["ListenOverflows", "InSegs"]
    assert t.iloc[0]["netstat -s says"] == "28 times the listen queue of a socket overflowed"


def test_state_counts_order():
    import pandas as pd
    df = pd.DataFrame({"state": ["TIME_WAIT", "LISTEN", "TIME_WAIT", "ESTABLISHED"]})
    c = diagnose.state_counts(df)
    assert c["state"].tolist() == ["LISTEN", "ESTABLISHED", "TIME_WAIT"] and c["count"].tolist() == [1, 1, 2]
    assert list(diagnose.state_summary(df).data[0].y) == [1, 1, 2]
