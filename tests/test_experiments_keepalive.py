"""keepalive on the real kernel vs docs/kernel-facts.md ("Data transfer: first probes"), as root and as an
unprivileged user; the timer model (tcplab.model.keepalive) against the same facts."""

from __future__ import annotations

import pandas  # noqa: F401 - imported before forking to uid 65534 (it cannot read the venv afterwards)
import pytest

import tcplab

import tcplab.model.keepalive  # noqa: F401 - the same, for the model the real runner imports
from tcplab.errors import ExperimentError, RealModeUnavailable
from tcplab.experiments import keepalive
from tcplab.model.keepalive import keepalive_schedule, wheel_fires_at
from tcplab.model.rto import HZ_TICK
from tests.conftest import skip_unless_trusted


def _run(kw, mode="real"):
    r = keepalive(mode=mode, **kw)
    return r.mode, r.summary, r.counters, r.tables["probes"]["answer"].tolist(), r.notes


def _real_or_skip(as_user, kw):
    try:
        return as_user(_run, kw)
    except RealModeUnavailable as e:  # pragma: no cover - depends on the machine
        pytest.skip(str(e))


def _within(measured, expected, rel=0.10):
    return abs(measured - expected) <= rel * expected


@pytest.mark.real
def test_silent_peer_as_kernel_md_measured_it(as_user):
    """KEEPIDLE 2, KEEPINTVL 1, KEEPCNT 3, lo down: ETIMEDOUT after 5.08 s."""
    mode, s, counters, answers, notes = _real_or_skip(as_user, dict(idle=2, interval=1, count=3))
    assert mode == "real"
    assert s["error"] == "ETIMEDOUT" and s["end_state"] == "CLOSE", s
    assert _within(s["detected_after_s"], 5.08), s
    assert s["probes_sent"] == 3 and all(_within(m, e) for m, e in zip(s["probe_times"], [2, 3, 4])), s
    assert answers == [None] * 3
    assert counters["TCPKeepAlive"] == 3 and counters["TCPAbortOnTimeout"] == 1, counters
    assert any("lo down" in n for n in notes)


@pytest.mark.real
@pytest.mark.parametrize("kw,probes", [(dict(idle=2, interval=1, count=1, user_timeout=4000), 2),
                                       (dict(idle=1, interval=1, count=9, user_timeout=2500), 2)])
def test_user_timeout_replaces_keepcnt(as_user, kw, probes):
    """tcp_keepalive_timer(): with TCP_USER_TIMEOUT the give-up is elapsed time, TCP_KEEPCNT ignored
    (more probes than count=1; fewer than count=9)."""
    mode, s, counters, answers, notes = _real_or_skip(as_user, kw)
    pred = keepalive_schedule(kw["idle"], kw["interval"], kw["count"], "silent", tick=HZ_TICK,
                              user_timeout_ms=kw["user_timeout"])
    assert mode == "real" and s["error"] == "ETIMEDOUT" and s["probes_sent"] == probes == len(pred.probe_times)
    assert s["probes_sent"] != kw["count"]
    assert _within(s["detected_after_s"], pred.ended_at, 0.05), s


def test_user_timeout_in_the_model():
    # without probes sent, an elapsed user timeout does not end it: the first expiry always probes
    s = keepalive_schedule(5, 1, 3, "silent", tick=0.004, user_timeout_ms=1000)
    assert len(s.probe_times) == 1 and s.ended_at == s.probe_times[0] + 1.024
    # an answering peer restarts the idle time: the user timeout never expires
    assert keepalive_schedule(1, 1, 3, "alive", tick=0.004, user_timeout_ms=500).ended_at is None


@pytest.mark.real
def test_close_wait_socket_probes_and_the_rst_ends_it(as_user):
    """Notebook 06's question: CLOSE_WAIT has no timer of its own, but keepalive still probes it."""
    mode, s, counters, answers, _ = _real_or_skip(as_user, dict(idle=1, interval=1, count=2, peer="close_wait_rst"))
    assert mode == "real"
    assert s["error"] == "EPIPE" and s["probes_sent"] == 1 and answers == ["RST"], s
    assert _within(s["detected_after_s"], 1.024), s
    assert counters["TCPKeepAlive"] == 1
    # only the connection ended: gone from /proc/net/tcp (ss), the descriptor open until close()
    assert s["fd_open_at_end"] is True and s["listed_at_end"] is False, s


@pytest.mark.real
def test_alive_peer_answers_every_probe():
    mode, s, counters, answers, _ = _run(dict(idle=1, interval=2, count=2, peer="alive"))
    assert mode == "real"
    assert s["error"] is None and s["end_state"] == "ESTABLISHED" and s["detected_after_s"] is None, s
    # answered probes come max(idle, interval) apart: 1 s, then 2 s later
    assert answers == ["ACK", "ACK"] and all(_within(m, e) for m, e in zip(s["probe_times"], [1, 3])), s
    assert counters["TCPKeepAlive"] == 2


def test_lo_is_never_taken_down_outside_a_private_namespace():
    from tcplab.errors import KernelUnavailable
    from tcplab.kernel.namespace import set_loopback

    with pytest.raises(KernelUnavailable, match="not a private network namespace"):
        set_loopback(False)


