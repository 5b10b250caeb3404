"""fd_limit: EMFILE from a CLOSE_WAIT leak or a flood, in a child with RLIMIT_NOFILE lowered (the
test process's own limit never changes); the descriptor helpers of tcplab.kernel.fds."""

from __future__ import annotations

import resource
import socket

import pytest

from tcplab.experiments import fd_limit
from tcplab.kernel.fds import fd_of_socket, open_fds, run_with_fd_limit, socket_inode_of


def _real(kw):
    r = fd_limit(**kw, mode="real")
    return r.mode, r.summary, r.tables["accepts"].to_dict("records")


@pytest.mark.real
@pytest.mark.parametrize("kw", [dict(limit=32, connections=40), dict(limit=16, connections=20, source="flood"),
                                dict(limit=64, connections=20)])
def test_accept_fails_with_emfile_at_the_limit(as_user, kw):
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    mode, s, rows = as_user(_real, kw)
    sim = fd_limit(**kw, mode="sim").summary
    assert mode == "real" and s == sim, (s, sim)
    assert [r["open_fds"] for r in rows if r["error"] != "EMFILE"] == list(range(6, 6 + s["accepted"]))
    if kw.get("source", "close_wait_leak") == "close_wait_leak":
        assert s["close_wait_sockets"] == s["accepted"]
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == before


@pytest.mark.real
def test_fd_helpers():
    n = open_fds()
    s = socket.socket()
    try:
        assert open_fds() == n + 1 and fd_of_socket(socket_inode_of(s)) == s.fileno()
    finally:
        s.close()
    assert open_fds() == n
    assert run_with_fd_limit(lambda: open_fds(), 8) == 4          # 0, 1, 2 and the result pipe
    assert run_with_fd_limit(lambda fd: (fd, open_fds()), 8, keep=(0,)) == (4, 5)
    with pytest.raises(ZeroDivisionError):
        run_with_fd_limit(lambda: 1 // 0, 8)
    with pytest.raises(ValueError, match="limit must be at least 4"):
        run_with_fd_limit(lambda: 0, 3)


@pytest.mark.parametrize("kw,msg", [(dict(limit=7), r"limit must be an int in 8\.\.1024"),
                                    (dict(source="leak"), r"source must be one of 'close_wait_leak', 'flood'")])
def test_bad_parameters(kw, msg):
    with pytest.raises(ValueError, match=msg):
        fd_limit(**kw, mode="sim")
