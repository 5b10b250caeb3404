#!/usr/bin/env python3
"""The kernel facts that do not depend on timing, checked against tcplab's profile of the running
kernel (issue 20, CI part: ``make test-kernels-ci`` runs this in Debian's 6.1 and 6.12 guests).

    python scripts/kernel-ci.py [--config /boot/config-RELEASE] [--json FILE]

The profile is ``tcplab.model.profiles.profile_for_release(uname -r)``; it must be a *measured*
one (``KernelProfile.measured``), so a kernel-dependent regression in ``profiles.py`` (a
``CHANGES`` row moved to another version, a default changed, a backport forgotten) fails here.
Every check is a count, a presence or a default, never a time, so TCG's slowness cannot flip it:

* ``sysctl present``: every sysctl ``CHANGES`` knows exists in a fresh ``unshare -Urn`` namespace
  exactly when the profile says it does (``scripts/kernel-facts.py``, standard library only);
* ``sysctl default``: the profile's defaults (``KernelProfile.sysctls()``, plus ``tcp_rto_min_us`` and
  ``tcp_rto_max_ms`` where present) equal the fresh namespace's; ``tcp_max_syn_backlog`` and
  ``tcp_max_tw_buckets`` are left out (scaled from RAM at boot, not a kernel-line constant);
* ``somaxconn in userns``: ``net.core.somaxconn`` is visible in a namespace an unprivileged user owns
  exactly when ``somaxconn_in_userns`` (6b754d7bd007, v6.3), and in one owned by the initial user
  namespace always (``unshare -n``, root);
* ``SYN count``: ``syn_retries(retries=1)`` real sends as many SYNs as the simulator with this
  profile (2 before ccce324dabfe, v6.5; 3 since): a count, decided by the retry budget, not by when
  the timers fire;
* ``SYN-queue limit``: ``syn_queue(backlog=4, syncookies=0)`` real holds as many SYN_RECV as the
  simulator (backlog + 1 with 3479c7549fb1, backported);
* ``accept-queue limit``: ``accept_queue(backlog=5, clients=20)`` real: established clients,
  server children and Recv-Q as the simulator (backlog + 1);
* ``HZ``: ``CONFIG_HZ`` of the kernel's config (``--config``) is ``1 / timer_tick``.

Exit status 0 when every check passes, 1 otherwise (each failing check printed with what the
kernel showed and what the profile says), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: RAM-scaled defaults (tcp_sk_init: from the ehash size at boot), not a kernel-line constant
RAM_SCALED = ("net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_max_tw_buckets")


def norm(value: Any) -> str:
    """A sysctl value as /proc shows it: ``(32768, 60999)`` -> ``'32768 60999'``.

    >>> norm((32768, 60999)), norm(4096), norm("4096")
    ('32768 60999', '4096', '4096')
    """
    if isinstance(value, (tuple, list)):
        return " ".join(str(v) for v in value)
    return " ".join(str(value).split())


def expected_sysctls(p: Any) -> dict[str, str]:
    """The defaults the profile states, as /proc would show them (RAM-scaled ones left out)."""
    out = {k: norm(v) for k, v in p.sysctls().items() if k not in RAM_SCALED}
    if not p.somaxconn_in_userns:
        out.pop("net.core.somaxconn", None)  # absent there: checked by the somaxconn check
    if p.has_sysctl("net.ipv4.tcp_rto_min_us"):
        out["net.ipv4.tcp_rto_min_us"] = str(round(p.rto_min * 1_000_000))
    if p.has_sysctl("net.ipv4.tcp_rto_max_ms"):
        out["net.ipv4.tcp_rto_max_ms"] = str(round(p.rto_max * 1000))
    return out


def check_sysctls(p: Any, seen: dict[str, str | None], root_somaxconn: str | None) -> list[tuple[str, bool, str]]:
    """(check, ok, detail) rows for presence, defaults and somaxconn visibility.

    ``seen`` is kernel-facts.py's ``sysctls`` (a fresh ``unshare -Urn`` namespace; ``<ENOENT>``
    or a missing key = absent); ``root_somaxconn`` what ``unshare -n`` (root's) shows.
    """
    from tcplab.model.profiles import CHANGES

    def present(name: str) -> bool:
        v = seen.get(name)
        return v is not None and not str(v).startswith("<")

    rows: list[tuple[str, bool, str]] = []
    for c in CHANGES:
        if c.sysctl:
            want, got = p.has_sysctl(c.sysctl), present(c.sysctl)
            rows.append((f"sysctl present: {c.sysctl}", want == got,
                         f"kernel {'has' if got else 'lacks'} it, profile {p.name} says "
                         f"{'present' if want else 'absent'} ({c.where})"))
    for name, want in expected_sysctls(p).items():
        got = seen.get(name)
        rows.append((f"sysctl default: {name}", got is not None and norm(got) == want,
                     f"kernel {got!r}, profile {want!r}"))
    got_userns = present("net.core.somaxconn")
    rows.append(("somaxconn in userns", got_userns == p.somaxconn_in_userns,
                 f"kernel: {'visible' if got_userns else 'absent'} in an unshare -Urn namespace, profile: "
                 f"somaxconn_in_userns={p.somaxconn_in_userns} (6b754d7bd007, v6.3)"))
    rows.append(("somaxconn as root", root_somaxconn == str(p.somaxconn),
                 f"kernel {root_somaxconn!r} in an unshare -n namespace, profile {p.somaxconn}"))
    return rows


def config_hz(config: str) -> int | None:
    """CONFIG_HZ from a kernel config file (None when the file has none)."""
    m = re.search(r"^CONFIG_HZ=(\d+)$", Path(config).read_text(), re.M)
    return int(m.group(1)) if m else None


def check_runs(p: Any) -> list[tuple[str, bool, str]]:
    """Three real runs against the simulator with profile ``p``: counts only."""
    import tcplab.experiments as ex

    points = [("SYN count", "syn_retries", {"retries": 1}, ("syns_sent", "retransmissions")),
              ("SYN-queue limit", "syn_queue", {"backlog": 4, "syncookies": 0, "max_syn_backlog": 16},
               ("syn_recv",)),
              ("accept-queue limit", "accept_queue", {"backlog": 5, "clients": 20},
               ("established_clients", "server_children", "recv_q"))]
    rows: list[tuple[str, bool, str]] = []
    for label, name, params, keys in points:
        t0 = time.monotonic()
        try:
            real = getattr(ex, name)(**params, mode="real")
        except Exception as e:  # noqa: BLE001 - a check that could not run fails, with the reason
            rows.append((f"{label}: {name}", False, f"real run raised {type(e).__name__}: {e}"))
            continue
        if real.mode != "real":
            rows.append((f"{label}: {name}", False, f"ran as {real.mode}: {real.reason}"))
            continue
        sim = getattr(ex, name)(**params, mode="sim", profile=p.name)
        for k in keys:
            rows.append((f"{label}: {name} {k}", real.summary.get(k) == sim.summary.get(k),
                         f"real {real.summary.get(k)!r}, sim ({p.name}) {sim.summary.get(k)!r} "
                         f"({time.monotonic() - t0:.0f} s)"))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="the kernel's config file (CONFIG_HZ); default /boot/config-RELEASE if it exists")
    ap.add_argument("--json", help="write the checks here too")
    args = ap.parse_args(argv)
    from tcplab.model.profiles import profile_for_release

    t0 = time.monotonic()
    release = os.uname().release
    p = profile_for_release(release)
    rows: list[tuple[str, bool, str]] = [
        ("profile measured", p.measured, f"{release} -> {p.name} (measured={p.measured})")]
    facts = subprocess.run([sys.executable, str(HERE / "kernel-facts.py"), "--only", "none"],
                           capture_output=True, text=True, timeout=300)
    if facts.returncode != 0:
        print(facts.stderr, file=sys.stderr)
        rows.append(("facts script", False, f"exit {facts.returncode}"))
        seen: dict[str, str | None] = {}
    else:
        seen = json.loads(facts.stdout)["sysctls"]
    root = subprocess.run(["unshare", "-n", "cat", "/proc/sys/net/core/somaxconn"],
                          capture_output=True, text=True, timeout=60)
    rows += check_sysctls(p, seen, root.stdout.strip() if root.returncode == 0 else None)
    config = args.config or f"/boot/config-{release}"
    if Path(config).exists():
        hz = config_hz(config)
        rows.append(("HZ", hz is not None and abs(1 / hz - p.timer_tick) < 1e-9,
                     f"CONFIG_HZ={hz} ({config}), profile timer_tick={p.timer_tick}"))
    else:
        rows.append(("HZ", False, f"no kernel config at {config} (give --config)"))
    rows += check_runs(p)
    bad = [r for r in rows if not r[1]]
    for name, ok, detail in rows:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    took = time.monotonic() - t0
    print(f"{release}: {len(rows) - len(bad)} of {len(rows)} checks pass against {p.name} ({took:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"release": release, "profile": p.name, "seconds": round(took, 1),
                       "checks": [{"check": n, "ok": ok, "detail": d} for n, ok, d in rows]}, f, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
