"""The 11 TCP states (Linux names and numbers) and RFC 9293's transitions as data.

Like h11's ``_state.py``: the rules live in one table, :data:`TRANSITIONS`
(``{state: {event: next_state}}``); the endpoint only looks things up, and the
course draws its state diagram from :func:`edges`, so code and picture cannot drift.

Numbers are Linux's, from ``include/net/tcp_states.h`` (``TCP_ESTABLISHED = 1`` ...),
which is also what ``/proc/net/tcp`` prints in hex in its ``st`` column.

>>> TcpState.ESTABLISHED.value, TcpState(0x0A).name
(1, 'LISTEN')
>>> next_state(TcpState.LISTEN, "rcv_syn").name
'SYN_RECV'
>>> next_state(TcpState.CLOSE, "rcv_fin")  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
IllegalTransition: event 'rcv_fin' is not allowed in state CLOSE (allowed: app_connect, app_listen)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from enum import IntEnum
from typing import Any, NamedTuple

from tcplab.errors import TcpLabError

__all__ = ["TcpState", "STATE_NAMES", "TIMER_NAMES", "EVENTS", "TRANSITIONS", "IllegalTransition", "next_state",
           "edges", "Edge", "reachable", "SegmentFollower", "follow_segments", "time_wait_end"]


class TcpState(IntEnum):
    """Linux ``include/net/tcp_states.h``. CLOSE is RFC 9293's CLOSED."""

    ESTABLISHED = 1
    SYN_SENT = 2
    SYN_RECV = 3
    FIN_WAIT1 = 4
    FIN_WAIT2 = 5
    TIME_WAIT = 6
    CLOSE = 7
    CLOSE_WAIT = 8
    LAST_ACK = 9
    LISTEN = 10
    CLOSING = 11


#: ``{number: name}`` of every state: what ``/proc/net/tcp`` (``st``, hex) and sock_diag
#: (``idiag_state``) carry. The kernel layer decodes with this table.
STATE_NAMES: dict[int, str] = {s.value: s.name for s in TcpState}

#: Which timer is pending on a socket, by number: the ``tr`` field of ``/proc/net/tcp``
#: (``get_tcp4_sock()``: 1 retransmit/loss probe, 4 zero-window probe, 2 keepalive) and
#: ``idiag_timer`` of sock_diag (``inet_sk_diag_fill()``, same numbers); 3 is a TIME_WAIT
#: socket's timer (``get_timewait4_sock()``).
TIMER_NAMES: dict[int, str] = {0: "off", 1: "retransmit", 2: "keepalive", 3: "time_wait", 4: "probe"}


class IllegalTransition(TcpLabError, ValueError):
    """An event that the state table does not allow in the current state.

    It is both a :class:`tcplab.errors.TcpLabError` and a :class:`ValueError`
    (the caller asked for something the protocol forbids). The endpoint raising it
    is left unchanged.
    """

    def __init__(self, state: TcpState, event: str) -> None:
        self.state = state
        self.event = event
        allowed = ", ".join(sorted(TRANSITIONS.get(state, {})))
        super().__init__(f"event {event!r} is not allowed in state {state.name} (allowed: {allowed})")


S = TcpState

#: Every event name used in :data:`TRANSITIONS`, with what it means.
EVENTS: dict[str, str] = {
    "app_connect": "application calls connect(): send SYN",
    "app_listen": "application calls listen()",
    "app_send": "application sends data on a listener/SYN_SENT (RFC 9293: LISTEN -> SYN_SENT)",
    "app_close": "application calls close() or shutdown(SHUT_WR): send FIN (or just close)",
    "rcv_syn": "a SYN arrives",
    "rcv_syn_ack": "a SYN-ACK arrives",
    "rcv_ack": "an ACK arrives that acknowledges our SYN or FIN",
    "rcv_fin": "a FIN arrives (not acknowledging our FIN)",
    "rcv_fin_ack": "a FIN arrives that also acknowledges our FIN",
    "rcv_rst": "a valid RST arrives",
    "timeout": "the retransmission / SYN-ACK budget is exhausted (tcp_syn_retries, tcp_synack_retries)",
    "timeout_2msl": "TIME_WAIT ends (TCP_TIMEWAIT_LEN, 60 s on Linux)",
    "timeout_fin_wait2": "an orphaned FIN_WAIT2 times out (tcp_fin_timeout)",
    "app_abort": "close() with SO_LINGER {1, 0} or unread data: send RST",
}

