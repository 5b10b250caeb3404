"""Kernel counters from ``/proc/net/netstat`` and ``/proc/net/snmp``.

Both files come in pairs of lines: ``Section: Name1 Name2 ...`` then
``Section: 1 2 ...``. We keep the sections a TCP course needs (TcpExt, Tcp, Ip)
under the kernel's own names (``ListenOverflows``, ``ActiveOpens``...): those
are the names ``nstat`` prints and the ones to search the kernel source for.

>>> parse_counters("TcpExt: SyncookiesSent ListenOverflows\\nTcpExt: 0 28\\n")
{'TcpExt': {'SyncookiesSent': 0, 'ListenOverflows': 28}}
>>> counters_delta({"ListenOverflows": 2}, {"ListenOverflows": 30})
{'ListenOverflows': 28}
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from tcplab.errors import KernelUnavailable, ParseError
from tcplab.model.counters import NETSTAT_SENTENCES, counter_for_sentence  # noqa: F401 - re-exported

__all__ = ["SECTIONS", "NETSTAT_SENTENCES", "parse_counters", "read_counters", "counters_delta",
           "counter_for_sentence", "read_ecn_counters", "ECN_COUNTERS"]

#: IpExt's per-namespace counts of received IP packets by ECN field (``__IP_ECN_ADD()`` in
#: ip_rcv_core(), net/ipv4/ip_input.c); this kernel has no TCPECN* counter, TcpExt has TCPDeliveredCE
ECN_COUNTERS = ("InNoECTPkts", "InECT0Pkts", "InECT1Pkts", "InCEPkts")

#: Sections kept, in priority order (a name is taken from the first section that has it).
SECTIONS = ("TcpExt", "Tcp", "Ip")

def parse_counters(text: str, source: str = "/proc/net/netstat") -> dict[str, dict[str, int]]:
    """Parse netstat/snmp text into ``{section: {name: value}}`` (all sections)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if len(lines) % 2:
        n, line = lines[-1]
        raise ParseError("header line without a value line", source=source, lineno=n, line=line)
    out: dict[str, dict[str, int]] = {}
    for (n1, head), (n2, vals) in zip(lines[0::2], lines[1::2]):
        sec1, sep1, names = head.partition(":")
        sec2, sep2, values = vals.partition(":")
        if not sep1 or not sep2 or sec1 != sec2 or not sec1.strip():
            raise ParseError(f"expected a '{sec1}:' value line after the header of line {n1}",
                             source=source, lineno=n2, line=vals)
        name_list, value_list = names.split(), values.split()
        if len(name_list) != len(value_list):
            raise ParseError(f"{len(name_list)} names but {len(value_list)} values", source=source,
                             lineno=n2, line=vals)
        try:
            out[sec1.strip()] = {k: int(v) for k, v in zip(name_list, value_list)}
        except ValueError:
            raise ParseError("a value is not an integer", source=source, lineno=n2, line=vals) from None
    return out


def read_counters(root: str = "/proc", qualified: bool = False) -> dict[str, int]:
    """Read TcpExt/Tcp/Ip counters of the caller's network namespace.

    Flat ``{name: value}`` under kernel names, or ``{"TcpExt.ListenOverflows": ...}``
    with ``qualified=True``.
    """
    sections: dict[str, dict[str, int]] = {}
    for name in ("netstat", "snmp"):
        path = os.path.join(root, "net", name)
        try:
            with open(path) as f:
                text = f.read()
        except OSError as e:
            raise KernelUnavailable(f"cannot read {path}: {e.strerror}") from None
        sections.update(parse_counters(text, source=path))
    flat: dict[str, int] = {}
    for sec in SECTIONS:
        for key, value in sections.get(sec, {}).items():
            flat.setdefault(f"{sec}.{key}" if qualified else key, value)
    return flat


def read_ecn_counters(root: str = "/proc") -> dict[str, int]:
    """IpExt's ECN counters (:data:`ECN_COUNTERS`) of the caller's network namespace; the ones this
    kernel does not have are absent.

    >>> set(read_ecn_counters()) <= set(ECN_COUNTERS)
    True
    """
    path = os.path.join(root, "net", "netstat")
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise KernelUnavailable(f"cannot read {path}: {e.strerror}") from None
    ipext = parse_counters(text, source=path).get("IpExt", {})
    return {k: ipext[k] for k in ECN_COUNTERS if k in ipext}


def counters_delta(before: Mapping[str, int], after: Mapping[str, int], *, nonzero: bool = False) -> dict[str, int]:
    """``after - before`` for every counter in ``after`` (a missing ``before`` counts as 0).

    Gauges such as ``CurrEstab`` are differenced too; read them from ``after`` for a level.
    """
    for arg, name in ((before, "before"), (after, "after")):
        if not isinstance(arg, Mapping):
            raise TypeError(f"{name} must be a mapping of counter name to int, such as tcplab.counters(), "
                            f"not {type(arg).__name__}")
    delta = {k: int(v) - int(before.get(k, 0)) for k, v in after.items()}
    return {k: v for k, v in delta.items() if v} if nonzero else delta
