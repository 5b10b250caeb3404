"""Loopback sockets for experiments: listeners, non-blocking clients, and one place
that closes them all.

Every socket an experiment opens goes through a :class:`SocketSet`, a context manager
that closes everything it handed out when the block ends, also on an exception or
KeyboardInterrupt. Addresses other than loopback are refused (:func:`check_loopback`):
tcplab never sends a packet off the machine.

>>> with SocketSet() as ss:
...     lst = ss.listener(backlog=5)
...     c = ss.connect(lst.getsockname(), wait=True)
...     tcp_state(c)
'ESTABLISHED'
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tcplab._validate import check_int, check_loopback
from tcplab.errors import ExperimentError
from tcplab.kernel.tcpinfo import tcp_info

__all__ = ["SocketSet", "CloseWaitLeak", "check_loopback", "tcp_state", "connect_error", "socket_inode", "wait_until",
           "wait_for",
           "TCP_SYNCNT", "TCP_DEFER_ACCEPT"]

TCP_SYNCNT = getattr(socket, "TCP_SYNCNT", 7)
TCP_DEFER_ACCEPT = getattr(socket, "TCP_DEFER_ACCEPT", 9)


def tcp_state(sock: socket.socket) -> str:
    """Kernel state name of ``sock`` (``"CLOSED"`` once the fd is closed)."""
    if sock.fileno() < 0:
        return "CLOSED"
    return tcp_info(sock).state


def connect_error(sock: socket.socket) -> str | None:
    """Pending error of a (non-blocking) connect as an errno name, e.g. ``"ECONNRESET"``.

    Reading SO_ERROR clears it, so callers keep the first answer.
    """
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return errno.errorcode.get(code, str(code)) if code else None


def socket_inode(sock: socket.socket) -> int:
    """Inode of ``sock``: the key of /proc/net/tcp rows and sock_diag records."""
    return os.fstat(sock.fileno()).st_ino


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.005) -> bool:
    """Poll ``predicate`` until it is truthy or ``timeout`` seconds pass; return the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


T = TypeVar("T")


def wait_for(read: Callable[[], T], ok: Callable[[T], bool], timeout: float, what: str,
             interval: float = 0.005) -> T:
    """Poll ``read()`` until ``ok(value)`` holds and return that value; raise when ``timeout`` s pass.

    For a state the next step needs (a socket in FIN_WAIT2 before its timer is watched, an ACK
    before a count is read): on loopback such an event is usually over before the syscall that
    caused it returns, but when softirq work is deferred to ksoftirqd on a busy host it comes
    later, so reading once (or after a fixed sleep) would sometimes read the state before it.
    The wait ends at the event, so a generous ``timeout`` costs nothing when the host is quiet.
    Bounded in time and in polls; the error names the event and the last value read::

        >>> wait_for(lambda: "FIN_WAIT1", lambda s: s == "FIN_WAIT2", 0.02, "the client in FIN_WAIT2")
        Traceback (most recent call last):
        ...
        tcplab.errors.ExperimentError: the client in FIN_WAIT2 did not happen within 0.02 s (last read: 'FIN_WAIT1')
    """
    deadline = time.monotonic() + timeout
    # each poll sleeps at least ``interval``, so this count is never reached before the deadline;
    # it only guarantees the loop ends even if the clock misbehaves
    for _ in range(int(timeout / interval) + 2):
        value = read()
        if ok(value):
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise ExperimentError(f"{what} did not happen within {timeout:g} s (last read: {value!r})")


