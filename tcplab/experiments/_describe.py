"""The text alternative of a Result's figure: one or two sentences with the run's own numbers.

A learner who cannot see a chart (a screen reader) or cannot tell its colours apart reads what
it shows instead. The text is built from the Result, never written per figure: a headline from
the summary (``HEADLINES`` phrases the key numbers of an experiment the course teaches; any other
experiment, a new one included, gets :func:`generic_headline` from its spec's summary keys), then
whether the kernel or the simulator produced it.

>>> from tcplab.experiments.result import Result
>>> r = Result("accept_queue", "sim", "asked", {"backlog": 5, "clients": 20}, profile="linux-6.18",
...            summary={"established_clients": 6, "syn_sent_clients": 14, "recv_q": 6, "send_q": 5})
>>> describe(r)
'Backlog 5 admitted 6 of 20 clients; the other 14 stayed in SYN_SENT; the accept queue held 6 (limit 5). SIMULATED (linux-6.18).'

A Result of an experiment without a headline reads its summary keys in the spec's order:

>>> generic_headline(Result("x", "sim", "", {}, summary={"a": 1, "b": [1.5, 2], "c": None}), 2)
'a 1; b 1.5, 2'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tcplab.experiments.result import Result

__all__ = ["describe", "generic_headline", "fmt", "HEADLINES"]

#: how many summary keys the generic headline names (more is a table, not a sentence)
GENERIC_KEYS = 4


def fmt(v: Any, unit: str = "") -> str:
    """A value as a sentence shows it: ``None`` as "none", floats without noise, lists short.

    >>> fmt(0.20400000001, "s"), fmt(None), fmt([1.0, 2.0, 4.0, 8.0, 16.0, 32.0], "s"), fmt(True)
    ('0.204 s', 'none', '1, 2, 4, 8, 16 … (6) s', 'yes')
    """
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        text = f"{v:.4g}"
    elif isinstance(v, (list, tuple)):
        items = [fmt(x) for x in v[:5]]
        text = ", ".join(items) + (f" … ({len(v)})" if len(v) > 5 else "")
    else:
        text = str(v)
    return f"{text} {unit}" if unit else text


def _p(r: Result, name: str) -> Any:
    return r.params.get(name)


def _accept_queue(r: Result) -> str:
    s = r.summary
    return (f"backlog {fmt(_p(r, 'backlog'))} admitted {fmt(s.get('established_clients'))} of "
            f"{fmt(_p(r, 'clients'))} clients; the other {fmt(s.get('syn_sent_clients'))} stayed in SYN_SENT; "
            f"the accept queue held {fmt(s.get('recv_q'))} (limit {fmt(s.get('send_q'))})")


def _ack_overflow(r: Result) -> str:
    s = r.summary
    return (f"a burst of {fmt(_p(r, 'burst'))} final ACKs met a full accept queue (backlog {fmt(_p(r, 'backlog'))}, "
            f"tcp_abort_on_overflow {fmt(_p(r, 'abort_on_overflow'))}): {fmt(s.get('established_clients'))} clients "
            f"ESTABLISHED, {fmt(s.get('phantom_clients'))} of them with no server child, "
            f"{fmt(s.get('reset_clients'))} reset, ListenOverflows {fmt(s.get('ListenOverflows'))}")


def _autotuning(r: Result) -> str:
    s = r.summary
    grew = "grew" if s.get("autotuned") else "did not grow"
    return (f"the receive buffer {grew}: SO_RCVBUF {fmt(s.get('rcvbuf_at_start'))} bytes at the start, "
            f"at most {fmt(s.get('rcvbuf_max'))} during the transfer (ceiling {fmt(s.get('rcvbuf_ceiling'))})")


def _congestion(r: Result) -> str:
    s = r.summary
    return (f"{fmt(_p(r, 'algorithm'))} with {fmt(_p(r, 'flows'))} flow(s) through {fmt(_p(r, 'rate_mbit'), 'Mbit/s')} "
            f"and {fmt(_p(r, 'rtt_ms'), 'ms')}: {fmt(s.get('throughput_mbit'), 'Mbit/s')} "
            f"(utilization {fmt(s.get('utilization'))}), median sRTT {fmt(s.get('srtt_p50_ms'), 'ms')}, "
            f"{fmt(s.get('loss_events'))} loss events, the queue peaked at {fmt(s.get('queue_max_packets'))} packets")


def _delayed_ack(r: Result) -> str:
    s = r.summary
    return (f"{fmt(len(s.get('waits_ms') or []))} messages waited {fmt(s.get('waits_ms'), 'ms')} for their ACK "
            f"on a {fmt(s.get('path_rtt_ms'), 'ms')} path; settled wait {fmt(s.get('settled_wait_ms'), 'ms')}, "
            f"longest {fmt(s.get('max_wait_ms'), 'ms')}")


def _fd_limit(r: Result) -> str:
    s = r.summary
    return (f"with RLIMIT_NOFILE {fmt(_p(r, 'limit'))} the server accepted {fmt(s.get('accepted'))} of "
            f"{fmt(_p(r, 'connections'))} connections, then accept() failed with {fmt(s.get('error'))}; "
            f"{fmt(s.get('open_fds_at_end'))} descriptors open, {fmt(s.get('left_in_accept_queue'))} clients left "
            f"in the accept queue")


def _flow_control(r: Result) -> str:
    s = r.summary
    return (f"a {fmt(_p(r, 'reader'))} reader with a {fmt(_p(r, 'rcvbuf'))}-byte buffer: the window closed after "
            f"{fmt(s.get('zero_window_after_s'), 's')}, Send-Q reached {fmt(s.get('max_send_q'))} bytes, "
            f"{fmt(s.get('probes'))} zero-window probes, the window reopened {fmt(s.get('window_updates'))} times; "
            f"all data read after {fmt(s.get('done_after_s'), 's')}")


def _handshake(r: Result) -> str:
    s = r.summary
    return (f"{fmt(s.get('packets'))} segments captured; the SYN carried MSS {fmt(s.get('mss'))}, "
            f"window scale {fmt(s.get('wscale'))}, SACK {fmt(s.get('sack'))}, timestamps {fmt(s.get('timestamps'))}")


def _keepalive(r: Result) -> str:
    s = r.summary
    return (f"keepalive (idle {fmt(_p(r, 'idle'), 's')}, interval {fmt(_p(r, 'interval'), 's')}, "
            f"count {fmt(_p(r, 'count'))}) against a {fmt(_p(r, 'peer'))} peer: {fmt(s.get('probes_sent'))} probes "
            f"at {fmt(s.get('probe_times'), 's')}; the socket ended after {fmt(s.get('detected_after_s'), 's')} "
            f"with {fmt(s.get('error'))}")


def _lifecycle(r: Result) -> str:
    s = r.summary
    server = s.get("server_states") or []     # empty for simultaneous_open: both ends are clients
    return (f"scenario {fmt(_p(r, 'scenario'))}: the client went {' → '.join(s.get('client_states') or ['(none)'])}"
            + (f"; the server went {' → '.join(server)}" if server else ""))


def _load(r: Result) -> str:
    s = r.summary
    return (f"{fmt(_p(r, 'rate'))} connects/s against a server accepting {fmt(_p(r, 'accept_rate'))}/s "
            f"(backlog {fmt(_p(r, 'backlog'))}): {fmt(s.get('established'))} of {fmt(s.get('attempts'))} established, "
            f"{fmt(s.get('failed'))} failed, the accept queue peaked at {fmt(s.get('max_recv_q'))}, "
            f"p99 connect {fmt(s.get('p99_connect_s'), 's')}")


def _loss_recovery(r: Result) -> str:
    s = r.summary
    return (f"the dropped segment was repaired by {fmt(s.get('repaired_by'))} after "
            f"{fmt(s.get('dupacks_before_retransmit'))} duplicate ACKs; the stall lasted {fmt(s.get('stall_ms'), 'ms')} "
            f"(RTO {fmt(s.get('rto_ms'), 'ms')}, sRTT {fmt(s.get('srtt_ms'), 'ms')})")


def _nagle(r: Result) -> str:
    s = r.summary
    return (f"TCP_NODELAY {fmt(_p(r, 'nodelay'))}: {fmt(s.get('stalled_requests'))} of {fmt(_p(r, 'requests'))} "
            f"requests stalled; median latency {fmt(s.get('median_latency_s'), 's')}, "
            f"{fmt(s.get('delayed_acks'))} delayed ACKs")


def _rebind(r: Result) -> str:
    s = r.summary
    ok = "passed" if s.get("bound") else f"failed with {fmt(s.get('error'))}"
    return (f"with {fmt(s.get('time_wait'))} TIME_WAIT sockets on the port, the new server's bind() {ok} "
            f"(old SO_REUSEADDR {fmt(_p(r, 'old_reuseaddr'))}, new {fmt(_p(r, 'new_reuseaddr'))})")


def _retransmission(r: Result) -> str:
    s = r.summary
    return (f"{fmt(len(s.get('retransmit_times') or []))} retransmissions at {fmt(s.get('retransmit_times'), 's')}; "
            f"the socket failed after {fmt(s.get('failed_after_s'), 's')} with {fmt(s.get('error'))} "
            f"({fmt(s.get('gave_up_because'))})")


def _rtt_rto(r: Result) -> str:
    s = r.summary
    return (f"smoothed RTT {fmt(s.get('srtt_before_ms'), 'ms')} and RTO {fmt(s.get('rto_before_ms'), 'ms')} before the path "
            f"changed, sRTT {fmt(s.get('srtt_after_ms'), 'ms')} and RTO {fmt(s.get('rto_after_ms'), 'ms')} after; "
            f"the RTO floor was {fmt(s.get('rto_floor_ms'), 'ms')}")


def _syn_queue(r: Result) -> str:
    s = r.summary
    return (f"{fmt(_p(r, 'clients'))} clients, backlog {fmt(_p(r, 'backlog'))}, tcp_syncookies {fmt(_p(r, 'syncookies'))}: "
            f"{fmt(s.get('syn_recv'))} requests in SYN_RECV, {fmt(s.get('server_children'))} children; "
            f"syncookies sent {fmt(s.get('SyncookiesSent'))}, SYNs dropped {fmt(s.get('TCPReqQFullDrop'))}")


def _syn_retries(r: Result) -> str:
    s = r.summary
    return (f"{fmt(s.get('syns_sent'))} SYNs sent, retransmitted at {fmt(s.get('retransmit_times'), 's')}; "
            f"connect() failed after {fmt(s.get('failed_after'), 's')} with {fmt(s.get('error'))}")


def _time_wait(r: Result) -> str:
    s = r.summary
    first = s.get("first_failure_at")
    ending = (f"the first connect failed at {fmt(first, 's')} with {fmt(s.get('error'))}" if first is not None
              else "no connect failed")
    return (f"{fmt(s.get('connections_made'))} of {fmt(_p(r, 'connections'))} connections made, "
            f"{fmt(s.get('time_wait'))} sockets in TIME_WAIT at the end; {ending}")


def _window(r: Result) -> str:
    s = r.summary
    return (f"a {fmt(_p(r, 'rcvbuf'))}-byte receive buffer on a {fmt(_p(r, 'rtt_ms'), 'ms')} path: "
            f"{fmt(s.get('throughput_mbit'), 'Mbit/s')} against a predicted cap of {fmt(s.get('window_cap_mbit'), 'Mbit/s')}; "
            f"the largest advertised window {fmt(s.get('max_advertised_window'))} bytes")


#: experiment name -> the headline of its figure (the run's key numbers in a sentence)
HEADLINES: dict[str, Callable[[Result], str]] = {
    "accept_queue": _accept_queue, "ack_overflow": _ack_overflow, "autotuning": _autotuning,
    "congestion": _congestion, "delayed_ack": _delayed_ack, "fd_limit": _fd_limit,
    "flow_control": _flow_control, "handshake": _handshake, "keepalive": _keepalive,
    "lifecycle": _lifecycle, "load": _load, "loss_recovery": _loss_recovery, "nagle": _nagle,
    "rebind": _rebind, "retransmission": _retransmission, "rtt_rto": _rtt_rto,
    "syn_queue": _syn_queue, "syn_retries": _syn_retries, "time_wait": _time_wait, "window": _window,
}


def generic_headline(result: Result, keys: int = GENERIC_KEYS) -> str:
    """``keys`` summary values as ``name value``, numbers first (a figure plots numbers), each group in
    the spec's order; None values left out."""
    def numeric(v: Any) -> bool:
        items = v if isinstance(v, (list, tuple)) else [v]
        return bool(items) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in items)

    items = [(k, v) for k, v in result.summary.items() if v is not None]
    ordered = [kv for kv in items if numeric(kv[1])] + [kv for kv in items if not numeric(kv[1])]
    shown = [f"{k} {fmt(v)}" for k, v in ordered[:keys]]
    return "; ".join(shown) if shown else "no summary values"


def describe(result: Result) -> str:
    """One or two sentences: what ``result``'s figure shows, with its numbers, then REAL or
    SIMULATED (and where), and when a real run lost fidelity, that its numbers are the host's too."""
    headline = HEADLINES.get(result.name)
    try:
        text = headline(result) if headline is not None else generic_headline(result)
    except (KeyError, TypeError, ValueError):   # a summary of another shape (an old pickle): still say something
        text = generic_headline(result)
    if result.mode == "real":
        where = f"{result.badge} (Linux {result.kernel})" if result.kernel else result.badge
        if not result.trusted and result.fidelity is not None:
            where += f": {result.fidelity.reason}"
    else:
        where = f"SIMULATED ({result.profile})" if result.profile else "SIMULATED"
    first = text.split(" ", 1)[0]
    if first.isalpha():         # a word, not a key name (rto_ms) or a number: a sentence's capital
        text = text[:1].upper() + text[1:]
    return f"{text}. {where}."
