"""The segments a simulated connection sends, as the ``packets`` table rows ``timeline_of`` draws.

A simulator that already decides when each segment and ACK leaves (a delayed-ACK timer, a write
Nagle holds, a SYN retransmission) writes them down here, in the columns of ``handshake``'s
``packets`` table (``direction`` ``"client->server"`` / ``"server->client"``, absolute ``seq``/``ack``,
``rel_seq``/``rel_ack``, ``payload``, ``options``). Sequence numbers follow from the bytes each end
sent; ISNs are fixed (1000 for the client, 5000 for the server, as the simulated handshake's: the
kernel's are random). ``window`` is None: the simulators that use this do not model the advertised
window. Times are the simulator's, at the point the experiment observes (see each caller).

>>> lad = Ladder()
>>> lad.handshake(0.0)
>>> lad.data(0.001, "client", 100)
>>> lad.ack(0.045, "server")
>>> [(r["direction"], r["flags"], r["rel_seq"], r["rel_ack"], r["payload"]) for r in lad.rows]
... # doctest: +NORMALIZE_WHITESPACE
[('client->server', 'S', 0, None, 0), ('server->client', 'SA', 0, 1, 0), ('client->server', 'A', 1, 1, 0),
 ('client->server', 'PA', 1, 1, 100), ('server->client', 'A', 1, 101, 0)]
"""

from __future__ import annotations

from typing import Any

__all__ = ["Ladder", "ISN", "PACKET_COLUMNS"]

#: the fixed ISNs of a simulated connection (the simulated handshake's)
ISN = {"client": 1000, "server": 5000}
#: the columns of a ``packets`` table (handshake's)
PACKET_COLUMNS = ("t", "direction", "flags", "seq", "ack", "rel_seq", "rel_ack", "window", "payload", "options")
#: the options a Linux SYN carries on lo (simulated handshake's order, without timestamps' values)
_SYN_OPTIONS = "mss=65495, sack_perm, wscale=7"
_OTHER = {"client": "server", "server": "client"}


class Ladder:
    """Builds a connection's segments in time order: each end's next sequence number and what it has
    received (its cumulative ACK) are kept, so a row is only ``(t, end, kind, bytes)``."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self._nxt = {"client": 0, "server": 0}      # relative: the next byte each end sends (SYN = 0)
        self._rcv: dict[str, int | None] = {"client": None, "server": None}   # relative ACK each end sends

    def _row(self, t: float, end: str, flags: str, length: int, *, seq: int | None = None,
             options: str = "") -> None:
        peer = _OTHER[end]
        rel_seq = self._nxt[end] if seq is None else seq
        rel_ack = self._rcv[end] if "A" in flags else None
        self.rows.append({"t": round(t, 9), "direction": f"{end}->{peer}", "flags": flags,
                          "seq": ISN[end] + rel_seq, "ack": 0 if rel_ack is None else ISN[peer] + rel_ack,
                          "rel_seq": rel_seq, "rel_ack": rel_ack, "window": None, "payload": length,
                          "options": options})
        span = length + ("S" in flags) + ("F" in flags)
        if seq is None:
            self._nxt[end] += span
        # the peer receives it (the simulators here lose nothing they draw)
        self._rcv[peer] = max(self._rcv[peer] or 0, rel_seq + span)

    def syn(self, t: float) -> None:
        """The client's SYN (again, for a retransmission: same sequence number)."""
        self._row(t, "client", "S", 0, seq=0, options=_SYN_OPTIONS)
        self._nxt["client"] = 1

    def synack(self, t: float) -> None:
        """The server's SYN-ACK."""
        self._row(t, "server", "SA", 0, options=_SYN_OPTIONS)

    def handshake(self, t: float) -> None:
        """SYN, SYN-ACK, ACK at ``t`` (loopback: no simulated time between them)."""
        self.syn(t)
        self.synack(t)
        self.ack(t, "client")

    def data(self, t: float, end: str, length: int) -> None:
        """``length`` bytes from ``end`` (PA), carrying its ACK of everything it received."""
        if end not in _OTHER or length < 1:
            raise ValueError(f"end must be 'client' or 'server' and length >= 1, not {end!r}, {length!r}")
        self._row(t, end, "PA", length)

    def ack(self, t: float, end: str) -> None:
        """A pure ACK from ``end`` of everything it received."""
        if end not in _OTHER:
            raise ValueError(f"end must be 'client' or 'server', not {end!r}")
        self._row(t, end, "A", 0)
