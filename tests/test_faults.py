"""Faults: /proc unreadable or malformed, sock_diag refused, namespaces refused, a sysctl
not writable. Each gives a clear error or a labelled fallback, never a wrong number."""

from __future__ import annotations

import os
import shutil

import pytest

import tcplab
from tcplab.errors import KernelUnavailable, ParseError
from tests.conftest import FIXTURES


@pytest.fixture
def fake_proc(tmp_path):
    """A /proc look-alike made of the fixtures captured on this machine."""
    net = tmp_path / "net"
    net.mkdir()
    for name in ("tcp", "tcp6", "netstat", "snmp"):
        shutil.copy(os.path.join(FIXTURES, f"proc_net_{name}.txt"), net / name)
    return tmp_path


def test_sockets_from_a_fake_proc(fake_proc):
    df = tcplab.sockets(root=str(fake_proc))
    assert len(df) == 12
    listener = df[(df.state == "LISTEN") & (df.local_port == 8080)].iloc[0]
    assert listener.recv_q == 3 and str(listener.send_q) == "<NA>"  # /proc has no limit: NA, not 0


def test_malformed_proc_names_file_and_line(fake_proc):
    path = fake_proc / "net" / "tcp"
    lines = path.read_text().splitlines()
    lines[3] = lines[3][:30]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ParseError) as e:
        tcplab.sockets(root=str(fake_proc))
    assert e.value.source == str(path) and e.value.lineno == 4


def test_unreadable_proc_is_a_clear_error(fake_proc):
    (fake_proc / "net" / "tcp").unlink()
    with pytest.raises(KernelUnavailable, match="cannot read .*/net/tcp: no such file"):
        tcplab.sockets(root=str(fake_proc))
    (fake_proc / "net" / "netstat").unlink()
    with pytest.raises(KernelUnavailable, match="cannot read .*/net/netstat"):
        tcplab.counters(root=str(fake_proc))


def test_malformed_counters(fake_proc):
    (fake_proc / "net" / "snmp").write_text("Tcp: ActiveOpens PassiveOpens\nTcp: 1\n")
    with pytest.raises(ParseError, match="snmp:2: 2 names but 1 values"):
        tcplab.counters(root=str(fake_proc))


def test_sysctls_of_an_empty_root_are_missing_not_invented(tmp_path):
    df = tcplab.sysctls(root=str(tmp_path))
    assert df["value"].isna().all()
