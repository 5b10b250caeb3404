"""The sender's sliding window, read from a connection's segments (RFC 9293 3.3.1, RFC 7323 2).

Pure: segments in, rows out. Each segment is a dict as :func:`tcplab.kernel.capture.decode_ipv4_tcp`
returns it (``src_port``, ``dst_port``, ``seq``, ``ack``, ``flags``, ``window``, ``options``,
``payload``) plus a time in seconds (``time_key``).

* **Left edge, SND.UNA**: the highest cumulative ACK the receiver has sent.
* **SND.NXT**: the highest ``seq + len`` the sender has sent (a zero-window probe,
  ``tcp_xmit_probe_skb()``'s ``seq = snd_una - 1`` with no data, moves nothing; a SYN or FIN
  takes one sequence number).
* **Right edge**: the ACK plus the window it advertises, the window shifted left by the
  receiver's window scale - the ``wscale`` option of the receiver's own SYN, in effect only
  when both SYNs carry the option (RFC 7323 2.2; ``tcp_rcv_synsent_state_process()`` /
  ``tcp_openreq_init()``). The window of a SYN itself is never scaled.
  It moves as the sender's ``snd_wnd`` does (``tcp_ack_update_window()``, net/ipv4/tcp_input.c): only
  by an ACK ``tcp_may_update_window()`` accepts - one that acknowledges new data, or comes with a
  later sequence number than the last update (SND.WL1), or the same one with a larger window or a
  zero window (the zero-window clause since 2023: ``|| !nwin``, a stable fix; before it only a larger
  window). An ACK older than SND.UNA moves nothing.

Sequence numbers are relative: 0 is the first data byte (the sender's ISN + 1), and they are
unwrapped across 2**32 (each one taken as the nearest to the last one seen).

>>> S, R = 40000, 5000
>>> segs = [
...     {"t": 0.0, "src_port": S, "dst_port": R, "flags": "S", "seq": 2**32 - 10, "ack": 0,
...      "window": 65495, "options": {"wscale": 7}, "payload": 0},
...     {"t": 0.001, "src_port": R, "dst_port": S, "flags": "SA", "seq": 900, "ack": 2**32 - 9,
...      "window": 4096, "options": {"wscale": 2}, "payload": 0},
...     {"t": 0.002, "src_port": S, "dst_port": R, "flags": "PA", "seq": 2**32 - 9, "ack": 901,
...      "window": 512, "options": {}, "payload": 2048},
...     {"t": 0.003, "src_port": R, "dst_port": S, "flags": "A", "seq": 901, "ack": 2039,
...      "window": 512, "options": {}, "payload": 0}]
>>> w = sender_window(segs, sender_port=S)
>>> w.snd_wscale, w.rcv_wscale
(7, 2)
>>> [(r["t_s"], r["snd_una"], r["snd_nxt"], r["right_edge"], r["usable"]) for r in w.rows]
[(0.001, 0, 0, 4096, 4096), (0.002, 0, 2048, 4096, 2048), (0.003, 2048, 2048, 4096, 2048)]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["WINDOW_COLUMNS", "SenderWindow", "sender_window", "unwrap_seq"]

#: the columns of each row of :attr:`SenderWindow.rows`
WINDOW_COLUMNS = ("t_s", "snd_una", "snd_nxt", "right_edge", "window", "in_flight", "usable")
_MOD = 1 << 32
_HALF = 1 << 31
_MAX_WSCALE = 14                 # RFC 7323 2.3: a larger shift is taken as 14 (tcp_parse_options())


def unwrap_seq(raw: int, near: int) -> int:
    """The 64-bit sequence number whose low 32 bits are ``raw``, nearest to ``near`` (RFC 1982's
    serial arithmetic: a number within 2**31 either way of the last one).

    >>> unwrap_seq(5, 2**32 - 3), unwrap_seq(2**32 - 3, 2**32 + 5), unwrap_seq(100, 40)
    (4294967301, 4294967293, 100)
    """
    if not 0 <= raw < _MOD:
        raise ValueError(f"raw must be a 32-bit sequence number in 0..{_MOD - 1}, not {raw!r}")
    d = (raw - near) % _MOD
    return near + (d - _MOD if d >= _HALF else d)


def _after(a: int, b: int | None) -> bool:
    """``after(a, b)`` of include/net/tcp.h: ``a`` is later than ``b`` in 32-bit serial order."""
    return b is not None and 0 < (a - b) % _MOD < _HALF


@dataclass(frozen=True)
class SenderWindow:
    """The sender's window over time: one row (:data:`WINDOW_COLUMNS`) each time a segment moved
    SND.UNA, SND.NXT or the right edge; ``window`` is ``right_edge - snd_una`` (the advertised
    window, scaled), ``in_flight`` ``snd_nxt - snd_una``, ``usable`` ``right_edge - snd_nxt``."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    snd_wscale: int | None = None      # the shift the sender offered on its SYN (None: no option)
    rcv_wscale: int | None = None      # the shift the receiver offered on its SYN-ACK (None: no option)
    scaling: bool = False              # both offered: the receiver's windows are shifted by rcv_wscale

    @property
    def shift(self) -> int:
        """The shift applied to the receiver's (non-SYN) windows."""
        return min(self.rcv_wscale or 0, _MAX_WSCALE) if self.scaling else 0


