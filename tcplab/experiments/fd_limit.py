"""fd_limit: "too many open files" - a server that never closes its connections meets RLIMIT_NOFILE.

Every accepted connection is a file descriptor of the server process until it calls close(),
whatever TCP does with the connection. A server that leaks them (``source="close_wait_leak"``: the
clients close, the server never does, so each socket sits in CLOSE_WAIT) or simply holds them all
(``source="flood"``: the clients stay, ESTABLISHED) reaches its RLIMIT_NOFILE: ``accept()`` fails with
EMFILE (``__sys_accept4()`` -> ``get_unused_fd_flags()``, fs/file.c ``alloc_fd()``: ``fd >=
rlimit(RLIMIT_NOFILE)``). The kernel has already completed the handshakes: the rest of the clients
wait in the accept queue, connected from their side.

The server runs in a child process of the experiment's own, with RLIMIT_NOFILE lowered to ``limit``
(:func:`tcplab.kernel.fds.run_with_fd_limit`); it starts with 5 descriptors open (stdin, stdout,
stderr, the listener and the pipe that carries its result back), so it accepts ``limit - 5``.

>>> s = fd_limit(limit=32, connections=40, mode="sim").summary
>>> s["accepted"], s["error"], s["left_in_accept_queue"]
(27, 'EMFILE', 13)
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Mapping
from typing import Any

from tcplab.experiments.registry import make_function
from tcplab.experiments.spec import Experiment, GridPoint, Key, Param, Plot, Slider, Table
from tcplab.kernel.fds import open_fds, run_with_fd_limit
from tcplab.kernel.loopback import SocketSet, tcp_state, wait_until
from tcplab.model.outcome import Outcome

__all__ = ["fd_limit", "SPEC", "SOURCES", "BASELINE_FDS"]

SOURCES = ("close_wait_leak", "flood")
#: descriptors the server child holds before it accepts: 0, 1, 2, the listener, the result pipe
BASELINE_FDS = 5


def _sim(p: dict[str, Any], profile: Any, rng: Any) -> Outcome:
    room = max(0, p["limit"] - BASELINE_FDS)
    accepted = min(room, p["connections"])
    state = "CLOSE_WAIT" if p["source"] == "close_wait_leak" else "ESTABLISHED"
    out = Outcome()
    out.tables["accepts"] = [{"n": i + 1, "open_fds": BASELINE_FDS + i + 1, "state": state, "error": None}
                             for i in range(accepted)]
    if accepted < p["connections"]:
        out.tables["accepts"].append({"n": accepted + 1, "open_fds": BASELINE_FDS + accepted, "state": None,
                                      "error": "EMFILE"})
    out.summary = _summary(accepted, p, BASELINE_FDS + accepted, accepted if state == "CLOSE_WAIT" else 0,
                           "EMFILE" if accepted < p["connections"] else None)
    out.notes.append(f"simulated: fd numbers {BASELINE_FDS}..{p['limit'] - 1} are free below RLIMIT_NOFILE={p['limit']}"
                     " (alloc_fd(): fd >= the limit is EMFILE)")
    return out


def _summary(accepted: int, p: Mapping[str, Any], fds: int, close_wait: int, error: str | None) -> dict[str, Any]:
    return {"accepted": accepted, "error": error, "open_fds_at_end": fds, "close_wait_sockets": close_wait,
            "left_in_accept_queue": p["connections"] - accepted}


def _server(fd: int) -> dict[str, Any]:
    """In the child with the lowered limit: accept until EMFILE or the queue is empty; never close."""
    lst = socket.socket(fileno=fd)
    rows: list[dict[str, Any]] = []
    held: list[socket.socket] = []
    error = None
    lst.setblocking(False)
    while True:
        try:
            conn, _ = lst.accept()
        except BlockingIOError:
            break
        except OSError as e:
            error = errno.errorcode.get(e.errno or 0, str(e.errno))
            rows.append({"n": len(held) + 1, "open_fds": open_fds(), "state": None, "error": error})
            break
        held.append(conn)                                  # the leak: never closed
        rows.append({"n": len(held), "open_fds": open_fds(), "state": tcp_state(conn), "error": None})
    states = [tcp_state(c) for c in held]
    return {"rows": rows, "error": error, "fds": open_fds(), "close_wait": states.count("CLOSE_WAIT"),
            "accepted": len(held)}


def _real(p: dict[str, Any]) -> Outcome:
    out = Outcome()
    with SocketSet() as ss:
        lst = ss.listener(p["connections"])
        addr = lst.getsockname()
        clients = [ss.connect(addr, wait=True) for _ in range(p["connections"])]
        if p["source"] == "close_wait_leak":
            for c in clients:
                c.close()          # the client is done: FIN; the server will never close its end
            # the FINs land on the not-yet-accepted sockets: wait until the clients are in FIN_WAIT2
            wait_until(lambda: True, 0.05)
        got = run_with_fd_limit(_server, p["limit"], timeout=20.0, keep=(lst.fileno(),))
    out.tables["accepts"] = got["rows"]
    out.summary = _summary(got["accepted"], p, got["fds"], got["close_wait"], got["error"])
    out.notes.append(f"the server: a child process with RLIMIT_NOFILE={p['limit']} (setrlimit), starting from "
                     f"{BASELINE_FDS} descriptors; it accepts and never closes")
    return out


SPEC = Experiment(
    name="fd_limit",
    title="Too many open files: a server that never closes its connections meets RLIMIT_NOFILE (EMFILE)",
    doc="""``connections`` clients connect to a listener; a server process with RLIMIT_NOFILE lowered to
    ``limit`` accepts them and never closes one. ``source="close_wait_leak"``: the clients close at
    once, so every server socket is in CLOSE_WAIT (the bug of notebook 06); ``"flood"``: they stay
    connected. Either way each accepted connection is a descriptor until close(), and accept() fails
    with EMFILE once the descriptors reach the limit (fs/file.c ``alloc_fd()``); the clients the
    kernel already connected wait in the accept queue. The server starts with 5 descriptors open.""",
    params=(
        Param("limit", "int", 32, lo=8, hi=1024, help="RLIMIT_NOFILE (soft) of the server process",
              slider=Slider(8, 128)),
        Param("connections", "int", 40, lo=1, hi=1000, help="clients that connect",
              slider=Slider(1, 200)),
        Param("source", "choice", "close_wait_leak", choices=SOURCES,
              help="close_wait_leak (clients close, the server never does) or flood (clients stay)"),
    ),
    summary=(
        Key("accepted", "connections the server accepted before EMFILE (or all)", rule="exact"),
        Key("error", "accept()'s error at the end (EMFILE) or None", rule="exact"),
        Key("open_fds_at_end", "descriptors the server had open at the end", rule="exact"),
        Key("close_wait_sockets", "accepted sockets in CLOSE_WAIT", rule="exact"),
        Key("left_in_accept_queue", "clients connected by the kernel but never accepted", rule="exact"),
    ),
    tables=(Table("accepts", ("n", "open_fds", "state", "error"), "one accept() of the server"),),
    timeline=None,
    grid=(
        GridPoint(dict(limit=32, connections=40), quick=True, why="EMFILE after limit - 5 accepts"),
        GridPoint(dict(limit=16, connections=20, source="flood")),
        GridPoint(dict(limit=64, connections=20), why="under the limit: no error"),
    ),
    smoke=(dict(limit=16, connections=14),),
    real=lambda p: _real(p),
    sim=_sim,
    timeout=lambda p: 40.0,
    plot=Plot(y=("open_fds",), x="n", source="accepts", kind="step", title="the server's open descriptors",
              x_title="accept()", y_title="descriptors"),
)

fd_limit = make_function(SPEC)
