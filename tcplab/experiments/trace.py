"""Your own code, traced: run a function of yours (a client and a server on 127.0.0.1) in a private
network namespace, capture its packets and sample TCP_INFO of its sockets, and get its
:class:`~tcplab.experiments.timeline.Timeline` back.

How: :func:`tcplab.kernel.namespace.in_namespace` forks a child that unshares a user + network
namespace (unprivileged where user namespaces are allowed; the owner has CAP_NET_RAW there), brings
``lo`` up and writes ``sysctls`` there only. In the child, an AF_PACKET capture on ``lo`` (kernel
timestamps) starts before ``fn``; ``fn`` runs in a thread while the child's main thread reads the
capture every ``interval`` and, for each connection the capture has shown, asks sock_diag for both
ends' tcp_info (:func:`tcplab.kernel.diag.tcp_info_of`: by 4-tuple, no file descriptor needed, so it
follows a socket after close() too). Everything the namespace held goes with the child: the
parent kills it after ``timeout`` (+ a margin) and always reaps it.

Only IPv4 is captured (connect to ``127.0.0.1``, not ``localhost``, which may be ``::1``).
``fn`` and its arguments run in the forked child: what it returns must pickle; what it changes in
memory stays there.

>>> import socket, threading
>>> def echo_once():
...     with socket.create_server(("127.0.0.1", 0)) as srv:
...         port = srv.getsockname()[1]
...         def serve():
...             conn, _ = srv.accept()
...             with conn:
...                 conn.sendall(conn.recv(100))
...         th = threading.Thread(target=serve); th.start()
...         with socket.create_connection(("127.0.0.1", port)) as c:
...             c.sendall(b"hello"); reply = c.recv(100)
...         th.join()
...         return reply
>>> tl = trace(echo_once)                                  # doctest: +SKIP
>>> tl.value, [s["flags"] for s in tl.segments][:3]        # doctest: +SKIP
(b'hello', ['S', 'SA', 'A'])
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from tcplab._validate import check_float
from tcplab.errors import NamespaceUnavailable, ParseError, SockDiagUnavailable
from tcplab.experiments.timeline import Timeline, timeline_from_segments
from tcplab.kernel.capture import Capture
from tcplab.kernel.diag import tcp_info_of
from tcplab.kernel.namespace import in_namespace
from tcplab.kernel.tcpinfo import timeline_row

__all__ = ["trace", "MAX_SAMPLED_SOCKETS", "MAX_SEGMENTS"]

#: sockets whose tcp_info is sampled (the first connections the capture shows): a bound on the
#: sampling loop's work per interval
MAX_SAMPLED_SOCKETS = 32
#: segments kept; past it the capture stops (and a note says so): a bound on memory and on the result
MAX_SEGMENTS = 200_000
_SNAPLEN = 128


def trace(fn: Callable[..., Any], *args: Any, sysctls: Mapping[str, Any] | None = None, timeout: float = 30.0,
          interval: float = 0.005, **kwargs: Any) -> Timeline:
    """Run ``fn(*args, **kwargs)`` in a private network namespace and return the Timeline of every
    connection it made on 127.0.0.1: its segments, each end's states (from the packets), tcp_info of
    each end every ``interval`` s (cwnd, ssthresh, srtt, rttvar, rto, in flight, retransmissions,
    delivery rate). ``Timeline.value`` is what ``fn`` returned.

    ``sysctls``: per-namespace sysctls to set first, e.g. ``{"net.ipv4.tcp_sack": 0}`` (the host's
    are never touched). ``timeout``: the most ``fn`` may run (0.1..600 s); past it the trace stops,
    the namespace is torn down and the timeline says so. ``interval``: 0.001..1 s.

    Raises :class:`~tcplab.errors.NamespaceUnavailable` where no private namespace can be made (user
    namespaces forbidden, not Linux), with the reason; re-raises what ``fn`` raised, with the
    timeline up to then as the exception's ``timeline`` attribute.
    """
    if not callable(fn):
        raise TypeError(f"fn must be a callable (your function), not {type(fn).__name__}")
    timeout = check_float("timeout", timeout, 0.1, 600.0)
    interval = check_float("interval", interval, 0.001, 1.0)
    try:
        raw = in_namespace(_traced, fn, args, kwargs, timeout, interval, sysctls=sysctls, timeout=timeout + 20.0)
    except NamespaceUnavailable as e:
        raise NamespaceUnavailable(f"tcplab.trace runs your function in a private network namespace, and none can "
                                   f"be made here: {e.reason}") from None
    tl = _timeline(raw)
    if raw["error"] is not None:
        err = raw["error"]
        err.timeline = tl
        if hasattr(err, "add_note"):
            err.add_note("tcplab.trace: the timeline up to this error is this exception's .timeline")
        raise err
    return tl


def _traced(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], run_for: float,
            interval: float) -> dict[str, Any]:
    """In the namespace child: capture, run ``fn`` in a thread, sample tcp_info; plain data back."""
    box: dict[str, Any] = {"value": None, "error": None}

    def run() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - handed back to the caller
            box["error"] = e

    notes: list[str] = []
    segs: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    ends: list[tuple[tuple[str, int], tuple[str, int]]] = []
    seen: set[tuple[tuple[str, int], tuple[str, int]]] = set()
    diag_error: str | None = None
    missed = 0
    # headers only (IP 20-60 + TCP 20-60 bytes): the reader keeps up with a bulk transfer's 64 KiB packets
    with Capture("lo", rcvbuf=16 << 20, kernel_time=True, snaplen=_SNAPLEN) as cap:
        t0_unix = time.time() - (time.monotonic() - cap.t0)
        # the sampler and your function's threads share the GIL, handed over every 5 ms by default: a
        # shorter switch interval (in this child only) keeps the samples near their ``interval``
        sys.setswitchinterval(min(sys.getswitchinterval(), interval / 10))
        th = threading.Thread(target=run, name="tcplab-trace-fn", daemon=True)
        th.start()
        deadline = time.monotonic() + run_for
        while True:
            done = not th.is_alive()
            for s in cap.read(interval):
                if len(segs) >= MAX_SEGMENTS:
                    break
                segs.append(s)
                for pair in (((s["src"], s["src_port"]), (s["dst"], s["dst_port"])),
                             ((s["dst"], s["dst_port"]), (s["src"], s["src_port"]))):
                    if pair not in seen and len(ends) < MAX_SAMPLED_SOCKETS:
                        seen.add(pair)
                        ends.append(pair)
            now = time.monotonic()
            if diag_error is None:
                for local, remote in ends:
                    asked = time.monotonic()     # each sample's own time: the loop over ends takes a while
                    try:
                        info = tcp_info_of(local, remote, timeout=1.0)
                    except SockDiagUnavailable as e:
                        diag_error = str(e)
                        break
                    except ParseError:
                        # an answer without tcp_info (seen for a socket being torn down): no sample this time
                        missed += 1
                        continue
                    # a lookup by 4-tuple falls back to the listener once the connection is gone
                    # (inet_diag_find_one_icsk() -> inet_lookup(), net/ipv4/inet_diag.c, returns the
                    # listening socket when no established one matches): that is not this end
                    if info is not None and info.state != "LISTEN":
                        samples.append(_sample(asked - cap.t0, local, remote, info))
            if done:
                break
            if now >= deadline:
                notes.append(f"your function was still running after timeout={run_for:g} s: the trace stopped there "
                             "(the namespace and everything in it were torn down)")
                break
        segs += cap.read(0.02)[:max(0, MAX_SEGMENTS - len(segs))]
        dropped = cap.drops()
    if dropped:
        notes.append(f"the capture lost {dropped} packets (its buffer overflowed): segments are missing")
    if len(segs) >= MAX_SEGMENTS:
        notes.append(f"the capture stopped at {MAX_SEGMENTS} segments")
    if len(seen) > len(ends) or len(ends) >= MAX_SAMPLED_SOCKETS:
        notes.append(f"tcp_info sampled for the first {MAX_SAMPLED_SOCKETS} sockets only")
    if missed:
        notes.append(f"{missed} tcp_info requests were answered without tcp_info (a socket being torn down): "
                     "no sample there")
    if diag_error is not None:
        notes.append(f"no tcp_info samples: {diag_error}")
    error = box["error"]
    if error is not None:
        try:
            import pickle

            pickle.dumps(error)
        except Exception:  # noqa: BLE001 - an exception that cannot travel is sent as its text
            error = RuntimeError(f"{type(error).__name__}: {error}")
    value = box["value"]
    if value is not None:
        try:
            import pickle

            pickle.dumps(value)
        except Exception as e:  # noqa: BLE001
            notes.append(f"what your function returned cannot be sent back from the namespace ({e}): value is None")
            value = None
    for s in segs:
        s.pop("mono", None)
        s.pop("out", None)
    return {"segments": segs, "samples": samples, "notes": notes, "t0_unix": t0_unix, "value": value,
            "error": error, "interval": interval}


def _sample(t: float, local: tuple[str, int], remote: tuple[str, int], info: Any) -> dict[str, Any]:
    """One tcp_info sample in the timeline's columns, with the socket it came from."""
    return {"t": round(t, 6), "local": local, "remote": remote, **timeline_row(info)}


