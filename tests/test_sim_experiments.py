"""simulate() against the docs/kernel-facts.md observations (rules, not just the table)."""

from __future__ import annotations

import pytest

from tcplab.model.outcome import Outcome
from tcplab.experiments.registry import names, simulate, spec

EXPERIMENTS = names()


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_runs_and_returns_outcome(name):
    o = simulate(name, {})
    assert isinstance(o, Outcome) and o.summary and o.profile == "linux-6.18" and "tcplab.profile" not in o.sysctls


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_summary_keys_are_the_declared_ones(name):
    assert tuple(simulate(name, {}).summary) == spec(name).summary_keys


def test_bad_params():
    with pytest.raises(ValueError, match="accept_queue"):
        simulate("nope", {})
    with pytest.raises(ValueError, match="backlog"):
        simulate("accept_queue", {"backlog": -1})
    with pytest.raises(TypeError, match="backlog"):
        simulate("accept_queue", {"backlog": True})
    with pytest.raises(ValueError, match="bogus"):
        simulate("accept_queue", {"bogus": 1})
    with pytest.raises(ValueError):
        simulate("lifecycle", {"scenario": "nope"})
    with pytest.raises(ValueError):
        simulate("accept_queue", {}, profile="linux-9000")


@pytest.mark.parametrize("backlog,somaxconn,clients,est,lo", [
    (5, None, 20, 6, 28), (5, 3, 20, 4, 32), (0, None, 5, 1, 8), (128, 64, 200, 65, 270), (50, None, 100, 51, 98)])
def test_accept_queue_kernel_table(backlog, somaxconn, clients, est, lo):
    s = simulate("accept_queue", dict(backlog=backlog, somaxconn=somaxconn, clients=clients)).summary
    assert (s["established_clients"], s["syn_sent_clients"], s["recv_q"]) == (est, clients - est, est)
    assert s["send_q"] == min(backlog, somaxconn or 4096)
    assert s["ListenOverflows"] == s["ListenDrops"] == lo


@pytest.mark.parametrize("backlog", [0, 2, 9, 30])
@pytest.mark.parametrize("somaxconn", [1, 7, 4096])
def test_accept_queue_rule(backlog, somaxconn):
    s = simulate("accept_queue", dict(backlog=backlog, somaxconn=somaxconn, clients=60, settle=0.5)).summary
    held = min(min(backlog, somaxconn) + 1, 60)
    assert s["established_clients"] == s["recv_q"] == held
    assert s["ListenOverflows"] == 60 - held              # one SYN each before the 1 s retransmit


def test_abort_on_overflow_changes_nothing_on_loopback_without_accepts():
    a = simulate("accept_queue", dict(abort_on_overflow=True)).summary
    b = simulate("accept_queue", dict(abort_on_overflow=False)).summary
    assert a == b


@pytest.mark.parametrize("backlog,clients,after,abort", [(5, 20, 0.5, False), (2, 10, 0.2, False),
                                                        (5, 20, 0.5, True), (3, 15, 0.3, False)])
def test_accept_after_retry_burst_makes_cookie_phantoms(backlog, clients, after, abort):
    """The stuck clients' SYN retransmissions (one timer tick) form a burst: backlog+1 requests,
    the rest syncookies; the cookie ACKs find the accept queue full and are dropped silently
    (no RST even with tcp_abort_on_overflow=1): ESTABLISHED clients with no server socket."""
    o = simulate("accept_queue", dict(backlog=backlog, clients=clients, accept_after=after,
                                      abort_on_overflow=abort, settle=1.5))
    s, c = o.summary, o.counters
    first_drops = clients - (backlog + 1)
    cookies = first_drops - (backlog + 1)
    assert s["established_clients"] == clients and s["syn_sent_clients"] == 0 and s["reset_clients"] == 0
    assert s["phantom_clients"] == cookies == c["SyncookiesSent"] == c["SyncookiesRecv"] == c["TCPReqQFullDoCookies"]
    assert s["ListenOverflows"] == s["ListenDrops"] == first_drops + cookies
    assert s["accepted"] == s["server_children"] == 2 * (backlog + 1) and s["recv_q"] == 0


def test_no_burst_without_timer_tick():
    """With ``timer_tick=0`` every retransmission is processed alone: the first backlog+1 get in,
    the others are dropped at SYN time (the app polls only every 50 ms), no cookie, no phantom."""
    from dataclasses import replace

    from tcplab.model.listen import Listener
    from tcplab.model.profiles import get_profile
    from tcplab.sim.listenq import run_listen_world
    prof = replace(get_profile(None), timer_tick=0.0)
    w = run_listen_world(Listener(backlog=5, profile=prof), [1e-4 * i for i in range(20)], until=1.5,
                         accept_start=0.5, accept_every=0.05)
    assert (w.established, w.syn_sent, w.phantom, w.accepted) == (12, 8, 0, 12)
    assert w.listener.counters["SyncookiesSent"] == 0


