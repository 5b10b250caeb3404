"""The Linux listen-queue rules (docs/kernel-facts.md cases 1-4, 8) on the pure model."""

from __future__ import annotations

import dataclasses

import pytest

from tcplab.model.listen import Child, Listener
from tcplab.model.ports import PortTable, bind_conflict
from tcplab.model.profiles import PROFILES, get_profile, profile_for_release
from tcplab.model.retries import syn_schedule


@pytest.mark.parametrize("backlog,somaxconn", [(0, 4096), (1, 4096), (5, 3), (7, 100), (128, 64)])
def test_accept_queue_holds_limit_plus_one(backlog, somaxconn):
    L = Listener(backlog=backlog, somaxconn=somaxconn)
    results = [L.connect(0.0, i) for i in range(300)]
    limit = min(backlog, somaxconn)
    assert results.count("established") == limit + 1
    assert L.recv_q == limit + 1 and L.send_q == limit
    assert L.counters["ListenOverflows"] == L.counters["ListenDrops"] == 300 - limit - 1


#: a kernel without the stable backport of 3479c7549fb1 (>= in inet_csk_reqsk_queue_is_full)
UNPATCHED = dataclasses.replace(PROFILES["linux-5.15"], name="unpatched-5.15", synq_full_strict=False)


# 6.1 and 6.12 measured: the > test was backported (docs/kernels.md); an unpatched kernel admits backlog
@pytest.mark.parametrize("profile,extra", [("linux-6.18", 1), ("linux-6.1", 1), ("linux-6.12", 1), (UNPATCHED, 0)])
@pytest.mark.parametrize("backlog", [1, 4, 9])
def test_syn_queue_limit_is_backlog_plus_one_since_6_13(profile, extra, backlog):
    L = Listener(backlog=backlog, profile=profile, syncookies=0, max_syn_backlog=65535)
    verdicts = [L.on_syn(0.0, i) for i in range(50)]
    assert verdicts.count("request") == backlog + extra
    assert L.counters["TCPReqQFullDrop"] == L.counters["ListenDrops"] == 50 - backlog - extra


@pytest.mark.parametrize("mx", [8, 16, 64])
def test_three_quarter_rule_without_cookies(mx):
    L = Listener(backlog=1000, syncookies=0, max_syn_backlog=mx)
    verdicts = [L.on_syn(0.0, i) for i in range(200)]
    admitted = verdicts.count("request")
    assert admitted == mx - (mx >> 2) + 1           # 3/4*max + 1: 7, 13, 49
    assert L.counters["ListenDrops"] == 200 - admitted
    assert L.counters["TCPReqQFullDrop"] == 0       # only ListenDrops counts these


def test_cookies_when_syn_queue_full_and_cookie_children_never_reset():
    L = Listener(backlog=4, syncookies=1, abort_on_overflow=True)
    assert [L.on_syn(0.0, i) for i in range(7)] == ["request"] * 5 + ["cookie"] * 2
    assert L.counters["TCPReqQFullDoCookies"] == L.counters["SyncookiesSent"] == 2
    for i in range(5):
        L.accept_queue.append(object())            # accept queue full (5 = 4 + 1)
    assert L.on_ack(0.0, 5, cookie=True) == "discarded"   # no RST for a cookie
    assert L.on_ack(0.0, 0) == "reset" and L.counters["EmbryonicRsts"] == 1


def test_abort_on_overflow_off_keeps_request_acked():
    L = Listener(backlog=1, abort_on_overflow=False)
    assert L.on_syn(0.0, "a") == L.on_syn(0.0, "b") == "request"
    L.accept_queue.extend([Child("x", 0.0), Child("y", 0.0)])   # full: 2 > 1
    assert L.on_ack(0.0, "a") == "overflow"
    assert L.syn_queue["a"].acked and L.counters["ListenOverflows"] == 1
    L.accept(0.0)
    assert L.on_ack(0.0, "a") == "child"           # the retried ACK completes it


def test_syncookies_2_always_cookies():
    L = Listener(backlog=128, syncookies=2)
    assert {L.on_syn(0.0, i) for i in range(10)} == {"cookie"}
    assert L.syn_recv == 0 and L.counters["SyncookiesSent"] == 10


def test_defer_accept_keeps_request_in_syn_recv():
    L = Listener(backlog=4, defer_accept=True)
    L.on_syn(0.0, 1)
    assert L.on_ack(0.0, 1) == "deferred" and L.syn_recv == 1 and L.counters["TCPDeferAcceptDrop"] == 1