def _timeline(raw: dict[str, Any]) -> Timeline:
    """The Timeline of a trace: segments relative to the capture's start, samples named by connection and end."""
    tl = timeline_from_segments(raw["segments"], "your function, traced (tcplab.trace)", t0_unix=raw["t0_unix"])
    import os

    tl.badge = f"REAL (Linux {os.uname().release}, private namespace)"
    tl.value = raw["value"]
    tl.notes += raw["notes"]
    where: dict[tuple[tuple[str, int], tuple[str, int]], tuple[int, str]] = {}
    for s in tl.segments:
        where[((s["src"], s["src_port"]), (s["dst"], s["dst_port"]))] = (s["conn"], s["src_end"])
    for r in raw["samples"]:
        conn, end = where.get((r["local"], r["remote"]), (None, None))
        if conn is None:
            continue
        label = f"{end}" if len({c for c, _ in where.values()}) == 1 else f"{end} {conn}"
        tl.tcp_info.append({"t": r["t"], "conn": conn, "end": label,
                            **{k: v for k, v in r.items() if k not in ("t", "local", "remote")}})
    if not tl.segments:
        tl.notes.append("no IPv4 TCP segment on lo: did your function connect to 127.0.0.1 (not localhost, "
                        "which may be ::1)?")
    tl.notes.append(f"tcp_info of each end sampled every {raw['interval'] * 1000:g} ms through sock_diag "
                    "(tcp_info_of); segments captured on lo (AF_PACKET, kernel timestamps)")
    return tl
