"""syn_retries on the real kernel vs docs/kernel-facts.md case 3 (times within 10%)."""

from __future__ import annotations

import concurrent.futures

import pandas  # noqa: F401 - imported before forking to uid 65534
import pytest

from tcplab.experiments import syn_retries
from tcplab.experiments.syn_retries import predict_syn_times
from tcplab.kernel.release import running_profile

# docs/kernel-facts.md case 3: (k, linear_timeouts) -> (SYN send times, connect() fails after)
CASE3 = {
    (1, 4): ([0, 1, 2], 3.07),
    (2, 4): ([0, 1, 2, 3, 4, 5], 7.13),
    (3, 4): ([0, 1, 2, 3, 4, 5, 7, 11.3], 19.35),
    (1, 0): ([0, 1], 3.02),
    (2, 0): ([0, 1, 3], 7.12),
    (3, 0): ([0, 1, 3, 7.2], 15.39),
}


def _within(measured, expected, rel=0.10, abs_=0.05):
    return abs(measured - expected) <= max(rel * expected, abs_)


#: the slow cases (3 to 19 s each): run at once, in threads (test_slow_cases)
SLOW = [(1, 4), (2, 0), (3, 0), (3, 4)]
_NOT_HERE = object()


def _askable(lin):
    """The linear_timeouts argument that gives the schedule of ``lin`` on this kernel: ``lin`` where
    the sysctl exists; where it does not (before 6.5, ccce324dabfe) the kernel's own rule is 0, asked
    for by not setting it, and any other value cannot run for real (``_NOT_HERE``)."""
    if running_profile().profile.has_syn_linear_timeouts:
        return lin
    return None if lin == 0 else _NOT_HERE


def _asked(lin):
    """:func:`_askable`, or skip the test where this kernel cannot run ``lin`` for real."""
    asked = _askable(lin)
    if asked is not _NOT_HERE:
        return asked
    pytest.skip(f"this kernel ({running_profile().release}) has no net.ipv4.tcp_syn_linear_timeouts "
                f"(v6.5, ccce324dabfe): its SYN timer doubles from the first retry, linear_timeouts={lin} "
                "cannot run for real")


def _summary(k, lin):
    r = syn_retries(k, linear_timeouts=lin, mode="real")
    return r.mode, r.summary, r.counters


def _check(k, lin, mode, s, counters):
    lin = 0 if lin is None else lin
    sends, fail = CASE3[(k, lin)]
    assert mode == "real"
    assert s["error"] == "ETIMEDOUT"
    assert s["syns_sent"] == len(sends) and s["retransmissions"] == len(sends) - 1
    assert all(_within(m, e) for m, e in zip(s["retransmit_times"], sends[1:])), s["retransmit_times"]
    assert _within(s["failed_after"], fail), s["failed_after"]
    # every SYN was dropped by the full accept queue (tcp_conn_request: ListenOverflows)
    assert counters["ListenOverflows"] == counters["ListenDrops"] == counters["TCPTimeouts"] == len(sends)
    assert counters["AttemptFails"] == 1 and counters["TCPAbortOnTimeout"] == 1


@pytest.mark.real
@pytest.mark.parametrize("k,lin", [(1, 0), (2, 4)])
def test_case3_root(k, lin):
    _check(k, _asked(lin), *_summary(k, _asked(lin)))


@pytest.mark.real
def test_case3_unprivileged(as_user):
    # sets the sysctl in the user's namespace where the kernel has it, else runs the kernel's own rule
    lin = 4 if running_profile().profile.has_syn_linear_timeouts else None
    _check(1, lin, *as_user(_summary, 1, lin))


@pytest.fixture(scope="module")
def slow_runs():
    """The slow cases at once, each in its own namespace (runs at once equal serial runs:
    test_experiments_concurrent): as long as the longest, 19 s, instead of their sum, 44 s."""
    cases = {(k, lin): _askable(lin) for k, lin in SLOW if _askable(lin) is not _NOT_HERE}
    with concurrent.futures.ThreadPoolExecutor(len(cases) or 1) as pool:
        futures = {case: pool.submit(_summary, case[0], asked) for case, asked in cases.items()}
        done, _ = concurrent.futures.wait(futures.values(), timeout=120)
    return {case: f for case, f in futures.items() if f in done}


