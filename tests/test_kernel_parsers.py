"""Parsers: golden fixtures captured on this machine in, expected records out;
malformed input raises ParseError naming file and line, never IndexError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from tcplab.errors import ParseError, SockDiagUnavailable
from tcplab.kernel import diag, netstat, procnet, sysctl
from tests.conftest import fixture_text


def test_proc_net_tcp_golden():
    recs = procnet.parse_proc_net_tcp(fixture_text("proc_net_tcp.txt"))
    assert len(recs) == 9
    listener = recs[0]
    assert (listener.state, listener.local_address, listener.local_port, listener.recv_q, listener.send_q) == \
        ("LISTEN", "127.0.0.1", 8080, 3, 0)  # 3 un-accepted connections; /proc prints tx 0 for a listener
    assert listener.inode == 7827
    assert [r.state for r in recs].count("ESTABLISHED") == 6
    close_wait = recs[1]
    assert (close_wait.state, close_wait.remote_port, close_wait.recv_q) == ("CLOSE_WAIT", 0xAF2A, 1)
    fin_wait2 = recs[7]
    assert (fin_wait2.state, fin_wait2.timer, fin_wait2.inode) == ("FIN_WAIT2", "time_wait", 0)
    client = recs[4]
    assert (client.local_port, client.remote_port, client.recv_q) == (0xAF1A, 8080, 5)


def test_proc_net_tcp6_golden():
    recs = procnet.parse_proc_net_tcp(fixture_text("proc_net_tcp6.txt"), source="/proc/net/tcp6")
    assert [(r.family, r.state, r.local_address, r.local_port, r.recv_q) for r in recs] == [
        (6, "LISTEN", "::1", 8443, 1), (6, "ESTABLISHED", "::1", 0xD258, 0), (6, "ESTABLISHED", "::1", 8443, 0)]


def test_every_kernel_state_name():
    assert list(procnet.TCP_STATES.values()) == [
        "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE",
        "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING"]


@pytest.mark.parametrize("bad", [
    "   0: 0100007F:1F90 00000000:0000 0C 00000000:00000003 00:00000000 00000000 0 0 1 1",  # state 0x0C
    "   0: 0100007F:1F90 00000000:0000 0A",                                                # short
    "   0: 0100007F1F90 00000000:0000 0A 00000000:00000003 00:00000000 00000000 0 0 1 1",  # no ':'
    "   0: 0100007:1F90 00000000:0000 0A 00000000:00000003 00:00000000 00000000 0 0 1 1",  # odd hex
    "garbage",
])
def test_proc_net_tcp_malformed_names_file_and_line(bad):
    text = "  sl  local_address rem_address   st\n" + bad + "\n"
    with pytest.raises(ParseError) as e:
        procnet.parse_proc_net_tcp(text, source="/proc/net/tcp")
    assert e.value.source == "/proc/net/tcp" and e.value.lineno == 2 and e.value.line == bad
    assert "/proc/net/tcp:2" in str(e.value)


def test_netstat_snmp_golden():
    ns = netstat.parse_counters(fixture_text("proc_net_netstat.txt"))
    snmp = netstat.parse_counters(fixture_text("proc_net_snmp.txt"), source="/proc/net/snmp")
    assert {"TcpExt", "IpExt"} <= ns.keys() and {"Ip", "Tcp", "Udp"} <= snmp.keys()
    # the fixture namespace made 5 connections (3 + 1 + one v6) and accepted one
    assert snmp["Tcp"]["ActiveOpens"] == 5
    assert snmp["Tcp"]["PassiveOpens"] == 5
    assert ns["TcpExt"]["ListenOverflows"] == 0


def test_netstat_malformed():
    with pytest.raises(ParseError, match="names but"):
        netstat.parse_counters("TcpExt: A B\nTcpExt: 1\n")
    with pytest.raises(ParseError, match="not an integer"):
        netstat.parse_counters("TcpExt: A\nTcpExt: x\n")
    with pytest.raises(ParseError, match="without a value line"):
        netstat.parse_counters("TcpExt: A\n")


def test_sentences_map_to_counters():
    assert netstat.counter_for_sentence("    7 times the listen queue of a socket overflowed") == "ListenOverflows"
    assert netstat.counter_for_sentence("7 SYNs to LISTEN sockets dropped") == "ListenDrops"
    with pytest.raises(ValueError, match="sentence is not a known"):
        netstat.counter_for_sentence("the cat sat")


@pytest.mark.real
def test_sysctl_values():
    assert sysctl.parse_sysctl_value("32768\t60999\n") == (32768, 60999)
    assert sysctl.parse_sysctl_value("2\n") == 2
    assert sysctl.parse_sysctl_value("reno cubic\n") == "reno cubic"
    with pytest.raises(ParseError):
        sysctl.parse_sysctl_value("  \n")
    with pytest.raises(ValueError, match="name must be a 'net"):
        sysctl.read_sysctl("kernel.hostname")
    with pytest.raises(ValueError, match="does not exist"):
        sysctl.read_sysctl("net.ipv4.tcp_no_such_thing")


def test_diag_request_and_error():
    req = diag.build_request(2)
    assert len(req) == 16 + 56
    with pytest.raises(ParseError, match="truncated"):
        diag.parse_diag_messages(b"\x01\x02")
    err = (20).to_bytes(4, "little") + (2).to_bytes(2, "little") + bytes(10) + (-2).to_bytes(4, "little", signed=True)
    with pytest.raises(SockDiagUnavailable):
        diag.parse_diag_messages(err)


# --- fuzzing: any text raises ParseError or parses; never IndexError/ValueError leaks out ---

_lines = st.lists(st.text(alphabet="0123456789ABCDEF: \t", max_size=120), max_size=5)


def _fuzz_cases(n):
    return settings(max_examples=n, deadline=None)


@_fuzz_cases(300)
@given(_lines)
def test_fuzz_proc_net_tcp(lines):
    text = "  sl  local_address rem_address\n" + "\n".join(lines)
    try:
        procnet.parse_proc_net_tcp(text)
    except ParseError:
        pass


@_fuzz_cases(300)
@given(st.text(max_size=300))
def test_fuzz_counters(text):
    try:
        netstat.parse_counters(text)
    except ParseError:
        pass


@_fuzz_cases(300)
@given(st.binary(max_size=400))
def test_fuzz_diag(data):
    try:
        diag.parse_diag_messages(data)
    except (ParseError, SockDiagUnavailable):
        pass


@_fuzz_cases(300)
@given(st.text(max_size=50))
def test_fuzz_sysctl(text):
    try:
        sysctl.parse_sysctl_value(text)
    except ParseError:
        pass
