"""ack_overflow on the real kernel vs docs/kernel-facts.md case 2, as root and as an unprivileged user,
and the simulator against the same facts."""

from __future__ import annotations

import pandas  # noqa: F401 - imported before forking to uid 65534 (it cannot read the venv afterwards)
import pytest

import tcplab.sim.overflow  # noqa: F401 - the same, for the simulator the real runner imports
from tcplab.errors import RealModeUnavailable
from tcplab.experiments import ack_overflow

# docs/kernel-facts.md case 2: backlog 4, the accept queue pre-filled with 4, a burst of 6 on a slowed lo.
# (syncookies, abort) -> the snapshot at 1.5 s and phase 2
CASE2 = {
    (1, False): dict(server_children=1, syn_recv=4, established_clients=6, syn_sent_clients=0, reset_clients=0,
                     ListenOverflows=9, ListenDrops=9, TCPReqQFullDoCookies=1, SyncookiesSent=1,
                     SyncookiesRecv=1, EmbryonicRsts=0, completed_later=5),
    (1, True): dict(server_children=1, syn_recv=0, established_clients=2, syn_sent_clients=0, reset_clients=4,
                    ListenOverflows=5, ListenDrops=5, EmbryonicRsts=4, TCPReqQFullDoCookies=1, SyncookiesSent=1,
                    completed_later=1),
    (0, False): dict(server_children=1, syn_recv=4, established_clients=5, syn_sent_clients=1, reset_clients=0,
                     ListenOverflows=9, ListenDrops=10, TCPReqQFullDrop=1, EmbryonicRsts=0, completed_later=5),
    (0, True): dict(server_children=1, syn_recv=0, established_clients=1, syn_sent_clients=1, reset_clients=4,
                    ListenOverflows=5, ListenDrops=6, EmbryonicRsts=4, TCPReqQFullDrop=1, completed_later=1),
}


def _run(kw, mode="real"):
    r = ack_overflow(mode=mode, **kw)
    return r.mode, r.summary, r.tables["clients"]["error"].tolist(), r.notes


@pytest.mark.real
@pytest.mark.parametrize("cookies,abort", list(CASE2), ids=[f"cookies{c}-abort{int(a)}" for c, a in CASE2])
def test_kernel_md_case2(as_user, cookies, abort):
    try:
        mode, s, errors, notes = as_user(_run, dict(syncookies=cookies, abort_on_overflow=abort))
    except RealModeUnavailable as e:
        pytest.skip(str(e))
    assert mode == "real"
    expected = CASE2[cookies, abort]
    assert {k: s[k] for k in expected} == expected
    assert s["recv_q"] == 5 and s["send_q"] == 4           # backlog 4 admits 5
    assert errors.count("ECONNRESET") == s["reset_clients"]
    assert any("on lo" in n for n in notes)                # the added delay is recorded


@pytest.mark.parametrize("cookies,abort", list(CASE2), ids=[f"cookies{c}-abort{int(a)}" for c, a in CASE2])
def test_simulator_knows_case2(cookies, abort):
    mode, s, _, _ = _run(dict(syncookies=cookies, abort_on_overflow=abort), mode="sim")
    assert mode == "sim"
    expected = CASE2[cookies, abort]
    assert {k: s[k] for k in expected} == expected


def test_abort_off_loses_nothing_abort_on_resets_every_request_that_overflows():
    """The rule behind the table at another size: requests = backlog + 1, one finds room."""
    for backlog in (0, 2, 6):
        burst = backlog + 1
        off = ack_overflow(backlog=backlog, burst=burst, mode="sim").summary
        on = ack_overflow(backlog=backlog, burst=burst, abort_on_overflow=True, mode="sim").summary
        assert off["reset_clients"] == 0 and off["completed_later"] == backlog
        assert on["reset_clients"] == on["EmbryonicRsts"] == backlog and on["completed_later"] == 0


def test_syncookies_2_never_resets():
    s = ack_overflow(syncookies=2, abort_on_overflow=True, mode="sim").summary
    assert s["reset_clients"] == s["EmbryonicRsts"] == 0 and s["syn_recv"] == 0
    assert s["phantom_clients"] == 5 == s["completed_later"]


@pytest.mark.parametrize("kw,err,msg", [
    (dict(backlog=9), ValueError, r"backlog must be an int in 0\.\.8, not 9"),
    (dict(backlog=2, burst=7), ValueError, r"burst must be an int in 1\.\.6 for backlog 2"),
    (dict(burst=0), ValueError, r"burst must be an int in 1\.\.12, not 0"),
    (dict(slow_motion=0), ValueError, r"slow_motion must be"),
    (dict(syncookies=3), ValueError, r"syncookies must be one of 0, 1, 2, not 3"),
    (dict(abort_on_overflow="yes"), TypeError, r"abort_on_overflow must be True or False"),
])
def test_bad_parameters(kw, err, msg):
    with pytest.raises(err, match=msg):
        ack_overflow(**kw)


def test_slow_connects_split_the_burst_and_the_run_says_so():
    from tcplab.experiments.ack_overflow import SPEC
    from tcplab.model.outcome import Timing

    assert SPEC.judge([Timing("connects", 0.3, ".", limit_ms=12.0)]).ok
    v = SPEC.judge([Timing("connects", 40.0, "the 6 connects took 40 ms", limit_ms=12.0)])
    assert not v.ok and "40 ms" in v.reason
