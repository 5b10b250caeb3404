"""delayed_ack: the delayed ACK's wait on loopback and over the bottleneck path's delay line, real
against tcplab.model.delack.unread_waits (tcp_event_data_recv(), tcp_delack_timer_handler(),
tcp_send_delayed_ack())."""

from __future__ import annotations

import statistics

import pytest

from tcplab.errors import RealModeUnavailable
from tcplab.experiments import delayed_ack
from tcplab.model.delack import unread_waits
from tcplab.model.rto import HZ_TICK
from tests.conftest import skip_unless_trusted


def _real(**kw):
    try:
        return delayed_ack(mode="real", **kw)
    except RealModeUnavailable as e:  # pragma: no cover - depends on the machine (TUN, ip, tc)
        pytest.skip(str(e))


@pytest.mark.real
def test_loopback_holds_the_40_ms_floor():
    r = _real(rtt_ms=0.0, messages=6)
    s = r.summary
    assert r.mode == "real" and s["path_rtt_ms"] < 1
    # the floor: TCP_DELACK_MIN + up to a jiffy, whatever ato did (SRTT is microseconds)
    assert 36 <= s["settled_wait_ms"] <= 50, s


@pytest.mark.real
@pytest.mark.parametrize("rtt_ms,settled", [(100.0, None), (250.0, 200.0)])
def test_the_wait_grows_with_the_rtt_up_to_tcp_delack_max(rtt_ms, settled):
    r = _real(rtt_ms=rtt_ms, messages=6)
    s = r.summary
    model = [w * 1000 for w in unread_waits(s["path_rtt_ms"] / 1000, 6, tick=HZ_TICK)]
    assert s["waits_ms"][0] < 50 and s["waits_ms"][1] > 70                     # 40 ms, then doubled
    assert abs(s["settled_wait_ms"] - model[-1]) <= 0.1 * model[-1], (s, model)
    assert s["settled_wait_ms"] > 2 * 44                                          # above the loopback floor
    if settled is not None:
        assert abs(s["settled_wait_ms"] - settled) <= 10, s                       # TCP_DELACK_MAX


@pytest.mark.real
def test_an_interactive_server_stalls_40_ms_at_any_rtt():
    r = _real(rtt_ms=100.0, messages=5, pattern="request")
    waits = r.summary["waits_ms"]
    assert waits[0] < 10                                                          # quick-ACK mode
    assert 36 <= statistics.median(waits[1:]) <= 55, waits


def test_the_model():
    assert [round(w * 1000) for w in unread_waits(0.0, 3, tick=0.004)] == [44, 44, 44]
    big = unread_waits(0.3, 8, tick=0.004)
    assert max(big) <= 0.204 + 1e-9 and big[-1] == pytest.approx(0.204)
    s = delayed_ack(rtt_ms=100, messages=4, pattern="request", mode="sim").summary
    assert s["waits_ms"] == [0.0, 44.0, 44.0, 44.0]


@pytest.mark.parametrize("kw,msg", [(dict(rtt_ms=-1), r"rtt_ms must be"), (dict(rtt_ms=301), r"rtt_ms must be"),
                                    (dict(pattern="x"), r"pattern must be one of 'unread', 'request'"),
                                    (dict(messages=0), r"messages must be an int in 1\.\.200")])
def test_bad_parameters(kw, msg):
    with pytest.raises(ValueError, match=msg):
        delayed_ack(**kw, mode="sim")


def test_a_late_delay_line_makes_the_settled_wait_untrusted():
    # synthetic timing (no kernel): settled_wait_ms is within 10 % of a delayed ACK of at least 40 ms
    from tcplab.experiments.delayed_ack import SPEC
    from tcplab.model.outcome import Timing

    assert SPEC.judge([Timing("delay_line", 0.1, "the delay line released a packet 0.1 ms late")]).ok
    v = SPEC.judge([Timing("delay_line", 12.0, "the delay line released a packet 12 ms late")])
    assert not v.ok and v.keys == ("settled_wait_ms",) and "tolerates 4 ms" in v.reason, v.reason
    # a client that saw a quick ACK 34 ms late took it for the first delayed one (measured: waits 23.7, 0.0, ...)
    c = SPEC.judge([Timing("client_late", 34.0, "the client saw the ACK of message 1 up to 34.0 ms late")])
    assert not c.ok and c.keys == ("settled_wait_ms",), c.reason


@pytest.mark.real
def test_a_real_run_through_the_delay_line_reports_its_lateness_and_is_trusted():
    from tcplab.errors import RealModeUnavailable
    from tcplab.experiments import delayed_ack

    try:
        r = delayed_ack(rtt_ms=100.0, messages=4, pattern="request", mode="real")
    except RealModeUnavailable as e:  # pragma: no cover - no namespace or /dev/net/tun here
        pytest.skip(str(e))
    t = {x.name: x for x in r.fidelity.timings}
    assert {"delay_line", "client_late"} <= set(t) and t["delay_line"].ms >= 0
    skip_unless_trusted(r)
