"""Kernel profiles: the version-dependent rules and sysctl defaults, as named data.

The simulator never hard-codes "what Linux does"; it reads a :class:`KernelProfile`.
Differences that matter for the course (KERNEL.md):

* ``inet_csk_reqsk_queue_is_full()`` uses ``>`` since v6.13 (commit 3479c7549fb1,
  "allow a connection when sk_max_ack_backlog is zero"), ``>=`` before: the SYN queue
  admits backlog+1 requests on 6.13+, backlog before.
* ``tcp_syn_linear_timeouts`` (default 4) appeared in v6.5 (commit ccce324dabfe,
  "tcp: make the first N SYN RTO backoffs linear"); older kernels back off from the first retry.
* ``tcp_tw_reuse_delay`` became a sysctl in 6.14; before it the delay was a fixed 1 s.

>>> p = profile_for_release("6.18.44-fc-v669"); p.name, p.synq_full_strict, p.syn_linear_timeouts
('linux-6.18', True, 4)
>>> profile_for_release("5.15.0-91-generic").name
'linux-5.15'
>>> PROFILES["linux-6.1"].syn_linear_timeouts
0
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["KernelProfile", "PROFILES", "DEFAULT_PROFILE", "profile_for_release", "get_profile"]


@dataclass(frozen=True)
class KernelProfile:
    """Rules and defaults of one kernel line. Sysctl fields hold *defaults in a fresh netns*."""

    name: str
    version: tuple[int, int]
    #: ``inet_csk_reqsk_queue_is_full``: True means ``qlen > max`` (6.13+), False ``qlen >= max``
    synq_full_strict: bool
    #: ``sk_acceptq_is_full`` is ``>`` in every supported kernel ("backlog N means N+1")
    acceptq_full_strict: bool = True
    somaxconn: int = 4096                 # net.core.somaxconn (4096 since 5.4)
    max_syn_backlog: int = 1024           # net.ipv4.tcp_max_syn_backlog (scaled by RAM; 1024 floor)
    syn_retries: int = 6                  # net.ipv4.tcp_syn_retries
    synack_retries: int = 5               # net.ipv4.tcp_synack_retries
    syn_linear_timeouts: int = 4          # net.ipv4.tcp_syn_linear_timeouts (0 = absent)
    has_syn_linear_timeouts: bool = True
    syncookies: int = 1                   # net.ipv4.tcp_syncookies
    abort_on_overflow: int = 0            # net.ipv4.tcp_abort_on_overflow
    fin_timeout: int = 60                 # net.ipv4.tcp_fin_timeout (orphaned FIN_WAIT2 only)
    timewait_len: float = 60.0            # TCP_TIMEWAIT_LEN, include/net/tcp.h (not a sysctl)
    tw_reuse: int = 2                     # net.ipv4.tcp_tw_reuse (2 = loopback only)
    tw_reuse_delay_ms: int = 1000         # net.ipv4.tcp_tw_reuse_delay
    has_tw_reuse_delay: bool = True
    timestamps: int = 1                   # net.ipv4.tcp_timestamps
    max_tw_buckets: int = 262144          # net.ipv4.tcp_max_tw_buckets (scaled by RAM in init_net)
    port_range: tuple[int, int] = (32768, 60999)  # net.ipv4.ip_local_port_range
    rto_initial: float = 1.0              # TCP_TIMEOUT_INIT
    rto_max: float = 120.0                # TCP_RTO_MAX / net.ipv4.tcp_rto_max_ms
    #: one jiffy (1/CONFIG_HZ; 250 on the measured 6.18 VM and most distro kernels): RTO timers
    #: expiring within one tick of each other run in the same timer softirq, so their SYNs reach
    #: the listener as a burst (all SYNs before any ACK). 0 = every retransmission on its own.
    timer_tick: float = 0.004

    def sysctls(self, **overrides: Any) -> dict[str, Any]:
        """The sysctls in force with full names; ``overrides`` use field names.

        >>> PROFILES["linux-6.18"].sysctls(somaxconn=3)["net.core.somaxconn"]
        3
        """
        p = replace(self, **{k: v for k, v in overrides.items() if v is not None})
        out: dict[str, Any] = {
            "net.core.somaxconn": p.somaxconn,
            "net.ipv4.tcp_max_syn_backlog": p.max_syn_backlog,
            "net.ipv4.tcp_syn_retries": p.syn_retries,
            "net.ipv4.tcp_synack_retries": p.synack_retries,
            "net.ipv4.tcp_syncookies": p.syncookies,
            "net.ipv4.tcp_abort_on_overflow": p.abort_on_overflow,
            "net.ipv4.tcp_fin_timeout": p.fin_timeout,
            "net.ipv4.tcp_tw_reuse": p.tw_reuse,
            "net.ipv4.tcp_timestamps": p.timestamps,
            "net.ipv4.tcp_max_tw_buckets": p.max_tw_buckets,
            "net.ipv4.ip_local_port_range": p.port_range,
        }
        if p.has_syn_linear_timeouts:
            out["net.ipv4.tcp_syn_linear_timeouts"] = p.syn_linear_timeouts
        if p.has_tw_reuse_delay:
            out["net.ipv4.tcp_tw_reuse_delay"] = p.tw_reuse_delay_ms
        return out


PROFILES: dict[str, KernelProfile] = {
    "linux-6.18": KernelProfile(name="linux-6.18", version=(6, 18), synq_full_strict=True),
    "linux-6.1": KernelProfile(name="linux-6.1", version=(6, 1), synq_full_strict=False,
                               syn_linear_timeouts=0, has_syn_linear_timeouts=False,
                               has_tw_reuse_delay=False),
    "linux-5.15": KernelProfile(name="linux-5.15", version=(5, 15), synq_full_strict=False,
                                syn_linear_timeouts=0, has_syn_linear_timeouts=False,
                                has_tw_reuse_delay=False),
}

DEFAULT_PROFILE = "linux-6.18"


def profile_for_release(release: str) -> KernelProfile:
    """The profile closest to a ``uname -r`` string: the newest profile not newer than it.

    Kernels older than every profile get the oldest; 6.13+ all behave like 6.18 here.

    >>> profile_for_release("6.13.2").name, profile_for_release("6.12.9").name
    ('linux-6.18', 'linux-6.1')
    >>> profile_for_release("4.19.0").name
    'linux-5.15'
    """
    m = re.match(r"\s*(\d+)\.(\d+)", release)
    if not m:
        raise ValueError(f"release must look like '6.18.1-...', not {release!r}")
    version = (int(m.group(1)), int(m.group(2)))
    if version >= (6, 13):  # the v6.13 SYN-queue change is the last rule difference modelled
        return PROFILES["linux-6.18"]
    ordered = sorted(PROFILES.values(), key=lambda p: p.version)
    best = ordered[0]
    for p in ordered:
        if p.version <= version:
            best = p
    return best


def get_profile(profile: KernelProfile | str | None) -> KernelProfile:
    """Accept a profile, a profile name, a release string, or None (the default profile).

    >>> get_profile(None).name
    'linux-6.18'
    >>> get_profile("nope")
    Traceback (most recent call last):
    ValueError: profile must be one of 'linux-6.18', 'linux-6.1', 'linux-5.15' or a kernel release like '6.8.0', not 'nope'
    """
    if profile is None:
        return PROFILES[DEFAULT_PROFILE]
    if isinstance(profile, KernelProfile):
        return profile
    if isinstance(profile, str):
        if profile in PROFILES:
            return PROFILES[profile]
        if re.match(r"\s*\d+\.\d+", profile):
            return profile_for_release(profile)
        names = ", ".join(repr(n) for n in PROFILES)
        raise ValueError(f"profile must be one of {names} or a kernel release like '6.8.0', not {profile!r}")
    raise TypeError(f"profile must be a KernelProfile, a profile name or None, not {profile!r}")
