"""The pure-test guard: in a test not marked ``@pytest.mark.real`` opening a network socket,
forking, unsharing or reading live network state from /proc raises
:class:`KernelTouchedInPureTest`.

tests/conftest.py turns it on around the setup and call of every unmarked test. This file is
also named ``sitecustomize`` so that a Python child started by such a test (``python -m tcplab
run ...``) is guarded too: conftest puts this directory on PYTHONPATH and sets
``TCPLAB_TEST_PURE_GUARD=1`` for the test's duration, and Python imports ``sitecustomize`` at
start-up.
"""

from __future__ import annotations

import builtins
import io
import os
import re
import socket

ENV = "TCPLAB_TEST_PURE_GUARD"


class KernelTouchedInPureTest(BaseException):
    """A test without ``@pytest.mark.real`` touched the kernel. A BaseException so that no
    ``except Exception`` in the code under test (a capability probe, ``mode="auto"``) turns it
    into a silent fallback to the simulator."""


#: live network state: /proc/net, /proc/<pid|self|thread-self>/net, /proc/sys/net
_LIVE_PROC = re.compile(r"^/proc/(?:sys/|self/|thread-self/|\d+/)?net(?:/|$)")
_HOW = "in a test not marked @pytest.mark.real (mark it, or keep it pure)"

_real_socket = socket.socket
real_open = builtins.open


def _refuse_net(method_name: str):
    method = getattr(_real_socket, method_name)

    def refused(self, *args, **kwargs):
        if self.family != socket.AF_UNIX:
            raise KernelTouchedInPureTest(f"socket.{method_name}() on family {self.family!r} {_HOW}")
        return method(self, *args, **kwargs)
    return refused


class _GuardedSocket(_real_socket):
    """``socket.socket`` for pure tests. Refused: raw, packet and netlink sockets (capture,
    sock_diag), and putting any other non-AF_UNIX socket on the network (listen, connect,
    send). Allowed: AF_UNIX (an event loop's self-pipe), and creating a TCP/UDP socket or binding
    it to port 0, which libraries do at import to probe for IPv6 (urllib3) and which leaves no
    state a test could read."""

    def __new__(cls, family=-1, type=-1, *args, **kwargs):
        if family in _REFUSED_FAMILIES or type == socket.SOCK_RAW:
            raise KernelTouchedInPureTest(f"socket.socket({family!r}, {type!r}) {_HOW}")
        return super().__new__(cls, family, type, *args, **kwargs)

    def bind(self, address):
        if self.family != socket.AF_UNIX and not (isinstance(address, tuple) and address[1] == 0):
            raise KernelTouchedInPureTest(f"socket.bind({address!r}) {_HOW}")
        return _real_socket.bind(self, address)

    listen = _refuse_net("listen")
    connect = _refuse_net("connect")
    connect_ex = _refuse_net("connect_ex")
    send = _refuse_net("send")
    sendall = _refuse_net("sendall")
    sendto = _refuse_net("sendto")
    sendmsg = _refuse_net("sendmsg")


_REFUSED_FAMILIES = {getattr(socket, n) for n in ("AF_PACKET", "AF_NETLINK") if hasattr(socket, n)}


def _guarded_open(file, *args, **kwargs):
    path = os.fspath(file) if isinstance(file, (str, os.PathLike)) else None
    if isinstance(path, str) and _LIVE_PROC.match(os.path.abspath(path)):
        raise KernelTouchedInPureTest(f"open({path!r}) {_HOW}")
    return real_open(file, *args, **kwargs)


def _refused(what: str):
    def refused(*args, **kwargs):
        raise KernelTouchedInPureTest(f"{what} {_HOW}")
    return refused


def _patches() -> list[tuple[object, str, object]]:
    out: list[tuple[object, str, object]] = [
        (socket, "socket", _GuardedSocket), (builtins, "open", _guarded_open), (io, "open", _guarded_open)]
    for name in ("fork", "forkpty", "unshare", "setns"):
        if hasattr(os, name):
            out.append((os, name, _refused(f"os.{name}()")))
    return out


def install() -> list[tuple[object, str, object]]:
    """Turn the guard on; returns what :func:`uninstall` needs to turn it off."""
    saved = []
    for obj, name, value in _patches():
        saved.append((obj, name, getattr(obj, name)))
        setattr(obj, name, value)
    return saved


def uninstall(saved: list[tuple[object, str, object]]) -> None:
    for obj, name, value in reversed(saved):
        setattr(obj, name, value)


if os.environ.get(ENV) == "1" and __name__ == "sitecustomize":
    install()