class SocketSet:
    """Opens loopback TCP sockets and closes all of them on exit (ExitStack for sockets).

    Closing order is clients first, then listeners, so a test that only cares about
    "nothing leaked" need not care about TIME_WAIT either.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = check_loopback("host", host)
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socks: list[socket.socket] = []

    def __enter__(self) -> SocketSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_all()

    def close_all(self) -> None:
        """Close every socket handed out (idempotent)."""
        socks, self._socks = self._socks, []
        for s in reversed(socks):
            try:
                s.close()
            except OSError:
                pass

    def adopt(self, sock: socket.socket) -> socket.socket:
        """Track a socket made elsewhere (e.g. returned by accept()) so it is closed too."""
        self._socks.append(sock)
        return sock

    def accept_all(self, listener: socket.socket, into: list[socket.socket]) -> int:
        """accept() on the non-blocking ``listener`` until the queue is empty; the accepted sockets
        are tracked (closed with the set) and appended to ``into``. Returns how many were accepted."""
        n = 0
        while True:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                return n
            into.append(self.adopt(conn))
            n += 1

    def socket(self) -> socket.socket:
        """A fresh TCP socket of this set's family, tracked."""
        return self.adopt(socket.socket(self.family, socket.SOCK_STREAM))

    def listener(self, backlog: int, *, port: int = 0, reuseaddr: bool = False,
                 defer_accept: int | None = None, host: str | None = None) -> socket.socket:
        """Bind ``host:port`` (ephemeral when 0) and ``listen(backlog)``.

        The kernel clamps ``backlog`` to net.core.somaxconn (``__sys_listen_socket()``)
        and then admits one more than that (``sk_acceptq_is_full()`` uses ``>``).
        """
        backlog = check_int("backlog", backlog, 0, 65535)
        port = check_int("port", port, 0, 65535)
        s = self.socket()
        if reuseaddr:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if defer_accept is not None:
            s.setsockopt(socket.IPPROTO_TCP, TCP_DEFER_ACCEPT, check_int("defer_accept", defer_accept, 0, 2**31 - 1))
        s.bind((check_loopback("host", host or self.host), port))
        s.listen(backlog)
        return s

    def connect(self, address: tuple, *, syncnt: int | None = None, wait: bool = False,
                timeout: float = 5.0, linger0: bool = False, bind_port: int | None = None,
                reuseaddr: bool = False, on_bound: Callable[[socket.socket], Any] | None = None) -> socket.socket:
        """A client connecting to ``address`` (loopback only), non-blocking.

        ``syncnt`` sets TCP_SYNCNT (1..127, the kernel's limit in ``do_tcp_setsockopt()``).
        With ``wait=True`` block (poll) until the handshake finishes or fails, up to ``timeout`` s.
        ``on_bound(sock)``: called once the socket has its local port (``bind_port``, 0 for an ephemeral
        one), before its first SYN: a capture filtered on both ports starts there and misses none.
        """
        check_loopback("address", address[0])
        if on_bound is not None and bind_port is None:
            raise ValueError("on_bound needs bind_port (0: an ephemeral port): without it the socket has no port yet")
        s = self.socket()
        if syncnt is not None:
            s.setsockopt(socket.IPPROTO_TCP, TCP_SYNCNT, check_int("syncnt", syncnt, 1, 127))
        if linger0:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if reuseaddr:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if bind_port is not None:
            s.bind((address[0], bind_port))
        if on_bound is not None:
            on_bound(s)
        s.setblocking(False)
        err = s.connect_ex(address)
        if err not in (0, errno.EINPROGRESS):
            raise OSError(err, os.strerror(err))
        if wait:
            wait_until(lambda: tcp_state(s) != "SYN_SENT", timeout)
        return s


class CloseWaitLeak:
    """A listener on 127.0.0.1 (ephemeral port) whose "application" accepts ``n``
    connections and never closes them; the clients close theirs. The server sockets sit in
    CLOSE_WAIT (no timer ever ends it), the clients' in FIN_WAIT2 until tcp_fin_timeout.

    Use as a context manager; leaving it closes everything (the server's FINs finally go out)::

        with CloseWaitLeak(5) as leak:
            tcplab.sockets(state="CLOSE_WAIT", port=leak.port)

    The course shows it in notebooks 06 and 08 (``tcplab.widgets.CloseWaitLeak``).
    """

    def __init__(self, n: int = 5) -> None:
        self.n = check_int("n", n, 1, 200)
        self.port: int | None = None
        self.accepted: list[socket.socket] = []
        self._ss: SocketSet | None = None

    def __enter__(self) -> CloseWaitLeak:
        self._ss = ss = SocketSet()
        try:
            lst = ss.listener(self.n)
            lst.settimeout(2.0)
            addr = lst.getsockname()
            self.port = addr[1]
            clients = [ss.connect(addr, wait=True) for _ in range(self.n)]
            self.accepted = [ss.adopt(lst.accept()[0]) for _ in range(self.n)]
            for c in clients:
                c.close()  # the client is done: FIN. The buggy server never calls close().
            # the FINs are processed in softirq, on a busy host after close() returned: hand the
            # leak out only once every server socket is in CLOSE_WAIT (callers count them at once)
            wait_for(lambda: [tcp_state(s) for s in self.accepted],
                     lambda states: all(st == "CLOSE_WAIT" for st in states), 5.0,
                     f"all {self.n} server sockets in CLOSE_WAIT after the clients' FINs")
        except BaseException:
            ss.close_all()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ss is not None:
            self._ss.close_all()
            self._ss = None
