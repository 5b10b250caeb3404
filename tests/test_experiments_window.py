"""window: the sliding window on a path with delay - throughput capped at window/RTT, window scaling
decided on the SYNs, autotuning - the model's rules (tcplab.model.rwnd), the simulator, and the real
path as root and as uid 65534."""

from __future__ import annotations

import importlib

import pandas  # noqa: F401 - imported before forking to uid 65534 (it cannot read the venv afterwards)
import pytest

from tcplab.errors import RealModeUnavailable
from tcplab.experiments import window
from tcplab.model.cc import MSS
from tcplab.model.rwnd import syn_wscale, window_cap_mbit, window_limit_packets
from tests.conftest import assert_leaves_nothing_behind, skip_unless_trusted


# -- the model's rules -------------------------------------------------------------------------------
def test_the_shift_follows_tcp_rmem_and_a_locked_buffer():
    # tcp_select_initial_window(): ilog2(max(tcp_rmem[2], rmem_max)) - 15, cut by a locked buffer's clamp
    assert syn_wscale(None, 6291456, 212992) == 7
    assert syn_wscale(None, 33554432, 4194304) == 10
    assert syn_wscale(None, 4096, 4096) == 0
    assert syn_wscale(None, 2**40, 0) == 14                      # TCP_MAX_WSCALE
    assert syn_wscale(32768, 6291456, 212992) == 0              # clamp 32768: ilog2 15
    assert syn_wscale(131072, 6291456, 212992) == 2
    assert syn_wscale(None, 6291456, 212992, scaling=False) is None


def test_the_window_limit_and_the_cap():
    assert window_limit_packets(None, False) == 65535 // MSS == 45
    assert window_limit_packets(212992, False) == 45           # a big buffer cannot beat the 16-bit field
    assert window_limit_packets(32768, True) == 27             # rounddown(free_space, mss), shift 0
    assert window_limit_packets(131072, True) == 113           # tcp_win_from_space(262144) / 1448
    # 64 KB per 40 ms: 13 Mbit/s whatever the link; the link where the window is bigger
    assert window_cap_mbit(45, 40, 100) == 13.032
    assert window_cap_mbit(1000, 40, 20) == round(20 * 1448 / 1500, 3)
    with pytest.raises(ValueError, match="rtt_ms must be > 0"):
        window_cap_mbit(45, 0, 20)


# -- the simulator -----------------------------------------------------------------------------------
def test_sim_without_scaling_is_capped_at_65535_bytes_per_rtt():
    s = window(rcvbuf=None, window_scaling=False, rtt_ms=40, rate_mbit=50, seconds=5, mode="sim").summary
    assert s["sender_wscale"] is None and s["receiver_wscale"] is None
    assert s["window_limit_packets"] == 45 and s["max_advertised_window"] <= 65535
    # steady state at the cap, slow start's first RTTs below it
    assert 0.85 * s["window_cap_mbit"] <= s["throughput_mbit"] <= s["window_cap_mbit"], s
    # and the buffer still grows: autotuning cannot widen what the field cannot carry
    assert s["autotuned"]


def test_sim_autotuning_opens_the_window_a_locked_buffer_does_not():
    auto = window(rcvbuf=None, rtt_ms=40, rate_mbit=20, seconds=3, mode="sim").summary
    locked = window(rcvbuf=32768, rtt_ms=40, rate_mbit=20, seconds=3, mode="sim").summary
    assert auto["autotuned"] and not locked["autotuned"]
    assert locked["rcvbuf_max"] == 65536 and locked["max_advertised_window"] == 27 * MSS
    assert auto["max_advertised_window"] > 10 * locked["max_advertised_window"]
    assert auto["throughput_mbit"] > 0.9 * auto["window_cap_mbit"] > 2 * locked["throughput_mbit"]
    # the shift: the profile's tcp_rmem[2] (6 MB: 7) for the sender and an unlocked receiver, 0 locked at 32 KB
    assert (auto["sender_wscale"], auto["receiver_wscale"], locked["receiver_wscale"]) == (7, 7, 0)


@pytest.mark.parametrize("kw,msg", [
    (dict(rcvbuf=0), r"rcvbuf must be None or an int in 1024\.\.212992, not 0"),
    (dict(rtt_ms=0), r"rtt_ms must be a number in 1\.\.1000, not 0"),
    (dict(rate_mbit=2000), r"rate_mbit must be a number in 0\.5\.\.1000"),
    (dict(seconds=0.1), r"seconds must be a number in 0\.5\.\.120"),
])
def test_bad_parameters(kw, msg):
    with pytest.raises(ValueError, match=msg):
        window(**kw, mode="sim")
    with pytest.raises(TypeError, match=r"window_scaling must be True or False, not 2"):   # as every bool param
        window(window_scaling=2, mode="sim")


def test_real_mode_refuses_what_the_delay_line_cannot_do():
    with pytest.raises(ValueError, match=r"rate_mbit"):
        window(rate_mbit=200, mode="real")


def test_a_host_whose_rmem_max_is_smaller_than_the_request_simulates_and_says_why(monkeypatch):
    mod = importlib.import_module("tcplab.experiments.window")
    monkeypatch.setattr(mod, "read_sysctl", lambda name: 65536 if name == "net.core.rmem_max" else 0)
    with pytest.raises(RealModeUnavailable, match=r"net.core.rmem_max 65536"):
        window(rcvbuf=131072, mode="real")
    r = window(rcvbuf=131072, seconds=1)
    assert r.mode == "sim" and "net.core.rmem_max 65536" in r.reason
    assert mod._host_limit(dict(rcvbuf=None)) is None


