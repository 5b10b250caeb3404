"""Real and simulated runs of every experiment have the same shape: table names, columns per
table, timeline columns and summary keys (docs/experiments.md, "Tables and timelines").
A learner switching the real/sim toggle gets the same charts and tables."""

from __future__ import annotations

import pytest

import tcplab.experiments as ex
from tcplab.errors import RealModeUnavailable
from tcplab.kernel.namespace import namespace_support

# small, fast parameters; each covers a table the experiment can produce
POINTS = [
    ("accept_queue", dict(backlog=2, clients=5, settle=0.3, accept_after=0.1)),
    ("ack_overflow", dict(backlog=2, burst=6, syncookies=0)),
    ("syn_queue", dict(backlog=2, clients=6, settle=0.2)),
    ("syn_queue", dict(backlog=4, clients=20, syncookies=1, max_syn_backlog=8, flood=True, settle=0.2)),
    ("syn_retries", dict(retries=1, linear_timeouts=0)),
    ("lifecycle", dict(scenario="client_closes_first", slow_motion=20)),
    ("lifecycle", dict(scenario="simultaneous_open")),
    ("handshake", {}),
    ("time_wait", dict(connections=12, port_range=(40000, 40009), tw_reuse=0, duration=0.5)),
    ("time_wait", dict(connections=5, closer="server", duration=0.3)),
    ("rebind", {}),
    ("rebind", dict(closer="client", old_listener_open=True)),
    ("load", dict(rate=50, accept_rate=20, duration=0.5)),
]


def shape(r):
    return {"tables": {k: sorted(map(str, df.columns)) for k, df in r.tables.items()},
            "timeline": None if r.timeline is None else sorted(map(str, r.timeline.columns)),
            "summary": sorted(r.summary)}


@pytest.fixture(scope="module")
def can_run_real():
    ok, why = namespace_support()
    if not ok:
        pytest.skip(f"no private network namespace here: {why}")


@pytest.mark.real
@pytest.mark.parametrize("name,params", POINTS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(POINTS)])
def test_real_and_sim_have_the_same_shape(name, params, can_run_real):
    try:
        real = getattr(ex, name)(**params, mode="real")
    except RealModeUnavailable as e:
        pytest.skip(str(e))
    sim = getattr(ex, name)(**params, mode="sim")
    assert shape(sim) == shape(real)


@pytest.mark.parametrize("name,params", POINTS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(POINTS)])
def test_sim_shape_is_the_documented_one(name, params):
    """Without a kernel: the simulator's shape is the canonical one of docs/experiments.md."""
    sim = getattr(ex, name)(**params, mode="sim")
    s = shape(sim)
    want_tables = {k: sorted(v) for k, v in CANONICAL[name]["tables"].items()
                   if not (name == "syn_queue" and k == "clients" and params.get("flood"))}
    assert s["tables"] == want_tables
    tl = CANONICAL[name]["timeline"]
    assert s["timeline"] == (None if tl is None else sorted(tl))


SOCK = ["state", "local", "remote", "recv_q", "send_q", "timer", "retransmits"]
CANONICAL = {
    "accept_queue": {"tables": {"clients": ["client", "port", "state", "error", "server_side"], "sockets": SOCK},
                     "timeline": ["t", "recv_q", "accepted", "established_clients", "syn_sent_clients"]},
    "ack_overflow": {"tables": {"clients": ["client", "port", "state", "error", "server_side", "data_sent",
                                            "accepted_later"], "sockets": SOCK},
                     "timeline": ["t", "recv_q", "syn_recv", "established_clients", "syn_sent_clients",
                                  "reset_clients", "accepted"]},
    "syn_queue": {"tables": {"sockets": ["state", "remote", "timer", "retransmits"],
                             "clients": ["client", "port", "state"]}, "timeline": None},
    "syn_retries": {"tables": {"syns": ["n", "sent_at_s", "predicted_s", "rto_ms", "backoff"]},
                    "timeline": ["t", "state", "retransmits", "total_retrans", "backoff", "rto_ms"]},
    "lifecycle": {"tables": {"events": ["t", "event"]}, "timeline": ["t", "client", "server", "event"]},
    "handshake": {"tables": {"packets": ["t", "direction", "flags", "seq", "ack", "rel_seq", "rel_ack", "window",
                                         "payload", "options"],
                             "tcp_info": ["end", "state_before_close", "timestamps", "sack", "wscale", "snd_wscale",
                                          "rcv_wscale", "snd_mss", "rcv_mss", "rto_ms"]}, "timeline": None},
    "time_wait": {"tables": {"attempts": ["t", "ok", "local_port", "reused", "error"],
                             "time_wait_sockets": ["local", "remote"]}, "timeline": None},
    "rebind": {"tables": {"time_wait_sockets": ["local", "remote", "on_server_port"]}, "timeline": None},
    "load": {"tables": {"clients": ["client", "started_s", "connect_s", "outcome"]},
             "timeline": ["t", "recv_q", "attempts", "established", "failed", "pending", "accepted"]},
}


def test_state_names_agree():
    """Value conventions: a closed socket is "CLOSE" (TCP_CLOSE), missing values are None."""
    r = ex.accept_queue(backlog=0, clients=3, settle=0.2, mode="sim")
    assert set(r.tables["clients"]["state"]) <= {"ESTABLISHED", "SYN_SENT", "CLOSE"}
    assert r.tables["clients"]["server_side"].isna().sum() == 2
    s = ex.syn_retries(1, linear_timeouts=0, mode="sim")
    assert s.timeline["state"].iloc[-1] == "CLOSE"
