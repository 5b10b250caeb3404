"""Decode ``struct tcp_info`` (``getsockopt(IPPROTO_TCP, TCP_INFO)``).

The layout is ``include/uapi/linux/tcp.h``; the kernel fills it in ``tcp_get_info()``
(``net/ipv4/tcp.c``) and copies ``min(len, sizeof(info))`` bytes, so an older kernel
returns a shorter struct: fields past the returned length are left out of
:attr:`TcpInfo.extra` rather than invented.

>>> import socket
>>> with socket.socket() as s:
...     tcp_info(s).state
'CLOSE'
"""

from __future__ import annotations

import array
import fcntl
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

from tcplab.model.cc import INFINITE_SSTHRESH

__all__ = ["packets_in_flight", "TcpInfo", "tcp_info", "decode_tcp_info", "send_recv_queues", "timeline_row", "TCPI_OPT_TIMESTAMPS", "TCPI_OPT_SACK",
           "TCPI_OPT_WSCALE", "TCPI_OPT_ECN", "CA_STATES"]

TCP_INFO = getattr(socket, "TCP_INFO", 11)

#: tcpi_options bits (include/uapi/linux/tcp.h)
TCPI_OPT_TIMESTAMPS = 1
TCPI_OPT_SACK = 2
TCPI_OPT_WSCALE = 4
TCPI_OPT_ECN = 8

#: enum tcp_ca_state (include/uapi/linux/tcp.h)
CA_STATES = {0: "Open", 1: "Disorder", 2: "CWR", 3: "Recovery", 4: "Loss"}

_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
           6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
           12: "NEW_SYN_RECV"}

# (format, names) chunks in struct order; native alignment ("@") as the kernel lays it out.
_LAYOUT: list[tuple[str, tuple[str, ...]]] = [
    ("B", ("state",)), ("B", ("ca_state",)), ("B", ("retransmits",)), ("B", ("probes",)),
    ("B", ("backoff",)), ("B", ("options",)), ("B", ("_wscale",)), ("B", ("_flags",)),
    ("24I", ("rto", "ato", "snd_mss", "rcv_mss", "unacked", "sacked", "lost", "retrans", "fackets",
             "last_data_sent", "last_ack_sent", "last_data_recv", "last_ack_recv",
             "pmtu", "rcv_ssthresh", "rtt", "rttvar", "snd_ssthresh", "snd_cwnd", "advmss", "reordering",
             "rcv_rtt", "rcv_space", "total_retrans")),
    ("4Q", ("pacing_rate", "max_pacing_rate", "bytes_acked", "bytes_received")),
    ("6I", ("segs_out", "segs_in", "notsent_bytes", "min_rtt", "data_segs_in", "data_segs_out")),
    ("4Q", ("delivery_rate", "busy_time", "rwnd_limited", "sndbuf_limited")),
    ("2I", ("delivered", "delivered_ce")),
    ("2Q", ("bytes_sent", "bytes_retrans")),
    ("6I", ("dsack_dups", "reord_seen", "rcv_ooopack", "snd_wnd", "rcv_wnd", "rehash")),
    ("2H", ("total_rto", "total_rto_recoveries")),
    ("I", ("total_rto_time",)),
]
_FIELDS: list[tuple[str, str]] = [
    (chunk.lstrip("0123456789"), name) for chunk, names in _LAYOUT for name in names]
_BUFSIZE = 512


