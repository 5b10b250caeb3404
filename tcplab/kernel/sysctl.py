"""The TCP-related sysctls: read them (never write the host's), with what they mean.

Writing happens only inside a private namespace (:func:`tcplab.in_namespace`).
Defaults are those of a fresh network namespace on Linux 6.x (mainline values;
``tcp_max_syn_backlog``, ``tcp_max_tw_buckets`` and ``tcp_max_orphans`` scale
with memory, so their "default" is the kernel's formula, noted as such).

>>> parse_sysctl_value("32768\\t60999\\n")
(32768, 60999)
>>> parse_sysctl_value("4096\\n")
4096
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from tcplab.errors import ParseError
from tcplab.model.profiles import DEFAULT_PROFILE, PROFILES

__all__ = ["SysctlInfo", "SYSCTLS", "parse_sysctl_value", "read_sysctl", "sysctl_file", "sysctl_exists"]


@dataclass(frozen=True, slots=True)
class SysctlInfo:
    name: str
    default: Any
    per_netns: bool
    meaning: str


_S = SysctlInfo
#: a fresh namespace's defaults, from the default kernel profile (the one place they are written)
_D = PROFILES[DEFAULT_PROFILE].sysctls()
#: name -> what it is. per_netns: whether a private network namespace has its own copy.
SYSCTLS: dict[str, SysctlInfo] = {s.name: s for s in [
    _S("net.core.somaxconn", _D["net.core.somaxconn"], True, "cap on every listen() backlog: accept queue limit = min(backlog, somaxconn)"),
    _S("net.core.netdev_max_backlog", 1000, False, "packets queued per CPU before the stack processes them (not a TCP queue)"),
    _S("net.ipv4.tcp_max_syn_backlog", "128..4096 by memory", True, "only with syncookies off: unproven SYNs dropped once the SYN queue holds > 3/4 of it"),
    _S("net.ipv4.tcp_syncookies", _D["net.ipv4.tcp_syncookies"], True, "0 off, 1 cookies when the SYN queue is full, 2 always cookies"),
    _S("net.ipv4.tcp_abort_on_overflow", _D["net.ipv4.tcp_abort_on_overflow"], True, "1: RST a handshake whose final ACK finds the accept queue full (0: drop the ACK, retry later)"),
    _S("net.ipv4.tcp_syn_retries", _D["net.ipv4.tcp_syn_retries"], True, "TCP_SYNCNT default: connect() fails at retries + tcp_syn_linear_timeouts retransmits or (2^(retries+1) - 1) s, whichever the timer reaches first (6 on 6.x: 11 SYNs, ~131 s)"),
    _S("net.ipv4.tcp_syn_linear_timeouts", _D["net.ipv4.tcp_syn_linear_timeouts"], True, "the first N + 1 SYN retransmits are 1 s apart; the RTO doubles once the backoff exceeds N (6.5+)"),
    _S("net.ipv4.tcp_synack_retries", _D["net.ipv4.tcp_synack_retries"], True, "SYN-ACK retransmissions of a half-open request (1+2+4+8+16+32 = 63 s with 5); cut to 2 for old requests while the SYN queue is more than half full of them"),
    _S("net.ipv4.tcp_fin_timeout", _D["net.ipv4.tcp_fin_timeout"], True, "lifetime of an orphaned FIN_WAIT2 socket (not TIME_WAIT, which is 60 s fixed)"),
    _S("net.ipv4.tcp_tw_reuse", _D["net.ipv4.tcp_tw_reuse"], True, "reuse a TIME_WAIT port for a new outgoing connect (needs timestamps); 2 = loopback only"),
    _S("net.ipv4.tcp_tw_reuse_delay", _D["net.ipv4.tcp_tw_reuse_delay"], True, "ms a TIME_WAIT must age before tcp_tw_reuse may take its port"),
    _S("net.ipv4.tcp_timestamps", _D["net.ipv4.tcp_timestamps"], True, "TCP timestamps option (tw_reuse and PAWS depend on it)"),
    _S("net.ipv4.tcp_max_tw_buckets", "depends on memory", True, "max TIME_WAIT sockets; beyond it TIME_WAIT is skipped (TCPTimeWaitOverflow)"),
    _S("net.ipv4.tcp_max_orphans", "depends on memory", False, "max sockets closed by the app but still in the kernel; beyond it they are reset"),
    _S("net.ipv4.tcp_retries2", _D["net.ipv4.tcp_retries2"], True, "budget for retransmitting unacknowledged data: a time, tcp_model_timeout(retries2, TCP_RTO_MIN) (924.6 s for 15), unless TCP_USER_TIMEOUT replaces it"),
    _S("net.ipv4.tcp_keepalive_time", _D["net.ipv4.tcp_keepalive_time"], True, "seconds of idle before the first keepalive probe (only with SO_KEEPALIVE)"),
    _S("net.ipv4.tcp_keepalive_intvl", _D["net.ipv4.tcp_keepalive_intvl"], True, "seconds between keepalive probes"),
    _S("net.ipv4.tcp_keepalive_probes", _D["net.ipv4.tcp_keepalive_probes"], True, "unanswered keepalive probes before the connection is dropped"),
    _S("net.ipv4.ip_local_port_range", _D["net.ipv4.ip_local_port_range"], True, "ephemeral ports for outgoing connections (port exhaustion: EADDRNOTAVAIL)"),
]}


def sysctl_file(name: str, root: str = "/proc") -> str:
    """The /proc path of a sysctl; refuses anything outside ``net.``."""
    if not isinstance(name, str) or not name.startswith("net.") or "/" in name or ".." in name:
        raise ValueError(f"name must be a 'net.*' sysctl such as 'net.core.somaxconn', not {name!r}")
    return os.path.join(root, "sys", *name.split("."))


def parse_sysctl_value(text: str, source: str = "<sysctl>") -> int | tuple[int, ...] | str:
    """An int, a tuple of ints (port range), or the stripped text for anything else."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    fields = text.split()
    if not fields:
        raise ParseError("empty sysctl value", source=source, lineno=1, line=text)
    try:
        numbers = tuple(int(f) for f in fields)
    except ValueError:
        return text.strip()
    return numbers[0] if len(numbers) == 1 else numbers


def sysctl_exists(name: str, root: str = "/proc") -> bool:
    """Whether this kernel has sysctl ``name`` (in the caller's network namespace).

    Sysctls come and go between kernel versions (``tcp_syn_linear_timeouts`` arrived in 6.5,
    ``tcp_tw_reuse_delay`` in 6.14): ask before reading one a kernel may lack.

    >>> sysctl_exists("net.core.somaxconn"), sysctl_exists("net.ipv4.no_such_knob")  # doctest: +SKIP
    (True, False)
    """
    return os.path.exists(sysctl_file(name, root))


def read_sysctl(name: str, root: str = "/proc") -> int | tuple[int, ...] | str:
    """Read one sysctl of the caller's network namespace.

    >>> read_sysctl("net.core.somaxconn") > 0  # doctest: +SKIP
    True
    """
    path = sysctl_file(name, root)
    try:
        with open(path) as f:
            return parse_sysctl_value(f.read(), source=path)
    except FileNotFoundError:
        raise ValueError(f"name must be a sysctl of this kernel; {name!r} does not exist here") from None