@pytest.mark.real
@pytest.mark.slow
@pytest.mark.parametrize("k,lin", SLOW)
def test_case3_slow(k, lin, slow_runs):
    asked = _asked(lin)
    assert (k, lin) in slow_runs, f"syn_retries({k}, linear_timeouts={asked}) did not end within 120 s"
    _check(k, asked, *slow_runs[(k, lin)].result())


@pytest.mark.parametrize("k,lin", [(k, lin) for k in range(1, 9) for lin in (0, 1, 4, 6)])
def test_predictions_follow_the_rules(k, lin):
    sends, fail = predict_syn_times(k, lin)
    assert sends[:min(len(sends), lin + 1)] == [float(i) for i in range(min(len(sends), lin + 1))]
    assert fail >= (2 ** (k + 1) - 1) or len(sends) - 1 >= k + lin
    if (k, lin) in CASE3:
        assert [round(x) for x in sends] == [round(x) for x in CASE3[(k, lin)][0]]
    assert predict_syn_times(6, 4)[1] == 131 and len(predict_syn_times(6, 4)[0]) == 11  # KERNEL: 11 SYNs, ~134 s


@pytest.mark.real
def test_progress_is_reported():
    seen = []
    syn_retries(1, linear_timeouts=_asked(0), mode="real", progress=lambda f, text: seen.append((f, text)))
    assert seen[-1] == (1.0, "done")
    assert len(seen) >= 5 and all(0 <= f <= 1 for f, _ in seen)
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)


def test_refuses_long_runs_unless_raised():
    with pytest.raises(ValueError, match=r"max_seconds=60.*pass max_seconds=\d+"):
        syn_retries(6, mode="real")
    r = syn_retries(6)  # auto: simulated, and the result says why
    assert r.mode == "sim" and "max_seconds=60" in r.reason and r.summary["syns_sent"] == 11
    with pytest.raises(ValueError, match=r"retries must be an int in 1\.\.127, not 128"):
        syn_retries(128)
    with pytest.raises(ValueError, match=r"retries must be an int in 1\.\.127, not 0"):
        syn_retries(0)
    with pytest.raises(ValueError, match="linear_timeouts"):
        syn_retries(1, linear_timeouts=256)
    with pytest.raises(TypeError, match="progress"):
        syn_retries(1, progress=5)


@pytest.mark.real
def test_per_socket_syncnt_runs_without_namespaces(monkeypatch):
    monkeypatch.setenv("TCPLAB_FORBID_NAMESPACES", "1")
    from tcplab.errors import RealModeUnavailable
    if running_profile().profile.has_syn_linear_timeouts:
        # 0 differs from the host's own value only as a sysctl, and a sysctl needs a namespace
        with pytest.raises(RealModeUnavailable, match="tcp_syn_linear_timeouts"):
            syn_retries(1, linear_timeouts=0, mode="real")
    else:   # before 6.5 the kernel has no such sysctl and its rule is 0: asking for 0 asks for nothing
        assert syn_retries(1, linear_timeouts=0, mode="real").mode == "real"
    r = syn_retries(1, mode="real")  # TCP_SYNCNT is per socket: host namespace, host sysctls
    assert r.mode == "real" and "host" in r.reason
    if running_profile().profile.has_syn_linear_timeouts:
        lin = r.sysctls["net.ipv4.tcp_syn_linear_timeouts"]
    else:   # before 6.5: no such sysctl, the Result says so, and the kernel's rule is 0
        assert "net.ipv4.tcp_syn_linear_timeouts" in r.absent_sysctls
        lin = 0
    sends, fail = predict_syn_times(1, lin)
    assert r.summary["syns_sent"] == len(sends) and _within(r.summary["failed_after"], fail + 0.07)


def test_linear_timeouts_0_is_what_a_kernel_without_the_sysctl_does(monkeypatch):
    """On 6.1 (no tcp_syn_linear_timeouts, ccce324dabfe is 6.5) asking for 0 is a no-op, so the run
    may be real there; asking for 4 is not (the run is refused, a kernel that has it is simulated)."""
    from tcplab.experiments import _mode

    lin = "net.ipv4.tcp_syn_linear_timeouts"
    monkeypatch.setattr(_mode, "sysctl_exists", lambda name: name != lin)
    assert _mode.applicable({lin: 0, "net.ipv4.tcp_syncookies": 1}) == {"net.ipv4.tcp_syncookies": 1}
    assert _mode.applicable({lin: 4}) == {lin: 4}
    monkeypatch.setattr(_mode, "sysctl_exists", lambda name: True)
    assert _mode.applicable({lin: 0}) == {lin: 0}       # where it exists it is set