def test_a_late_delay_line_is_not_shown_as_the_kernel():
    """A window-limited flow delivers a window per (RTT + the delay line's lateness): a line late on every
    packet (not only in stalls) spoils the throughput and srtt; the wscale and buffer figures stay the kernel's."""
    from tcplab.experiments.window import SPEC
    from tcplab.model.outcome import Timing

    v = SPEC.judge([Timing("delay_line_p50", 3.0, "the delay line released half of its packets 3 ms late")])
    assert not v.ok and set(v.keys) == {"throughput_mbit", "srtt_ms"}, v
    v = SPEC.judge([Timing("delay_line", 40.0, "the delay line stalled 40 ms")])
    assert not v.ok and "throughput_mbit" in v.keys and "receiver_wscale" not in v.keys, v
    assert SPEC.judge([Timing("delay_line", 0.1, "on time"), Timing("delay_line_p50", 0.04, "on time"),
                       Timing("sender", 20.0, "the sender kept up")]).ok


# -- the real path -----------------------------------------------------------------------------------
def _real(**kw):
    r = window(mode="real", **kw)
    return r.mode, r.summary, r.tables["receiver"].to_dict("records"), r.sysctls, r


def _unscaled():
    return _real(rcvbuf=None, window_scaling=False, rtt_ms=40, rate_mbit=20, seconds=2)


def _locked_then_autotuned():
    return _real(rcvbuf=32768, rtt_ms=40, rate_mbit=20, seconds=2), _real(rcvbuf=None, rtt_ms=40, rate_mbit=20,
                                                                           seconds=2)


@pytest.mark.real
def test_real_without_window_scaling_the_window_stops_at_65535(as_user):
    try:
        mode, s, rows, sysctls, r = as_user(_unscaled)
    except RealModeUnavailable as e:
        pytest.skip(str(e))
    assert mode == "real" and sysctls["net.ipv4.tcp_window_scaling"] == 0
    # no option on the SYN (tcp_syn_options()), so none on the SYN-ACK: tcp_info says not negotiated
    assert s["sender_wscale"] is None and s["receiver_wscale"] is None
    # the 16-bit field: the sender never saw more than 65535 although the receiver's buffer grew past it
    assert 60000 < s["max_advertised_window"] <= 65535, s
    assert s["autotuned"] and s["rcvbuf_max"] > 131072, s
    skip_unless_trusted(r)
    # window/RTT: the link (19.3 Mbit/s of payload) is not what limits
    assert 0.8 * s["window_cap_mbit"] <= s["throughput_mbit"] <= 1.03 * s["window_cap_mbit"], s
    assert s["window_cap_mbit"] < 0.7 * 20


@pytest.mark.real
def test_real_so_rcvbuf_caps_the_window_and_autotuning_lifts_it(as_user):
    try:
        (mode, locked, rows, sysctls, r1), (_, auto, rows2, _, r2) = as_user(_locked_then_autotuned)
    except RealModeUnavailable as e:
        pytest.skip(str(e))
    assert mode == "real"
    # __sock_set_rcvbuf(): doubled and locked; the listener's clamp (the request) gives shift 0
    assert locked["rcvbuf_max"] == 65536 and not locked["autotuned"]
    assert {row["rcvbuf"] for row in rows} == {65536}
    assert locked["receiver_wscale"] == syn_wscale(32768, locked["tcp_rmem_max"], locked["rmem_max"]) == 0
    # the sender never sets SO_RCVBUF: its shift follows tcp_rmem[2] and rmem_max
    assert locked["sender_wscale"] == syn_wscale(None, locked["tcp_rmem_max"], locked["rmem_max"])
    assert auto["receiver_wscale"] == syn_wscale(None, auto["tcp_rmem_max"], auto["rmem_max"])
    # the locked window is the model's: 27 whole segments
    assert locked["max_advertised_window"] == 27 * MSS, locked
    # autotuning: the buffer and the window grow from tcp_rmem[1]
    assert auto["autotuned"] and auto["rcvbuf_max"] > 131072 and len({row["rcvbuf"] for row in rows2}) >= 3
    assert auto["max_advertised_window"] > 5 * locked["max_advertised_window"], (auto, locked)
    skip_unless_trusted(r1)
    skip_unless_trusted(r2)
    assert 0.85 * locked["window_cap_mbit"] <= locked["throughput_mbit"] <= 1.03 * locked["window_cap_mbit"]
    assert auto["throughput_mbit"] > 2 * locked["throughput_mbit"], (auto, locked)



@pytest.mark.real
def test_a_real_run_leaves_nothing_behind_also_when_it_fails(monkeypatch):
    assert_leaves_nothing_behind(monkeypatch, "tcplab.experiments.window", lambda: window(
        rcvbuf=32768, rtt_ms=20, rate_mbit=10, seconds=1, mode="real"))


@pytest.mark.real
def test_rmem_max_is_read_from_the_kernels_clamp_where_the_namespace_hides_the_sysctl(monkeypatch):
    """6.1 does not show net.core.rmem_max in a private namespace (notebook 10 failed there): the runner
    asks a throwaway socket for 1 GiB, which __sock_set_rcvbuf() cuts to rmem_max and doubles."""
    import importlib
    w = importlib.import_module("tcplab.experiments.window")   # the module (the package exports the function)
    shown = w.rmem_max_in_force()

    def hidden(name):
        raise ValueError(f"name must be a sysctl of this kernel; {name!r} does not exist here")

    monkeypatch.setattr(w, "read_sysctl", hidden)
    assert w.rmem_max_in_force() == shown
