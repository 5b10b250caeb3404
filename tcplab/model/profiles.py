"""Kernel profiles: the version-dependent rules and sysctl defaults, as named data.

The simulator never hard-codes "what Linux does"; it reads a :class:`KernelProfile`. What
differs between kernel versions is one table, :data:`CHANGES`: each row names the version and
the commit that made the difference and the profile fields it sets. A profile for any release
is the baseline with every change up to that release applied, so a kernel between two measured
ones gets the rules its version implies (``profile_for_release("6.13.2")``), not the nearest
neighbour's.

* ``net.core.somaxconn`` is visible in a namespace an unprivileged user owns since v6.3
  (commit 6b754d7bd007); 6.1 hides it there (it still holds 4096).
* ``tcp_syn_linear_timeouts`` (default 4) appeared in v6.5 (commit ccce324dabfe,
  "tcp: make the first N SYN RTO backoffs linear"); older kernels back off from the first retry.
* ``tcp_rto_min_us`` became a sysctl in v6.11 (f086edef71be); before it the floor was the constant ``TCP_RTO_MIN``.
* ``inet_csk_reqsk_queue_is_full()`` uses ``>`` since v6.13 (commit 3479c7549fb1), ``>=``
  before, but the fix went to the stable trees in January 2025: Debian's 6.1.192 and 6.12.118
  measured ``>`` (backlog+1), so every profile here has it; only an unpatched older kernel admits backlog.
* ``tcp_tw_reuse_delay`` became a sysctl in v6.14 (ca6a6f93867a, with 19ce8cd30465 measuring it in
  ms); before it a port was reused once the seconds clock passed the TIME_WAIT's stamp (0..1 s).
* ``tcp_rto_max_ms`` became a sysctl in v6.15 (1280c26228bd); before it ``TCP_RTO_MAX`` was a fixed 120 s.

docs/kernels.md has the measurements on Debian's 6.1 and 6.12 beside this machine's 6.18.

The named profiles (:data:`PROFILES`) are the lines the course is checked on; ``measured``
says whether the profile was compared with that kernel running (docs/kernels.md) or only
derived from the table by reading the source.

>>> p = profile_for_release("6.18.44-fc-v669"); p.name, p.synq_full_strict, p.syn_linear_timeouts
('linux-6.18', True, 4)
>>> profile_for_release("5.15.0-91-generic").name
'linux-5.15'
>>> PROFILES["linux-6.1"].syn_linear_timeouts, PROFILES["linux-6.1"].has_sysctl("net.ipv4.tcp_syn_linear_timeouts")
(0, False)
>>> PROFILES["linux-6.12"].absent_sysctls()
('net.ipv4.tcp_tw_reuse_delay', 'net.ipv4.tcp_rto_max_ms')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["KernelProfile", "KernelChange", "CHANGES", "PROFILES", "DEFAULT_PROFILE", "profile_for_release",
           "get_profile", "sysctl_arrival"]


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
    syncookies: int = 1                   # net.ipv4.tcp_syncookies
    abort_on_overflow: int = 0            # net.ipv4.tcp_abort_on_overflow
    fin_timeout: int = 60                 # net.ipv4.tcp_fin_timeout (orphaned FIN_WAIT2 only)
    timewait_len: float = 60.0            # TCP_TIMEWAIT_LEN, include/net/tcp.h (not a sysctl)
    tw_reuse: int = 2                     # net.ipv4.tcp_tw_reuse (2 = loopback only)
    tw_reuse_delay_ms: int = 1000         # net.ipv4.tcp_tw_reuse_delay (a fixed 1 s where absent)
    timestamps: int = 1                   # net.ipv4.tcp_timestamps
    max_tw_buckets: int = 262144          # net.ipv4.tcp_max_tw_buckets (scaled by RAM in init_net)
    port_range: tuple[int, int] = (32768, 60999)  # net.ipv4.ip_local_port_range
    rto_initial: float = 1.0              # TCP_TIMEOUT_INIT: the RTO before any RTT sample (SYN)
    rto_min: float = 0.2                  # TCP_RTO_MIN (HZ/5) / net.ipv4.tcp_rto_min_us (6.11+)
    rto_max: float = 120.0                # TCP_RTO_MAX (120*HZ) / net.ipv4.tcp_rto_max_ms (6.15+)
    delack_min: float = 0.04              # TCP_DELACK_MIN = TCP_ATO_MIN (HZ/25), include/net/tcp.h
    delack_max: float = 0.2               # TCP_DELACK_MAX (HZ/5), include/net/tcp.h
    retries2: int = 15                    # net.ipv4.tcp_retries2 (TCP_RETR2)
    tcp_rmem: tuple[int, int, int] = (4096, 131072, 6291456)  # net.ipv4.tcp_rmem (max scaled down on small RAM)
    rmem_max: int = 212992                # net.core.rmem_max (host-wide; SO_RCVBUF is clamped to it)
    orphan_retries: int = 0               # net.ipv4.tcp_orphan_retries (0: 8 while alive, tcp_orphan_retries())
    keepalive_time: int = 7200            # net.ipv4.tcp_keepalive_time (TCP_KEEPALIVE_TIME), s
    keepalive_intvl: int = 75             # net.ipv4.tcp_keepalive_intvl (TCP_KEEPALIVE_INTVL), s
    keepalive_probes: int = 9             # net.ipv4.tcp_keepalive_probes (TCP_KEEPALIVE_PROBES)
    cubic_beta: int = 717                 # tcp_cubic.c beta, over 1024 (BICTCP_BETA_SCALE)
    cubic_bic_scale: int = 41             # tcp_cubic.c bic_scale: C = bic_scale * 10 / 1024 (0.4)
    #: one jiffy (1/CONFIG_HZ; 250 on the measured 6.18 VM and most distro kernels): RTO timers
    #: expiring within one tick of each other run in the same timer softirq, so their SYNs reach
    #: the listener as a burst (all SYNs before any ACK). 0 = every retransmission on its own.
    timer_tick: float = 0.004
    #: sysctls this kernel line does not have (from :data:`CHANGES`)
    absent: frozenset[str] = field(default=frozenset())
    #: tcp_tw_reuse measures the TIME_WAIT's age in ms (6.14+: tcp_tw_reuse_delay); False: in whole
    #: seconds, so a port is reused once the seconds clock ticks past its stamp (0..1 s)
    tw_reuse_ms: bool = True
    #: net.core.somaxconn can be read and set in a namespace an unprivileged user owns (6.3+)
    somaxconn_in_userns: bool = True
    #: the receive window follows the measured scaling_ratio (6.6+: a loopback receiver with a
    #: locked SO_RCVBUF holds about 1.5x it); False: tcp_adv_win_scale, it holds one window = SO_RCVBUF
    rcv_scaling_ratio: bool = True
    #: True: compared with this kernel running (docs/kernels.md); False: derived from CHANGES only
    measured: bool = False

    @property
    def has_syn_linear_timeouts(self) -> bool:
        return self.has_sysctl("net.ipv4.tcp_syn_linear_timeouts")

    @property
    def has_tw_reuse_delay(self) -> bool:
        return self.has_sysctl("net.ipv4.tcp_tw_reuse_delay")

    def has_sysctl(self, name: str) -> bool:
        """Whether this kernel line has sysctl ``name`` (every sysctl not in :data:`CHANGES` is assumed present).

        >>> PROFILES["linux-6.12"].has_sysctl("net.ipv4.tcp_rto_min_us")
        True
        """
        return name not in self.absent

    def absent_sysctls(self) -> tuple[str, ...]:
        """The sysctls :data:`CHANGES` knows of that this line lacks, oldest change first."""
        return tuple(c.sysctl for c in CHANGES if c.sysctl and c.sysctl in self.absent)

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
            "net.ipv4.tcp_retries2": p.retries2,
            "net.ipv4.tcp_orphan_retries": p.orphan_retries,
            "net.ipv4.tcp_keepalive_time": p.keepalive_time,
            "net.ipv4.tcp_keepalive_intvl": p.keepalive_intvl,
            "net.ipv4.tcp_keepalive_probes": p.keepalive_probes,
        }
        if p.has_syn_linear_timeouts:
            out["net.ipv4.tcp_syn_linear_timeouts"] = p.syn_linear_timeouts
        if p.has_tw_reuse_delay:
            out["net.ipv4.tcp_tw_reuse_delay"] = p.tw_reuse_delay_ms
        return out


@dataclass(frozen=True)
class KernelChange:
    """One difference between kernel versions: from ``since`` on, ``fields`` hold; before, ``before`` does.

    ``sysctl`` is the sysctl the change added (absent before ``since``), or None. ``commit`` is
    the mainline commit where it was checked (empty where the version is known but the commit
    was not confirmed).
    """

    since: tuple[int, int]
    commit: str
    what: str
    older: str
    fields: dict[str, Any]
    before: dict[str, Any]
    sysctl: str | None = None
    #: the fix went to the stable trees, so maintained older kernels have it too (measured on Debian's 6.1, 6.12)
    backported: bool = False
    #: the value of ``sysctl`` that is exactly what older kernels do (asking for it there is a no-op,
    #: so a real run may proceed without the sysctl); None when no value is
    absent_means: Any = None

    @property
    def where(self) -> str:
        """``Linux 6.5, commit ccce324dabfe``: the version (and commit) that made the change."""
        return f"Linux {self.since[0]}.{self.since[1]}" + (f", commit {self.commit}" if self.commit else "")

    def describe(self) -> str:
        """One sentence: what changed when, and what older kernels do instead.

        >>> CHANGES[1].describe()
        'since Linux 6.5, commit ccce324dabfe: the first tcp_syn_linear_timeouts SYN retransmits are 1 s apart; older kernels double the SYN RTO from the first retry'
        """
        return f"since {self.where}: {self.what}; {self.older}"


#: Every version difference tcplab models, oldest first. A profile is the baseline
#: (:class:`KernelProfile`'s defaults, i.e. the newest kernel) with ``before`` applied for every
#: change newer than its version.
CHANGES: tuple[KernelChange, ...] = (
    KernelChange((6, 3), "6b754d7bd007",
                 "net.core.somaxconn can be read and set in a namespace an unprivileged user owns",
                 "6.1 hides it there (it holds 4096); as root it is visible",
                 fields={"somaxconn_in_userns": True}, before={"somaxconn_in_userns": False}),
    KernelChange((6, 5), "ccce324dabfe",
                 "the first tcp_syn_linear_timeouts SYN retransmits are 1 s apart",
                 "older kernels double the SYN RTO from the first retry",
                 fields={"syn_linear_timeouts": 4}, before={"syn_linear_timeouts": 0},
                 sysctl="net.ipv4.tcp_syn_linear_timeouts", absent_means=0),
    KernelChange((6, 6), "dfa2f0483360",
                 "the receive window follows the measured scaling_ratio: a loopback receiver with a locked "
                 "SO_RCVBUF holds about 1.5 times it",
                 "older kernels size the window with tcp_adv_win_scale (1): half of sk_rcvbuf, so the receiver "
                 "holds exactly the SO_RCVBUF asked for (measured on 6.1)",
                 fields={"rcv_scaling_ratio": True}, before={"rcv_scaling_ratio": False}),
    KernelChange((6, 11), "f086edef71be",
                 "the RTO floor is a sysctl",
                 "older kernels have the constant TCP_RTO_MIN (200 ms), or a route's rto_min",
                 fields={}, before={}, sysctl="net.ipv4.tcp_rto_min_us", absent_means=200000),
    KernelChange((6, 13), "3479c7549fb1",
                 "the SYN queue is full when it holds more than the backlog (>, so it admits backlog + 1)",
                 "unpatched older kernels test >= and admit backlog requests; the stable trees took the fix in "
                 "January 2025 (measured: Debian's 6.1.192 and 6.12.118 admit backlog + 1)",
                 fields={"synq_full_strict": True}, before={"synq_full_strict": False}, backported=True),
    KernelChange((6, 14), "ca6a6f93867a",
                 "a TIME_WAIT ages tcp_tw_reuse_delay ms (1000) before tcp_tw_reuse may take its port",
                 "older kernels reuse it once the seconds clock ticks past the TIME_WAIT's stamp: after 0 to 1 s",
                 fields={"tw_reuse_ms": True}, before={"tw_reuse_ms": False}, sysctl="net.ipv4.tcp_tw_reuse_delay"),
    KernelChange((6, 15), "1280c26228bd",
                 "the RTO ceiling is a sysctl",
                 "older kernels have the constant TCP_RTO_MAX (120 s)",
                 fields={}, before={}, sysctl="net.ipv4.tcp_rto_max_ms"),
)


def sysctl_arrival(name: str) -> KernelChange | None:
    """The change that added sysctl ``name``, or None when tcplab knows of no kernel without it.

    >>> sysctl_arrival("net.ipv4.tcp_syn_linear_timeouts").since
    (6, 5)
    """
    return next((c for c in CHANGES if c.sysctl == name), None)


def _derive(name: str, version: tuple[int, int], measured: bool = False) -> KernelProfile:
    """The baseline with every change newer than ``version`` undone."""
    fields: dict[str, Any] = {}
    absent: set[str] = set()
    for change in CHANGES:
        if version < change.since and not change.backported:
            fields.update(change.before)
            if change.sysctl:
                absent.add(change.sysctl)
    return KernelProfile(name=name, version=version, **{"synq_full_strict": True, **fields},
                         absent=frozenset(absent), measured=measured)


PROFILES: dict[str, KernelProfile] = {
    "linux-6.18": _derive("linux-6.18", (6, 18), measured=True),
    "linux-6.12": _derive("linux-6.12", (6, 12), measured=True),
    "linux-6.1": _derive("linux-6.1", (6, 1), measured=True),
    "linux-5.15": _derive("linux-5.15", (5, 15)),
}

DEFAULT_PROFILE = "linux-6.18"


def profile_for_release(release: str) -> KernelProfile:
    """The profile of a ``uname -r`` string: a named profile when its line matches, else one
    derived from :data:`CHANGES` for that version (named ``linux-MAJOR.MINOR``).

    >>> profile_for_release("6.12.9+bpo-amd64").name, profile_for_release("6.13.2").synq_full_strict
    ('linux-6.12', True)
    >>> p = profile_for_release("6.8.0-45-generic"); p.name, p.measured, p.has_tw_reuse_delay
    ('linux-6.8', False, False)
    """
    m = re.match(r"\s*(\d+)\.(\d+)", release)
    if not m:
        raise ValueError(f"release must look like '6.18.1-...', not {release!r}")
    version = (int(m.group(1)), int(m.group(2)))
    for p in PROFILES.values():
        if p.version == version:
            return p
    newest = max(PROFILES.values(), key=lambda p: p.version)
    if version > newest.version:
        # newer than every profile: the newest one's rules (CHANGES knows no later difference)
        return newest
    return _derive(f"linux-{version[0]}.{version[1]}", version)


def get_profile(profile: KernelProfile | str | None) -> KernelProfile:
    """Accept a profile, a profile name, a release string, or None (the default profile).

    >>> get_profile(None).name
    'linux-6.18'
    >>> get_profile("nope")
    Traceback (most recent call last):
    ValueError: profile must be one of 'linux-6.18', 'linux-6.12', 'linux-6.1', 'linux-5.15' or a kernel release like '6.8.0', not 'nope'
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