def test_request_ack_overflow_abort_resets_cookie_ack_does_not():
    """docs/kernel-facts.md case 2 in one burst: queue with one free slot (room for backlog+1), 6 SYNs."""
    from tcplab.model.listen import Listener
    for abort, want in ((False, {"child": 1, "overflow": 4, "discarded": 1}),
                        (True, {"child": 1, "reset": 4, "discarded": 1})):
        L = Listener(backlog=4, abort_on_overflow=abort)
        for i in range(4):
            assert L.connect(0.0, ("pre", i)) == "established"
        out = L.on_syn_burst(1.0, range(6))
        got: dict[str, int] = {}
        for _, _, r in out:
            got[r] = got.get(r, 0) + 1
        assert got == want
        c = L.counters
        assert (c["TCPReqQFullDoCookies"], c["SyncookiesSent"], c["SyncookiesRecv"]) == (1, 1, 1)
        assert c["EmbryonicRsts"] == (4 if abort else 0) and c["ListenOverflows"] == 5


def test_fast_loop_matches_reference_with_bursts():
    import random

    from tcplab.model.listen import Listener
    from tcplab.sim.listenq import run_listen_world
    rng = random.Random(7)
    for _ in range(60):
        n = rng.randint(1, 60)
        arr = sorted(rng.uniform(0, 3) if rng.random() < 0.5 else 5e-4 * i for i in range(n))
        kw = dict(backlog=rng.choice([0, 1, 2, 5]), syncookies=rng.choice([None, 0, 2]),
                  abort_on_overflow=rng.choice([None, True]), profile=rng.choice([None, "linux-5.15"]))
        every = rng.choice([None, 0.05])
        start = rng.choice([0.0, 0.2, 2.0])
        res = []
        for ref in (True, False):
            L = Listener(**kw)
            w = run_listen_world(L, arr, until=20.0, syn_retries=2, accept_start=start,
                                 accept_service=0.0 if every else 0.01, accept_every=every,
                                 sample_every=0.5, reference=ref)
            res.append((w.state, w.syns, [x for x in w.connected_at if x == x], w.accepted, w.timeline,
                        L.counters, sorted(w.phantom_ids),
                        [(ch.peer, ch.created, ch.via_cookie) for ch in L.accept_queue]))
        assert res[0] == res[1], kw


@pytest.mark.parametrize("cookies,mx,backlog,syn_recv,kids,lo", [
    (1, 16, 0, 1, 1, 58), (1, 2048, 4, 5, 5, 50), (1, 16, 8, 9, 9, 42), (1, 16, 100, 60, 0, 0),
    (0, 16, 0, 1, 0, 0), (0, 2048, 8, 9, 0, 0), (0, 16, 100, 13, 0, 0), (0, 2048, 100, 60, 0, 0)])
def test_syn_queue_case8(cookies, mx, backlog, syn_recv, kids, lo):
    s = simulate("syn_queue", dict(syncookies=cookies, max_syn_backlog=mx, backlog=backlog, clients=60)).summary
    assert (s["syn_recv"], s["server_children"], s["ListenOverflows"]) == (syn_recv, kids, lo)
    if cookies:
        assert s["SyncookiesSent"] == s["SyncookiesRecv"] == kids


def test_syn_queue_case8_an_unpatched_kernel_admits_backlog():
    # an old kernel without the stable backport of 3479c7549fb1 tests >= (docs/kernels.md)
    import dataclasses
    from tcplab.model.profiles import PROFILES
    unpatched = dataclasses.replace(PROFILES["linux-5.15"], name="unpatched", synq_full_strict=False)
    s = simulate("syn_queue", dict(syncookies=0, backlog=4, clients=60), profile=unpatched).summary
    assert s["syn_recv"] == 4 and s["TCPReqQFullDrop"] == 56
    # the maintained lines have it: backlog + 1
    assert simulate("syn_queue", dict(syncookies=0, backlog=4, clients=60), profile="linux-6.1").summary["syn_recv"] == 5


@pytest.mark.parametrize("cookies,backlog,mx,syn_recv,connected", [
    (0, 128, 8, 7, False), (0, 128, 16, 13, False), (0, 4, 8, 5, False),
    (1, 128, 8, 129, True), (1, 4, 8, 5, True), (2, 128, 8, 0, True)])
