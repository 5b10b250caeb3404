"""A sans-IO TCP endpoint: segments and app calls in (with ``now``), segments out.

Like aioquic's connection: nothing here reads a clock or touches a socket. Every method
takes ``now`` and returns the segments to put on the wire; timers are data
(:meth:`Endpoint.next_timer`, :meth:`Endpoint.on_timer`). State changes go through
:data:`tcplab.model.states.TRANSITIONS` only, so an event the table does not allow raises
:class:`~tcplab.model.states.IllegalTransition` (a ``ValueError``) and changes nothing.

Simplifications (the network the simulator feeds it is lossless and in order): no data
retransmission, no windows or congestion control; only the SYN is retransmitted on the
:func:`~tcplab.model.retries.syn_schedule`.

>>> a, b = Endpoint(40000), Endpoint(5000)
>>> b.listen(0.0)
[]
>>> syn, = a.connect(0.0, 5000)
>>> synack, = b.receive(0.0, syn)
>>> ack, = a.receive(0.0, synack)
>>> b.receive(0.0, ack)
[]
>>> a.state.name, b.state.name
('ESTABLISHED', 'ESTABLISHED')
>>> a.receive(0.0, syn)  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
IllegalTransition: event 'rcv_syn' is not allowed in state ESTABLISHED (...)
"""

from __future__ import annotations

from tcplab.model.profiles import KernelProfile, get_profile
from tcplab.model.retries import syn_schedule
from tcplab.model.segment import Segment
from tcplab.model.states import TcpState, next_state

__all__ = ["Endpoint", "LOOPBACK_SYN_OPTIONS"]

S = TcpState

#: What a Linux SYN carries on lo (MTU 65536): MSS 65495, SACK permitted, timestamps, wscale 7.
LOOPBACK_SYN_OPTIONS = (("mss", 65495), ("sack_perm", True), ("ts", True), ("wscale", 7))


