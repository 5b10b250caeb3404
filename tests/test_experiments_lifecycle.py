"""lifecycle on the real kernel: the states of both ends (docs/kernel-facts.md case 6), derived from the
packets, so no state is missed at any slow motion; the /proc sampler only where no capture is
possible."""

from __future__ import annotations

import os

import pandas  # noqa: F401 - imported before forking to uid 65534
import pytest

import tcplab.experiments.agreement  # noqa: F401 - imported before forking to uid 65534
from tcplab.errors import RealModeUnavailable
from tcplab.experiments import lifecycle
from tcplab.experiments.agreement import compare, states_sampled
from tcplab.experiments.lifecycle import SAMPLED_NOTE
from tcplab.model.states import SegmentFollower, TcpState
from tests.conftest import run_as_nobody

pytestmark = pytest.mark.real  # the scenarios run on loopback (the follower tests ride along)

S = TcpState
TEXTBOOK_CLIENT = ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"]
TEXTBOOK_SERVER = ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSE"]

# every state of the textbook diagram, at any slow motion: (client, server, client_error, server_error)
EXPECTED = {
    "client_closes_first": (TEXTBOOK_CLIENT, TEXTBOOK_SERVER, None, None),
    "server_closes_first": (["SYN_SENT", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSE"],
                            ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"], None, None),
    "server_never_closes": (["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2"],
                            ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT"], None, None),
    "abortive_close": (["SYN_SENT", "ESTABLISHED", "CLOSE"], ["SYN_RECV", "ESTABLISHED", "CLOSE"],
                       None, "ECONNRESET"),
    "half_close": (TEXTBOOK_CLIENT, TEXTBOOK_SERVER, None, None),
    # one socket talking to itself: its own SYN meets it in SYN_SENT (simultaneous open,
    # tcp_rcv_synsent_state_process), its own FIN in FIN_WAIT1 (simultaneous close)
    "simultaneous_open": (["SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "CLOSING", "TIME_WAIT"], [],
                          None, None),
}


def _run(scenario, slow, mode="real"):
    r = lifecycle(scenario, slow_motion=slow, mode=mode)
    return r.summary, list(r.notes), r.reason, states_sampled(r)


@pytest.mark.parametrize("slow", [0, 20])
@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_every_state_from_the_packets(as_user, scenario, slow):
    s, notes, reason, sampled = as_user(_run, scenario, slow)
    assert reason.startswith("Linux kernel in a private"), reason
    assert not sampled, notes                    # the namespace's owner may capture on its lo
    client, server, cerr, serr = EXPECTED[scenario]
    # the end that closed first waits in TIME_WAIT (simultaneous_open: the one socket)
    tw = {"client_closes_first": "client", "server_closes_first": "server", "half_close": "client",
          "simultaneous_open": "client"}.get(scenario)
    assert s == {"client_states": client, "server_states": server, "client_error": cerr,
                 "server_error": serr, "time_wait_end": tw}, notes
    # the /proc sampler, run alongside, saw nothing the packets contradict
    assert not [n for n in notes if "disagree" in n], notes
    if slow:
        assert any("loopback slowed down" in n or "slow_motion ignored" in n for n in notes), notes
    # and the simulator tells the same story, state for state
    sim, *_ = _run(scenario, slow, "sim")
    for key in ("client_states", "server_states"):
        assert compare("lifecycle", {"scenario": scenario, "slow_motion": slow}, key, s[key], sim[key],
                       sampled=sampled) == ("states", "agree"), (key, s[key], sim[key])


def test_timeline_and_events():
    r = lifecycle("half_close", mode="real")
    assert list(r.timeline.columns) == ["t", "client", "server", "event"]
    assert r.timeline["t"].is_monotonic_increasing
    events = list(r.tables["events"]["event"])
    assert "client shutdown(SHUT_WR)" in events and "client recv() -> b'hello, world\\n'" in events
    # every state change is a row, LAST_ACK included, between the server's close() and the end
    changes = list(r.timeline["event"][r.timeline["event"].str.startswith("server -> ")])
    assert changes == [f"server -> {st}" for st in TEXTBOOK_SERVER]
    close_t = float(r.timeline["t"][r.timeline["event"] == "server close()"].iloc[0])
    last_ack_t = float(r.timeline["t"][r.timeline["event"] == "server -> LAST_ACK"].iloc[0])
    assert last_ack_t >= close_t


def _host_namespace_run(scenario):
    os.environ["TCPLAB_FORBID_NAMESPACES"] = "1"
    try:
        return _run(scenario, 0)
    finally:
        del os.environ["TCPLAB_FORBID_NAMESPACES"]


def test_root_captures_in_the_host_namespace():
    """Without a private namespace root still captures on the host's lo (kept to the
    connection's two ports): every state, from the packets."""
    if os.geteuid() != 0:
        pytest.skip("not root")
    s, notes, reason, sampled = _host_namespace_run("client_closes_first")
    assert "host network namespace" in reason and not sampled, (reason, notes)
    assert (s["client_states"], s["server_states"]) == (TEXTBOOK_CLIENT, TEXTBOOK_SERVER), notes


def test_no_capture_falls_back_to_sampling_and_says_so():
    """In the host namespace an unprivileged user has no CAP_NET_RAW: the states are sampled,
    the notes say so, and the agreement rule is the subsequence one, said in the verdict."""
    if os.geteuid() != 0:
        pytest.skip("needs root to become uid 65534")
    s, notes, reason, sampled = run_as_nobody(_host_namespace_run, "client_closes_first")
    assert "host network namespace" in reason and sampled, (reason, notes)
    assert any(n.startswith(SAMPLED_NOTE) and "CAP_NET_RAW" in n for n in notes), notes
    # the states that last until the script's next step are always sampled
    lasting = {"ESTABLISHED", "FIN_WAIT2", "TIME_WAIT", "CLOSE_WAIT", "CLOSE"}
    for key, want in (("client_states", TEXTBOOK_CLIENT), ("server_states", TEXTBOOK_SERVER)):
        got = s[key]
        assert [x for x in got if x in lasting] == [x for x in want if x in lasting], notes
        assert set(got) <= set(want), notes
        assert compare("lifecycle", {}, key, got, want, sampled=True) == ("states (sampled: subsequence)", "agree")


def test_bad_parameters_and_no_namespace(monkeypatch):
    with pytest.raises(ValueError, match="scenario must be one of"):
        lifecycle("client_closes_last")
    with pytest.raises(ValueError, match="slow_motion"):
        lifecycle(slow_motion=501)
    monkeypatch.setenv("TCPLAB_FORBID_NAMESPACES", "1")
    with pytest.raises(RealModeUnavailable, match="slow_motion"):
        lifecycle(slow_motion=20, mode="real")
    r = lifecycle("abortive_close", mode="real")
    assert r.mode == "real" and r.summary["server_error"] == "ECONNRESET"


# -- the follower itself: the state table driven by segments ---------------------------------

def _names(f):
    return [s.name for s in f.states]


def test_follower_fin_that_acks_our_fin_goes_through_fin_wait2():
    # RFC 9293 3.10.7.4: the ACK is processed (fifth) before the FIN (eighth), as in
    # tcp_rcv_state_process(): FIN_WAIT1 -> FIN_WAIT2 -> TIME_WAIT
    c = SegmentFollower(S.ESTABLISHED)
    c.sent("FA", seq=10, ack=50)
    c.received("FA", seq=50, ack=11)
    assert _names(c) == ["FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"]
    # a FIN that does not ack ours: simultaneous close
    c = SegmentFollower(S.ESTABLISHED)
    c.sent("FA", seq=10, ack=50)
    c.received("FA", seq=50, ack=10)
    c.received("A", seq=51, ack=11)
    assert _names(c) == ["FIN_WAIT1", "CLOSING", "TIME_WAIT"]


def test_follower_ignores_what_changes_nothing():
    srv = SegmentFollower(S.LISTEN)
    srv.received("S", seq=100)
    srv.sent("SA", seq=7, ack=101)
    srv.received("S", seq=100)                   # a retransmitted SYN
    srv.received("A", seq=101, ack=7)            # does not ack our SYN
    assert _names(srv) == ["SYN_RECV"]
    srv.received("A", seq=101, ack=8)
    srv.received("PA", seq=101, ack=8, length=5)  # data
    srv.received("FA", seq=106, ack=8)
    srv.sent("FA", seq=8, ack=107)
    srv.sent("FA", seq=8, ack=107)               # a retransmitted FIN
    srv.received("A", seq=107, ack=8)            # a duplicate ACK, not of our FIN
    assert _names(srv) == ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK"]
    srv.received("A", seq=107, ack=9)
    assert _names(srv) == ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSE"]
    assert srv.events[-1] == "rcv_ack" and srv.ignored == 0


def test_follower_rst_and_sequence_wrap():
    c = SegmentFollower(S.CLOSE)
    c.sent("S", seq=0xFFFFFFFF)
    c.received("SA", seq=5, ack=0)               # acks 0xFFFFFFFF + 1, wrapped
    assert _names(c) == ["SYN_SENT", "ESTABLISHED"]
    c.sent("RA", seq=0, ack=6)
    assert _names(c)[-1] == "CLOSE" and c.events[-1] == "app_abort"
    p = SegmentFollower(S.ESTABLISHED)
    p.received("R", seq=6)
    assert _names(p) == ["CLOSE"]
    p.received("R", seq=6)                       # nothing left to reset: the table says no
    assert _names(p) == ["CLOSE"] and p.ignored == 1


def test_capture_filter_keeps_only_the_connection():
    """The kernel-side filter: on a busy lo other traffic never reaches the capture's buffer."""
    import socket

    from tcplab.kernel.capture import Capture, ports_filter

    with pytest.raises(ValueError, match="port b must be an int in 0..65535"):
        ports_filter(80, 70000)
    if os.geteuid() != 0:
        pytest.skip("capturing on the host's lo needs root")
    with socket.socket() as lst, socket.socket() as c, socket.socket() as olst:
        for s in (lst, c, olst):
            s.bind(("127.0.0.1", 0))
        lst.listen()
        olst.listen()
        sport, cport = lst.getsockname()[1], c.getsockname()[1]
        with Capture("lo", rcvbuf=1 << 16, ports=(sport, cport)) as cap:
            with socket.create_connection(olst.getsockname(), timeout=5) as other:
                peer, _ = olst.accept()
                with peer:
                    for _ in range(2000):          # far more than a 64 KiB buffer holds
                        other.sendall(b"x" * 100)
                        peer.recv(1000)
            c.connect(lst.getsockname())
            s, _ = lst.accept()
            s.close()
            c.close()
            segs = cap.read(0.3)
            assert cap.drops() == 0
    assert segs and all({g["src_port"], g["dst_port"]} == {sport, cport} for g in segs), segs
    assert [g["flags"] for g in segs][:3] == ["S", "SA", "A"]
