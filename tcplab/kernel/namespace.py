"""Run a function in a fresh, private network namespace.

Why fork first: ``unshare(CLONE_NEWUSER)`` fails with EINVAL in a multi-threaded
process, and a Jupyter kernel always has threads. So the parent forks; the child
(single-threaded after fork) unshares, brings ``lo`` up, writes the requested
sysctls (they are per network namespace, so the host never changes), runs ``fn``
and sends its pickled result or exception back through a pipe
(:func:`tcplab.kernel.child.run_in_child`, the one fork-for-a-result of kernel/). The parent
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
import socket
import struct
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from tcplab._validate import check_float
from tcplab.kernel.child import run_in_child
from tcplab.errors import KernelUnavailable, NamespaceError, NamespaceTimeout, NamespaceUnavailable, SysctlUnavailable

__all__ = ["in_namespace", "namespace_support", "FORBID_ENV", "sysctl_path", "set_loopback", "set_namespace_sysctl"]

T = TypeVar("T")

FORBID_ENV = "TCPLAB_FORBID_NAMESPACES"
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_PR_SET_DUMPABLE = 4


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


def set_namespace_sysctl(name: str, value: Any) -> None:
    """Write a per-namespace sysctl in the network namespace this code runs in: a private one made by
    :func:`in_namespace`, or one unshared below it by a process forked from there (the bottleneck
    path's receiver namespace, whose sysctls start at the kernel's defaults, not the caller's).
    Refuses anywhere else, so no host sysctl is ever written.

    >>> set_namespace_sysctl("net.ipv4.tcp_window_scaling", 0)
    Traceback (most recent call last):
    tcplab.errors.KernelUnavailable: refusing to write net.ipv4.tcp_window_scaling: this is not a private network namespace made by in_namespace()
    """
    if not _IN_PRIVATE_NETNS:
        raise KernelUnavailable(f"refusing to write {name}: this is not a private network namespace made by "
                                "in_namespace()")
    _write(sysctl_path(name), _format_sysctl_value(name, value))


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


def _prepare_namespace(sysctls: Mapping[str, Any]) -> Callable[[int], int]:
    """What :func:`in_namespace`'s child does before ``fn`` (:func:`tcplab.kernel.child.run_in_child`'s
    ``prepare``): enter a private network namespace, bring ``lo`` up, write ``sysctls`` there."""
    def prepare(wfd: int) -> int:
        global _IN_PRIVATE_NETNS
        try:
            _enter_private_netns()
        except OSError as e:
            raise NamespaceUnavailable(
                f"no private network namespace: {e.filename or 'unshare'} failed: {e.strerror} (errno {e.errno}); "
                "user namespaces may be forbidden here (kernel.unprivileged_userns_clone, "
                "user.max_user_namespaces, or a container's seccomp profile)") from None
        _IN_PRIVATE_NETNS = True
        hidden = [n for n in sysctls if not os.path.exists(sysctl_path(n))]
        if hidden:
            # the host has it, this namespace does not show it: some kernels hide a sysctl from a
            # namespace an unprivileged user owns (6.1 hides net.core.somaxconn; as root it is there)
            raise SysctlUnavailable(f"cannot set {', '.join(hidden)} in the private namespace: this kernel "
                                    f"({os.uname().release}) does not show it there (a global sysctl, or one "
                                    "hidden from a namespace an unprivileged user owns: 6.1 hides net.core.somaxconn)")
        _switch_loopback(True)
        for name, value in sysctls.items():
            try:
                _write(sysctl_path(name), _format_sysctl_value(name, value))
            except OSError as e:
                raise NamespaceError(f"cannot set {name}={value!r} in the private namespace: {e.strerror}") from None
        return wfd
    return prepare


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

    name = getattr(fn, "__name__", fn)
    # one fork + pipe + bounded read + kill + reap for all of kernel/ (a result is length-prefixed:
    # when experiments run in threads, sibling children forked meanwhile hold copies of the pipe)
    return run_in_child(lambda: fn(*args, **kwargs), prepare=_prepare_namespace(sysctls), timeout=timeout,
                        what=f"the namespace child running {name!s}", timeout_error=NamespaceTimeout,
                        died_error=NamespaceError)


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