@dataclass(frozen=True, slots=True)
class TcpInfo:
    """The fields a course needs; everything else the kernel returned is in ``extra``.

    Times (``rto``, ``ato``, ``rtt``) are in microseconds, as the kernel reports them.
    """

    state: str
    ca_state: str
    retransmits: int  # icsk_retransmits: retransmissions of the current segment (SYN in SYN_SENT)
    probes: int
    backoff: int  # icsk_backoff: how many times the RTO was doubled
    options: int  # TCPI_OPT_* bits negotiated
    snd_wscale: int
    rcv_wscale: int
    rto: int
    ato: int
    snd_mss: int
    rcv_mss: int
    total_retrans: int
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def timestamps(self) -> bool:
        return bool(self.options & TCPI_OPT_TIMESTAMPS)

    @property
    def sack(self) -> bool:
        return bool(self.options & TCPI_OPT_SACK)

    @property
    def wscale(self) -> bool:
        return bool(self.options & TCPI_OPT_WSCALE)

    def ss_line(self, algorithm: str | None = None) -> str:
        """The fields as ``ss -ti`` prints them (iproute2's ``tcp_show_info()``): times in ms,
        rates in bit/s; a field the kernel did not return is left out. ``algorithm``: the
        congestion control (ss reads it from INET_DIAG, not TCP_INFO; pass
        ``sock.getsockopt(IPPROTO_TCP, TCP_CONGESTION, 16)`` decoded).

        >>> info = decode_tcp_info(bytes([1, 0, 0, 0, 0, 7, 0x77, 0]) + bytes(96))
        >>> info.ss_line("cubic")
        'cubic wscale:7,7 rto:0 rtt:0/0 ato:0 mss:0 rcvmss:0 cwnd:0 unacked:0 retrans:0/0'
        """
        x = self.extra
        parts = [algorithm] if algorithm else []
        if self.wscale:
            parts.append(f"wscale:{self.snd_wscale},{self.rcv_wscale}")
        parts += [f"rto:{self.rto / 1000:g}", f"rtt:{x.get('rtt', 0) / 1000:g}/{x.get('rttvar', 0) / 1000:g}",
                  f"ato:{self.ato / 1000:g}", f"mss:{self.snd_mss}", f"rcvmss:{self.rcv_mss}"]
        if x.get("advmss"):
            parts.append(f"advmss:{x['advmss']}")
        parts.append(f"cwnd:{x.get('snd_cwnd', 0)}")
        if x.get("snd_ssthresh", 0) and x["snd_ssthresh"] < 0xFFFF:
            parts.append(f"ssthresh:{x['snd_ssthresh']}")
        for key, name in (("bytes_sent", "bytes_sent"), ("bytes_acked", "bytes_acked"),
                          ("bytes_received", "bytes_received"), ("segs_out", "segs_out"), ("segs_in", "segs_in")):
            if x.get(key):
                parts.append(f"{name}:{x[key]}")
        if x.get("pacing_rate") and x["pacing_rate"] < 2**63:
            parts.append(f"pacing_rate {_bps(x['pacing_rate'] * 8)}")
        if x.get("delivery_rate"):
            parts.append(f"delivery_rate {_bps(x['delivery_rate'] * 8)}")
        parts += [f"unacked:{x.get('unacked', 0)}", f"retrans:{x.get('retrans', 0)}/{self.total_retrans}"]
        if x.get("rcv_space"):
            parts.append(f"rcv_space:{x['rcv_space']}")
        if x.get("rcv_ssthresh"):
            parts.append(f"rcv_ssthresh:{x['rcv_ssthresh']}")
        if x.get("min_rtt"):
            parts.append(f"minrtt:{x['min_rtt'] / 1000:g}")
        if x.get("snd_wnd"):
            parts.append(f"snd_wnd:{x['snd_wnd']}")
        return " ".join(parts)


def _bps(bits: float) -> str:
    """iproute2's rate format: 1.2Gbps, 84Mbps, 900bps.

    >>> _bps(84_600_000_000), _bps(12_345_678), _bps(900)
    ('84.6Gbps', '12.3Mbps', '900bps')
    """
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if bits >= scale:
            return f"{bits / scale:.3g}{unit}bps"
    return f"{bits:.0f}bps"


def decode_tcp_info(data: bytes) -> TcpInfo:
    """Decode the bytes ``getsockopt(TCP_INFO)`` returned (any kernel's length >= 8).

    >>> decode_tcp_info(bytes([1, 0, 0, 0, 0, 7, 0x97, 0]) + bytes(96)).snd_wscale
    7
    """
    if len(data) < 8:
        raise ValueError(f"tcp_info must be at least 8 bytes, got {len(data)}")
    values: dict[str, Any] = {}
    fmt = "@"
    for code, name in _FIELDS:  # field by field: a shorter (older) struct decodes as far as it goes
        trial = fmt + code
        if struct.calcsize(trial) > len(data):
            break
        fmt = trial
        values[name] = struct.unpack_from(fmt, data)[-1]
    wscale = values.pop("_wscale", 0)
    values.pop("_flags", None)
    core = {k: values.pop(k, 0) for k in ("rto", "ato", "snd_mss", "rcv_mss", "total_retrans")}
    return TcpInfo(
        state=_STATES.get(values.pop("state"), "UNKNOWN"),
        ca_state=CA_STATES.get(values.get("ca_state", 0), str(values.get("ca_state"))),
        retransmits=values.pop("retransmits"), probes=values.pop("probes"), backoff=values.pop("backoff"),
        options=values.pop("options"),
        # snd_wscale is the low nibble, rcv_wscale the high one (little-endian bitfield order)
        snd_wscale=wscale & 0x0F, rcv_wscale=wscale >> 4,
        extra={k: v for k, v in values.items() if k != "ca_state"}, **core)


