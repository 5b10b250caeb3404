"""Look at this machine's TCP: sockets, counters, sysctls, capabilities.

These are the public, pandas-returning views over :mod:`tcplab.kernel`.
pandas is imported inside the functions so that ``import tcplab`` stays fast.

>>> import tcplab
>>> tcplab.sockets(state="LISTEN").columns[:3].tolist()   # doctest: +SKIP
['state', 'local_address', 'local_port']
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import TYPE_CHECKING

from tcplab._validate import check_optional_int
from tcplab.errors import SockDiagUnavailable
from tcplab.kernel import capabilities as _caps
from tcplab.kernel import diag, netstat, procnet, sysctl
# what the panels use of the host, through this module (widgets never import kernel/ directly)
from tcplab.kernel.loopback import CloseWaitLeak
from tcplab.kernel.progress import record_self_check

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["sockets", "counters", "counters_delta", "sysctls", "capabilities", "Capabilities", "SOCKET_COLUMNS",
           "CloseWaitLeak", "record_self_check"]

_FIELDS = list(procnet.SocketRecord.__dataclass_fields__)
SOCKET_COLUMNS = ["state", "local_address", "local_port", "remote_address", "remote_port",
                  "recv_q", "send_q", "timer", "retransmits", "uid", "inode", "family"]
_INT_COLUMNS = frozenset({"local_port", "remote_port", "recv_q", "send_q", "retransmits", "uid", "inode", "family"})


def _check_state(state: object) -> str | None:
    if state is None:
        return None
    names = list(procnet.TCP_STATES.values())
    if not isinstance(state, str) or state.upper() not in names:
        raise ValueError(f"state must be None or one of {', '.join(names)}, not {state!r}")
    return state.upper()


def sockets(state: str | None = None, port: int | None = None, *, source: str = "auto",
            root: str = "/proc") -> pd.DataFrame:
    """TCP sockets of this network namespace, as ``ss -tan`` shows them.

    ``state`` filters by kernel name (``"LISTEN"``, ``"TIME_WAIT"``...); ``port`` keeps
    rows whose local or remote port matches. For LISTEN rows ``recv_q`` is the
    accept-queue length and ``send_q`` its limit, min(backlog, somaxconn).

    ``source="auto"`` asks the kernel through NETLINK_SOCK_DIAG, as ``ss`` does (the
    state filter runs in the kernel, and listeners carry their limit) and falls back
    to /proc/net/tcp{,6}; ``"proc"`` forces /proc. /proc has no listener limit, so
    there ``send_q`` is ``<NA>`` for listeners rather than the misleading 0 netstat shows.

    >>> import socket, tcplab
    >>> s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(7)
    >>> row = tcplab.sockets(state="LISTEN", port=s.getsockname()[1]).iloc[0]
    >>> int(row.recv_q), int(row.send_q)
    (0, 7)
    >>> s.close()
    """
    import numpy as np
    import pandas as pd

    state = _check_state(state)
    port = check_optional_int("port", port, 0, 65535)
    if source not in ("auto", "proc", "diag"):
        raise ValueError(f"source must be one of 'auto', 'diag', 'proc', not {source!r}")
    from_diag = False
    rows: list[tuple] = []
    if source != "proc" and root == "/proc":
        try:
            rows = diag.dump_tcp_rows(states=diag.state_mask(state))
            from_diag = True
        except SockDiagUnavailable:
            if source == "diag":
                raise
    if not from_diag:
        records = procnet.read_proc_net_tcp(root)
        rows = [tuple(getattr(r, f) for f in _FIELDS) for r in records if state is None or r.state == state]
    if port is not None:
        lp, rp = _FIELDS.index("local_port"), _FIELDS.index("remote_port")
        rows = [r for r in rows if r[lp] == port or r[rp] == port]
    by_field = dict(zip(_FIELDS, zip(*rows))) if rows else {f: () for f in _FIELDS}
    # Typed numpy columns up front: pandas then skips inferring a dtype from 50k Python
    # objects per column, which was a third of the time of a large table.
    columns = {c: np.array(by_field[c], dtype=np.int64 if c in _INT_COLUMNS else object) for c in SOCKET_COLUMNS}
    df = pd.DataFrame(columns, columns=SOCKET_COLUMNS, copy=False)
    send_q = df["send_q"].astype("Int64")
    if not from_diag:
        send_q = send_q.mask(df["state"] == "LISTEN")  # /proc does not know the limit: NA, not 0
    df["send_q"] = send_q
    return df


def counters(*, qualified: bool = False, root: str = "/proc") -> dict[str, int]:
    """TcpExt, Tcp and Ip counters of this network namespace under the kernel's names.

    >>> import tcplab
    >>> "ListenOverflows" in tcplab.counters()
    True
    """
    return netstat.read_counters(root, qualified=qualified)


def counters_delta(before: Mapping[str, int], after: Mapping[str, int], *, nonzero: bool = True) -> dict[str, int]:
    """What changed between two :func:`counters` readings (only non-zero by default).

    >>> counters_delta({"ListenDrops": 1, "TW": 4}, {"ListenDrops": 3, "TW": 4})
    {'ListenDrops': 2}
    """
    return netstat.counters_delta(before, after, nonzero=nonzero)


def sysctls(*, root: str = "/proc") -> pd.DataFrame:
    """The TCP sysctls that matter for the course: value here, default, per-namespace, meaning."""
    import pandas as pd

    rows = []
    for info in sysctl.SYSCTLS.values():
        try:
            value = sysctl.read_sysctl(info.name, root)
        except (ValueError, OSError):
            value = None  # absent on this kernel or not visible (global sysctls inside a user namespace)
        rows.append({"name": info.name, "value": value, "default": info.default,
                     "per_netns": info.per_netns, "meaning": info.meaning})
    return pd.DataFrame(rows)


class Capabilities(dict):
    """``{name: Capability}`` with a table view and the one question that matters."""

    @property
    def real_with_sysctls(self) -> bool:
        """True if experiments that set sysctls can run on the real kernel here."""
        return self["netns_unprivileged"].ok or self["netns_root"].ok

    def summary(self) -> str:
        if self.real_with_sysctls:
            return ("REAL: every experiment runs on this Linux kernel, in a private network namespace "
                    f"({platform.release()}).")
        why = self["netns_unprivileged"].detail
        return ("PARTLY REAL: per-socket experiments (backlog, TCP_SYNCNT) run on the host kernel; experiments "
                f"that change a sysctl are SIMULATED, because {why}.")

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd
        return pd.DataFrame([{"capability": c.name, "ok": c.ok, "detail": c.detail} for c in self.values()])

    def __repr__(self) -> str:
        lines = [self.summary()]
        lines += [f"  {'yes' if c.ok else 'no ':3} {c.name:24} {c.detail}" for c in self.values()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape
        rows = "".join(f"<tr><td>{'✅ yes' if c.ok else '❌ no'}</td><td><code>{escape(c.name)}</code></td>"
                       f"<td>{escape(c.detail)}</td></tr>" for c in self.values())
        return f"<p><b>{escape(self.summary())}</b></p><table>{rows}</table>"


def capabilities() -> Capabilities:
    """What this machine allows (kernel, namespaces, packet sockets, sock_diag, sysctls), with reasons.

    >>> import tcplab
    >>> tcplab.capabilities()["kernel"].ok
    True
    """
    return Capabilities(_caps.probe_capabilities())
