"""tcplab.kernel.child.run_in_child: the result comes back, the child's exception is raised in the
parent with its message, a child past its timeout is killed with a clear error, and nothing is
left behind (no zombie, no descriptor: /proc/self/fd counted before and after)."""

from __future__ import annotations

import os
import signal
import time

import pytest

pytestmark = pytest.mark.real

from tcplab.errors import KernelUnavailable
from tcplab.kernel.child import run_in_child
from tcplab.kernel.fds import open_fds


def _children() -> set[int]:
    """This process's child pids (zombies included), from /proc/<pid>/task/*/children."""
    out: set[int] = set()
    for tid in os.listdir(f"/proc/{os.getpid()}/task"):
        with open(f"/proc/{os.getpid()}/task/{tid}/children") as f:
            out |= {int(p) for p in f.read().split()}
    return out


class _Odd(Exception):
    pass


def _sleep_then(pidfile_fd: int, seconds: float) -> None:
    os.write(pidfile_fd, str(os.getpid()).encode())
    time.sleep(seconds)


@pytest.fixture
def nothing_left():
    fds, kids = open_fds(), _children()
    yield
    assert open_fds() == fds
    assert _children() <= kids


def test_result_returned(nothing_left):
    assert run_in_child(lambda a, b: (a + b, os.getpid() != parent), 2, 3) == (5, True)


parent = os.getpid()


def test_exception_propagated_with_message_and_child_traceback(nothing_left):
    def boom(x):
        raise _Odd(f"bad {x}")
    with pytest.raises(_Odd, match="bad 7") as ei:
        run_in_child(boom, 7, what="the test child")
    assert any("traceback in the test child" in n and "boom" in n for n in ei.value.__notes__)


def test_prepare_runs_in_the_child_only(nothing_left):
    def prepare(wfd: int) -> int:
        os.environ["TCPLAB_CHILD_TEST"] = "set"
        return wfd
    assert run_in_child(os.environ.get, "TCPLAB_CHILD_TEST", prepare=prepare) == "set"
    assert "TCPLAB_CHILD_TEST" not in os.environ


def test_unpicklable_result_is_an_error_not_a_hang(nothing_left):
    with pytest.raises(Exception, match="could not be pickled"):
        run_in_child(lambda: (lambda: 0))


def test_timeout_kills_the_child(nothing_left):
    r, w = os.pipe()
    try:
        t0 = time.monotonic()
        with pytest.raises(KernelUnavailable, match=r"the sleeper did not finish within 0.3 s and was killed"):
            run_in_child(_sleep_then, w, 60.0, timeout=0.3, what="the sleeper")
        assert time.monotonic() - t0 < 10
        pid = int(os.read(r, 32))
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(ProcessLookupError):     # killed and reaped: the pid is gone
        os.kill(pid, 0)


def test_child_dying_without_a_result(nothing_left):
    with pytest.raises(KernelUnavailable, match="exited with status 3 without a result"):
        run_in_child(os._exit, 3)
    with pytest.raises(KernelUnavailable, match=f"killed by signal {int(signal.SIGKILL)}"):
        run_in_child(lambda: os.kill(os.getpid(), signal.SIGKILL))


def test_a_sibling_holding_the_pipe_does_not_hang_the_read(nothing_left):
    # the write end leaks into a grandchild that outlives the child: EOF never comes, the
    # length prefix ends the read
    def spawn():
        if os.fork() == 0:
            time.sleep(5)
            os._exit(0)
        return "done"
    t0 = time.monotonic()
    assert run_in_child(spawn, timeout=10) == "done"
    assert time.monotonic() - t0 < 4


def test_bad_timeout():
    with pytest.raises(ValueError, match="timeout must be in"):
        run_in_child(int, timeout=0)


class _NeedsTwo(Exception):
    def __init__(self, a, b):          # pickles as _NeedsTwo("a b"), which cannot be called again
        super().__init__(f"{a} {b}")


def test_an_exception_that_cannot_be_rebuilt_is_still_an_error(nothing_left):
    def raise_it():
        raise _NeedsTwo("x", "y")
    with pytest.raises(Exception, match="could not be unpickled"):
        run_in_child(raise_it)