def test_syn_flood_case4(cookies, backlog, mx, syn_recv, connected):
    s = simulate("syn_queue", dict(flood=True, clients=200, syncookies=cookies, backlog=backlog,
                                   max_syn_backlog=mx)).summary
    assert s["syn_recv"] == syn_recv and s["legit_client_connected"] is connected
    if cookies:
        assert s["SyncookiesSent"] == 200 - syn_recv


@pytest.mark.parametrize("k,lt,times,fail", [(1, 4, [1, 2], 3), (2, 4, [1, 2, 3, 4, 5], 7),
                                             (3, 4, [1, 2, 3, 4, 5, 7, 11], 19), (3, 0, [1, 3, 7], 15)])
def test_syn_retries(k, lt, times, fail):
    s = simulate("syn_retries", dict(retries=k, linear_timeouts=lt)).summary
    assert s["retransmit_times"] == times and s["failed_after"] == fail and s["error"] == "ETIMEDOUT"
    assert s["syns_sent"] == len(times) + 1


def test_syn_retries_5_15_has_no_linear_timeouts():
    assert simulate("syn_retries", dict(retries=2), profile="linux-5.15").summary["retransmit_times"] == [1, 3]


@pytest.mark.parametrize("kw,made,tw,err", [
    (dict(tw_reuse=0), 10, 10, "EADDRNOTAVAIL"), (dict(tw_reuse=1), 30, 10, "EADDRNOTAVAIL"),
    (dict(tw_reuse=2), 30, 10, "EADDRNOTAVAIL"), (dict(tw_reuse=1, timestamps=False), 10, 10, "EADDRNOTAVAIL"),
    (dict(tw_reuse=0, max_tw_buckets=4), 300, 4, None)])
def test_time_wait_case5(kw, made, tw, err):
    s = simulate("time_wait", dict(port_range=(40000, 40009), connections=5000, duration=3.0, **kw)).summary
    assert (s["connections_made"], s["time_wait"], s["error"]) == (made, tw, err)
    if err:
        assert s["first_failure_at"] == pytest.approx(0.1)


@pytest.mark.parametrize("n", [3, 10, 25])
def test_time_wait_ports_rule(n):
    s = simulate("time_wait", dict(port_range=(40000, 40000 + n - 1), connections=5000, tw_reuse=0)).summary
    assert s["connections_made"] == n


@pytest.mark.parametrize("old", [False, True])
@pytest.mark.parametrize("new", [False, True])
def test_rebind_case7(old, new):
    s = simulate("rebind", dict(old_reuseaddr=old, new_reuseaddr=new, closer="server")).summary
    assert s["bound"] is (old and new)
    assert simulate("rebind", dict(old_reuseaddr=old, new_reuseaddr=new, closer="client")).summary["bound"]
    assert not simulate("rebind", dict(old_reuseaddr=old, new_reuseaddr=new, old_listener_open=True)).summary["bound"]


@pytest.mark.parametrize("scenario,client,server", [
    ("client_closes_first", ["ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"],
     ["ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSE"]),
    ("server_never_closes", ["ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2"], ["ESTABLISHED", "CLOSE_WAIT"]),
    ("abortive_close", ["ESTABLISHED", "CLOSE"], ["ESTABLISHED", "CLOSE"]),
    ("half_close", ["ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"],
     ["ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSE"]),
    ("simultaneous_open", ["ESTABLISHED", "FIN_WAIT1", "CLOSING", "TIME_WAIT"], []),
])
def test_lifecycle(scenario, client, server):
    # with slow_motion the handshake shows first: client SYN_SENT, server SYN_RECV (fact 1)
    s = simulate("lifecycle", dict(scenario=scenario, slow_motion=20.0)).summary
    if scenario == "simultaneous_open":
        assert s["client_states"] == ["SYN_SENT", "SYN_RECV", *client] and s["server_states"] == []
    else:
        assert s["client_states"] == ["SYN_SENT", *client] and s["server_states"] == ["SYN_RECV", *server]
    # on plain loopback the handshake's states last microseconds, but they are there (the real
    # runner derives its lists from the packets): the same lists
    s0 = simulate("lifecycle", dict(scenario=scenario, slow_motion=0.0)).summary
    assert (s0["client_states"], s0["server_states"]) == (s["client_states"], s["server_states"])
    if scenario == "abortive_close":
        assert s["server_error"] == "ECONNRESET" and "TIME_WAIT" not in s["client_states"]


def test_load_is_deterministic():
    # client i starts at i/rate, like the real runner; the only randomness is the phase of the
    # timer wheel (where the 32 ms retransmission slots fall), drawn from the seed
    a = simulate("load", dict(rate=500, accept_rate=200, duration=5), seed=7)
    b = simulate("load", dict(rate=500, accept_rate=200, duration=5), seed=7)
    assert a.summary == b.summary and a.timeline == b.timeline


