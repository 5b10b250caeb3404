"""lifecycle on the real kernel: the states of both ends (KERNEL.md case 6)."""

from __future__ import annotations

import pandas  # noqa: F401 - imported before forking to uid 65534
import pytest

from tcplab.errors import RealModeUnavailable
from tcplab.experiments import lifecycle

pytestmark = pytest.mark.real  # every scenario runs on loopback

# slow_motion=20: every state of the textbook diagram shows up (client SYN_SENT needs a delayed SYN-ACK)
SLOW = {
    "client_closes_first": (["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"],
                            ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSE"], None, None),
    "server_closes_first": (["SYN_SENT", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSE"],
                            ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"], None, None),
    "server_never_closes": (["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2"],
                            ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT"], None, None),
    "abortive_close": (["SYN_SENT", "ESTABLISHED", "CLOSE"], ["SYN_RECV", "ESTABLISHED", "CLOSE"],
                       None, "ECONNRESET"),
    "half_close": (["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"],
                   ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSE"], None, None),
}


def _run(scenario, slow):
    r = lifecycle(scenario, slow_motion=slow, mode="real")
    return r.summary, r.notes


def _subsequence(small, big):
    it = iter(big)
    return all(x in it for x in small)


@pytest.mark.parametrize("scenario", sorted(SLOW))
def test_slow_motion_shows_every_state(scenario):
    _check_slow(scenario, *_run(scenario, 20))


def test_slow_motion_unprivileged(as_user):
    _check_slow("client_closes_first", *as_user(_run, "client_closes_first", 20))


def _check_slow(scenario, s, notes):
    if any("slow_motion ignored" in n for n in notes):
        pytest.skip(notes[0])
    client, server, cerr, serr = SLOW[scenario]
    assert s == {"client_states": client, "server_states": server, "client_error": cerr, "server_error": serr}
    assert any("loopback slowed down" in n for n in notes)


@pytest.mark.parametrize("scenario", sorted(SLOW))
def test_plain_loopback_keeps_the_lasting_states(as_user, scenario):
    s, _ = as_user(_run, scenario, 0)
    client, server, cerr, serr = SLOW[scenario]
    # states that last until the next step are always seen; microsecond ones may be missed
    lasting = {"ESTABLISHED", "FIN_WAIT2", "TIME_WAIT", "CLOSE_WAIT", "CLOSE"}
    assert _subsequence([x for x in client if x in lasting], s["client_states"]), s
    assert _subsequence([x for x in server if x in lasting], s["server_states"]), s
    assert set(s["client_states"]) <= set(client) and set(s["server_states"]) <= set(server)
    assert (s["client_error"], s["server_error"]) == (cerr, serr)


def test_simultaneous_open():
    r = lifecycle("simultaneous_open", slow_motion=20, mode="real")
    s = r.summary
    assert s["server_states"] == []  # one socket: it is both ends
    # its own SYN arrives while it is SYN_SENT: SYN_RECV (tcp_rcv_synsent_state_process), then the
    # FIN it sends to itself on close: CLOSING, then TIME_WAIT
    assert s["client_states"][-1] == "TIME_WAIT" and "ESTABLISHED" in s["client_states"]
    assert set(s["client_states"]) <= {"SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "CLOSING", "TIME_WAIT"}


def test_timeline_and_events():
    r = lifecycle("half_close", mode="real")
    assert list(r.timeline.columns) == ["t", "client", "server", "event"]
    assert r.timeline["t"].is_monotonic_increasing
    events = list(r.tables["events"]["event"])
    assert "client shutdown(SHUT_WR)" in events and "client recv() -> b'hello, world\\n'" in events


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
