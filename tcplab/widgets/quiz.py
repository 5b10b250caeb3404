"""Ready-made self-check exercises for notebooks 01–05 (each a :class:`SelfCheck`).

>>> q = accept_queue_quiz(rng=1); sorted(q.params)
['backlog', 'clients', 'somaxconn']
"""

from __future__ import annotations

import random
from typing import Any

from tcplab.widgets.common import SelfCheck

__all__ = ["states_quiz", "handshake_quiz", "accept_queue_quiz", "ack_overflow_quiz", "syn_queue_quiz",
           "syn_retries_quiz"]


def states_quiz(rng: int | random.Random | None = None, mode: str = "auto") -> SelfCheck:
    """Notebook 01: predict how many client sockets stay SYN_SENT behind a listener that never accepts."""
    from tcplab.experiments import accept_queue
    return SelfCheck(
        accept_queue,
        "listen({backlog}); {clients} clients connect and the server never calls accept(). How many of the "
        "clients' sockets are in SYN_SENT 1.5 s later?",
        {"backlog": [0, 1, 2, 3, 4, 6], "clients": [5, 8, 10, 12]},
        "syn_sent_clients",
        "min(backlog, somaxconn) + 1 = {established_clients} clients got in (ESTABLISHED); the SYNs of the "
        "other {expected} were dropped (ListenOverflows={ListenOverflows}) and they stay SYN_SENT, "
        "retransmitting, until connect() gives up.",
        rng=rng, mode=mode)


def _handshake_run(packet: int, mode: str = "auto") -> Any:
    """One handshake() run; ``packet`` (which packet the question is about) is kept in its params."""
    from tcplab.experiments import handshake
    res = handshake(mode=mode)
    res.params = {**res.params, "packet": packet}
    return res


def _packet_ack(result: Any, packet: int) -> float | None:
    df = result.tables.get("packets")
    if df is None or len(df) < packet:
        return None
    v = df.iloc[packet - 1]["rel_ack"]
    return None if v is None or v != v else float(v)


def handshake_quiz(rng: int | random.Random | None = None, mode: str = "auto") -> SelfCheck:
    """Notebook 02: predict the relative ack number of a packet of the captured connection."""
    return SelfCheck(
        _handshake_run,
        "The client connects, sends 13 bytes, the server answers 13 bytes, both close. Counting the "
        "client's SYN as packet #1: what relative ack number does packet #{packet} carry?",
        {"packet": [2, 3, 4, 5, 6]},
        lambda res: _packet_ack(res, res.params["packet"]),
        "An ack is the next sequence number expected from the peer: the peer's relative seq plus its "
        "payload, plus 1 for a SYN or a FIN. Step through the capture above to see it packet by packet.",
        rng=rng, mode=mode, title="Self-check: seq and ack")


def accept_queue_quiz(rng: int | random.Random | None = None, mode: str = "auto") -> SelfCheck:
    """Predict how many clients end ESTABLISHED when nobody calls accept()."""
    from tcplab.experiments import accept_queue
    return SelfCheck(
        accept_queue,
        "listen({backlog}) with net.core.somaxconn={somaxconn}; {clients} clients connect and the server "
        "never calls accept(). How many clients are ESTABLISHED 1.5 s later?",
        {"backlog": [0, 1, 2, 3, 5, 8, 10], "somaxconn": [2, 4, 6, 4096], "clients": [8, 12, 15]},
        "established_clients",
        "The accept queue holds min(backlog, somaxconn) + 1 = min({backlog}, {somaxconn}) + 1 completed "
        "connections (sk_acceptq_is_full() tests >, not >=; listen() clamps the backlog to somaxconn). "
        "Every further SYN is dropped (ListenOverflows={ListenOverflows}) and those clients stay SYN_SENT.",
        rng=rng, mode=mode)


def ack_overflow_quiz(rng: int | random.Random | None = None, mode: str = "auto") -> SelfCheck:
    """Predict how many clients of a burst get ECONNRESET when the final ACKs find the queue full."""
    from tcplab.experiments import ack_overflow
    return SelfCheck(
        ack_overflow,
        "listen({backlog}) already holds {backlog} connections; tcp_abort_on_overflow={abort_on_overflow}, "
        "tcp_syncookies={syncookies}; a burst of {burst} clients connects over a slow loopback (all SYNs "
        "arrive before any ACK). How many clients get ECONNRESET?",
        {"backlog": [1, 2, 3, 4], "burst": [2, 3, 4], "syncookies": [0, 1, 2], "abort_on_overflow": [False, True]},
        "reset_clients",
        "The SYN queue takes backlog+1 requests (more SYNs get cookies or are dropped); the accept queue has "
        "room for one. Each further request's ACK overflows (ListenOverflows={ListenOverflows}): with "
        "tcp_abort_on_overflow=1 it is answered by a RST (EmbryonicRsts={EmbryonicRsts}), with 0 it is "
        "dropped and the request waits in SYN_RECV. A cookie ACK is never reset (tcp_get_cookie_sock()).",
        rng=rng, mode=mode)


def syn_queue_quiz(rng: int | random.Random | None = None, mode: str = "auto") -> SelfCheck:
    """Predict SYN_RECV for a listener whose clients never send their data (TCP_DEFER_ACCEPT)."""
    from tcplab.experiments import syn_queue
    return SelfCheck(
        syn_queue,
        "listen({backlog}), tcp_syncookies={syncookies}, tcp_max_syn_backlog={max_syn_backlog}; "
        "{clients} clients connect and send nothing (TCP_DEFER_ACCEPT). How many requests sit in SYN_RECV?",
        {"backlog": [2, 4, 8, 100], "syncookies": [0, 1], "max_syn_backlog": [16, 2048], "clients": [40]},
        "syn_recv",
        "The SYN queue is full when it holds more than the listen backlog (inet_csk_reqsk_queue_is_full(), "
        "'>' since 6.13): at most backlog+1 = {backlog}+1 requests, never more than the {clients} clients. "
        "tcp_max_syn_backlog only matters with syncookies=0, and then as the 3/4 rule: an unproven peer is "
        "dropped once the queue holds more than 3/4·{max_syn_backlog}.",
        rng=rng, mode=mode)


def syn_retries_quiz(rng: int | random.Random | None = None, mode: str = "sim") -> SelfCheck:
    """Predict how many SYNs a client sends before ETIMEDOUT (simulated by default: time is free)."""
    from tcplab.experiments import syn_retries
    return SelfCheck(
        syn_retries,
        "TCP_SYNCNT={retries}, tcp_syn_linear_timeouts={linear_timeouts}, every SYN is dropped. How many "
        "SYNs does the client send in total (first SYN included) before connect() fails?",
        {"retries": [1, 2, 3], "linear_timeouts": [0, 4]},
        "syns_sent",
        "tcp_write_timeout() gives up when the RTO timer fires and retransmits >= retries + linear_timeouts "
        "or the time since the first SYN reached (2^(retries+1) − 1) s. The first linear_timeouts + 1 "
        "retransmits are 1 s apart (the RTO doubles only once the backoff exceeds linear_timeouts). Here: SYNs at 0 and {retransmit_times}, "
        "failure after {failed_after} s.",
        fixed={"max_seconds": 86400}, rng=rng, mode=mode)
