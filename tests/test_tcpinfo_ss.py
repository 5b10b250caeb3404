"""TcpInfo.ss_line(): TCP_INFO of a live loopback connection printed as ``ss -ti`` prints it."""

from __future__ import annotations

import re
import socket

import pytest

from tcplab.kernel.tcpinfo import tcp_info


@pytest.mark.real
def test_ss_line_of_a_live_connection():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        with socket.create_connection(listener.getsockname(), timeout=5) as c:
            peer, _ = listener.accept()
            with peer:
                c.sendall(b"x" * 50_000)
                got = 0
                peer.settimeout(5)
                while got < 50_000:
                    got += len(peer.recv(1 << 16))
                algo = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0").decode()
                info = tcp_info(c)
    line = info.ss_line(algo)
    assert line.startswith(algo + " ")
    # the fields ss -ti prints, with the kernel's values in ss's units (ms, not the struct's us)
    assert f"rto:{info.rto / 1000:g}" in line and f"cwnd:{info.extra['snd_cwnd']}" in line
    assert re.search(r"rtt:[0-9.]+/[0-9.]+", line) and "bytes_sent:50000" in line
    assert info.rto / 1000 >= 200        # loopback: the 200 ms floor (tcp_rto_min), not microseconds