def tcp_info(sock: socket.socket) -> TcpInfo:
    """``TCP_INFO`` of a TCP socket, decoded. Cheap (one getsockopt), safe to poll every ms."""
    return decode_tcp_info(sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, _BUFSIZE))


def packets_in_flight(extra: dict[str, Any]) -> int:
    """``tcp_packets_in_flight()`` (include/net/tcp.h) from a TcpInfo's ``extra``: packets_out -
    (sacked_out + lost_out) + retrans_out, as tcpi_unacked, tcpi_sacked, tcpi_lost, tcpi_retrans give them.

    >>> packets_in_flight({"unacked": 20, "sacked": 3, "lost": 2, "retrans": 1})
    16
    """
    return extra.get("unacked", 0) - extra.get("sacked", 0) - extra.get("lost", 0) + extra.get("retrans", 0)


def timeline_row(info: TcpInfo) -> dict[str, Any]:
    """One TCP_INFO sample in a timeline's columns (:mod:`tcplab.experiments.timeline`): ms, Mbit/s, packets;
    ``ssthresh`` None while infinite (TCP_INFINITE_SSTHRESH), ``in_flight`` as ``tcp_packets_in_flight()``
    (include/net/tcp.h: packets_out - (sacked_out + lost_out) + retrans_out); a field this kernel did not
    return is None.

    >>> import socket
    >>> with socket.socket() as s:
    ...     row = timeline_row(tcp_info(s))
    >>> row["state"], row["cwnd"], row["ssthresh"]
    ('CLOSE', 10, None)
    """
    x = info.extra
    ss = x.get("snd_ssthresh", INFINITE_SSTHRESH)
    pacing = x.get("pacing_rate")

    def ms(key: str) -> float | None:
        return x[key] / 1000 if key in x else None

    return {"state": info.state, "ca_state": info.ca_state, "cwnd": x.get("snd_cwnd"),
            "ssthresh": None if ss >= 0xFFFF else ss, "srtt_ms": ms("rtt"), "rttvar_ms": ms("rttvar"),
            "rto_ms": info.rto / 1000, "min_rtt_ms": ms("min_rtt"),
            "in_flight": packets_in_flight(x),
            "retransmits": info.retransmits, "total_retrans": info.total_retrans,
            "delivery_rate_mbit": round(x["delivery_rate"] * 8 / 1e6, 3) if "delivery_rate" in x else None,
            "pacing_rate_mbit": round(pacing * 8 / 1e6, 3) if pacing is not None and pacing < 2**63 else None,
            "snd_wnd": x.get("snd_wnd"), "rcv_wnd": x.get("rcv_wnd")}


_SIOCINQ, _SIOCOUTQ = 0x541B, 0x5411   # FIONREAD / TIOCOUTQ; tcp_ioctl() answers them in bytes


def send_recv_queues(sender: socket.socket, receiver: socket.socket) -> tuple[int, int]:
    """(Send-Q of ``sender``, Recv-Q of ``receiver``) in bytes, as ss prints them for ESTABLISHED
    rows: ``ioctl(SIOCOUTQ)`` is write_seq - snd_una, ``ioctl(SIOCINQ)`` rcv_nxt - copied_seq."""
    def ask(s: socket.socket, req: int) -> int:
        buf = array.array("i", [0])
        fcntl.ioctl(s.fileno(), req, buf, True)
        return int(buf[0])
    return ask(sender, _SIOCOUTQ), ask(receiver, _SIOCINQ)
