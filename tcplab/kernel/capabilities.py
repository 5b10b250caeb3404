"""What this machine lets tcplab do, each answer with its reason.

Probes are real (a fork and an unshare, a socket opened), cheap (~10 ms) and
cached per process. Nothing is changed on the host.

>>> caps = probe_capabilities()          # doctest: +SKIP
>>> caps["netns_unprivileged"].ok         # doctest: +SKIP
True
"""

from __future__ import annotations

import os
import platform
import socket
from dataclasses import dataclass

from tcplab.kernel.namespace import FORBID_ENV, _forbidden_reason, in_namespace
from tcplab.errors import NamespaceUnavailable, SockDiagUnavailable, TcpLabError
from tcplab.kernel.child import run_in_child

__all__ = ["Capability", "probe_capabilities", "run_unprivileged", "interface_mtu", "max_user_namespaces",
           "foreign_processes"]

NOBODY = 65534


@dataclass(frozen=True, slots=True)
class Capability:
    name: str
    ok: bool
    detail: str


def _packet_and_raw() -> str:
    opened = []
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003)):
        opened.append("AF_PACKET")
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP):
        opened.append("raw IPPROTO_TCP")
    return " and ".join(opened) + " sockets open inside the namespace"


def run_unprivileged(fn, *args, uid: int = NOBODY, timeout: float = 30.0):
    """As root: run ``fn(*args)`` in a forked child as ``uid`` (no capabilities) and return
    its result, or re-raise its exception. Used to answer "would an ordinary user get a
    namespace here?" honestly, and by the tests to run experiments as an unprivileged user.

    The child cannot import modules it cannot read (e.g. under /root): import them first.
    """
    def become(wfd: int) -> int:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        return wfd

    return run_in_child(fn, *args, prepare=become, timeout=timeout, what=f"the child running as uid {uid}")


def _probe_ns(as_nobody: bool) -> tuple[bool, str]:
    def probe() -> str:
        return in_namespace(_whoami_inside, timeout=10)
    try:
        if as_nobody:
            return True, run_unprivileged(probe)
        return True, probe()
    except NamespaceUnavailable as e:
        return False, e.reason
    except Exception as e:  # noqa: BLE001 - a probe: any failure is a reason
        return False, str(e).split("\n")[0]


def _whoami_inside() -> str:
    with open("/proc/self/uid_map") as f:
        outer = f.read().split()[1]
    return f"private network namespace created (outer uid {outer})"


_cache: dict[tuple, dict[str, Capability]] = {}


def probe_capabilities() -> dict[str, Capability]:
    """Probe once per (uid, TCPLAB_FORBID_NAMESPACES) and return ``{name: Capability}``."""
    key = (os.geteuid(), os.environ.get(FORBID_ENV, ""))
    if key in _cache:
        return _cache[key]
    caps: list[Capability] = [Capability("kernel", True, f"Linux {platform.release()}"), _kernel_profile()]
    root = os.geteuid() == 0
    forbidden = _forbidden_reason()

    if forbidden:
        caps.append(Capability("netns_unprivileged", False, forbidden))
        caps.append(Capability("netns_root", False, forbidden))
    else:
        ok, why = _probe_ns(as_nobody=root)
        caps.append(Capability("netns_unprivileged", ok, why if ok else f"user+net namespace refused: {why}"))
        if root:
            ok, why = _probe_ns(as_nobody=False)
            caps.append(Capability("netns_root", ok, why))
        else:
            caps.append(Capability("netns_root", False, f"not root (uid {os.geteuid()})"))
    any_ns = caps[1].ok or caps[2].ok
    if any_ns:
        try:
            caps.append(Capability("packet_sockets_in_netns", True, in_namespace(_packet_and_raw, timeout=10)))
        except (OSError, TcpLabError) as e:
            caps.append(Capability("packet_sockets_in_netns", False, f"refused: {str(e).splitlines()[0]}"))
    else:
        caps.append(Capability("packet_sockets_in_netns", False, "no private namespace to open them in"))

    from tcplab.kernel.diag import dump_tcp
    try:
        dump_tcp(states=1 << 10)
        caps.append(Capability("sock_diag", True, "NETLINK_SOCK_DIAG answers: listener Send-Q is known"))
    except SockDiagUnavailable as e:
        caps.append(Capability("sock_diag", False, f"{e.reason}: listener Send-Q will be NA"))

    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            f.read()
        caps.append(Capability("host_sysctls_readable", True, "/proc/sys/net is readable (never written)"))
    except OSError as e:
        caps.append(Capability("host_sysctls_readable", False, f"/proc/sys/net unreadable: {e.strerror}"))
    _cache[key] = {c.name: c for c in caps}
    return _cache[key]


def _kernel_profile() -> Capability:
    """Which simulator profile describes this kernel, and whether tcplab has measured that kernel line."""
    from tcplab.kernel.release import running_profile

    fit = running_profile()
    lacks = ", ".join(n.rsplit(".", 1)[1] for n in fit.profile.absent_sysctls())
    lacking = f"; this kernel has no {lacks} (the course says what that changes)" if lacks else ""
    if fit.measured:
        return Capability("kernel_profile", True, f"{fit.profile.name}: a kernel line tcplab has measured{lacking}")
    return Capability("kernel_profile", False, fit.note + lacking)


def interface_mtu(name: str = "lo") -> int | None:
    """The MTU of interface ``name`` in this namespace (/sys/class/net), or None where unreadable."""
    if not name.isidentifier() and not name.replace("-", "").isalnum():
        raise ValueError(f"name must be an interface name such as 'lo', not {name!r}")
    try:
        with open(f"/sys/class/net/{name}/mtu") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def max_user_namespaces() -> int | None:
    """``user.max_user_namespaces`` (how many user namespaces a user may hold), or None where unreadable."""
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def foreign_processes() -> int:
    """How many processes of other uids this user can see in /proc (0 where /proc has hidepid)."""
    me, n = os.getuid(), 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                n += os.stat(f"/proc/{name}").st_uid != me
            except OSError:
                pass  # exited meanwhile
    return n
