"""``tcplab doctor``: what will be real here, and which sysctls look risky.

The advice repeats what the articles warn about, tied to docs/kernel-facts.md's facts,
so an instructor can read one screen before a workshop.

>>> advise({"net.core.somaxconn": 128})[0]
'net.core.somaxconn=128 is low: every listen() backlog is capped to it (accept queue = min(backlog, somaxconn)+1)'
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from typing import Any

from tcplab.kernel.capabilities import foreign_processes, max_user_namespaces

__all__ = ["advise", "doctor_report"]


def advise(values: Mapping[str, Any]) -> list[str]:
    """Warnings for risky sysctl values (missing values are skipped)."""
    tips = []
    v = values.get
    if isinstance(v("net.core.somaxconn"), int) and v("net.core.somaxconn") < 1024:
        tips.append(f"net.core.somaxconn={v('net.core.somaxconn')} is low: every listen() backlog is capped "
                    "to it (accept queue = min(backlog, somaxconn)+1)")
    if v("net.ipv4.tcp_syncookies") == 0:
        tips.append("net.ipv4.tcp_syncookies=0: a SYN flood fills the SYN queue and locks legitimate clients out")
    if v("net.ipv4.tcp_abort_on_overflow") == 1:
        tips.append("net.ipv4.tcp_abort_on_overflow=1: a momentary accept-queue overflow becomes ECONNRESET "
                    "for clients (0 drops the ACK and lets them complete later)")
    pr = v("net.ipv4.ip_local_port_range")
    if isinstance(pr, tuple) and len(pr) == 2 and pr[1] - pr[0] + 1 < 10000:
        tips.append(f"net.ipv4.ip_local_port_range={pr[0]}-{pr[1]} gives only {pr[1] - pr[0] + 1} ephemeral "
                    "ports: TIME_WAIT can exhaust them (EADDRNOTAVAIL)")
    if v("net.ipv4.tcp_timestamps") == 0:
        tips.append("net.ipv4.tcp_timestamps=0: tcp_tw_reuse cannot work without timestamps")
    if isinstance(v("net.ipv4.tcp_syn_retries"), int) and v("net.ipv4.tcp_syn_retries") > 6:
        tips.append(f"net.ipv4.tcp_syn_retries={v('net.ipv4.tcp_syn_retries')}: connect() to a dead server "
                    "blocks for minutes")
    return tips


def _workshop_checks() -> list[tuple[bool, str]]:
    checks = []
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    checks.append((soft >= 4096, f"open files limit {soft} (an experiment with 1000 clients needs ~2100; "
                                 "raise with ulimit -n)"))
    nproc_soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    checks.append((nproc_soft == resource.RLIM_INFINITY or nproc_soft >= 256,
                   f"process limit {nproc_soft} (each experiment forks one child per run)"))
    n = max_user_namespaces()
    if n is not None:
        checks.append((n >= 100, f"user.max_user_namespaces={n} (each running experiment holds one; "
                                 "40 learners x 8 concurrent runs = 320)"))
    else:
        checks.append((False, "user.max_user_namespaces unreadable"))
    cpus = os.cpu_count() or 1
    checks.append((cpus >= 2, f"{cpus} CPUs (measured on 2: up to 16 learners per CPU for a snappy room, 32 with "
                              "servers started ahead; see docs/instructors.md, Capacity)"))
    if os.geteuid() != 0:  # root sees everything anyway; the question is what a learner sees
        others = foreign_processes()
        checks.append((others == 0, "other users' processes are hidden from you (/proc hidepid=invisible): nobody "
                                    "can read another learner's experiment" if others == 0 else
                       f"{others} processes of other users are visible: /proc/<pid>/net of another learner's "
                       "running experiment (its sockets and counters) is readable by everyone; mount /proc with "
                       "hidepid=invisible (workshop/jupyterhub_config.py does it per learner; TLJH: "
                       "ProtectProc=invisible)"))
    from tcplab.kernel.progress import PROGRESS_ENV, progress_path
    recorded = bool(os.environ.get(PROGRESS_ENV))
    checks.append((True, f"self-check results are recorded in {progress_path()} for the instructor "
                         "(tcplab workshop progress)" if recorded else
                   f"self-check results are not recorded ({PROGRESS_ENV} is not set)"))
    return checks


def doctor_report(workshop: bool = False) -> str:
    """The text ``tcplab doctor`` prints."""
    from tcplab.observe import capabilities, sysctls

    caps = capabilities()
    lines = ["tcplab doctor", "", caps.summary(), ""]
    for c in caps.values():
        lines.append(f"  [{'ok' if c.ok else '--'}] {c.name:24} {c.detail}")
    table = sysctls()
    values = dict(zip(table["name"], table["value"]))
    lines += ["", "TCP sysctls (host namespace, read only):"]
    for row in table.itertuples():
        shown = "(not visible here)" if row.value is None else row.value
        if isinstance(shown, tuple):
            shown = " ".join(map(str, shown))
        lines.append(f"  {row.name:36} {shown!s:14} default {row.default!s:18} "
                     f"{'per-netns' if row.per_netns else 'global'}")
    tips = advise(values)
    lines += ["", "Advice:" if tips else "Advice: nothing risky by the articles' standards."]
    lines += [f"  ! {t}" for t in tips]
    if workshop:
        lines += ["", "Workshop host checks:"]
        for ok, text in _workshop_checks():
            lines.append(f"  [{'ok' if ok else '!!'}] {text}")
        real = caps.real_with_sysctls
        lines += ["", "In the course on this host:",
                  "  real: " + ("every experiment, each in its own namespace; learners do not see each "
                                "other's counters" if real else "per-socket experiments only (backlog, TCP_SYNCNT)"),
                  "  simulated: " + ("nothing, unless a learner picks mode='sim'" if real else
                                     "experiments that set sysctls (somaxconn, syncookies, port range, tw_reuse...)")]
    return "\n".join(lines)
