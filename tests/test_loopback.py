"""Loopback helpers (tcplab.kernel.loopback, tcpinfo, capture, qdisc), on the real kernel."""

from __future__ import annotations

import os

import pytest

from tcplab.experiments._common import connect_answered
from tcplab.kernel.capture import craft_syn, decode_ipv4_tcp
from tcplab.kernel.loopback import SocketSet, connect_error, socket_inode, tcp_state
from tcplab.kernel.namespace import in_namespace
from tcplab.kernel.tcpinfo import (TCPI_OPT_SACK, TCPI_OPT_TIMESTAMPS, TCPI_OPT_WSCALE, decode_tcp_info,
                                   tcp_info)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.real
def test_listener_and_client_handshake_and_tcp_info():
    with SocketSet() as ss:
        lst = ss.listener(5)
        assert lst.getsockname()[0] == "127.0.0.1" and lst.getsockname()[1] > 0
        c = ss.connect(lst.getsockname(), wait=True)
        info = tcp_info(c)
        assert info.state == "ESTABLISHED" and tcp_state(lst) == "LISTEN"
        assert info.options & (TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE) == 7
        assert info.timestamps and info.sack and info.wscale
        assert info.rto >= 200_000 and info.snd_mss > 0 and info.total_retrans == 0
        assert connect_error(c) is None
        assert socket_inode(c) == os.fstat(c.fileno()).st_ino


def test_decode_short_struct_keeps_what_is_there():
    info = decode_tcp_info(bytes([2, 0, 3, 0, 3, 1, 0x47, 0]) + (1_000_000).to_bytes(4, "little") + bytes(8))
    assert (info.state, info.retransmits, info.backoff, info.rto) == ("SYN_SENT", 3, 3, 1_000_000)
    assert (info.snd_wscale, info.rcv_wscale) == (7, 4)
    with pytest.raises(ValueError):
        decode_tcp_info(b"\x01")


@pytest.mark.real
def test_everything_closed_on_error_and_keyboard_interrupt():
    before = _open_fds()
    for exc in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(exc):
            with SocketSet() as ss:
                lst = ss.listener(3)
                for _ in range(5):
                    ss.connect(lst.getsockname())
                raise exc()
    assert _open_fds() == before


@pytest.mark.parametrize("bad", ["10.0.0.1", "8.8.8.8", "::2", "example.com"])
def test_non_loopback_refused(bad):
    with pytest.raises(ValueError, match="loopback"):
        SocketSet(bad)
    with SocketSet() as ss:
        with pytest.raises(ValueError, match="loopback"):
            ss.connect((bad, 80))


@pytest.mark.real
def test_argument_checks_name_the_parameter():
    with SocketSet() as ss:
        with pytest.raises(ValueError, match=r"backlog must be an int in 0\.\.65535, not -1"):
            ss.listener(-1)
        lst = ss.listener(1)
        with pytest.raises(ValueError, match=r"syncnt must be an int in 1\.\.127, not 128"):
            ss.connect(lst.getsockname(), syncnt=128)


@pytest.mark.real
def test_ipv6_loopback():
    with SocketSet("::1") as ss:
        lst = ss.listener(2)
        assert tcp_state(ss.connect(lst.getsockname(), wait=True)) == "ESTABLISHED"


@pytest.mark.real
def test_backlog_n_admits_n_plus_one_in_host_namespace():
    # per-socket rule, no sysctl: valid in any namespace (sk_acceptq_is_full uses ">")
    with SocketSet() as ss:
        lst = ss.listener(2)
        # each SYN answered (queued or dropped) before the next: on a busy host a SYN can otherwise
        # overtake an earlier client's ACK and make a phantom (ack_overflow's case, not this rule)
        cs = [connect_answered(ss, lst) for _ in range(5)]
        assert sorted(tcp_state(c) for c in cs).count("ESTABLISHED") == 3


def test_crafted_syn_decodes():
    seg = decode_ipv4_tcp(craft_syn("127.0.0.2", 1234, "127.0.0.1", 80, seq=99, mss=1460))
    assert seg["flags"] == "S" and seg["seq"] == 99 and seg["options"] == {"mss": 1460}
    with pytest.raises(ValueError):
        craft_syn("10.0.0.1", 1, "127.0.0.1", 2, seq=0)
    assert decode_ipv4_tcp(b"\x60" + bytes(40)) is None  # IPv6: not decoded here


def _capture_and_delay():
    from tcplab.errors import KernelUnavailable
    from tcplab.kernel.capture import Capture
    from tcplab.kernel.qdisc import add_delay
    from tcplab.kernel.tcpinfo import tcp_info
    try:
        how = add_delay(20)
    except KernelUnavailable as e:
        how = "none: " + e.reason
    with Capture() as cap, SocketSet() as ss:
        lst = ss.listener(1)
        c = ss.connect(lst.getsockname(), wait=True)
        # the client is ESTABLISHED before its ACK left the qdisc; accept() returns once the
        # listener processed that ACK, so by then the capture holds all three segments
        lst.settimeout(5)
        ss.adopt(lst.accept()[0])
        segs = [s["flags"] for s in cap.read(0.2)]
        # the kernel's own RTT sample of the handshake (SYN sent -> SYN-ACK received), in µs
        return how, tcp_info(c).extra["rtt"], segs, tcp_state(c)


@pytest.mark.real
def test_capture_and_slow_loopback_in_namespace(as_user):
    how, rtt_us, flags, state = as_user(in_namespace, _capture_and_delay)
    assert state == "ESTABLISHED"
    assert flags[:3] == ["S", "SA", "A"]
    if not how.startswith("none"):
        assert rtt_us >= 20_000, how  # SYN and SYN-ACK each waited 20 ms in the qdisc


def test_wait_for_returns_the_awaited_value_and_raises_when_the_bound_passes():
    from tcplab.errors import ExperimentError
    from tcplab.kernel.loopback import wait_for
    states = iter(["SYN_SENT", "SYN_SENT", "ESTABLISHED", "never read"])
    assert wait_for(lambda: next(states), lambda s: s == "ESTABLISHED", 1.0, "the handshake", 0.001) == "ESTABLISHED"
    reads = []
    with pytest.raises(ExperimentError, match=r"the ACK did not happen within 0.05 s \(last read: 'FIN_WAIT1'\)"):
        wait_for(lambda: reads.append(1) or "FIN_WAIT1", lambda s: s == "FIN_WAIT2", 0.05, "the ACK", 0.01)
    assert 2 <= len(reads) <= 7  # bounded in polls as well as in time