# RFC 9293 section 3.3.2 (figure 5) plus the RST/abort/timeout edges Linux takes.
# Why some edges exist:
# * SYN_SENT --rcv_syn--> SYN_RECV is simultaneous open (RFC 9293 3.5, figure 8).
# * FIN_WAIT1 --rcv_fin--> CLOSING is simultaneous close (figure 13).
# * SYN_RECV --rcv_rst--> LISTEN: a passive open returns to LISTEN (RFC 9293 3.10.7.4);
#   in Linux the request sock is just freed and the listener stays LISTEN.
# * FIN_WAIT2 --timeout_fin_wait2--> CLOSE is Linux-only: an *orphaned* FIN_WAIT2 is
#   moved to a timewait mini-socket that dies after tcp_fin_timeout (tcp_rcv_state_process).
# * CLOSE_WAIT has no timer at all (docs/kernel-facts.md case 6), so it has no timeout edge.
TRANSITIONS: dict[TcpState, dict[str, TcpState]] = {
    S.CLOSE: {
        "app_listen": S.LISTEN,
        "app_connect": S.SYN_SENT,
    },
    S.LISTEN: {
        "rcv_syn": S.SYN_RECV,
        "app_send": S.SYN_SENT,
        "app_close": S.CLOSE,
    },
    S.SYN_SENT: {
        "rcv_syn_ack": S.ESTABLISHED,
        "rcv_syn": S.SYN_RECV,
        "app_close": S.CLOSE,
        "rcv_rst": S.CLOSE,
        "timeout": S.CLOSE,
    },
    S.SYN_RECV: {
        "rcv_ack": S.ESTABLISHED,
        "app_close": S.FIN_WAIT1,
        "rcv_rst": S.LISTEN,
        "timeout": S.CLOSE,
        "app_abort": S.CLOSE,
    },
    S.ESTABLISHED: {
        "app_close": S.FIN_WAIT1,
        "rcv_fin": S.CLOSE_WAIT,
        "rcv_rst": S.CLOSE,
        "app_abort": S.CLOSE,
    },
    S.FIN_WAIT1: {
        "rcv_ack": S.FIN_WAIT2,
        "rcv_fin": S.CLOSING,
        "rcv_fin_ack": S.TIME_WAIT,
        "rcv_rst": S.CLOSE,
        "app_abort": S.CLOSE,
    },
    S.FIN_WAIT2: {
        "rcv_fin": S.TIME_WAIT,
        "timeout_fin_wait2": S.CLOSE,
        "rcv_rst": S.CLOSE,
        "app_abort": S.CLOSE,
    },
    S.CLOSE_WAIT: {
        "app_close": S.LAST_ACK,
        "rcv_rst": S.CLOSE,
        "app_abort": S.CLOSE,
    },
    S.CLOSING: {
        "rcv_ack": S.TIME_WAIT,
        "rcv_rst": S.CLOSE,
    },
    S.LAST_ACK: {
        "rcv_ack": S.CLOSE,
        "rcv_rst": S.CLOSE,
    },
    S.TIME_WAIT: {
        "timeout_2msl": S.CLOSE,
        "rcv_rst": S.CLOSE,
    },
}


