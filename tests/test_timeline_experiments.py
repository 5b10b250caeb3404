"""Every experiment with a connection shows its timeline (issue 25): delayed_ack, nagle and syn_retries,
simulated (the segments their model decides, tcplab.sim.ladder) and real (captured on lo or the client's
veth). Each timeline's segments are checked against the Result's own summary and tables: the delayed ACK
leaves at the wait the summary reports, the SYNs at the retransmission times."""

from __future__ import annotations

import pandas  # noqa: F401 - imported before any fork
import pytest

from tcplab.experiments import delayed_ack, fd_limit, nagle, syn_retries
from tcplab.experiments.result import Result
from tcplab.experiments.timeline import CONNECTIONLESS, timeline_of
from tcplab.model.outcome import Outcome
from tcplab.sim.ladder import Ladder
from tests.conftest import skip_unless_trusted


def _data(tl, end):
    return [s for s in tl.segments if s["src_end"] == end and s["len"] > 0]


def _acks(tl, end):
    return [s for s in tl.segments if s["src_end"] == end and s["len"] == 0 and s["flags"] == "A"]


def _ack_of(tl, seg):
    """The first segment of the other end that acknowledges all of ``seg`` (a pure ACK or a reply)."""
    want = seg["rel_seq"] + seg["len"]
    return next(s for s in tl.segments if s["src_end"] != seg["src_end"] and s["t"] >= seg["t"]
                and s["rel_ack"] is not None and s["rel_ack"] >= want)


# ---------------------------------------------------------------- simulated

@pytest.mark.parametrize("rtt_ms", [0.0, 100.0, 250.0])
def test_a_simulated_delayed_ack_leaves_at_the_wait_the_summary_reports(rtt_ms):
    r = delayed_ack(rtt_ms=rtt_ms, messages=5, mode="sim")
    tl = timeline_of(r)
    msgs = _data(tl, "client")
    assert len(msgs) == 5
    waits = [round((_ack_of(tl, m)["t"] - m["t"] - rtt_ms / 1000) * 1000, 1) for m in msgs]
    assert waits == r.summary["waits_ms"]
    assert [s["state"] for s in tl.states if s["end"] == "client"] == ["SYN_SENT", "ESTABLISHED"]


def test_a_simulated_request_stalls_between_its_two_writes():
    r = delayed_ack(rtt_ms=100.0, messages=3, pattern="request", mode="sim")
    tl = timeline_of(r)
    writes, replies = _data(tl, "client"), _data(tl, "server")
    assert len(writes) == 6 and len(replies) == 3
    for n, lat in enumerate(r.tables["messages"]["latency_ms"]):
        first, second = writes[2 * n], writes[2 * n + 1]
        assert round((replies[n]["t"] - first["t"]) * 1000, 3) == lat      # the request's latency
        ack = _ack_of(tl, first)
        assert ack["len"] == 0 and ack["t"] == second["t"]                  # the held write leaves on its ACK