def sender_window(segments: Iterable[Mapping[str, Any]], sender_port: int, *, time_key: str = "t",
                  t0: float = 0.0, ndigits: int = 4) -> SenderWindow:
    """Derive the sender's window edges from the connection's segments, in time order.

    ``sender_port``: the data sender's TCP port (the other port is the receiver). ``t0`` is
    subtracted from each segment's ``time_key``. The handshake must be among the segments
    (its SYNs carry the ISN and the window-scale options): ``ValueError`` otherwise.
    """
    if isinstance(sender_port, bool) or not isinstance(sender_port, int) or not 0 < sender_port < 65536:
        raise ValueError(f"sender_port must be a TCP port in 1..65535, not {sender_port!r}")
    segs = sorted(segments, key=lambda s: s[time_key])
    syn = next((s for s in segs if s["src_port"] == sender_port and "S" in s["flags"] and "A" not in s["flags"]), None)
    synack = next((s for s in segs if s["dst_port"] == sender_port and "S" in s["flags"] and "A" in s["flags"]), None)
    if syn is None or synack is None:
        raise ValueError("segments must include the handshake (the sender's SYN and the receiver's SYN-ACK): "
                         "their options say the window scale")
    snd_ws, rcv_ws = syn["options"].get("wscale"), synack["options"].get("wscale")
    out = SenderWindow(snd_wscale=snd_ws, rcv_wscale=rcv_ws, scaling=snd_ws is not None and rcv_ws is not None)
    shift = out.shift
    base = syn["seq"] + 1                     # relative 0: the first data byte
    last = base                               # the last absolute (unwrapped) sequence number seen
    una = nxt = right = wl1 = None
    state = None
    for s in segs:
        if s["src_port"] == sender_port:
            if "R" in s["flags"] or s is syn or "S" in s["flags"]:
                continue
            last = unwrap_seq(s["seq"], last)
            end = last + s["payload"] + (1 if "F" in s["flags"] else 0)
            nxt = end if nxt is None else max(nxt, end)
        elif s["dst_port"] == sender_port and "A" in s["flags"] and "R" not in s["flags"]:
            ack = unwrap_seq(s["ack"], last)
            if una is not None and ack < una:
                continue                      # an old ACK: moves neither edge (tcp_may_update_window())
            wnd = s["window"] if "S" in s["flags"] else s["window"] << shift
            seq = s["seq"]
            if una is None or ack > una or _after(seq, wl1) or (seq == wl1 and (wnd > right - una or wnd == 0)):
                right, wl1 = ack + wnd, seq                # tcp_may_update_window(): snd_wnd follows this ACK
            una = ack
            last = ack
        else:
            continue
        if una is None:
            continue
        n = max(nxt if nxt is not None else base, una)
        row = (una - base, n - base, right - base)
        if row != state:
            state = row
            u, x, r = row
            out.rows.append({"t_s": round(s[time_key] - t0, ndigits), "snd_una": u, "snd_nxt": x, "right_edge": r,
                             "window": r - u, "in_flight": x - u, "usable": r - x})
    return out