def time_wait_end(client_states: Sequence[str], server_states: Sequence[str]) -> str | None:
    """Which end's last state is TIME_WAIT: ``"client"``, ``"server"``, ``"both"`` or None.

    The end that closes first takes the other's FIN in FIN_WAIT2 (or CLOSING) and waits there
    (``tcp_fin()`` -> ``tcp_time_wait(sk, TCP_TIME_WAIT, 0)``, net/ipv4/tcp_input.c); the end that
    closes second goes LAST_ACK -> CLOSE. TIME_WAIT lasts 60 s, longer than any lifecycle run.

    >>> time_wait_end(["ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"], ["ESTABLISHED", "CLOSE_WAIT"])
    'client'
    >>> time_wait_end(["ESTABLISHED", "CLOSE"], ["ESTABLISHED", "CLOSE"]) is None
    True
    """
    ends = [end for end, states in (("client", client_states), ("server", server_states))
            if states and states[-1] == "TIME_WAIT"]
    return "both" if len(ends) == 2 else (ends[0] if ends else None)


def next_state(state: TcpState, event: str) -> TcpState:
    """Look up the state after ``event``; raise :class:`IllegalTransition` if not allowed."""
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise IllegalTransition(state, event) from None


class Edge(NamedTuple):
    """One arrow of the state diagram."""

    src: TcpState
    event: str
    dst: TcpState
    label: str


def edges() -> Iterator[Edge]:
    """Yield every arrow of the diagram, in table order (for drawing).

    >>> e = next(edges()); (e.src.name, e.event, e.dst.name)
    ('CLOSE', 'app_listen', 'LISTEN')
    """
    for src, row in TRANSITIONS.items():
        for event, dst in row.items():
            yield Edge(src, event, dst, EVENTS[event])


def reachable(start: TcpState) -> set[TcpState]:
    """All states reachable from ``start`` following the table (``start`` included).

    >>> TcpState.CLOSING in reachable(TcpState.CLOSE)
    True
    """
    seen = {start}
    todo = [start]
    while todo:
        for dst in TRANSITIONS[todo.pop()].values():
            if dst not in seen:
                seen.add(dst)
                todo.append(dst)
    return seen


def _covers(ack: int, end: int | None) -> bool:
    """``ack`` acknowledges everything before ``end`` (32-bit sequence arithmetic)."""
    return end is not None and ((ack - end) & 0xFFFFFFFF) < 0x80000000


