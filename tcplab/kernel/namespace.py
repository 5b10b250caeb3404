"""Run a function in a fresh, private network namespace.

Why fork first: ``unshare(CLONE_NEWUSER)`` fails with EINVAL in a multi-threaded
process, and a Jupyter kernel always has threads. So the parent forks; the child
(single-threaded after fork) unshares, brings ``lo`` up, writes the requested
sysctls (they are per network namespace, so the host never changes), runs ``fn``
and sends its pickled result or exception back through a pipe. The parent
enforces the timeout, kills and always reaps the child.

As root we unshare only CLONE_NEWNET. As an unprivileged user we unshare
CLONE_NEWUSER|CLONE_NEWNET and map our uid to root inside, which makes us the
owner of the new network namespace (what ``unshare -Urn`` does).

Set ``TCPLAB_FORBID_NAMESPACES=1`` to behave as if namespaces were forbidden
(the Binder/JupyterHub case), which is how the fallback paths are tested.

>>> in_namespace(lambda: open("/proc/sys/net/core/somaxconn").read(),
...              sysctls={"net.core.somaxconn": 16})  # doctest: +SKIP
'16\\n'
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import pickle
import select
import signal
import socket
import struct
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from tcplab._validate import check_float
from tcplab.errors import KernelUnavailable, NamespaceError, NamespaceTimeout, NamespaceUnavailable, SysctlUnavailable

__all__ = ["in_namespace", "namespace_support", "FORBID_ENV", "sysctl_path", "set_loopback"]

T = TypeVar("T")

FORBID_ENV = "TCPLAB_FORBID_NAMESPACES"
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_PR_SET_DUMPABLE = 4
_MAX_RESULT_BYTES = 256 * 1024 * 1024


def sysctl_path(name: str) -> str:
    """``net.core.somaxconn`` -> ``/proc/sys/net/core/somaxconn``.

    >>> sysctl_path("net.ipv4.tcp_syncookies")
    '/proc/sys/net/ipv4/tcp_syncookies'
    """
    if not isinstance(name, str) or not name.startswith("net.") or ".." in name or "/" in name:
        raise ValueError(f"sysctl name must be a 'net.*' sysctl such as 'net.core.somaxconn', not {name!r}")
    return "/proc/sys/" + name.replace(".", "/")


def _format_sysctl_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (tuple, list)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return "\t".join(str(v) for v in value)
    if isinstance(value, str) and value.strip():
        return value
    raise TypeError(f"sysctls[{name!r}] must be an int, bool, a tuple of ints or a string, not {value!r}")


def _libc_unshare(flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(ctypes.c_int(flags)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


#: set in the namespace child once it owns a fresh network namespace: the one place that may
#: switch ``lo`` (taking the host's lo down would cut every local connection of the machine)
_IN_PRIVATE_NETNS = False


def _switch_loopback(up: bool) -> None:
    # ioctl instead of `ip link set lo up`: no dependency on iproute2.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, ifr))[1]
        flags = flags | _IFF_UP if up else flags & ~_IFF_UP
        fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags))


def set_loopback(up: bool) -> None:
    """``ip link set lo up|down`` in the private namespace this code runs in (:func:`in_namespace`).

    Taking ``lo`` down silences a peer completely: segments still leave TCP and vanish below it
    (no ACK, no RST, no ICMP), which is how the retransmission and keepalive experiments make a
    dead peer. Refuses anywhere else, so the host's ``lo`` is never touched.

    >>> set_loopback(False)
    Traceback (most recent call last):
    tcplab.errors.KernelUnavailable: refusing to switch lo: this is not a private network namespace made by in_namespace()
    """
    if not _IN_PRIVATE_NETNS:
        raise KernelUnavailable("refusing to switch lo: this is not a private network namespace made by in_namespace()")
    _switch_loopback(up)


def _enter_private_netns() -> None:
    """In the (forked) child: become the owner of a new network namespace."""
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0:
        try:
            _libc_unshare(CLONE_NEWNET)
            return
        except OSError:
            pass  # e.g. root without CAP_SYS_ADMIN in a container: try a user namespace
    _libc_unshare(CLONE_NEWUSER | CLONE_NEWNET)
    # A process that changed uid (su, setuid) is not "dumpable", and then its
    # /proc/self/*_map files belong to root: make them ours again.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"0 {uid} 1")
    _write("/proc/self/gid_map", f"0 {gid} 1")


def _child(fn: Callable[..., Any], args: tuple, kwargs: dict, sysctls: Mapping[str, Any], wfd: int) -> None:
    global _IN_PRIVATE_NETNS
    status = 0
    try:
        try:
            _enter_private_netns()
        except OSError as e:
            payload = ("unavailable", f"{e.filename or 'unshare'} failed: {e.strerror} (errno {e.errno}); "
                       "user namespaces may be forbidden here (kernel.unprivileged_userns_clone, "
                       "user.max_user_namespaces, or a container's seccomp profile)")
        else:
            _IN_PRIVATE_NETNS = True
            hidden = [n for n in sysctls if not os.path.exists(sysctl_path(n))]
            if hidden:
                # the host has it, this namespace does not show it: some kernels hide a sysctl from a
                # namespace an unprivileged user owns (6.1 hides net.core.somaxconn; as root it is there)
                payload = ("sysctl", f"cannot set {', '.join(hidden)} in the private namespace: this kernel "
                                     f"({os.uname().release}) does not show it there (a global sysctl, or one "
                                     "hidden from a namespace an unprivileged user owns: 6.1 hides net.core.somaxconn)")
            else:
                try:
                    _switch_loopback(True)
                    for name, value in sysctls.items():
                        try:
                            _write(sysctl_path(name), _format_sysctl_value(name, value))
                        except OSError as e:
                            raise NamespaceError(
                                f"cannot set {name}={value!r} in the private namespace: {e.strerror}") from None
                    payload = ("ok", fn(*args, **kwargs))
                except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
                    payload = ("raise", e, traceback.format_exc())
        try:
            data = pickle.dumps(payload)
        except Exception as e:  # noqa: BLE001
            data = pickle.dumps(("raise", None, f"result of {fn!r} could not be pickled: {e!r}\n"
                                 + (payload[2] if payload[0] == "raise" else "")))
        # Length-prefixed, because the parent cannot wait for EOF: when experiments run in
        # threads, sibling children forked meanwhile hold copies of this pipe's write end.
        view = memoryview(struct.pack(">Q", len(data)) + data)
        while view:
            n = os.write(wfd, view)
            view = view[n:]
    except BaseException:  # noqa: BLE001 - never let the child return into the caller's code
        status = 70
    finally:
        os._exit(status)


def _read_result(rfd: int, pid: int, deadline: float) -> tuple[bytes | None, int | None]:
    """Read one length-prefixed result. Returns (data, None), or (None, wait status) if the
    child exited without a complete result. Raises TimeoutError at ``deadline``."""
    buf = bytearray()
    need: int | None = None
    while True:
        if need is not None and len(buf) >= 8 + need:
            return bytes(buf[8:8 + need]), None
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        if select.select([rfd], [], [], min(left, 0.05))[0]:
            chunk = os.read(rfd, 1 << 20)
            if not chunk:  # every writer is gone (no sibling holds the pipe)
                _, status = os.waitpid(pid, 0)
                return None, status
            buf += chunk
            if need is None and len(buf) >= 8:
                need = struct.unpack(">Q", bytes(buf[:8]))[0]
                if need > _MAX_RESULT_BYTES:
                    raise NamespaceError(f"the namespace child sent more than {_MAX_RESULT_BYTES} bytes")
            continue
        # No data: a dead child cannot be detected by EOF (siblings may hold the pipe), so ask.
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            while select.select([rfd], [], [], 0)[0]:  # what it wrote before dying
                chunk = os.read(rfd, 1 << 20)
                if not chunk:
                    break
                buf += chunk
            if len(buf) >= 8 and len(buf) >= 8 + struct.unpack(">Q", bytes(buf[:8]))[0]:
                return bytes(buf[8:8 + struct.unpack(">Q", bytes(buf[:8]))[0]]), status
            return None, status


def _forbidden_reason() -> str | None:
    if os.environ.get(FORBID_ENV, "").strip() not in ("", "0"):
        return f"namespaces are forbidden by {FORBID_ENV}={os.environ[FORBID_ENV]}"
    if sys.platform != "linux":
        return f"network namespaces need Linux, this is {sys.platform}"
    return None


def in_namespace(fn: Callable[..., T], *args: Any, sysctls: Mapping[str, Any] | None = None,
                 timeout: float = 60.0, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in a fresh network namespace and return its result.

    ``lo`` is up; ``sysctls`` (``{"net.core.somaxconn": 16}``) are written inside the
    namespace only. The child's exception is re-raised in the caller with the child's
    traceback attached as a note. The child is killed after ``timeout`` seconds
    (:class:`NamespaceTimeout`) and always reaped.

    Raises :class:`NamespaceUnavailable` (with the reason) where no namespace can be made.
    """
    timeout = check_float("timeout", timeout, 0.01, 24 * 3600)
    sysctls = dict(sysctls or {})
    for name, value in sysctls.items():
        if not os.path.exists(sysctl_path(name)):
            raise ValueError(f"sysctls must name sysctls of this kernel; {name!r} does not exist here")
        _format_sysctl_value(name, value)
    reason = _forbidden_reason()
    if reason:
        raise NamespaceUnavailable(reason)

    rfd, wfd = os.pipe()
    try:
        pid = os.fork()
    except BaseException:
        os.close(rfd)
        os.close(wfd)
        raise
    if pid == 0:  # child
        os.close(rfd)
        _child(fn, args, kwargs, sysctls, wfd)
    os.close(wfd)
    killed = False
    status: int | None = None
    data: bytes | None = None
    try:
        try:
            data, status = _read_result(rfd, pid, time.monotonic() + timeout)
        except TimeoutError:
            killed = True
            raise NamespaceTimeout(f"{getattr(fn, '__name__', fn)!s} did not finish within {timeout:g} s "
                                   "in its namespace and was killed") from None
    except BaseException:
        # KeyboardInterrupt, timeout, anything: kill the child so nothing is left behind
        killed = True
        raise
    finally:
        os.close(rfd)
        if killed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if status is None:  # not reaped yet: a finished child exits at once, a killed one too
            _, status = os.waitpid(pid, 0)

    if data is None:
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        why = f"was killed by signal {sig}" if sig else f"exited with status {os.waitstatus_to_exitcode(status)}"
        raise NamespaceError(f"the namespace child running {getattr(fn, '__name__', fn)!s} {why} without a result")
    payload = pickle.loads(data)
    kind = payload[0]
    if kind == "ok":
        return payload[1]
    if kind == "unavailable":
        raise NamespaceUnavailable(f"no private network namespace: {payload[1]}")
    if kind == "sysctl":
        raise SysctlUnavailable(payload[1])
    exc, tb = payload[1], payload[2]
    if isinstance(exc, BaseException):
        exc.add_note("--- traceback in the namespace child ---\n" + tb.rstrip())
        raise exc
    raise NamespaceError("the namespace child failed", tb)


_support_cache: dict[tuple[int, str], tuple[bool, str]] = {}


def namespace_support() -> tuple[bool, str]:
    """``(True, how)`` if :func:`in_namespace` works here, else ``(False, reason)``.

    Probed once per process and user (a fork and an unshare, a few ms).
    """
    reason = _forbidden_reason()
    if reason:
        return False, reason
    key = (os.geteuid(), os.environ.get(FORBID_ENV, ""))
    if key not in _support_cache:
        try:
            how = in_namespace(_describe_namespace, timeout=10)
            _support_cache[key] = (True, how)
        except NamespaceUnavailable as e:
            _support_cache[key] = (False, e.reason)
        except Exception as e:  # noqa: BLE001 - a probe: any failure is a reason
            _support_cache[key] = (False, f"namespace probe failed: {e}")
    return _support_cache[key]


def _describe_namespace() -> str:
    with open("/proc/self/uid_map") as f:
        userns = f.read().split() != ["0", "0", "4294967295"]
    return "user+net namespace (unprivileged)" if userns else "net namespace (root)"
