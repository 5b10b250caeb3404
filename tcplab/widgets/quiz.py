"""Ready-made self-check exercises for notebooks 03–05 (each a :class:`SelfCheck`).

>>> q = accept_queue_quiz(rng=1); sorted(q.params)
['backlog', 'clients', 'somaxconn']
"""

from __future__ import annotations

import random

from tcplab.widgets.common import SelfCheck

__all__ = ["accept_queue_quiz", "ack_overflow_quiz", "syn_queue_quiz", "syn_retries_quiz"]


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
        "or the time since the first SYN reached (2^(retries+1) − 1) s. The first linear_timeouts "
        "retransmits are 1 s apart; then the RTO doubles. Here: SYNs at 0 and {retransmit_times}, "
        "failure after {failed_after} s.",
        fixed={"max_seconds": 86400}, rng=rng, mode=mode)