@pytest.mark.real
def test_inside_a_private_namespace_lo_goes_down_and_up():
    from tcplab.kernel.loopback import SocketSet, tcp_state
    from tcplab.kernel.namespace import set_loopback

    def down_and_up():
        with SocketSet() as ss:
            lst = ss.listener(1)
            set_loopback(False)
            try:   # with lo down the SYN goes nowhere: ENETUNREACH at once, or a socket left in SYN_SENT
                reached_down = tcp_state(ss.connect(lst.getsockname(), wait=True, timeout=0.3)) == "ESTABLISHED"
            except OSError:
                reached_down = False
            set_loopback(True)
            ss.connect(lst.getsockname(), wait=True)
            return reached_down
    assert tcplab.in_namespace(down_and_up, timeout=20) is False   # down: nothing gets through


# -- the model ----------------------------------------------------------------------------------

@pytest.mark.parametrize("delay,fires", [(1, 2), (62, 63), (63, 64), (250, 256), (503, 504), (504, 512), (4000, 4032), (1_800_000, 1_802_240)])
def test_the_timer_wheel_rounds_up_by_level(delay, fires):
    assert wheel_fires_at(0, delay) == fires
    assert fires > delay                      # never early


# (idle, interval, count, how late one interval timer may fire: its timer-wheel level's granularity
# at HZ=250: 32 ms below 2 s, 256 ms below 16 s, 2 s below 129 s)
@pytest.mark.parametrize("idle,interval,count,late", [(1, 1, 1, 0.032), (2, 1, 3, 0.032), (5, 2, 4, 0.256),
                                                       (7200, 75, 9, 2.048), (1, 30, 2, 2.048)])
def test_silent_peer_gives_up_after_count_probes(idle, interval, count, late):
    s = keepalive_schedule(idle, interval, count, "silent", tick=0.004)
    assert len(s.probe_times) == count and s.error == "ETIMEDOUT"
    ideal = idle + count * interval
    first_late = 131.072 if idle == 7200 else 2.048   # 2 hours go to level 5: 2^15 jiffies
    assert ideal <= s.ended_at <= ideal + first_late + count * late   # never early, each at most a bucket late
    gaps = [b - a for a, b in zip(s.probe_times, s.probe_times[1:])]
    assert all(interval <= g <= interval + late + 1e-9 for g in gaps)


def test_linux_default_takes_two_hours_and_eleven_minutes():
    """tcp_keepalive_time 7200, intvl 75, probes 9: 2 h 11 min 15 s, plus up to 131 s of timer-wheel rounding
    of the 2-hour timer (level 5 of the wheel at HZ=250)."""
    r = keepalive(idle=7200, interval=75, count=9, mode="sim")
    assert 7875 <= r.summary["detected_after_s"] <= 7875 + 131.072 + 9 * 2.048
    with pytest.raises(ValueError, match=r"about \d+ s, longer than max_seconds=60"):
        keepalive(idle=7200, interval=75, count=9, mode="real")
    assert keepalive(idle=7200, interval=75, count=9).mode == "sim"   # auto: simulated, says why


def test_close_wait_and_alive_in_the_simulator():
    rst = keepalive(idle=4, count=5, peer="close_wait_rst", mode="sim").summary
    assert rst["error"] == "EPIPE" and rst["probes_sent"] == 1 and 4 <= rst["detected_after_s"] < 4.1
    alive = keepalive(idle=2, interval=3, count=4, peer="alive", mode="sim").summary
    assert alive["error"] is None and alive["probes_sent"] == 4
    assert [round(t) for t in alive["probe_times"]] == [2, 5, 8, 11]


@pytest.mark.parametrize("kw,err,msg", [
    (dict(idle=0), ValueError, r"idle must be an int in 1\.\.32767, not 0"),
    (dict(count=128), ValueError, r"count must be an int in 1\.\.127, not 128"),
    (dict(interval=-1), ValueError, r"interval must be an int in 1\.\.32767, not -1"),
    (dict(peer="dead"), ValueError, r"peer must be one of 'silent', 'alive', 'close_wait_rst', not 'dead'"),
])
def test_bad_parameters(kw, err, msg):
    with pytest.raises(err, match=msg):
        keepalive(**kw, mode="sim")


def test_a_late_poll_at_a_probe_or_the_end_makes_the_run_untrusted():
    # synthetic timings (no kernel): what the runner reports, against what list_rel10/rel10 allow
    from tcplab.experiments.keepalive import SPEC
    from tcplab.model.outcome import Timing

    ok = [Timing("probe_poll", 2.0, "saw a probe 2 ms late", limit_ms=101.8),
          Timing("end_poll", 1.0, "saw the socket end 1 ms late", limit_ms=306.4)]
    assert SPEC.judge(ok).ok
    late = SPEC.judge([Timing("probe_poll", 150.0, "the poll saw a probe 150 ms late", limit_ms=101.8), ok[1]])
    assert not late.ok and "150 ms late" in late.reason and "101.8 ms" in late.reason, late.reason


@pytest.mark.real
def test_a_real_silent_peer_run_times_its_polls_and_is_trusted():
    try:
        r = keepalive(idle=1, interval=1, count=2, mode="real")
    except RealModeUnavailable as e:  # pragma: no cover - depends on the machine
        pytest.skip(str(e))
    t = {x.name: x for x in r.fidelity.timings}
    assert set(t) == {"probe_poll", "end_poll"}
    assert t["probe_poll"].limit_ms == pytest.approx(100.0, abs=10)      # a tenth of the first probe (~1 s)
    assert t["end_poll"].limit_ms == pytest.approx(300.0, abs=20)        # a tenth of the end (~3 s)
    skip_unless_trusted(r)