class Endpoint:
    """One side of a connection. ``history`` lists the distinct states it went through."""

    def __init__(self, port: int, *, isn: int = 0, profile: KernelProfile | str | None = None,
                 fin_timeout: float | None = None, syn_retries: int | None = None) -> None:
        self.profile = get_profile(profile)
        self.port = port
        self.peer: int | None = None
        self.state = S.CLOSE
        self.history: list[TcpState] = [S.CLOSE]
        self.iss = isn
        self.snd_nxt = isn
        self.snd_una = isn
        self.rcv_nxt = 0
        self.fin_timeout = float(self.profile.fin_timeout if fin_timeout is None else fin_timeout)
        sched = syn_schedule(self.profile.syn_retries if syn_retries is None else syn_retries,
                             self.profile.syn_linear_timeouts)
        self._syn_sched = sched
        self.passive = False
        self.orphaned = False        # close() (not shutdown(SHUT_WR)): the app is gone
        self.unread = 0              # bytes received and not read by the app
        self.error: str | None = None
        self.eof = False             # the peer's FIN was received
        self._timer: float | None = None
        self._timer_kind: str | None = None
        self._syn_start = 0.0
        self._syn_index = 0

    # -- helpers ---------------------------------------------------------------------------
    def _check(self, event: str) -> TcpState:
        return next_state(self.state, event)      # raises before anything changes

    def _enter(self, state: TcpState, now: float) -> None:
        self.state = state
        if self.history[-1] is not state:
            self.history.append(state)
        self._timer = self._timer_kind = None
        if state is S.TIME_WAIT:
            # TCP_TIMEWAIT_LEN, not tcp_fin_timeout (docs/kernel-facts.md case 5)
            self._set_timer(now + self.profile.timewait_len, "timeout_2msl")
        elif state is S.FIN_WAIT2 and self.orphaned:
            # tcp_rcv_state_process(): an orphan goes to a FIN_WAIT2 mini-socket for tcp_fin_timeout
            self._set_timer(now + self.fin_timeout, "timeout_fin_wait2")

    def _set_timer(self, when: float, kind: str) -> None:
        self._timer, self._timer_kind = when, kind

    def _seg(self, flags: str, length: int = 0, options: tuple = ()) -> Segment:
        assert self.peer is not None
        seg = Segment(self.port, self.peer, flags, self.snd_nxt,
                      self.rcv_nxt if "A" in flags else 0, options=options, length=length)
        self.snd_nxt += seg.seq_len
        return seg

    # -- application calls ---------------------------------------------------------------------
    def listen(self, now: float) -> list[Segment]:
        self._enter(self._check("app_listen"), now)
        self.passive = True
        return []

    def connect(self, now: float, peer: int) -> list[Segment]:
        nxt = self._check("app_connect")
        self.peer = peer
        self._enter(nxt, now)
        self._syn_start, self._syn_index = now, 0
        self._set_timer(now + self._syn_sched.send_times[1] if len(self._syn_sched.send_times) > 1
                        else now + self._syn_sched.fail_after, "syn_rto")
        return [self._seg("S", options=LOOPBACK_SYN_OPTIONS)]

    def send(self, now: float, nbytes: int) -> list[Segment]:
        if self.state not in (S.ESTABLISHED, S.CLOSE_WAIT):
            raise ValueError(f"cannot send in state {self.state.name}")
        return [self._seg("PA", length=nbytes)]

    def read(self, nbytes: int | None = None) -> int:
        """The app reads up to ``nbytes`` (all if None); returns bytes read."""
        got = self.unread if nbytes is None else min(nbytes, self.unread)
        self.unread -= got
        return got

    def shutdown_write(self, now: float) -> list[Segment]:
        """shutdown(SHUT_WR): send FIN but keep the socket (not orphaned, no FIN_WAIT2 timer)."""
        self._enter(self._check("app_close"), now)
        return [self._seg("FA")]

    def close(self, now: float, *, linger0: bool = False) -> list[Segment]:
        """close(). With unread data or SO_LINGER {1, 0}, Linux sends a RST (``__tcp_close``)."""
        if self.state in (S.ESTABLISHED, S.CLOSE_WAIT, S.SYN_RECV) and (self.unread or linger0):
            return self.abort(now, counter="TCPAbortOnClose" if self.unread else "TCPAbortOnData")
        nxt = self._check("app_close")
        self.orphaned = True
        if self.state in (S.ESTABLISHED, S.CLOSE_WAIT, S.SYN_RECV):
            self._enter(nxt, now)
            return [self._seg("FA")]
        self._enter(nxt, now)                     # LISTEN / SYN_SENT: nothing to say
        return []

    def abort(self, now: float, counter: str = "TCPAbortOnData") -> list[Segment]:
        nxt = self._check("app_abort")
        self.abort_counter = counter
        seg = self._seg("RA")
        self._enter(nxt, now)
        return [seg]

    # -- the network -------------------------------------------------------------------------
    def receive(self, now: float, seg: Segment) -> list[Segment]:
        st = self.state
        if st is S.CLOSE:
            return [] if seg.rst else [Segment(self.port, seg.src, "R", seg.ack)]
        if seg.rst:
            nxt = self._check("rcv_rst")
            self.error = "ECONNREFUSED" if st is S.SYN_SENT else "ECONNRESET"
            self._enter(nxt, now)
            return []
        if st is S.LISTEN:
            if not seg.syn:
                return [Segment(self.port, seg.src, "R", seg.ack)]
            nxt = self._check("rcv_syn")
            self.peer, self.rcv_nxt = seg.src, seg.seq + 1
            self._enter(nxt, now)
            return [self._seg("SA", options=LOOPBACK_SYN_OPTIONS)]
        if st is S.SYN_SENT:
            if seg.syn and seg.ack_flag and seg.ack == self.iss + 1:
                nxt = self._check("rcv_syn_ack")
                self.rcv_nxt, self.snd_una = seg.seq + 1, seg.ack
                self._enter(nxt, now)
                return [self._seg("A")]
            nxt = self._check("rcv_syn" if seg.syn else "rcv_ack")   # simultaneous open
            self.rcv_nxt = seg.seq + 1
            self._enter(nxt, now)
            self.snd_nxt = self.iss                 # SYN-ACK repeats our SYN's sequence number
            return [self._seg("SA", options=LOOPBACK_SYN_OPTIONS)]
        if seg.syn and not (st is S.SYN_RECV and seg.ack_flag):
            self._check("rcv_syn")                  # raises: a SYN in a synchronized state
        out: list[Segment] = []
        acks_fin = seg.ack_flag and seg.ack == self.snd_nxt and st in (S.FIN_WAIT1, S.CLOSING, S.LAST_ACK)
        if st is S.SYN_RECV:
            if seg.ack_flag and seg.ack == self.iss + 1:
                self._enter(self._check("rcv_ack"), now)
                self.snd_una = seg.ack
                if seg.syn:                         # simultaneous open: their SYN-ACK, ACK it
                    out.append(self._seg("A"))
            st = self.state
        if seg.length:
            self.rcv_nxt += seg.length
            self.unread += seg.length
            if self.orphaned:                       # data for a closed socket: RST
                nxt = self._check("rcv_rst")
                self._enter(nxt, now)
                return [Segment(self.port, seg.src, "R", seg.ack)]
            out.append(self._seg("A"))
        if seg.fin:
            event = "rcv_fin_ack" if acks_fin and st is S.FIN_WAIT1 else "rcv_fin"
            nxt = self._check(event)
            self.rcv_nxt += 1
            self.eof = True
            self._enter(nxt, now)
            out = [o for o in out if o.flags != "A"] + [self._seg("A")]
            return out
        if acks_fin:
            self.snd_una = seg.ack
            self._enter(self._check("rcv_ack"), now)
        return out

    # -- timers ------------------------------------------------------------------------------
    def next_timer(self) -> float | None:
        return self._timer

    def on_timer(self, now: float) -> list[Segment]:
        """Fire the timer if it is due; returns segments to send."""
        if self._timer is None or now < self._timer:
            return []
        kind = self._timer_kind
        if kind == "syn_rto":
            sends = self._syn_sched.send_times
            self._syn_index += 1
            if self._syn_index < len(sends):
                self.snd_nxt = self.iss
                nxt_i = self._syn_index + 1
                when = (self._syn_start + sends[nxt_i]) if nxt_i < len(sends) else \
                    self._syn_start + self._syn_sched.fail_after
                self._set_timer(when, "syn_rto")
                return [self._seg("S", options=LOOPBACK_SYN_OPTIONS)]
            self.error = "ETIMEDOUT"
            self._enter(self._check("timeout"), now)
            return []
        assert kind is not None
        self._enter(self._check(kind), now)
        return []
