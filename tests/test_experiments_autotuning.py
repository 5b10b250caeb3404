"""autotuning: the receiver's buffer grows during a transfer unless the application set SO_RCVBUF, real as root
and as uid 65534, and the model's rules (tcplab.model.rcvbuf) in the simulator."""

from __future__ import annotations

import pandas  # noqa: F401 - imported before forking to uid 65534 (it cannot read the venv afterwards)
import pytest

from tcplab.errors import RealModeUnavailable
from tcplab.experiments import autotuning
from tcplab.model.rcvbuf import autotuning as rule, locked_rcvbuf


def _real(rcvbuf=None):
    r = autotuning(rcvbuf=rcvbuf, mode="real")
    return r.mode, r.summary, r.tables["growth"].to_dict("records"), r.sysctls, r.trusted, r.provenance


@pytest.mark.real
def test_without_so_rcvbuf_the_kernel_grows_the_buffer(as_user):
    try:
        mode, s, rows, sysctls, trusted, provenance = as_user(_real)
    except RealModeUnavailable as e:
        pytest.skip(str(e))
    assert mode == "real"
    if not trusted:      # the reader was too slow for the grow trigger (a busy or emulated host): it says so
        assert not s["autotuned"] and "rcv_space" in provenance, provenance
        pytest.skip(f"host too slow for autotuning to act: {provenance}")
    rmem = sysctls["net.ipv4.tcp_rmem"]
    # tcp_init_sock(): tcp_rmem[1]; tcp_rcv_space_adjust() raised it, never past tcp_rmem[2]
    assert s["rcvbuf_at_start"] == rmem[1]
    assert s["autotuned"] and rmem[1] < s["rcvbuf_max"] <= rmem[2], s
    assert len({r["rcvbuf"] for r in rows}) >= 2
    # the window grew with it, past what the starting buffer allows (6.1's tcp_info has no rcv_wnd: None)
    assert s["rcv_wnd_max"] is None or s["rcv_wnd_max"] > rmem[1] // 2, s


@pytest.mark.real
@pytest.mark.parametrize("rcvbuf", [32768, 131072])
def test_so_rcvbuf_turns_autotuning_off(as_user, rcvbuf):
    try:
        mode, s, rows, *_ = as_user(_real, rcvbuf)
    except RealModeUnavailable as e:
        pytest.skip(str(e))
    # __sock_set_rcvbuf(): doubled and SOCK_RCVBUF_LOCK; tcp_rcv_space_adjust() leaves it alone
    assert s["rcvbuf_at_start"] == s["rcvbuf_max"] == 2 * rcvbuf and not s["autotuned"], s
    assert {r["rcvbuf"] for r in rows} == {2 * rcvbuf}
    # and the window never passes the buffer (6.1's tcp_info has no rcv_wnd: None)
    assert s["rcv_wnd_max"] is None or s["rcv_wnd_max"] <= 2 * rcvbuf, s


def test_the_model_rules():
    assert locked_rcvbuf(32768) == 65536 and locked_rcvbuf(1) == 2304
    assert locked_rcvbuf(10**6, rmem_max=212992) == 425984
    assert rule(None) == (131072, True, 6291456)
    assert rule(None, moderate_rcvbuf=False) == (131072, False, 131072)
    assert rule(4096) == (8192, False, 8192)
    with pytest.raises(ValueError, match="requested"):
        locked_rcvbuf(-1)


def test_sim_says_what_it_does_not_model():
    r = autotuning(mode="sim")
    assert r.summary["autotuned"] and r.summary["rcvbuf_max"] is None
    assert any("reader's pace" in n for n in r.notes)
    s = autotuning(rcvbuf=32768, mode="sim").summary
    assert s["rcvbuf_max"] == s["rcvbuf_at_start"] == 65536 and not s["autotuned"]


@pytest.mark.parametrize("kw,msg", [
    (dict(rcvbuf=0), r"rcvbuf must be None or an int in 1\.\.212992, not 0"),
    (dict(bytes=10), r"bytes must be an int in 1000000\.\.1000000000, not 10"),
])
def test_bad_parameters(kw, msg):
    with pytest.raises(ValueError, match=msg):
        autotuning(**kw, mode="sim")


def test_a_reader_too_slow_for_the_grow_trigger_is_not_shown_as_trusted():
    """6.12 in a TCG guest: 20 MB read so slowly that no receiver RTT saw more than rcv_space copied, so
    tcp_rcv_space_adjust() never grew the buffer; the run must say the host's pace decided it."""
    from tcplab.experiments.autotuning import SPEC, reader_shortfall
    from tcplab.model.outcome import Timing

    slow = reader_shortfall([(i * 0.01, i * 40_000) for i in range(100)], 65_483, 0.002)
    assert slow > 0.001
    verdict = SPEC.judge([Timing("reader", slow * 1000, "the reader needed 18 ms more")])
    assert not verdict.ok and "autotuned" in verdict.reason, verdict.reason
    assert SPEC.judge([Timing("reader", 0.0, "fast enough")]).ok
