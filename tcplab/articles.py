"""What the articles say versus what this kernel does: one short table per notebook.

Each line is checked now, on this machine: by reading the live sysctl (read-only, this
namespace) or by a run (an experiment or a probe; the table says REAL or SIMULATED).

>>> sorted(CLAIMS)
['01', '02', '03', '04', '05', '06', '07', '08', '09']
>>> articles_vs_kernel("99")
Traceback (most recent call last):
...
ValueError: notebook must be one of 01, 02, 03, 04, 05, 06, 07, 08, 09, not '99'
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from tcplab.experiments.result import Result

__all__ = ["CLAIMS", "Claim", "articles_vs_kernel"]

Check = Callable[[dict[str, Any]], tuple[str, str]]


@dataclass(frozen=True)
class Claim:
    """One article claim: what they say, and a check returning (this kernel, checked by)."""

    claim: str
    article: str
    check: Check


def _sysctl(name: str) -> Any:
    from tcplab.kernel.sysctl import read_sysctl
    return read_sysctl(name)


def _live(name: str, fmt: Callable[[Any], str] = str) -> Check:
    def check(_cache: dict[str, Any]) -> tuple[str, str]:
        from tcplab.kernel.sysctl import sysctl_exists
        if not sysctl_exists(name):
            # an older kernel: its absence is the answer, in the words of the change that added it
            from tcplab.experiments._mode import absence_note
            return absence_note(name), f"live sysctl {name} (looked for now)"
        return fmt(_sysctl(name)), f"live sysctl {name} (read now)"
    return check


def _tag(r: Result) -> str:
    return "REAL" if r.mode == "real" else "SIMULATED"


def _cached(cache: dict[str, Any], key: str, make: Callable[[], Any]) -> Any:
    if key not in cache:
        cache[key] = make()
    return cache[key]


def _aq(cache: dict[str, Any], backlog: int, clients: int, settle: float = 1.5) -> Result:
    from tcplab.experiments import accept_queue
    return _cached(cache, f"aq{backlog}/{clients}/{settle}",
                   lambda: accept_queue(backlog=backlog, clients=clients, settle=settle))


def _listen_holds(cache: dict[str, Any]) -> tuple[str, str]:
    r = _aq(cache, 5, 20)
    return (f"listen(5) holds {r.summary['established_clients']}",
            f"run accept_queue(backlog=5, clients=20), {_tag(r)}")


def _ab_511(cache: dict[str, Any]) -> tuple[str, str]:
    r = _aq(cache, 511, 520, 0.3)
    return (f"listen(511) holds {r.summary['established_clients']} (somaxconn {r.sysctls.get('net.core.somaxconn')})",
            f"run accept_queue(backlog=511, clients=520), {_tag(r)}")


def _java_49(cache: dict[str, Any]) -> tuple[str, str]:
    r = _aq(cache, 50, 100)
    s = r.summary
    return (f"{100 - s['established_clients']} clients left out, ListenOverflows {s['ListenOverflows']}: "
            "every SYN and every 1 s retry counts", f"run accept_queue(backlog=50, clients=100), 1.5 s, {_tag(r)}")


def _listendrops(cache: dict[str, Any]) -> tuple[str, str]:
    r = _aq(cache, 5, 20)
    s = r.summary
    return (f"ListenDrops {s['ListenDrops']} = ListenOverflows {s['ListenOverflows']}: a full accept queue "
            "drops SYNs too (tcp_listendrop() counts every drop at a listener)",
            f"run accept_queue(backlog=5, clients=20), {_tag(r)}")


def syn_queue_rule(strict: bool, backlog: int, profile: str) -> tuple[int, str]:
    """The SYN queue's limit for ``listen(backlog)`` and its label, by the kernel's rule:
    ``inet_csk_reqsk_queue_is_full()`` tests ``qlen > backlog`` (strict: backlog + 1 requests fit;
    6.13+, and backported to 6.1.y and 6.12.y) or ``qlen >= backlog`` (backlog fit).

    >>> syn_queue_rule(True, 8, "linux-6.18")
    (9, 'backlog + 1: linux-6.18 tests qlen > backlog')
    >>> syn_queue_rule(False, 8, "linux-5.15")
    (8, 'backlog: linux-5.15 tests qlen >= backlog')
    """
    if strict:
        return backlog + 1, f"backlog + 1: {profile} tests qlen > backlog"
    return backlog, f"backlog: {profile} tests qlen >= backlog"


def _syn_backlog(cache: dict[str, Any]) -> tuple[str, str]:
    from tcplab.experiments import syn_queue
    from tcplab.kernel.release import running_profile
    r = _cached(cache, "sq", lambda: syn_queue(backlog=8, max_syn_backlog=256, syncookies=1, clients=30))
    # the label follows the running kernel's profile (inet_csk_reqsk_queue_is_full(): > since 6.13 and
    # in the 6.1.y/6.12.y backports, >= before), and says so when the run disagrees with it
    prof = running_profile().profile
    limit, rule = syn_queue_rule(prof.synq_full_strict, 8, prof.name)
    got = r.summary["syn_recv"]
    verdict = f"({rule})" if got == limit else f"(the profile's rule, {rule}, expects {limit})"
    return (f"listen(8), tcp_max_syn_backlog=256: {got} SYN_RECV {verdict}",
            f"run syn_queue(backlog=8, max_syn_backlog=256, clients=30), {_tag(r)}")


def _synack(cache: dict[str, Any]) -> tuple[str, str]:
    r = cache.get("synack_flood")
    if r is None:
        return (f"tcp_synack_retries = {_sysctl('net.ipv4.tcp_synack_retries')} here; under a flood the kernel "
                "cuts old requests to 2 retries (reqsk_timer_handler())", "live sysctl; the run is in notebook 04")
    tl = r.timeline
    start, end = int(tl["syn_recv"].iloc[0]), int(tl["syn_recv"].iloc[-1])
    return (f"flood: {start} SYN_RECV at 0 s, {end} at {tl['t'].iloc[-1]:.0f} s (synack_retries "
            f"{r.params.get('synack_retries') or r.sysctls.get('net.ipv4.tcp_synack_retries')})",
            f"the run above (syn_queue flood), {_tag(r)}")


def _syn_schedule(cache: dict[str, Any]) -> tuple[str, str]:
    r = cache.get("syn_retries_1")
    if r is None:
        from tcplab.experiments import syn_retries
        r = _cached(cache, "syn_retries_1", lambda: syn_retries(retries=1))
    times = [0.0, *r.summary["retransmit_times"]]
    return (f"TCP_SYNCNT=1: SYNs at {', '.join(f'{t:.1f}' for t in times)} s, fails at {r.summary['failed_after']:.1f} s",
            f"run syn_retries(retries=1), {_tag(r)}")


def _fin_probe(cache: dict[str, Any]) -> dict[str, Any] | None:
    def make() -> dict[str, Any] | None:
        from tcplab.errors import NamespaceUnavailable
        from tcplab.kernel.namespace import in_namespace
        from tcplab.kernel.probes import fin_timeout_probe
        try:
            return in_namespace(fin_timeout_probe, 2.5, sysctls={"net.ipv4.tcp_fin_timeout": 1}, timeout=30)
        except NamespaceUnavailable:
            return None
    return _cached(cache, "fin_probe", make)


def _fin_timeout(cache: dict[str, Any]) -> tuple[str, str]:
    p = _fin_probe(cache)
    if p is None:
        return ("not measured: no private namespace here", "—")
    tw = "still TIME_WAIT" if p["time_wait_gone_at"] is None else f"gone at {p['time_wait_gone_at']} s"
    return (f"tcp_fin_timeout=1: orphaned FIN_WAIT2 gone at {p['fin_wait2_gone_at']} s, TIME_WAIT {tw} "
            f"after {p['watch']:g} s", "run fin_timeout_probe() in a private namespace, REAL")


def _close_wait(cache: dict[str, Any]) -> tuple[str, str]:
    from tcplab.kernel.probes import close_wait_probe
    p = _cached(cache, "cw", close_wait_probe)
    return (f"{p['before']}; one send(): the peer answers RST and the socket is {p['after']}; the next send: "
            f"{p['second_send_error']}", "run close_wait_probe() on 127.0.0.1, REAL")


def _tw_recycle(_cache: dict[str, Any]) -> tuple[str, str]:
    from tcplab.kernel.sysctl import sysctl_exists
    exists = sysctl_exists("net.ipv4.tcp_tw_recycle")
    return ("exists" if exists else "does not exist (removed in Linux 4.12)",
            "looked for net.ipv4.tcp_tw_recycle now")


def _lo_mss(cache: dict[str, Any]) -> tuple[str, str]:
    from tcplab.experiments import handshake
    r = _cached(cache, "hs", lambda: handshake())
    from tcplab.kernel.capabilities import interface_mtu
    mtu = interface_mtu("lo")
    return (f"lo MTU {mtu}, SYN option mss={r.summary['mss']} (capped at 65535 − 40 by ipv4_default_advmss())",
            f"run handshake() and /sys/class/net/lo/mtu, {_tag(r)}")


def _ports(v: Any) -> str:
    return f"{v[0]}–{v[1]}" if isinstance(v, tuple) else str(v)


_SOMAXCONN = Claim("net.core.somaxconn default", "128", _live("net.core.somaxconn", lambda v: f"{v} (the default is 4096 since Linux 5.4)"))
_NETDEV = Claim("net.core.netdev_max_backlog", "128", _live("net.core.netdev_max_backlog",
                                                             lambda v: f"{v}: a per-CPU packet queue, not a TCP queue"))
_PORTS = Claim("ephemeral port range", "1024–65000", _live("net.ipv4.ip_local_port_range", _ports))

CLAIMS: dict[str, list[Claim]] = {
    "01": [Claim("CLOSE_WAIT", "lasts forever: nothing ends it but close()", _close_wait)],
    "02": [Claim("loopback MSS", "MTU 65536 − 40 = 65496", _lo_mss)],
    "03": [_SOMAXCONN,
           Claim("listen(N)", "holds N connections", _listen_holds),
           Claim("ab: listen(511)", "511 connections wait", _ab_511),
           Claim("Java backlog 50, 100 clients", "49 SYNs dropped", _java_49)],
    "04": [Claim("tcp_max_syn_backlog", "is the size of the SYN queue", _syn_backlog),
           Claim("a flood's half-open request", "lives tcp_synack_retries: ~63 s with 5", _synack)],
    "05": [Claim("tcp_syn_retries=k", "SYNs at 0, 1, 3, 7 … s; fails after 2^(k+1) − 1 s",
                 _syn_schedule),
           Claim("tcp_syn_linear_timeouts", "(not mentioned: older kernels)",
                 _live("net.ipv4.tcp_syn_linear_timeouts", lambda v: f"{v}: the first {int(v) + 1} retransmits 1 s apart"))],
    "06": [Claim("CLOSE_WAIT", "has no timeout, lasts forever", _close_wait),
           Claim("tcp_fin_timeout", "sets how long TIME_WAIT lasts", _fin_timeout)],
    "07": [Claim("tcp_fin_timeout", "sets how long TIME_WAIT lasts", _fin_timeout),
           Claim("tcp_tw_recycle", "turn it on against TIME_WAIT", _tw_recycle),
           _PORTS],
    "08": [Claim('"SYNs to LISTEN sockets dropped"', "counts SYN-queue overflows", _listendrops),
           Claim("Java backlog 50, 100 clients", "49 SYNs dropped", _java_49)],
    "09": [_SOMAXCONN, _NETDEV,
           Claim("tcp_syn_retries", "the number of SYN retransmissions", _live(
               "net.ipv4.tcp_syn_retries", lambda v: f"{v}: a limit on retransmits + tcp_syn_linear_timeouts "
                                                     "and on time (notebook 05)"))],
}


def articles_vs_kernel(notebook: str, results: Mapping[str, Result] | None = None) -> pd.DataFrame:
    """The box "the articles vs Linux (this kernel)" of ``notebook`` ("01".."09"): one row per
    claim with ``claim``, ``articles say``, ``this kernel``, ``checked by``.

    ``results`` passes runs the notebook already made (keys ``"synack_flood"``, ``"syn_retries_1"``)
    so that they are not repeated. A check that fails says so in its row instead of raising.
    """
    import pandas as pd

    if notebook not in CLAIMS:
        raise ValueError(f"notebook must be one of {', '.join(sorted(CLAIMS))}, not {notebook!r}")
    cache: dict[str, Any] = dict(results or {})
    rows = []
    for c in CLAIMS[notebook]:
        try:
            now, how = c.check(cache)
        except Exception as e:     # noqa: BLE001 - a box line must not break the notebook
            now, how = f"could not check here: {type(e).__name__}: {e}", "—"
        rows.append({"claim": c.claim, "articles say": c.article, "this kernel": now, "checked by": how})
    return pd.DataFrame(rows)