def test_synack_retransmits_then_expiry():
    L = Listener(backlog=4, synack_retries=2)
    L.on_syn(0.0, 1)
    fired = []
    while L.syn_recv:
        t = L.next_timer()
        fired += [(t, what) for what, _ in L.on_timer(t)]
    assert fired == [(1.0, "synack"), (3.0, "synack"), (7.0, "expired")]


@pytest.mark.parametrize("k,lt,times,fail", [
    (1, 4, [0, 1, 2], 3), (2, 4, [0, 1, 2, 3, 4, 5], 7), (3, 4, [0, 1, 2, 3, 4, 5, 7, 11], 19),
    (1, 0, [0, 1], 3), (2, 0, [0, 1, 3], 7), (3, 0, [0, 1, 3, 7], 15)])
def test_syn_schedule_kernel_table(k, lt, times, fail):
    s = syn_schedule(k, lt)
    assert list(s.send_times) == times and s.fail_after == fail


def test_default_syn_retries_gives_11_syns():
    s = syn_schedule(6, 4)
    assert len(s.send_times) == 11 and 127 <= s.fail_after <= 135


def test_rto_is_capped():
    assert max(b - a for a, b in zip(syn_schedule(20, 4).send_times, syn_schedule(20, 4).send_times[1:])) == 120


def test_profiles():
    assert set(PROFILES) == {"linux-6.18", "linux-6.12", "linux-6.1", "linux-5.15"}
    assert profile_for_release("6.18.44-fc").name == "linux-6.18"
    assert profile_for_release("6.12.9+bpo-amd64").name == "linux-6.12"
    assert PROFILES["linux-5.15"].syn_linear_timeouts == 0
    assert "net.ipv4.tcp_syn_linear_timeouts" not in PROFILES["linux-5.15"].sysctls()
    with pytest.raises(ValueError, match="linux-6.18"):
        get_profile("bogus")


@pytest.mark.parametrize("release, linear, strict, absent", [
    # the SYN queue's > test (6.13) went to the stable trees: measured on Debian's 6.1.192 and 6.12.118
    ("6.1.0-57-amd64", 0, True, {"tcp_syn_linear_timeouts", "tcp_rto_min_us", "tcp_tw_reuse_delay", "tcp_rto_max_ms"}),
    ("6.8.0-45-generic", 4, True, {"tcp_rto_min_us", "tcp_tw_reuse_delay", "tcp_rto_max_ms"}),  # 6.5 < 6.8 < 6.11
    ("6.12.118+deb12-amd64", 4, True, {"tcp_tw_reuse_delay", "tcp_rto_max_ms"}),
    ("6.14.1", 4, True, {"tcp_rto_max_ms"}),
    ("6.18.44-fc", 4, True, set()),
    ("7.2.0", 4, True, set()),                     # newer than every profile: the newest's rules
])
def test_a_release_gets_the_rules_its_version_implies(release, linear, strict, absent):
    p = profile_for_release(release)
    assert (p.syn_linear_timeouts, p.synq_full_strict) == (linear, strict)
    assert {n.rsplit(".", 1)[1] for n in p.absent} == absent
    assert all(not p.has_sysctl(n) and n not in p.sysctls() for n in p.absent)
    assert p.tw_reuse_ms == ("tcp_tw_reuse_delay" not in absent)


def test_measured_profiles_say_what_was_measured():
    # docs/kernels.md: 6.1 hides somaxconn from a user-owned namespace, reuses TIME_WAIT ports on the
    # seconds tick; 6.12 shows somaxconn, reuses on the tick too
    assert [PROFILES[n].measured for n in ("linux-6.18", "linux-6.12", "linux-6.1", "linux-5.15")] == [True, True, True, False]
    assert (PROFILES["linux-6.1"].somaxconn_in_userns, PROFILES["linux-6.12"].somaxconn_in_userns) == (False, True)
    assert (PROFILES["linux-6.12"].tw_reuse_ms, PROFILES["linux-6.18"].tw_reuse_ms) == (False, True)


def test_ports_time_wait_and_reuse():
    t = PortTable(port_range=(40000, 40001), tw_reuse=1)
    a, b = t.connect(0.0), t.connect(0.0)
    t.close(0.0, a), t.close(0.0, b)
    assert t.connect(1.0) is None                   # reuse only strictly after the 1 s delay
    assert t.connect(1.01) in (a, b) and t.counters["TWRecycled"] == 1
    assert t.time_wait_count(60.0) == 0            # TIME_WAIT is 60 s


def test_bind_conflict_rule():
    assert not bind_conflict(True, True, "TIME_WAIT")
    assert bind_conflict(False, True, "TIME_WAIT") and bind_conflict(True, False, "TIME_WAIT")
    assert bind_conflict(True, True, "LISTEN")
