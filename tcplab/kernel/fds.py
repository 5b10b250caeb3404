"""A process's file descriptors: count them, find a socket's, and run code under a lowered
RLIMIT_NOFILE in a child process of its own (so the caller's limit never changes).

A socket's TCP state and its file descriptor are two things: the kernel can end the connection
(a keepalive RST, a timeout: ``tcp_done()``) while the descriptor stays open until the program
calls close(). ``ss`` lists only the connection; ``/proc/<pid>/fd`` lists the descriptor.

>>> import socket
>>> s = socket.socket()
>>> fd_of_socket(socket_inode_of(s)) == s.fileno()
True
>>> s.close()
"""

from __future__ import annotations

import os
import resource
import socket
from collections.abc import Callable
from typing import TypeVar

from tcplab.kernel.child import run_in_child

__all__ = ["open_fds", "socket_inode_of", "fd_of_socket", "run_with_fd_limit"]

T = TypeVar("T")
_FD_DIR = "/proc/self/fd"


def open_fds() -> int:
    """How many file descriptors this process has open (entries of /proc/self/fd, less the one
    the listing itself uses). At the RLIMIT_NOFILE limit the listing cannot open its directory
    (EMFILE): then each descriptor number below the limit is asked with fstat(), which opens none."""
    try:
        return len(os.listdir(_FD_DIR)) - 1
    except OSError:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        count = 0
        for fd in range(min(soft, 1 << 16)):
            try:
                os.fstat(fd)
            except OSError:
                continue
            count += 1
        return count


def socket_inode_of(sock: socket.socket) -> int:
    """The inode of a socket (``socket:[inode]``, what /proc/net/tcp and ss show)."""
    return os.fstat(sock.fileno()).st_ino


def fd_of_socket(inode: int) -> int | None:
    """The descriptor of this process that holds socket ``inode``, or None."""
    want = f"socket:[{inode}]"
    for name in os.listdir(_FD_DIR):
        try:
            if os.readlink(f"{_FD_DIR}/{name}") == want:
                return int(name)
        except OSError:
            continue          # the listing's own descriptor, gone already
    return None


def run_with_fd_limit(fn: Callable[..., T], limit: int, timeout: float = 30.0, keep: tuple[int, ...] = ()) -> T:
    """Run ``fn(*fds)`` in a forked child whose RLIMIT_NOFILE soft limit is ``limit``; return its
    result (pickled back) or raise its exception. The child is killed after ``timeout`` s and always
    reaped (:func:`tcplab.kernel.child.run_in_child`).

    The child closes every inherited descriptor above 2 and renumbers its result pipe to 3 and the
    descriptors of ``keep`` to 4, 5, ... (``fds``, in that order), so it starts with exactly
    ``4 + len(keep)`` descriptors, all below the limit, whatever the caller had open (a Jupyter
    kernel has dozens). The caller's own limit and descriptors never change.
    """
    if limit < 4:
        raise ValueError(f"limit must be at least 4 (stdin, stdout, stderr and the result pipe), not {limit}")

    def prepare(wfd: int) -> int:
        high = [os.dup(fd) for fd in (wfd, *keep)]
        for name in os.listdir(_FD_DIR):
            fd = int(name)
            if fd > 2 and fd not in high:
                try:
                    os.close(fd)
                except OSError:
                    pass        # the listing's own descriptor
        low = list(range(3, 3 + len(high)))
        for fd, n in zip(high, low):
            os.dup2(fd, n)
        for fd in high:
            if fd not in low:
                os.close(fd)
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
        return low[0]

    return run_in_child(fn, *range(4, 4 + len(keep)), prepare=prepare, timeout=timeout,
                        what=f"the child with RLIMIT_NOFILE={limit}")
