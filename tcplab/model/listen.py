"""The Linux listen-queue rules of docs/kernel-facts.md as a pure object.

A :class:`Listener` holds the SYN queue (request socks, ``SYN_RECV``) and the accept
queue (established children not yet accept()ed) and counts what the kernel counts,
where the kernel counts it. Time is passed in; nothing here knows about a clock.

Rules, in the order ``tcp_conn_request()`` (net/ipv4/tcp_input.c) applies them to a SYN:

1. ``if ((syncookies == 2 || inet_csk_reqsk_queue_is_full(sk)) && !isn)``:
   ``tcp_syn_flood_action()`` counts TCPReqQFullDoCookies (cookies on) or TCPReqQFullDrop
   (cookies off, then ``goto drop`` -> ListenDrops). ``inet_csk_reqsk_queue_is_full`` is
   ``qlen > sk_max_ack_backlog`` since v6.13, ``>=`` before (profile ``synq_full_strict``).
2. ``if (sk_acceptq_is_full(sk))``: ListenOverflows, ``goto drop`` (ListenDrops).
   ``sk_acceptq_is_full`` is ``sk_ack_backlog > sk_max_ack_backlog``: backlog N holds N+1.
3. Without cookies and unless the peer is proven: ``max_syn_backlog - qlen < max_syn_backlog >> 2``
   -> ``drop_and_release`` (ListenDrops only): the "3/4 rule", the only use of tcp_max_syn_backlog.
4. A cookie SYN-ACK counts SyncookiesSent and keeps no state; otherwise a request is queued.

On the ACK (``tcp_check_req()``, net/ipv4/tcp_minisocks.c):

* TCP_DEFER_ACCEPT and a bare ACK: ``acked = 1``, TCPDeferAcceptDrop, the request stays.
* ``tcp_v4_syn_recv_sock()``: accept queue full -> ListenOverflows + ListenDrops; then
  ``tcp_abort_on_overflow`` 0 keeps the request (``acked = 1``), 1 sends a RST (EmbryonicRsts).
* A cookie ACK (``cookie_v4_check``) counts SyncookiesRecv and builds the child at once;
  if the accept queue is full (``tcp_get_cookie_sock()``: ``syn_recv_sock()`` returns NULL,
  ListenOverflows + ListenDrops) the segment is just discarded: a cookie connection is never
  RST, the client is ESTABLISHED and the server has nothing (a "phantom").

SYN retransmissions whose RTO timers expire in the same timer tick (profile ``timer_tick``)
are sent by one timer softirq; on loopback every SYN of that burst is queued to the backlog
and processed (SYN queue / cookie / accept-queue decisions) before any of their ACKs
(:meth:`Listener.on_syn_burst`). First SYNs from connect() are one at a time (:meth:`connect`).

>>> L = Listener(backlog=5)
>>> out = L.on_syn_burst(1.0, range(14))
>>> [r for _, _, r in out].count("child"), [r for _, _, r in out].count("discarded")
(6, 8)
>>> {k: v for k, v in L.counters.items() if v and k != "PassiveOpens"}
... # doctest: +NORMALIZE_WHITESPACE
{'ListenOverflows': 8, 'ListenDrops': 8, 'TCPReqQFullDoCookies': 8, 'SyncookiesSent': 8,
 'SyncookiesRecv': 8}

>>> L = Listener(backlog=1)
>>> [L.connect(0.0) for _ in range(3)]
['established', 'established', 'dropped']
>>> L.recv_q, L.send_q, L.counters["ListenOverflows"]
(2, 1, 1)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from tcplab.model.profiles import KernelProfile, get_profile
from tcplab.model.synack import defer_accept_retrans, syn_ack_recalc, synack_retry_limit, synack_timeout

__all__ = ["Listener", "Request", "Child", "COUNTER_NAMES", "new_counters",
           "Syn", "SYN_COUNTERS", "Ack", "ACK_COUNTERS"]

#: Counters the model maintains (kernel names; TcpExt unless noted).
COUNTER_NAMES = (
    "ListenOverflows", "ListenDrops", "TCPReqQFullDrop", "TCPReqQFullDoCookies",
    "SyncookiesSent", "SyncookiesRecv", "SyncookiesFailed", "EmbryonicRsts", "TCPDeferAcceptDrop",
    "TCPTimeouts", "TCPSynRetrans", "TCPAbortOnTimeout", "TW", "TWRecycled",
    "TCPTimeWaitOverflow", "TCPAbortOnData", "TCPAbortOnClose",
    # /proc/net/snmp Tcp:
    "ActiveOpens", "PassiveOpens", "AttemptFails", "EstabResets", "OutRsts", "RetransSegs",
)


def new_counters() -> dict[str, int]:
    """A fresh counter dict with every name at 0 (one per simulated network namespace)."""
    return dict.fromkeys(COUNTER_NAMES, 0)


class Syn(IntEnum):
    """What ``tcp_conn_request()`` does with a SYN (:meth:`Listener.syn_verdict`)."""

    REQUEST = 0                  # a request sock is queued (SYN_RECV)
    COOKIE = 1                   # SYN queue full, cookies on: a syncookie SYN-ACK, no state kept
    DROP_SYNQ_FULL = 2           # SYN queue full, cookies off (tcp_syn_flood_action)
    DROP_ACCEPTQ_FULL = 3        # accept queue full (sk_acceptq_is_full)
    DROP_ACCEPTQ_FULL_COOKIE = 4  # the same after a cookie was intended
    DROP_THREE_QUARTERS = 5      # cookies off, SYN queue past 3/4 of tcp_max_syn_backlog

    @property
    def dropped(self) -> bool:
        return self >= Syn.DROP_SYNQ_FULL


#: The counters ``tcp_conn_request()`` bumps for each :class:`Syn` verdict, one each
#: (ListenDrops is ``tcp_listendrop()`` at ``drop:``; the 3/4 rule has no counter of its own).
SYN_COUNTERS: dict[Syn, tuple[str, ...]] = {
    Syn.REQUEST: (),
    Syn.COOKIE: ("TCPReqQFullDoCookies", "SyncookiesSent"),
    Syn.DROP_SYNQ_FULL: ("TCPReqQFullDrop", "ListenDrops"),
    Syn.DROP_ACCEPTQ_FULL: ("ListenOverflows", "ListenDrops"),
    Syn.DROP_ACCEPTQ_FULL_COOKIE: ("TCPReqQFullDoCookies", "ListenOverflows", "ListenDrops"),
    Syn.DROP_THREE_QUARTERS: ("ListenDrops",),
}


class Ack(IntEnum):
    """What the handshake ACK does (:meth:`Listener.ack_verdict`)."""

    CHILD = 0                    # a child is queued for accept()
    COOKIE_CHILD = 1             # a valid cookie: the child is built at once
    DEFERRED = 2                 # TCP_DEFER_ACCEPT and a bare ACK: the request stays, acked
    OVERFLOW = 3                 # accept queue full, tcp_abort_on_overflow=0: request stays, acked
    RESET = 4                    # accept queue full, tcp_abort_on_overflow=1: RST, request gone
    COOKIE_DISCARDED = 5         # a cookie ACK while the accept queue is full: dropped, no RST
    UNKNOWN = 6                  # no request and no cookie


#: The counters each :class:`Ack` verdict bumps, one each (``tcp_check_req()``,
#: ``tcp_v4_syn_recv_sock()``, ``cookie_v4_check()``).
ACK_COUNTERS: dict[Ack, tuple[str, ...]] = {
    Ack.CHILD: ("PassiveOpens",),
    Ack.COOKIE_CHILD: ("SyncookiesRecv", "PassiveOpens"),
    Ack.DEFERRED: ("TCPDeferAcceptDrop",),
    Ack.OVERFLOW: ("ListenOverflows", "ListenDrops"),
    Ack.RESET: ("ListenOverflows", "ListenDrops", "EmbryonicRsts", "OutRsts"),
    Ack.COOKIE_DISCARDED: ("SyncookiesRecv", "ListenOverflows", "ListenDrops"),
    Ack.UNKNOWN: (),
}

#: what :meth:`Listener.on_ack` answers for each verdict
_ACK_RESULT = {Ack.CHILD: "child", Ack.COOKIE_CHILD: "child", Ack.DEFERRED: "deferred", Ack.OVERFLOW: "overflow",
               Ack.RESET: "reset", Ack.COOKIE_DISCARDED: "discarded", Ack.UNKNOWN: "unknown"}


@dataclass
class Request:
    """A request sock in the SYN queue (``/proc/net/tcp`` shows it as SYN_RECV)."""

    peer: Any
    created: float
    acked: bool = False          # inet_rsk(req)->acked: the ACK came but was not acted on
    num_timeout: int = 0         # SYN-ACK retransmissions so far
    next_timer: float = 0.0      # when the reqsk timer fires next


@dataclass
class Child:
    """An established child socket waiting in the accept queue."""

    peer: Any
    created: float
    via_cookie: bool = False


@dataclass
class Listener:
    """A listening socket with the Linux 6.x queue rules (see the module docstring).

    ``None`` sysctls take the profile's default. ``defer_accept`` is TCP_DEFER_ACCEPT
    (a bare ACK does not complete the handshake).
    """

    backlog: int
    profile: KernelProfile | str | None = None
    somaxconn: int | None = None
    syncookies: int | None = None
    max_syn_backlog: int | None = None
    abort_on_overflow: bool | None = None
    synack_retries: int | None = None
    defer_accept: bool = False
    #: TCP_DEFER_ACCEPT seconds when ``defer_accept`` (the syn_queue experiment's listener uses 30)
    defer_accept_s: int = 30
    counters: dict[str, int] = field(default_factory=new_counters)

    def __post_init__(self) -> None:
        p = self.profile = get_profile(self.profile)
        if self.somaxconn is None:
            self.somaxconn = p.somaxconn
        if self.syncookies is None:
            self.syncookies = p.syncookies
        if self.max_syn_backlog is None:
            self.max_syn_backlog = p.max_syn_backlog
        if self.abort_on_overflow is None:
            self.abort_on_overflow = bool(p.abort_on_overflow)
        if self.synack_retries is None:
            self.synack_retries = p.synack_retries
        # __sys_listen_socket(): if ((unsigned int)backlog > somaxconn) backlog = somaxconn;
        self.max_ack_backlog: int = min(self.backlog, self.somaxconn)
        self.accept_queue: deque[Child] = deque()
        self.syn_queue: dict[Any, Request] = {}

    # -- what ss shows -----------------------------------------------------------------
    @property
    def recv_q(self) -> int:
        """``ss`` Recv-Q of the LISTEN row: the accept-queue length (``sk_ack_backlog``)."""
        return len(self.accept_queue)

    @property
    def send_q(self) -> int:
        """``ss`` Send-Q of the LISTEN row: the limit ``min(backlog, somaxconn)``."""
        return self.max_ack_backlog

    @property
    def syn_recv(self) -> int:
        """Request socks in the SYN queue (``inet_csk_reqsk_queue_len``)."""
        return len(self.syn_queue)

    @property
    def accept_capacity(self) -> int:
        """Completed connections held before SYNs are dropped: the first length
        :meth:`acceptq_is_full` calls full, ``min(backlog, somaxconn) + 1``."""
        return self.max_ack_backlog + 1

    @property
    def syn_capacity(self) -> int:
        """Requests the SYN queue holds (docs/kernel-facts.md cases 4 and 8): the first length
        :meth:`reqsk_queue_is_full` calls full (backlog + 1 since 6.13, backlog before), and with
        syncookies=0 also the 3/4 rule's ``max_syn_backlog - max_syn_backlog/4 + 1``; 0 with cookies only."""
        if self.syncookies == 2:
            return 0
        limit = self.max_ack_backlog + (1 if self.profile.synq_full_strict else 0)
        if self.syncookies == 0:
            limit = min(limit, self.max_syn_backlog - (self.max_syn_backlog >> 2) + 1)
        return limit

    # -- the rules ---------------------------------------------------------------------
    def acceptq_is_full(self, acceptq_len: int | None = None) -> bool:
        """``sk_acceptq_is_full()``: ``sk_ack_backlog > sk_max_ack_backlog`` (this listener's
        accept queue, or one of ``acceptq_len``)."""
        n = len(self.accept_queue) if acceptq_len is None else acceptq_len
        return n > self.max_ack_backlog

    def reqsk_queue_is_full(self, qlen: int | None = None) -> bool:
        """``inet_csk_reqsk_queue_is_full()``: ``>`` since v6.13, ``>=`` before (this
        listener's SYN queue, or one of ``qlen`` requests)."""
        if qlen is None:
            qlen = len(self.syn_queue)
        if self.profile.synq_full_strict:
            return qlen > self.max_ack_backlog
        return qlen >= self.max_ack_backlog

    def syn_verdict(self, qlen: int, acceptq_len: int, proven: bool = False) -> Syn:
        """``tcp_conn_request()`` for a SYN meeting ``qlen`` requests and ``acceptq_len``
        children (pure: counts nothing; :data:`SYN_COUNTERS` says what it counts).

        >>> L = Listener(backlog=100, syncookies=0, max_syn_backlog=16)
        >>> [L.syn_verdict(q, 0).name for q in (0, 12, 13, 101)]
        ['REQUEST', 'REQUEST', 'DROP_THREE_QUARTERS', 'DROP_SYNQ_FULL']
        >>> L.syn_verdict(0, 101).name, Listener(backlog=4).syn_verdict(5, 5).name
        ('DROP_ACCEPTQ_FULL', 'DROP_ACCEPTQ_FULL_COOKIE')
        """
        cookies = self.syncookies
        want_cookie = False
        if cookies == 2 or self.reqsk_queue_is_full(qlen):
            if not cookies:                      # tcp_syn_flood_action(): no cookies
                return Syn.DROP_SYNQ_FULL
            want_cookie = True
        if acceptq_len > self.max_ack_backlog:   # sk_acceptq_is_full()
            return Syn.DROP_ACCEPTQ_FULL_COOKIE if want_cookie else Syn.DROP_ACCEPTQ_FULL
        if want_cookie:
            return Syn.COOKIE
        mx = self.max_syn_backlog
        if not cookies and mx - qlen < (mx >> 2) and not proven:   # drop_and_release
            return Syn.DROP_THREE_QUARTERS
        return Syn.REQUEST

    def ack_verdict(self, acceptq_len: int, *, cookie: bool = False, has_request: bool = True,
                    bare: bool = True) -> Ack:
        """The handshake ACK meeting ``acceptq_len`` children: a cookie ACK, or the ACK of a
        request (``has_request``: the SYN queue holds one for this peer; ``bare``: the ACK
        carries no data). Pure; :data:`ACK_COUNTERS` says what it counts.

        >>> L = Listener(backlog=0)
        >>> L.ack_verdict(1, cookie=True).name, L.ack_verdict(1).name, L.ack_verdict(0).name
        ('COOKIE_DISCARDED', 'OVERFLOW', 'CHILD')
        """
        full = acceptq_len > self.max_ack_backlog
        if cookie:                               # cookie_v4_check() -> tcp_get_cookie_sock()
            return Ack.COOKIE_DISCARDED if full else Ack.COOKIE_CHILD
        if not has_request:
            return Ack.UNKNOWN
        if self.defer_accept and bare:           # num_timeout < rskq_defer_accept && bare ACK
            return Ack.DEFERRED
        if full:                                 # tcp_v4_syn_recv_sock(): exit_overflow
            return Ack.RESET if self.abort_on_overflow else Ack.OVERFLOW
        return Ack.CHILD

    def count(self, names: tuple[str, ...], n: int = 1) -> None:
        """Add ``n`` to each counter of ``names`` (a :data:`SYN_COUNTERS` / :data:`ACK_COUNTERS` row)."""
        c = self.counters
        for name in names:
            c[name] += n

    def on_syn(self, now: float, peer: Any, *, proven: bool = False) -> str:
        """A SYN from ``peer``. Returns "request", "cookie" or "dropped" (``tcp_conn_request``)."""
        v = self.syn_verdict(len(self.syn_queue), len(self.accept_queue), proven)
        self.count(SYN_COUNTERS[v])
        if v is Syn.REQUEST:
            self.syn_queue[peer] = Request(peer, now, next_timer=now + self.profile.rto_initial)
            return "request"
        return "cookie" if v is Syn.COOKIE else "dropped"

    def on_ack(self, now: float, peer: Any, *, cookie: bool = False, bare: bool = True) -> str:
        """The handshake ACK from ``peer``.

        Returns "child" (queued for accept), "deferred" (TCP_DEFER_ACCEPT kept the request),
        "overflow" (accept queue full, request kept with ``acked``), "reset" (abort_on_overflow:
        RST sent, request gone), "discarded" (cookie ACK while the accept queue is full)
        or "unknown" (no request and no cookie).
        """
        req = None if cookie else self.syn_queue.get(peer)
        v = self.ack_verdict(len(self.accept_queue), cookie=cookie, has_request=req is not None, bare=bare)
        self.count(ACK_COUNTERS[v])
        if v is Ack.COOKIE_CHILD:
            self.accept_queue.append(Child(peer, now, via_cookie=True))
        elif v is Ack.CHILD:
            del self.syn_queue[peer]
            self.accept_queue.append(Child(peer, now))
        elif v is Ack.DEFERRED or v is Ack.OVERFLOW:
            req.acked = True                     # type: ignore[union-attr]  # wait for a retransmit
        elif v is Ack.RESET:
            del self.syn_queue[peer]             # embryonic_reset:
        return _ACK_RESULT[v]

    def connect(self, now: float, peer: Any = None) -> str:
        """A loopback connect(): SYN, SYN-ACK and ACK all run inside the call (docs/kernel-facts.md
        "surprise" 5). Returns "established" or "dropped"."""
        if peer is None:
            peer = object()
        verdict = self.on_syn(now, peer)
        if verdict == "dropped":
            return "dropped"
        result = self.on_ack(now, peer, cookie=verdict == "cookie")
        return "reset" if result == "reset" else "established"

    def on_syn_burst(self, now: float, peers: Any) -> list[tuple[Any, str, str]]:
        """SYNs from ``peers`` that arrive together (one timer softirq's retransmissions):
        every SYN goes through :meth:`on_syn` first, then the ACKs of the survivors, in the
        same order, through :meth:`on_ack` (loopback RTT 0). Returns ``(peer, verdict, result)``
        per SYN; ``result`` is "dropped" for a dropped SYN, else :meth:`on_ack`'s answer."""
        verdicts = [(p, self.on_syn(now, p)) for p in peers]
        return [(p, v, "dropped" if v == "dropped" else self.on_ack(now, p, cookie=v == "cookie"))
                for p, v in verdicts]

    def accept(self, now: float) -> Child | None:
        """The application's accept(): the oldest child, or None if the queue is empty."""
        return self.accept_queue.popleft() if self.accept_queue else None

    # -- the reqsk timer ----------------------------------------------------------------
    def next_timer(self) -> float | None:
        """When the earliest request's SYN-ACK timer fires (None with an empty SYN queue)."""
        if not self.syn_queue:
            return None
        return min(r.next_timer for r in self.syn_queue.values())

    def on_timer(self, now: float) -> list[tuple[str, Any]]:
        """Fire due reqsk timers (``reqsk_timer_handler``, :meth:`on_request_timer` for each),
        oldest first. Returns ``("synack", peer)`` for each SYN-ACK retransmitted and
        ``("expired", peer)`` for each request dropped."""
        out: list[tuple[str, Any]] = []
        due = sorted((r for r in self.syn_queue.values() if r.next_timer <= now),
                     key=lambda r: (r.next_timer, r.created))
        for req in due:
            what = self.on_request_timer(now, req)
            if what != "waiting":
                out.append((what, req.peer))
        return out

    def on_request_timer(self, now: float, req: Request) -> str:
        """The SYN-ACK timer of ``req`` fired (``reqsk_timer_handler``): "expired" (dropped from
        the SYN queue), "synack" (retransmitted) or "waiting" (re-armed without a SYN-ACK).

        The limit is :func:`~tcplab.model.synack.synack_retry_limit` (``tcp_synack_retries``, cut
        down to 2 for old requests while the queue is more than half full of them, read at this
        request's timer as the kernel reads ``qlen`` and ``young``), expire/resend is
        :func:`~tcplab.model.synack.syn_ack_recalc` (a deferred, acked request lives at least the
        defer period and is not resent before its end). The timer doubles from 1 s.
        """
        young = sum(1 for r in self.syn_queue.values() if r.num_timeout == 0)
        defer = defer_accept_retrans(self.defer_accept_s) if self.defer_accept else 0
        limit = synack_retry_limit(self.synack_retries, len(self.syn_queue), young, self.max_ack_backlog)
        expire, resend = syn_ack_recalc(req.num_timeout, limit, defer, req.acked)
        if expire:
            del self.syn_queue[req.peer]
            return "expired"
        if resend:
            self.counters["TCPSynRetrans"] += 1
            self.counters["RetransSegs"] += 1
        req.num_timeout += 1
        req.next_timer = now + synack_timeout(req.num_timeout, self.profile.rto_initial, self.profile.rto_max)
        return "synack" if resend else "waiting"