def test_load_retried_clients_show_1s_and_2s_latencies():
    # dropped SYNs come back after ~1 s and ~2 s (on a 32 ms timer-wheel slot), so the
    # latency tail is there, as on the real kernel (p99 2.04 s at the defaults)
    s = simulate("load", {}).summary
    assert 2.0 < s["p99_connect_s"] < 2.1 and s["p50_connect_s"] < 0.01
    lat = [r["connect_s"] for r in simulate("load", {}).tables["clients"] if r["connect_s"] is not None]
    assert any(1.0 < x < 1.07 for x in lat) and all(x < 0.01 or 1.0 < x < 1.07 or 2.0 < x < 2.1 for x in lat)


def test_load_arrivals_like_the_real_runner():
    o = simulate("load", {})
    assert o.summary["attempts"] == 300                   # round(rate * duration), fact 6
    started = [r["started_s"] for r in o.tables["clients"]]
    assert started[:3] == [0.0, 0.01, 0.02]


def test_accept_after_starts_accepting_then():
    tl = simulate("accept_queue", dict(backlog=5, clients=20, accept_after=0.5)).timeline
    assert all(r["accepted"] == 0 for r in tl if r["t"] < 0.5)
    assert any(r["accepted"] > 0 for r in tl if r["t"] >= 0.5)
    assert [round(r["t"], 6) for r in tl[:3]] == [0.0, 0.05, 0.1]


def test_time_wait_reused_ports_even_ports_first():
    s = simulate("time_wait", dict(port_range=(40000, 40009), tw_reuse=0, max_tw_buckets=4)).summary
    assert (s["connections_made"], s["time_wait"], s["reused_ports"]) == (20, 4, 15)
    rows = simulate("time_wait", dict(port_range=(40000, 40009), tw_reuse=0)).tables["attempts"]
    ports = [r["local_port"] for r in rows if r["ok"]]
    assert ports == [40000, 40002, 40004, 40006, 40008, 40001, 40003, 40005, 40007, 40009]


def test_handshake_whole_connection_and_wscale():
    from tcplab.sim.sockets import window_scale
    o = simulate("handshake", {})
    assert o.summary["packets"] == 10 == len(o.tables["packets"])
    assert [r["flags"] for r in o.tables["packets"]] == ["S", "SA", "A", "PA", "A", "PA", "A", "FA", "FA", "A"]
    assert o.summary["wscale"] == window_scale(6291456) == 7 and window_scale(33554432) == 10
    assert (o.summary["mss"], o.summary["sack"], o.summary["timestamps"]) == (65495, True, True)


def test_syn_queue_no_legit_client_without_flood():
    assert simulate("syn_queue", {}).summary["legit_client_connected"] is None
    assert simulate("syn_queue", dict(flood=True, clients=20)).summary["legit_client_connected"] is not None


def test_syn_retries_sim_ignores_max_seconds():
    from tcplab import experiments
    r = experiments.syn_retries(6, max_seconds=10, mode="sim")
    assert r.summary["syns_sent"] == 11


def test_load_never_accepting_holds_limit_plus_one():
    s = simulate("load", dict(rate=200, accept_rate=0, backlog=10, duration=5)).summary
    assert s["established"] == 11 and s["max_recv_q"] == 11


def test_every_sim_runner_draws_from_the_runs_generator_only(monkeypatch):
    """One random generator per run (issue 23): registry.simulate seeds it from ``seed`` and hands it
    to the sim runner; no runner makes another or touches the global one."""
    import random

    import tcplab.sim.engine as engine
    from tcplab.experiments.registry import spec

    def refuse(*a, **k):
        raise AssertionError("a sim runner used a random generator other than the run's")

    for fn in ("random", "randint", "uniform", "choice", "sample", "shuffle", "getrandbits", "expovariate", "seed"):
        monkeypatch.setattr(random, fn, refuse)
    monkeypatch.setattr(random.Random, "__init__", refuse)
    made = []

    class Counting(engine.SplitMix64):
        __slots__ = ("draws",)

        def __init__(self, seed=0):
            super().__init__(seed)
            self.draws = 0
            made.append(self)

        def random(self):
            self.draws += 1
            return super().random()

    monkeypatch.setattr(engine, "SplitMix64", Counting)
    drew = set()
    for name in EXPERIMENTS:
        for point in spec(name).smoke_points():
            made.clear()
            simulate(name, point, seed=3)
            assert len(made) == 1, name            # one generator per run
            if made[0].draws:
                drew.add(name)
    made.clear()
    simulate("congestion", {"loss": 0.01, "duration": 1.0}, seed=3)
    assert made[0].draws > 0
    assert "load" in drew, drew     # the timer wheel's phase comes from it
