"""Loopback plumbing for a private network namespace: slow lo down (qdisc), blackhole 127/8 peers.

On loopback a whole handshake or teardown takes microseconds, so FIN_WAIT1, LAST_ACK or
SYN_RECV are never seen by a sampler. ``tc qdisc add dev lo root netem delay D`` delays
every packet leaving lo (both directions use it), so each segment arrives D later.
Call it only in a namespace of your own (tcplab.in_namespace): it changes the device.

>>> add_delay(20)          # doctest: +SKIP
'netem delay 20 ms on lo'
"""

from __future__ import annotations

import shutil
import subprocess

from tcplab._validate import check_float
from tcplab.errors import KernelUnavailable

__all__ = ["add_delay", "tc_available", "ip_available", "blackhole_loopback_peers", "has_qdisc"]


def tc_available() -> str | None:
    """Path of the ``tc`` binary, or None."""
    return shutil.which("tc") or next((p for p in ("/usr/sbin/tc", "/sbin/tc") if shutil.os.path.exists(p)), None)


#: a bare ACK with timestamps on lo: 14 (ethernet) + 20 (IP) + 32 (TCP) bytes
_CONTROL_SEGMENT_BYTES = 66


def add_delay(delay_ms: float, dev: str = "lo") -> str:
    """Delay every packet on ``dev`` by about ``delay_ms``; return a sentence saying how.

    netem when the kernel has it (CONFIG_NET_SCH_NETEM); otherwise a token bucket (tbf, as
    docs/kernel-facts.md case 2) whose rate sends one control segment per ``delay_ms``: packets queued
    behind each other then wait longer (the delay is per packet, not fixed).
    Raises :class:`KernelUnavailable` with the reason when ``tc`` is missing or both are refused.
    """
    delay_ms = check_float("delay_ms", delay_ms, 0.001, 10_000)
    tc = tc_available()
    if tc is None:
        raise KernelUnavailable("the `tc` command (iproute2) is not installed")
    try:
        return _tc(tc, dev, ["netem", "delay", f"{delay_ms:g}ms"], f"netem delay {delay_ms:g} ms on {dev}")
    except KernelUnavailable as netem_error:
        rate = max(1, round(_CONTROL_SEGMENT_BYTES * 8 / (delay_ms / 1000)))
        try:
            return _tc(tc, dev, ["tbf", "rate", f"{rate}bit", "burst", "80", "latency", "30s"],
                       f"tbf {rate} bit/s on {dev}: about {delay_ms:g} ms per small segment, more when "
                       f"segments queue; a first segment after a pause passes at once; segments over 80 "
                       f"bytes are dropped (netem unavailable: {netem_error.reason})")
        except KernelUnavailable as tbf_error:
            raise KernelUnavailable(f"{netem_error.reason}; {tbf_error.reason}") from None


def _tc(tc: str, dev: str, qdisc: list[str], said: str) -> str:
    cmd = [tc, "qdisc", "replace", "dev", dev, "root", *qdisc]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise KernelUnavailable(f"`{' '.join(cmd)}` failed: {e}") from None
    if res.returncode != 0:
        raise KernelUnavailable(f"`{' '.join(cmd)}` failed: {res.stderr.strip() or res.returncode}"
                                f" (is the sch_{qdisc[0]} module available?)")
    return said


def ip_available() -> str | None:
    """Path of the ``ip`` binary (iproute2), or None."""
    return shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip") if shutil.os.path.exists(p)), None)


def blackhole_loopback_peers() -> str:
    """Make 127.0.0.2..127.255.255.254 non-local, so segments sent to them vanish without a RST.

    Replaces the ``local 127.0.0.0/8`` route of the local table by a unicast route on lo
    (docs/kernel-facts.md case 4): a SYN-ACK to a spoofed 127.0.0.2 then takes an output route whose
    input side discards it, like a SYN-ACK to a host that is down. 127.0.0.1 stays local.
    Only inside a private namespace.
    """
    ip = ip_available()
    if ip is None:
        raise KernelUnavailable("the `ip` command (iproute2) is not installed")
    for args in (["route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local"],
                 ["route", "add", "127.0.0.0/8", "dev", "lo"]):
        try:
            res = subprocess.run([ip, *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise KernelUnavailable(f"`ip {' '.join(args)}` failed: {e}") from None
        if res.returncode != 0:
            raise KernelUnavailable(f"`ip {' '.join(args)}` failed: {res.stderr.strip() or res.returncode}")
    return "127.0.0.0/8 except 127.0.0.1 routed as unicast on lo: SYN-ACKs to spoofed sources vanish"


def has_qdisc(kind: str, dev: str = "lo") -> bool | None:
    """Whether this kernel builds the qdisc ``kind`` (e.g. ``codel``): ``tc qdisc add dev DEV root KIND``,
    removed again at once. Only in a private network namespace of our own (it changes ``dev``'s root
    qdisc while it lasts). None when there is no ``tc`` to ask with or it did not answer."""
    tc = tc_available()
    if tc is None:
        return None
    try:
        res = subprocess.run([tc, "qdisc", "add", "dev", dev, "root", kind], capture_output=True, text=True,
                             timeout=10)
        if res.returncode != 0:
            return False
        subprocess.run([tc, "qdisc", "del", "dev", dev, "root"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return True
