"""Counter names as data: the ``netstat -s`` sentences articles quote and the kernel
counters behind them (pure: no I/O, usable by the simulator, the views and the kernel layer).

>>> NETSTAT_SENTENCES["times the listen queue of a socket overflowed"]
'ListenOverflows'
"""

from __future__ import annotations

__all__ = ["NETSTAT_SENTENCES", "counter_for_sentence"]

#: The ``netstat -s`` sentences articles quote -> the counter behind them
#: (net-tools ``statistics.c``). "%u" stands for the number.
NETSTAT_SENTENCES: dict[str, str] = {
    "times the listen queue of a socket overflowed": "ListenOverflows",
    "SYNs to LISTEN sockets dropped": "ListenDrops",
    "SYN cookies sent": "SyncookiesSent",
    "SYN cookies received": "SyncookiesRecv",
    "invalid SYN cookies received": "SyncookiesFailed",
    "resets sent": "OutRsts",
    "resets received for embryonic SYN_RECV sockets": "EmbryonicRsts",
    "TCP sockets finished time wait in fast timer": "TW",
    "time wait sockets recycled by time stamp": "TWRecycled",
    "active connection openings": "ActiveOpens",
    "passive connection openings": "PassiveOpens",
    "failed connection attempts": "AttemptFails",
    "connection resets received": "EstabResets",
    "connections established": "CurrEstab",
    "segments retransmitted": "RetransSegs",
    "connections reset due to unexpected data": "TCPAbortOnData",
    "connections reset due to early user close": "TCPAbortOnClose",
    "connections aborted due to timeout": "TCPAbortOnTimeout",
    "other TCP timeouts": "TCPTimeouts",
    "times unable to send RST due to no memory": "TCPAbortFailed",
    "connections aborted due to memory pressure": "TCPAbortOnMemory",
    "TCPReqQFullDrop": "TCPReqQFullDrop",
    "TCPReqQFullDoCookies": "TCPReqQFullDoCookies",
    "TCPTimeWaitOverflow": "TCPTimeWaitOverflow",
    "TCPDeferAcceptDrop": "TCPDeferAcceptDrop",
}


def counter_for_sentence(sentence: str) -> str:
    """The counter behind a ``netstat -s`` line, number and all.

    >>> counter_for_sentence("    1234 times the listen queue of a socket overflowed")
    'ListenOverflows'
    """
    words = " ".join(w for w in str(sentence).split() if not w.isdigit())
    for text, name in NETSTAT_SENTENCES.items():
        if text.lower() == words.lower().strip(" :"):
            return name
    raise ValueError(f"sentence is not a known netstat -s line: {sentence!r} "
                     f"(known: see tcplab.NETSTAT_SENTENCES)")