def test_simulated_nagle_segments_agree_with_its_summary():
    r = nagle(requests=5, mode="sim")
    tl = timeline_of(r)
    data = _data(tl, "client")
    assert len(data) == r.summary["segments"]
    replies = _data(tl, "server")
    # each request: its first write, the reply that ends it; latency = reply - first write
    firsts = [s for s in data if s["rel_seq"] == 1 + 200 * (s["rel_seq"] // 200)]
    assert [round((rep["t"] - f["t"]) * 1000, 3) for f, rep in zip(firsts, replies)] == \
        r.tables["requests"]["latency_ms"].tolist()
    # the ACKs the delayed-ACK timer sent: alone, 40 ms + a jiffy after the write they acknowledge
    delayed = [a for a in _acks(tl, "server") if a["rel_ack"] and a["t"] > 0
               and any(0.040 <= a["t"] - d["t"] <= 0.045 for d in data)]
    assert len(delayed) == r.summary["delayed_acks"] == 4
    for a in delayed:                               # the held write leaves with it
        assert any(d["t"] == a["t"] and d["rel_seq"] == a["rel_ack"] for d in data)


def test_simulated_nagle_cures_send_both_writes_at_once():
    tl = timeline_of(nagle(requests=4, nodelay=True, mode="sim"))
    data = _data(tl, "client")
    assert len(data) == 8 and all(data[2 * i]["t"] == data[2 * i + 1]["t"] for i in range(4))
    tl = timeline_of(nagle(requests=4, quickack=True, mode="sim"))
    assert max(s["t"] for s in tl.segments) < 0.005          # no request waits for a timer


def test_simulated_syns_leave_at_the_retransmission_times():
    for kw in (dict(retries=2, linear_timeouts=0), dict(retries=2, linear_timeouts=4), dict(retries=4)):
        r = syn_retries(mode="sim", **kw)
        tl = timeline_of(r)
        syns = [s for s in tl.segments if s["flags"] == "S"]
        assert len(syns) == len(tl.segments) == r.summary["syns_sent"]
        assert [s["t"] for s in syns[1:]] == r.summary["retransmit_times"]
        assert [s["mark"] for s in syns] == [""] + ["retransmit"] * r.summary["retransmissions"]
        states = [(s["end"], s["state"], s["t"]) for s in tl.states]
        assert states == [("client", "SYN_SENT", 0.0), ("client", "CLOSE", r.summary["failed_after"])]
        assert {x["end"] for x in tl.tcp_info} == {"client"}
        assert tl.kernel_vs_model().empty         # the sampled states are the table's


# ---------------------------------------------------------------- bad input and refusals

def test_experiments_without_one_connection_are_refused_with_the_reason():
    assert set(CONNECTIONLESS) == {"fd_limit", "time_wait", "rebind"}
    with pytest.raises(ValueError, match="result must come from an experiment with a connection.*file descriptor"):
        timeline_of(fd_limit(mode="sim"))


def test_a_real_run_without_a_capture_says_why_it_has_no_timeline():
    out = Outcome(summary={}, tables={"requests": [{"n": 1, "latency_ms": 44.0}]},
                  notes=["no packet capture here (Operation not permitted: AF_PACKET needs CAP_NET_RAW in the "
                         "namespace): no segments table (timeline_of shows none)"])
    r = Result.from_outcome("nagle", "real", "test", {}, out, kernel="6.18")
    with pytest.raises(ValueError, match="result must hold segments.*AF_PACKET needs CAP_NET_RAW"):
        timeline_of(r)


def test_ladder_bad_input_names_the_parameter():
    lad = Ladder()
    with pytest.raises(ValueError, match="end must be 'client' or 'server'"):
        lad.data(0.0, "peer", 10)
    with pytest.raises(ValueError, match="length >= 1"):
        lad.data(0.0, "client", 0)
    with pytest.raises(ValueError, match="end must be"):
        lad.ack(0.0, "both")


# ---------------------------------------------------------------- real

def _captured(r):
    if "segments" not in r.tables:
        pytest.skip(next(n for n in r.notes if "capture" in n))     # no CAP_NET_RAW here: the Result says why


@pytest.mark.real
def test_a_real_delayed_ack_leaves_at_the_wait_the_summary_reports():
    """The capture's kernel time stamps against the runner's poll of Send-Q: each measured message's ACK
    leaves ``wait`` after it (within the poll's lateness, which the run measures as client_late)."""
    r = delayed_ack(rtt_ms=0.0, messages=4, mode="real")
    _captured(r)
    skip_unless_trusted(r)
    tl = timeline_of(r)
    msgs = _data(tl, "client")[-4:]                 # the measured ones follow the quick-ACKed warm-up
    waits = [(_ack_of(tl, m)["t"] - m["t"]) * 1000 - r.summary["path_rtt_ms"] for m in msgs]
    late = next(t.ms for t in r.fidelity.timings if t.name == "client_late") if r.fidelity else 0.0
    for got, said in zip(waits, r.summary["waits_ms"]):
        assert abs(got - said) <= 1.0 + late, (waits, r.summary["waits_ms"], late)
    assert all(36 <= w <= 60 for w in waits)         # TCP_DELACK_MIN (+ a jiffy) on loopback


@pytest.mark.real
def test_real_syns_leave_at_the_retransmission_times():
    """The captured SYNs (kernel time stamps, t = 0 at connect()) against the runner's 2 ms TCP_INFO poll."""
    r = syn_retries(retries=1, linear_timeouts=0, mode="real")
    _captured(r)
    skip_unless_trusted(r)
    tl = timeline_of(r)
    syns = [s for s in tl.segments if s["flags"] == "S"]
    assert len(syns) == len(tl.segments) == r.summary["syns_sent"] == 2
    assert syns[0]["t"] < 0.005                      # the first SYN leaves in connect()
    # the poll sees each SYN after it left: within its 2 ms and its own measured lag (the sampler's timing)
    late = max((t.ms for t in r.fidelity.timings if t.name == "sampler"), default=0.0) if r.fidelity else 0.0
    for seg, said in zip(syns[1:], r.summary["retransmit_times"]):
        assert 0 <= said - seg["t"] <= (2.0 + late + 1.0) / 1000, (seg["t"], said, late)
    assert [s["state"] for s in tl.states] == ["SYN_SENT", "CLOSE"]
    assert tl.states[-1]["t"] == pytest.approx(r.summary["failed_after"], abs=0.001)


@pytest.mark.real
def test_a_real_delayed_ack_over_a_path_is_captured_at_the_client():
    from tcplab.kernel.namespace import namespace_support
    ok, why = namespace_support()
    if not ok:
        pytest.skip(why)
    r = delayed_ack(rtt_ms=100.0, messages=2, mode="real")
    _captured(r)
    skip_unless_trusted(r)
    tl = timeline_of(r)
    syn, synack = tl.segments[0], tl.segments[1]
    assert (syn["flags"], synack["flags"]) == ("S", "SA")
    assert 0.095 <= synack["t"] - syn["t"] <= 0.130            # one RTT through the delay line
    msgs = _data(tl, "client")[-2:]
    waits = [(_ack_of(tl, m)["t"] - m["t"]) * 1000 - r.summary["path_rtt_ms"] for m in msgs]
    late = max((t.ms for t in r.fidelity.timings if t.name in ("client_late", "delay_line")), default=0.0)
    for got, said in zip(waits, r.summary["waits_ms"]):
        assert abs(got - said) <= 2.0 + late, (waits, r.summary["waits_ms"], late)


def test_on_bound_needs_a_bound_port():
    from tcplab.kernel.loopback import SocketSet
    with SocketSet() as ss, pytest.raises(ValueError, match="on_bound needs bind_port"):
        ss.connect(("127.0.0.1", 9), on_bound=lambda s: None)