class SegmentFollower:
    """One end of a connection, followed through :data:`TRANSITIONS` by the segments it sends
    and receives (as a capture on the wire shows them), not by watching the socket.

    Every transition of RFC 9293's diagram except the timeouts is a segment sent or received:
    the end's own SYN (``app_connect``), FIN (``app_close``) or RST (``app_abort``), or a peer's
    SYN, SYN-ACK, ACK of our SYN/FIN, FIN or RST. A received segment is processed in RFC 9293's
    order (3.10.7.4: RST, SYN, then ACK, then FIN), as ``tcp_rcv_state_process()`` does, so a FIN
    that also acknowledges our FIN takes FIN_WAIT1 -> FIN_WAIT2 -> TIME_WAIT (Linux sets
    FIN_WAIT2 before ``tcp_fin()`` moves to TIME_WAIT; the diagram's ``rcv_fin_ack`` arrow is
    the two steps at once). Segments that change nothing (data, window updates, retransmitted
    SYNs and FINs, duplicate ACKs) are ignored. The table decides every step: a segment whose
    event the current state does not allow changes nothing, and is counted in ``ignored``.

    ``start`` is CLOSE for the end that calls connect() and LISTEN for the end that accepts
    (its listener). ``states`` lists the states entered, in order (without ``start``).

    >>> c = SegmentFollower(TcpState.CLOSE)
    >>> c.sent("S", seq=100, ack=0); c.received("SA", seq=900, ack=101)
    >>> c.sent("FA", seq=101, ack=901); c.received("A", seq=901, ack=102); c.received("FA", seq=901, ack=102)
    >>> [s.name for s in c.states]
    ['SYN_SENT', 'ESTABLISHED', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT']
    """

    def __init__(self, start: TcpState = TcpState.CLOSE) -> None:
        self.state = start
        self.states: list[TcpState] = []
        self.events: list[str] = []
        self.ignored = 0
        self._syn_end: int | None = None   # sequence number just after our SYN
        self._fin_end: int | None = None   # sequence number just after our FIN

    def _fire(self, event: str) -> bool:
        nxt = TRANSITIONS[self.state].get(event)
        if nxt is None:
            self.ignored += 1
            return False
        self.state = nxt
        self.states.append(nxt)
        self.events.append(event)
        return True

    def sent(self, flags: str, seq: int, ack: int = 0, length: int = 0) -> None:
        """This end sent a segment (``flags`` as tcpdump reads them: "S", "SA", "FA", "RA", ...)."""
        if "R" in flags:
            self._fire("app_abort")
            return
        if "S" in flags:
            self._syn_end = (seq + 1) & 0xFFFFFFFF
            if "A" not in flags and self.state is S.CLOSE:
                self._fire("app_connect")
            return      # a SYN-ACK follows a received SYN, which already moved this end
        if "F" in flags:
            self._fin_end = (seq + length + 1) & 0xFFFFFFFF
            # a FIN leaves ESTABLISHED, SYN_RECV or CLOSE_WAIT; anywhere else it is a retransmission
            if self.state in (S.ESTABLISHED, S.SYN_RECV, S.CLOSE_WAIT):
                self._fire("app_close")

    def received(self, flags: str, seq: int, ack: int = 0, length: int = 0) -> None:
        """This end received a segment from its peer."""
        if "R" in flags:
            self._fire("rcv_rst")
            return
        if "S" in flags:
            if "A" in flags and self.state is S.SYN_SENT and _covers(ack, self._syn_end):
                self._fire("rcv_syn_ack")
                return
            if "A" not in flags and self.state in (S.LISTEN, S.SYN_SENT):
                self._fire("rcv_syn")
                return
        if "A" in flags:
            if self.state is S.SYN_RECV and _covers(ack, self._syn_end):
                self._fire("rcv_ack")
            if self.state in (S.FIN_WAIT1, S.CLOSING, S.LAST_ACK) and _covers(ack, self._fin_end):
                self._fire("rcv_ack")
        if "F" in flags and self.state in (S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2):
            self._fire("rcv_fin")


def follow_segments(segments: Iterable[Mapping[str, Any]], local: tuple[str, int],
                    remote: tuple[str, int] | None, start: TcpState) -> SegmentFollower:
    """Follow the end at ``local`` (address, port) through ``segments`` in capture order.

    ``segments`` are dicts as :func:`tcplab.kernel.capture.decode_ipv4_tcp` gives them (src,
    src_port, dst, dst_port, flags, seq, ack, payload); only those between ``local`` and
    ``remote`` count. ``remote=None`` (or equal to ``local``) is a socket connected to itself
    (simultaneous open): each of its segments is first sent, then received, by the same end.

    >>> segs = [dict(src="127.0.0.1", src_port=5, dst="127.0.0.1", dst_port=5, flags=f, seq=q, ack=a, payload=0)
    ...         for f, q, a in (("S", 7, 0), ("SA", 7, 8), ("FA", 8, 8), ("A", 9, 9))]
    >>> [s.name for s in follow_segments(segs, ("127.0.0.1", 5), None, TcpState.CLOSE).states]
    ['SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT1', 'CLOSING', 'TIME_WAIT']
    """
    f = SegmentFollower(start)
    peer = local if remote is None else remote
    for seg in segments:
        src, dst = (seg["src"], seg["src_port"]), (seg["dst"], seg["dst_port"])
        args = (seg["flags"], seg["seq"], seg["ack"], seg.get("payload", 0))
        if src == local and dst == peer:
            f.sent(*args)
        if dst == local and src == peer:
            f.received(*args)
    return f
