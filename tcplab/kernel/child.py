"""Run a function in a forked child and read its result back through a pipe: the one place
tcplab forks for a result (a lowered RLIMIT_NOFILE in :mod:`tcplab.kernel.fds`, an unprivileged
uid in :mod:`tcplab.kernel.capabilities`).

The child runs ``prepare(wfd)`` (what the caller needs changed in the child only: a limit, a uid,
descriptors renumbered; it returns the descriptor to write the result to), then ``fn(*args)``,
and writes ``("ok", result)`` or ``("err", exception, traceback)`` pickled, length-prefixed (the
parent cannot wait for EOF: a sibling child forked meanwhile by another thread holds a copy of
the write end). The parent waits at most ``timeout`` s, kills the child on timeout or on any error
of its own (KeyboardInterrupt too), always reaps it and always closes its end of the pipe, and
re-raises the child's exception with the child's traceback as a note.

>>> run_in_child(pow, 2, 10)
1024
>>> try:
...     run_in_child(int, "x")
... except ValueError as e:
...     print(e)
invalid literal for int() with base 10: 'x'
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import time
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from tcplab.errors import KernelUnavailable, TcpLabError

__all__ = ["run_in_child", "MAX_RESULT_BYTES"]

T = TypeVar("T")
#: the most a child may send back (a result is a summary or a table, not a capture)
MAX_RESULT_BYTES = 256 * 1024 * 1024
_HEADER = struct.Struct(">Q")
_CHILD_FAILED = 70          # EX_SOFTWARE: the child could not even report


def run_in_child(fn: Callable[..., T], *args: Any, prepare: Callable[[int], int] | None = None,
                 timeout: float = 30.0, what: str = "the child",
                 timeout_error: Callable[[str], Exception] = KernelUnavailable,
                 died_error: Callable[[str], Exception] = KernelUnavailable) -> T:
    """Return ``fn(*args)`` run in a forked child (after ``prepare(wfd)`` there, which returns
    the descriptor to write the result to), or raise its exception. ``what`` names the child in
    errors. Raises ``timeout_error(message)`` if the child does not finish within ``timeout`` s
    (it is killed), ``died_error(message)`` if it dies without a result (both
    :class:`KernelUnavailable` unless given, e.g. :class:`~tcplab.errors.NamespaceTimeout`).

    >>> import os
    >>> run_in_child(os.getpid) != os.getpid()
    True
    """
    if not 0 < timeout <= 24 * 3600:
        raise ValueError(f"timeout must be in (0, 86400] seconds, not {timeout!r}")
    rfd, wfd = os.pipe()
    try:
        pid = os.fork()
    except BaseException:
        os.close(rfd)
        os.close(wfd)
        raise
    if pid == 0:                                            # the child: never returns
        _child(fn, args, prepare, rfd, wfd)
    os.close(wfd)
    data: bytes | None = None
    status: int | None = None
    try:
        data, status = _read(rfd, pid, timeout, what, timeout_error)
    finally:
        os.close(rfd)
        if status is None:          # not reaped: finished (it exits at once), timed out, or we failed
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
    if data is None:
        assert status is not None
        why = (f"was killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"exited with status {os.waitstatus_to_exitcode(status)}")
        raise died_error(f"{what} {why} without a result")
    try:
        payload = pickle.loads(data)
    except Exception as e:  # noqa: BLE001 - e.g. an exception class whose __init__ pickle cannot call again
        raise TcpLabError(f"{what} sent a result that could not be unpickled: {e!r}") from e
    if payload[0] == "ok":
        return payload[1]
    exc, tb = payload[1], payload[2]
    exc.add_note(f"--- traceback in {what} (pid {pid}) ---\n{tb.rstrip()}")
    raise exc


def _child(fn: Callable[..., Any], args: tuple, prepare: Callable[[int], int] | None, rfd: int, wfd: int) -> None:
    code = 0
    try:
        os.close(rfd)
        try:
            if prepare is not None:
                wfd = prepare(wfd)
            payload: tuple = ("ok", fn(*args))
        except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
            payload = ("err", e, traceback.format_exc())
        try:
            data = pickle.dumps(payload)
        except Exception as e:  # noqa: BLE001 - an unpicklable result or exception
            detail = payload[2] if payload[0] == "err" else ""
            kind = "result" if payload[0] == "ok" else f"exception {payload[1]!r}"
            data = pickle.dumps(("err", TcpLabError(f"the child's {kind} could not be pickled: {e!r}"), detail))
        view = memoryview(_HEADER.pack(len(data)) + data)
        while view:
            view = view[os.write(wfd, view):]
    except BaseException:  # noqa: BLE001 - never let the child return into the caller's code
        code = _CHILD_FAILED
    finally:
        os._exit(code)


def _read(rfd: int, pid: int, timeout: float, what: str, timeout_error: Callable[[str], Exception]) -> tuple[bytes | None, int | None]:
    """One length-prefixed result: ``(data, None)`` (the child not reaped yet), or ``(None,
    status)`` if the child exited (reaped) without a whole result. Bounded by ``timeout`` s."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    need: int | None = None
    while True:
        if need is None and len(buf) >= _HEADER.size:
            need = _HEADER.unpack_from(buf)[0]
            if need > MAX_RESULT_BYTES:
                raise KernelUnavailable(f"{what} sent more than {MAX_RESULT_BYTES} bytes")
        if need is not None and len(buf) >= _HEADER.size + need:
            return bytes(buf[_HEADER.size:_HEADER.size + need]), None
        left = deadline - time.monotonic()
        if left <= 0:
            raise timeout_error(f"{what} did not finish within {timeout:g} s and was killed")
        if select.select([rfd], [], [], min(left, 0.05))[0]:
            chunk = os.read(rfd, 1 << 20)
            if chunk:
                buf += chunk
                continue
            _, status = os.waitpid(pid, 0)      # EOF: every writer is gone, the child with them
            return None, status
        # no data: a dead child shows no EOF while a sibling holds the pipe, so ask
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            while select.select([rfd], [], [], 0)[0]:       # what it wrote before it exited
                chunk = os.read(rfd, 1 << 20)
                if not chunk:
                    break
                buf += chunk
            if len(buf) >= _HEADER.size and len(buf) >= _HEADER.size + _HEADER.unpack_from(buf)[0]:
                # a whole result, the child already reaped: hand both back
                n = _HEADER.unpack_from(buf)[0]
                return bytes(buf[_HEADER.size:_HEADER.size + n]), status
            return None, status
