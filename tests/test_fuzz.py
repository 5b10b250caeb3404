"""10,000+ hypothesis examples per parser (marked `fuzz`, run by CI): every parser raises
only tcplab's ParseError (or SockDiagUnavailable for a netlink error message), never
IndexError/ValueError/struct.error."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tcplab.errors import ParseError, SockDiagUnavailable
from tcplab.kernel import diag, netstat, procnet, sysctl

pytestmark = pytest.mark.fuzz
MANY = settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
GOOD = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 4242 1"


def _mutations():
    # realistic damage: real lines with fields dropped, swapped, truncated or replaced
    fields = GOOD.split()
    hexish = st.text(alphabet="0123456789ABCDEFabcdef:xz- ", max_size=40)
    return st.one_of(
        st.lists(st.sampled_from(fields), max_size=14).map(" ".join),
        st.tuples(st.integers(0, len(GOOD)), hexish).map(lambda t: GOOD[:t[0]] + t[1] + GOOD[t[0]:]),
        st.integers(0, len(GOOD)).map(lambda n: GOOD[:n]),
        st.text(max_size=200),
    )


@MANY
@given(st.lists(_mutations(), min_size=1, max_size=4))
def test_fuzz_proc_net_tcp_10k(lines):
    try:
        for rec in procnet.parse_proc_net_tcp(HEADER + "\n".join(lines)):
            assert rec.state in procnet.TCP_STATES.values()
    except ParseError:
        pass


@MANY
@given(st.lists(st.tuples(st.sampled_from(["TcpExt", "Tcp", "Ip", "X"]),
                          st.lists(st.text(alphabet="abcXYZ019-", min_size=0, max_size=6), max_size=5)),
                max_size=4), st.booleans())
def test_fuzz_counters_10k(pairs, break_it):
    lines = []
    for sec, words in pairs:
        lines.append(f"{sec}: " + " ".join(words))
        lines.append(f"{sec}: " + " ".join(str(len(w)) if not break_it else w for w in words))
    try:
        netstat.parse_counters("\n".join(lines))
    except ParseError:
        pass


def _nl(mtype: int, payload: bytes, length_delta: int = 0) -> bytes:
    return struct.pack("=IHHII", max(0, 16 + len(payload) + length_delta), mtype, 2, 1, 0) + payload


@MANY
@given(st.lists(st.tuples(st.sampled_from([20, 3, 2, 7]), st.binary(min_size=0, max_size=90),
                          st.integers(-20, 20)), max_size=4))
def test_fuzz_sock_diag_10k(messages):
    data = b"".join(_nl(t, p, d) for t, p, d in messages)
    try:
        diag.parse_diag_messages(data)
    except (ParseError, SockDiagUnavailable):
        pass


@MANY
@given(st.text(max_size=60))
def test_fuzz_sysctl_values_10k(text):
    try:
        sysctl.parse_sysctl_value(text)
    except ParseError:
        pass
