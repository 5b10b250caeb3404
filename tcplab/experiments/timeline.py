"""One connection whole: its segments, each end's TCP state, TCP_INFO and queue lengths on one time axis.

A :class:`Timeline` holds four parts, each a list of plain rows with ``t`` in seconds on one clock:

* ``segments``: every TCP segment (``conn``, ``src_end`` -> ``dst_end``, flags, absolute and relative
  seq/ack, ``len``, ``window`` as on the wire, SACK blocks relative to the peer's ISN, options, and
  ``mark``: ``retransmit`` (data below what that end had already sent), ``lost`` (the path dropped
  it, where the experiment knows), ``dupack``);
* ``states``: each end's TCP state, derived from the segments through the model's state table
  (:class:`tcplab.model.states.SegmentFollower`, as ``lifecycle`` does), or as the Result reported them;
* ``tcp_info``: TCP_INFO samples (cwnd, ssthresh, srtt, rttvar, rto, in flight, retransmits, delivery
  rate ...) where the Result or the trace has them;
* ``queues``: queue lengths (the bottleneck's qdisc, a listener's accept queue) where it has them.

:meth:`Timeline.table` returns them as one pandas DataFrame (every row: the table is never
decimated; only the figure, :func:`tcplab.viz.timeline.timeline_figure`, thins what it draws).
:func:`timeline_of` builds one from an experiment's :class:`~tcplab.experiments.result.Result`
(docs/timeline.md lists what each experiment's Result gives); :func:`timeline_from_pcap` from a
classic pcap file taken anywhere; :meth:`Timeline.to_pcap` writes one out for Wireshark/tcpdump.

>>> from tcplab.experiments import handshake
>>> tl = timeline_of(handshake(mode="sim"))
>>> [(s["src_end"], s["flags"], s["rel_seq"], s["rel_ack"]) for s in tl.segments[:3]]
[('client', 'S', 0, None), ('server', 'SA', 0, 1), ('client', 'A', 1, 1)]
>>> [(s["end"], s["state"]) for s in tl.states][:3]
[('client', 'SYN_SENT'), ('server', 'SYN_RECV'), ('client', 'ESTABLISHED')]
>>> sorted(set(tl.table()["part"]))
['segment', 'state']
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tcplab.model.cc import MSS
from tcplab.model.states import SegmentFollower, TcpState

if TYPE_CHECKING:  # pandas is imported lazily
    import pandas as pd

    from tcplab.experiments.result import Result

__all__ = ["Timeline", "timeline_of", "timeline_from_pcap", "timeline_from_segments", "PARTS", "TCP_INFO_COLUMNS",
           "CONNECTIONLESS"]

#: the parts of a timeline, in the order :meth:`Timeline.table` lists them
PARTS = ("segment", "state", "event", "tcp_info", "queue")

#: TCP_INFO columns a timeline keeps (names as the experiments' timelines use them; ms and Mbit/s)
TCP_INFO_COLUMNS = ("cwnd", "ssthresh", "srtt_ms", "rttvar_ms", "rto_ms", "min_rtt_ms", "in_flight", "unacked",
                    "retransmits", "total_retrans", "backoff", "delivery_rate_mbit", "pacing_rate_mbit", "ca_state",
                    "snd_wnd", "rcv_wnd", "rcv_space", "notsent_bytes", "state")

#: experiments whose Results hold no one connection a timeline could show: :func:`timeline_of` refuses them
#: with this reason (a panel hides its Timeline view for them)
CONNECTIONLESS = {
    "fd_limit": "per-accept() file descriptor counts of many connections, not one connection over time",
    "time_wait": "counts of TIME_WAIT sockets and reused ports over many short connections, not one connection",
    "rebind": "whether a restarted server's bind() succeeds beside its old connections in TIME_WAIT, not one "
              "connection over time",
}

_U32 = 0xFFFFFFFF
#: experiments whose timeline's ``recv_q`` is a listener's accept queue (flow_control's is a socket's receive queue)
_ACCEPT_QUEUE = ("accept_queue", "ack_overflow", "load")
#: experiments whose real Result may hold a ``segments`` table captured on lo (experiments._common.SEGMENT_COLUMNS)
_CAPTURED = ("lifecycle", "nagle", "delayed_ack", "syn_retries")
#: the end whose TCP_INFO an experiment samples, where it is not a bulk flow's sender
_SAMPLED_END = {"syn_retries": "client"}
#: experiments whose timeline counts ``in_flight`` in bytes (window plots it beside the window in bytes):
#: the timeline's is packets, as tcp_packets_in_flight() counts
_IN_FLIGHT_BYTES = ("window",)


@dataclass
class Timeline:
    """Segments, states, TCP_INFO and queues of one run on one time axis (``t`` in seconds).

    source:   one line: what produced it (an experiment's name and badge, a trace, a pcap file).
    badge:    ``"REAL (Linux 6.18)"``, ``"SIMULATED (linux-6.18)"``, ``"REAL, host busy (...)"`` or
              ``"CAPTURED (pcap file)"``: what a figure shows in its title.
    segments, states, events, tcp_info, queues: the parts, lists of plain rows (see the module doc).
    notes:    sentences that say what is missing or assumed (e.g. "no TCP_INFO samples in this Result").
    t0_unix:  the wall-clock time (s since 1970) of ``t = 0`` when known (a trace, a pcap), else None.
    value:    what the traced function returned (:func:`tcplab.trace`), else None.
    """

    source: str
    badge: str = ""
    segments: list[dict[str, Any]] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    tcp_info: list[dict[str, Any]] = field(default_factory=list)
    queues: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    t0_unix: float | None = None
    value: Any = None

    def __repr__(self) -> str:
        conns = len({s["conn"] for s in self.segments})
        return (f"<Timeline {self.source}: {len(self.segments)} segments of {conns} connection(s), "
                f"{len(self.states)} state changes, {len(self.tcp_info)} TCP_INFO samples, "
                f"{len(self.queues)} queue samples>")

    def table(self, part: str | None = None) -> pd.DataFrame:
        """Every row of the timeline as one DataFrame sorted by ``t`` (column ``part`` says which part a
        row is), or of one ``part`` (one of :data:`PARTS`). Never decimated.

        >>> Timeline("empty").table("segment").empty
        True
        """
        import pandas as pd

        parts = {"segment": self.segments, "state": self.states, "event": self.events, "tcp_info": self.tcp_info,
                 "queue": self.queues}
        if part is not None and part not in parts:
            raise ValueError(f"part must be one of {', '.join(PARTS)} or None, not {part!r}")
        frames = []
        for name in PARTS if part is None else (part,):
            rows = parts[name]
            if name == "segment":
                rows = [{**r, "sack": _blocks_text(r.get("sack")), "options": _options_text(r.get("options"))}
                        for r in rows]
            df = pd.DataFrame(rows)
            if name == "segment" and not df.empty:
                # whole numbers stay whole where some rows have none (pandas' nullable integers)
                for col in ("seq", "ack", "rel_seq", "rel_ack", "window", "src_port", "dst_port"):
                    df[col] = df[col].astype("Int64")
            if part is None:
                if df.empty:
                    continue
                df.insert(0, "part", name)
            frames.append(df)
        if not frames:
            return pd.DataFrame({"t": []})
        out = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True, sort=False)
        return out.sort_values("t", kind="stable", ignore_index=True) if "t" in out else out

    def kernel_vs_model(self, tolerance: float = 0.005) -> pd.DataFrame:
        """Where the kernel and the model part: each TCP_INFO sample whose state (``tcpi_state``, the kernel's
        own) the state table, fed this timeline's segments, never had for that end within ``tolerance`` s of
        the sample (a received segment is captured before the kernel processes it, so a sample taken in
        between still shows the state before; on a busy host that lasts longer). Empty: they agree.
        Needs sampled states (a trace's TCP_INFO) and segments.

        >>> Timeline("empty").kernel_vs_model().empty
        True
        """
        import pandas as pd

        from tcplab._validate import check_float

        tolerance = check_float("tolerance", tolerance, 0.0, 10.0)
        model: dict[tuple[int, str], list[tuple[float, str]]] = {}
        for r in self.states:
            model.setdefault((r.get("conn", 0), r["end"]), []).append((r["t"], r["state"]))
        rows = []
        for x in self.tcp_info:
            kernel = x.get("state")
            end = str(x.get("end", "")).split(" ")[0]
            path = model.get((x.get("conn", 0), end))
            if not kernel or not path:
                continue
            # the model's states over [t - tolerance, t + tolerance]: the one in force at the start, and any entered
            near = {st for t, st in path if x["t"] - tolerance < t <= x["t"] + tolerance}
            before = [st for t, st in path if t <= x["t"] - tolerance]
            near |= set(before[-1:]) if before else {"CLOSE" if end == "client" else "LISTEN"}
            if kernel not in near:
                rows.append({"t": x["t"], "conn": x.get("conn", 0), "end": end, "kernel": kernel,
                             "model": " / ".join(sorted(near))})
        return pd.DataFrame(rows, columns=["t", "conn", "end", "kernel", "model"])

    def cc_replay(self, algorithm: str = "cubic", *, sender: str = "client", conn: int = 0,
                  mss: int | None = None) -> pd.DataFrame:
        """Replay this timeline's segments through the congestion model (:func:`tcplab.model.cc_replay.replay_capture`:
        the sender's data and the ACKs it received drive a fresh :class:`~tcplab.model.cc.CongestionControl` of
        ``algorithm``) and set the kernel's window beside it where the timeline has the sender's TCP_INFO.

        One row per ACK or retransmission: ``t``, ``event``, ``delivered`` (packets), ``model_cwnd``,
        ``model_ssthresh``, ``model_state``, ``flight`` (packets sent and not acknowledged, as captured),
        ``in_flight`` (the kernel's packets in flight, estimated from the SACK blocks), and ``kernel_cwnd``,
        ``kernel_ssthresh``, ``kernel_ca_state`` from the first TCP_INFO sample of ``sender`` after the event
        and before the next (None: no sample in between), ``differs``: the model's cwnd is not the kernel's.
        ``mss``: default from the SYNs' options (less 12 bytes of timestamps), else 1448. The sender's
        congestion control must be ``algorithm`` (a Result or trace records it; BBR cannot be replayed).

        >>> from tcplab.experiments import loss_recovery
        >>> df = timeline_of(loss_recovery(drop="5th", mode="sim")).cc_replay()
        >>> df["model_cwnd"].tolist()[:4]                     # slow start: +1 a packet delivered
        [11, 12, 13, 14]
        >>> row = df[df["event"] == "retransmit: enter recovery"].iloc[0]
        >>> int(row.model_ssthresh), int(row.in_flight), int(row.model_cwnd)    # CUBIC: 14 x 0.7; PRR on a dupACK:
        (9, 3, 3)
        >>> # the 2 in flight before the fast retransmit + the 1 it sends (no +1: snd_una did not advance)
        """
        import pandas as pd

        from tcplab._validate import check_choice, check_int
        from tcplab.model.cc_replay import replay_capture

        check_choice("sender", sender, ("client", "server"))
        conn = check_int("conn", conn, 0, 1_000_000)
        segs = [r for r in self.segments if r.get("conn", 0) == conn]
        if not segs:
            raise ValueError(f"conn must name a connection with segments in this timeline, {conn} has none")
        if mss is None:
            mss = _mss_of(segs, sender)
        steps = replay_capture(segs, algorithm, sender=sender, mss=mss)
        info = sorted((x for x in self.tcp_info if x.get("conn", 0) == conn
                       and str(x.get("end", "")).split(" ")[0] == sender and x.get("cwnd") is not None),
                      key=lambda x: x["t"])
        rows = []
        for i, st in enumerate(steps):
            until = steps[i + 1].t if i + 1 < len(steps) else float("inf")
            k = next((x for x in info if st.t <= x["t"] < until), None)
            ss = None if k is None else k.get("ssthresh")
            kernel_cwnd = None if k is None else int(k["cwnd"])
            rows.append({"t": st.t, "event": st.event, "delivered": st.delivered, "model_cwnd": st.model_cwnd,
                         "model_ssthresh": st.model_ssthresh, "model_state": st.model_state, "flight": st.flight,
                         "in_flight": st.in_flight, "kernel_cwnd": kernel_cwnd,
                         "kernel_ssthresh": None if ss is None or ss != ss else int(ss),
                         "kernel_ca_state": None if k is None else k.get("ca_state"),
                         "differs": kernel_cwnd is not None and kernel_cwnd != st.model_cwnd})
        df = pd.DataFrame(rows, columns=["t", "event", "delivered", "model_cwnd", "model_ssthresh", "model_state",
                                         "flight", "in_flight", "kernel_cwnd", "kernel_ssthresh", "kernel_ca_state",
                                         "differs"])
        for col in ("model_ssthresh", "kernel_cwnd", "kernel_ssthresh"):     # whole numbers, None where unknown
            df[col] = df[col].astype("Int64")
        return df

    def milestones(self, conn: int | None = None) -> pd.DataFrame:
        """Where on the time axis each mechanism shows up: one row per notable moment, sorted by ``t``, with
        ``t_ms``, ``end``, ``event``, ``detail`` and ``part`` (the part of the timeline that shows it).

        The moments: the SYN, SYN-ACK, each end's first data segment, FIN and RST (segments); each segment
        marked ``lost`` or ``retransmit`` and each duplicate ACK, numbered (``dupack``); every state change
        (states); every change of an end's congestion state (``ca_state`` of TCP_INFO, with cwnd and
        ssthresh at that sample); the script's steps (events). ``conn``: one connection (default: all).

        >>> tl = Timeline("demo", segments=[
        ...     {"t": 0.0, "conn": 0, "src_end": "client", "flags": "S", "len": 0, "rel_seq": 0},
        ...     {"t": 0.001, "conn": 0, "src_end": "server", "flags": "SA", "len": 0, "rel_seq": 0}])
        >>> tl.milestones()[["t_ms", "end", "event"]].values.tolist()
        [[0.0, 'client', 'SYN'], [1.0, 'server', 'SYN-ACK']]
        """
        import pandas as pd

        def mine(r: Mapping[str, Any]) -> bool:
            return conn is None or r.get("conn", 0) == conn

        rows: list[dict[str, Any]] = []

        def add(t: float, end: Any, event: str, detail: str, part: str) -> None:
            rows.append({"t": t, "t_ms": round(t * 1000, 3), "end": end, "event": event, "detail": detail,
                         "part": part})

        first_data: set[tuple[int, str]] = set()
        dupacks: dict[int, int] = {}
        for sg in (x for x in self.segments if mine(x)):
            flags, end, key = sg.get("flags") or "", sg.get("src_end"), sg.get("conn", 0)
            seq = sg.get("rel_seq")
            if "S" in flags:
                add(sg["t"], end, "SYN-ACK" if "A" in flags else "SYN", _options_text(sg.get("options")), "segment")
            if sg.get("len") and (key, end) not in first_data:
                first_data.add((key, end))
                add(sg["t"], end, "first data", f"seq {seq}, {sg['len']} bytes", "segment")
            if "F" in flags:
                add(sg["t"], end, "FIN", f"seq {seq}", "segment")
            if "R" in flags:
                add(sg["t"], end, "RST", f"seq {seq}", "segment")
            mark = sg.get("mark") or ""
            if mark in ("lost", "retransmit"):
                add(sg["t"], end, "lost" if mark == "lost" else "retransmission", f"seq {seq}, {sg['len']} bytes",
                    "segment")
            elif mark == "dupack":
                dupacks[key] = dupacks.get(key, 0) + 1
                add(sg["t"], end, f"duplicate ACK {dupacks[key]}",
                    f"ack {sg.get('rel_ack')}, SACK {_blocks_text(sg.get('sack')) or '-'}", "segment")
        for st in (x for x in self.states if mine(x)):
            add(st["t"], st["end"], f"-> {st['state']}", str(st.get("why") or ""), "state")
        for ev in (x for x in self.events if mine(x)):
            add(ev["t"], "script", str(ev.get("event") or "step"), "the script's step", "event")
        last_ca: dict[tuple[int, str], str] = {}
        for x in (x for x in self.tcp_info if mine(x)):
            ca, key = x.get("ca_state"), (x.get("conn", 0), str(x.get("end")))
            if ca and last_ca.get(key) != ca:
                last_ca[key] = ca
                ss = x.get("ssthresh")
                add(x["t"], x.get("end"), f"congestion state {ca}",
                    f"cwnd {x.get('cwnd')}, ssthresh {'-' if ss is None or ss != ss else int(ss)}", "tcp_info")
        df = pd.DataFrame(rows, columns=["t", "t_ms", "end", "event", "detail", "part"])
        return df.sort_values("t", kind="stable", ignore_index=True)

    def connections(self) -> list[dict[str, Any]]:
        """One row per connection: ``conn``, the two ends (address:port where known) and its segment count."""
        seen: dict[int, dict[str, Any]] = {}
        for s in self.segments:
            c = seen.setdefault(s["conn"], {"conn": s["conn"], "client": None, "server": None, "segments": 0})
            c["segments"] += 1
            if s.get("src") is not None:
                c[s["src_end"]] = f"{s['src']}:{s['src_port']}"
        return list(seen.values())

    def to_pcap(self, path: str | os.PathLike[str]) -> int:
        """Write the segments as a classic pcap file (LINKTYPE_RAW) that tcpdump and Wireshark open; returns
        how many packets were written. Payload bytes are zeros of each segment's length (a capture keeps
        lengths, not contents); times are ``t0_unix + t`` (``t`` alone when ``t0_unix`` is unknown).

        Raises ValueError when the segments do not carry addresses and ports (an experiment's table that
        keeps only relative numbers, e.g. ``loss_recovery``'s or ``handshake``'s)."""
        from tcplab.kernel.pcap import encode_ipv4_tcp, write_pcap

        if not self.segments:
            raise ValueError("this timeline has no segments to write")
        bad = next((s for s in self.segments if s.get("src") is None or s.get("src_port") is None), None)
        if bad is not None:
            raise ValueError(f"segments must carry addresses and ports to be written as packets; this timeline's "
                             f"come from {self.source}, which keeps only {', '.join(k for k, v in bad.items() if v is not None)}")
        base = self.t0_unix or 0.0
        packets = [(base + s["t"], encode_ipv4_tcp({**s, "payload": s["len"]})) for s in self.segments]
        return write_pcap(path, packets)


def _mss_of(segs: list[dict[str, Any]], sender: str) -> int:
    """The sender's MSS from the SYNs: the smaller of the two ends' mss options, less 12 bytes when both
    sent timestamps (tcp_mss_to_mtu()'s tcp_header_len); 1448 (Ethernet with timestamps) without the SYNs."""
    syns = [s.get("options") or {} for s in segs if "S" in (s.get("flags") or "")]
    mss = [o["mss"] for o in syns if isinstance(o, dict) and o.get("mss")]
    if len(mss) < 2:
        return MSS
    ts = all(isinstance(o, dict) and "ts_val" in o for o in syns)
    return int(min(mss)) - (12 if ts else 0)


def _blocks_text(blocks: Any) -> str:
    return " ".join(f"{a}-{b}" for a, b in blocks) if blocks else ""


def _options_text(opts: Any) -> str:
    if not opts:
        return ""
    if isinstance(opts, str):
        return opts
    return ", ".join(k if v is True else f"{k}={v}" for k, v in opts.items() if k != "sack_blocks")


def _parse_options_text(text: Any) -> dict[str, Any]:
    """``"mss=65495, sack_perm, ts_val=1, ts_ecr=0, wscale=7"`` (a handshake table's column) -> a dict."""
    out: dict[str, Any] = {}
    if not isinstance(text, str):
        return out
    for item in filter(None, (x.strip() for x in text.split(","))):
        k, eq, v = item.partition("=")
        out[k] = (int(v) if v.lstrip("-").isdigit() else v) if eq else True
    return out


def timeline_from_segments(segments: Iterable[Mapping[str, Any]], source: str, *,
                           t0_unix: float | None = None) -> Timeline:
    """A timeline from decoded segments (dicts as :func:`tcplab.kernel.capture.decode_ipv4_tcp` gives them,
    each with ``t`` in seconds): split into connections by their address/port pairs, numbered relative to
    each end's ISN, retransmissions marked, and each end's states derived from the segments.

    The client is the end that sent the first SYN without ACK. A connection whose SYN is not in the
    segments (a capture started mid-connection) calls the end with the higher port the client and
    assumes both ends ESTABLISHED at its first segment; a note says so.

    >>> c, s = ("10.0.0.1", 40000), ("10.0.0.2", 80)
    >>> segs = [dict(t=i / 10, src=a[0], src_port=a[1], dst=b[0], dst_port=b[1], flags=f, seq=q, ack=k,
    ...              window=100, options={}, payload=n) for i, (a, b, f, q, k, n) in enumerate(
    ...         [(c, s, "S", 9, 0, 0), (s, c, "SA", 500, 10, 0), (c, s, "A", 10, 501, 0),
    ...          (c, s, "PA", 10, 501, 5), (c, s, "PA", 10, 501, 5), (s, c, "A", 501, 15, 0)])]
    >>> tl = timeline_from_segments(segs, "example")
    >>> [(s["src_end"], s["flags"], s["rel_seq"], s["rel_ack"], s["len"], s["mark"]) for s in tl.segments[3:]]
    [('client', 'PA', 1, 1, 5, ''), ('client', 'PA', 1, 1, 5, 'retransmit'), ('server', 'A', 1, 6, 0, '')]
    >>> [(r["end"], r["state"]) for r in tl.states]
    [('client', 'SYN_SENT'), ('server', 'SYN_RECV'), ('client', 'ESTABLISHED'), ('server', 'ESTABLISHED')]
    """
    segs = sorted((dict(s) for s in segments), key=lambda s: s["t"])
    tl = Timeline(source, t0_unix=t0_unix)
    conns: dict[frozenset[tuple[str, int]], int] = {}
    client_of: dict[int, tuple[str, int]] = {}
    midstream: list[int] = []
    for s in segs:
        a, b = (s["src"], s["src_port"]), (s["dst"], s["dst_port"])
        key = frozenset((a, b))
        if key not in conns:
            conns[key] = len(conns)
            if "S" in s["flags"] and "A" not in s["flags"]:
                client_of[conns[key]] = a
            elif "S" in s["flags"]:
                client_of[conns[key]] = b
            else:
                client_of[conns[key]] = a if a[1] > b[1] else b
                midstream.append(conns[key])
        c = conns[key]
        s["conn"] = c
        # a socket connected to itself (simultaneous open) is one end, the client, both ways
        s["src_end"] = "client" if a == client_of[c] else "server"
        s["dst_end"] = "client" if b == client_of[c] else "server"
        s["len"] = int(s.pop("payload", s.get("len", 0)) or 0)
        if not isinstance(s.get("options"), dict):
            s["options"] = _parse_options_text(s.get("options"))
        s["sack"] = [tuple(b) for b in s["options"].get("sack_blocks", [])]
    tl.segments = _relative(segs)
    tl.states = _derive_states(tl.segments, midstream)
    if midstream:
        tl.notes.append(f"{len(midstream)} connection(s) without their SYN in the capture: numbers are relative to the "
                        "first segment seen, and both ends are assumed ESTABLISHED there")
    return tl


def _relative(segs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """rel_seq / rel_ack from each end's ISN (its SYN's seq, else its first seq) and ``mark``
    retransmissions: a segment carrying sequence space (data, SYN, FIN) that ends at or below the
    highest that end has already sent (Wireshark's first test, tcp_analyze_sequence_number())."""
    isn: dict[tuple[int, str], int] = {}
    high: dict[tuple[int, str], int] = {}
    for s in segs:
        me = (s["conn"], s["src_end"])
        if s.get("seq") is not None and (me not in isn or ("S" in s["flags"] and me not in high)):
            isn[me] = s["seq"] if "S" in s["flags"] else (s["seq"] - 1) & _U32
    rows = []
    for s in segs:
        me, peer = (s["conn"], s["src_end"]), (s["conn"], s["dst_end"])
        seq = s.get("seq")
        rel = (seq - isn[me]) & _U32 if seq is not None and me in isn else s.get("rel_seq")
        s["rel_seq"] = rel
        if s.get("ack") is not None and "A" in s["flags"] and peer in isn:
            s["rel_ack"] = (s["ack"] - isn[peer]) & _U32
        else:
            s.setdefault("rel_ack", None)
        if s["sack"] and peer in isn and s.get("seq") is not None:
            s["sack"] = [((x - isn[peer]) & _U32, (y - isn[peer]) & _U32) for x, y in s["sack"]]
        span = s["len"] + ("S" in s["flags"]) + ("F" in s["flags"])
        s.setdefault("mark", "")
        if span and rel is not None and not s["mark"]:
            end = rel + span
            if me in high and end <= high[me]:
                s["mark"] = "retransmit"
            high[me] = max(high.get(me, 0), end)
        rows.append({k: s.get(k) for k in _SEGMENT_KEYS})
    return rows


_SEGMENT_KEYS = ("t", "conn", "src_end", "dst_end", "flags", "seq", "ack", "rel_seq", "rel_ack", "len", "window",
                 "sack", "options", "mark", "src", "src_port", "dst", "dst_port")


def _derive_states(segs: list[dict[str, Any]], midstream: Iterable[int] = ()) -> list[dict[str, Any]]:
    """Each end's states through the state table, from the segments it sent and received."""
    followers: dict[tuple[int, str], SegmentFollower] = {}
    rows: list[dict[str, Any]] = []
    mid = set(midstream)
    for s in segs:
        c = s["conn"]
        for end in {s["src_end"], s["dst_end"]}:
            if (c, end) not in followers:
                start = TcpState.ESTABLISHED if c in mid else (TcpState.CLOSE if end == "client" else TcpState.LISTEN)
                followers[(c, end)] = SegmentFollower(start)
                if c in mid:
                    rows.append({"t": s["t"], "conn": c, "end": end, "state": "ESTABLISHED",
                                 "why": "assumed: the capture starts mid-connection"})
        args = (s["flags"], s["seq"] if s["seq"] is not None else s["rel_seq"] or 0,
                s["ack"] if s["ack"] is not None else s["rel_ack"] or 0, s["len"])
        for end, f in ((s["src_end"], "sent"), (s["dst_end"], "received")):
            fol = followers[(c, end)]
            before = len(fol.states)
            getattr(fol, f)(*args)
            for st in fol.states[before:]:
                rows.append({"t": s["t"], "conn": c, "end": end, "state": st.name,
                             "why": f"{f} {s['flags']}"})
    return rows


def timeline_from_pcap(path: str | os.PathLike[str]) -> Timeline:
    """The timeline of every IPv4 TCP connection in a classic pcap file (tcpdump -w, Wireshark "pcap"):
    segments, and each end's states derived through the model's state table. ``t`` is seconds after the
    file's first TCP segment; ``t0_unix`` its time.

    >>> tl = timeline_from_pcap("capture.pcap")     # doctest: +SKIP
    """
    from tcplab.kernel.pcap import read_pcap

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or path-like, not {type(path).__name__}")
    if not os.path.isfile(path):
        raise ValueError(f"path must be an existing pcap file, {os.fspath(path)!r} is not a file")
    segs, skipped = read_pcap(path)
    t0 = min((s["time"] for s in segs), default=0.0)
    for s in segs:
        s["t"] = round(s.pop("time") - t0, 9)
    tl = timeline_from_segments(segs, f"pcap file {os.path.basename(os.fspath(path))}", t0_unix=t0 if segs else None)
    tl.badge = "CAPTURED (pcap file)"
    if skipped:
        tl.notes.append(f"{skipped} packets skipped: not IPv4 TCP (IPv6, UDP, ARP ...) or truncated")
    if not segs:
        tl.notes.append("no IPv4 TCP segment in this file")
    return tl


# ---------------------------------------------------------------- from an experiment's Result

def timeline_of(result: Result) -> Timeline:
    """The timeline of an experiment's Result: its segments (``handshake``'s ``packets``, ``lifecycle``'s
    and ``loss_recovery``'s ``segments``), states (derived from the segments, or as ``lifecycle`` reported
    them), TCP_INFO samples (``congestion``, ``rtt_rto``, ``retransmission``, ``flow_control``,
    ``autotuning``) and queue lengths (``congestion``'s bottleneck, the accept-queue experiments' recv_q).
    docs/timeline.md lists what each experiment gives. Raises ValueError for a Result with none of them
    (:data:`CONNECTIONLESS` says why for each such experiment).

    >>> from tcplab.experiments import congestion
    >>> tl = timeline_of(congestion(duration=1, mode="sim"))
    >>> bool(tl.tcp_info) and bool(tl.queues), tl.segments
    (True, [])
    """
    from tcplab.experiments.result import Result

    if not isinstance(result, Result):
        raise TypeError(f"result must be an experiment's Result, not {type(result).__name__}")
    source = f"experiment {result.name}"
    where = f"Linux {result.kernel}" if result.mode == "real" else result.profile
    tl = Timeline(source, badge=f"{result.badge} ({where})")
    tables = result.tables
    captured = result.name in _CAPTURED and "segments" in tables and len(tables["segments"])
    if result.name in CONNECTIONLESS:
        raise ValueError(f"result must come from an experiment with a connection over time; {result.name}'s has "
                         f"{CONNECTIONLESS[result.name]}")
    if "packets" in tables and len(tables["packets"]):
        _from_packets_table(tl, tables["packets"])
    elif captured:
        seg_tl = timeline_from_segments(_records(tables["segments"]), source)
        tl.segments, tl.states, tl.notes = seg_tl.segments, seg_tl.states, seg_tl.notes
    elif result.name == "loss_recovery" and "segments" in tables and len(tables["segments"]):
        _from_loss_recovery(tl, tables["segments"])
    if result.name == "lifecycle":
        _lifecycle_states(tl, result)
    if result.name == "loss_recovery" and "tcp_info" in tables and len(tables["tcp_info"]):
        tl.tcp_info = [{**r, "end": "client"} for r in _records(tables["tcp_info"])]
    if result.timeline is not None and len(result.timeline):
        _samples(tl, result)
    if result.name == "syn_retries":
        _syn_retries_states(tl)
    for name, df in tables.items():
        if name == "queue" and len(df):
            tl.queues += [{"t": float(r["t"]), "queue": "bottleneck", "length": int(r["queue_packets"]),
                           "unit": "packets", "drops": int(r["drops"])} for r in _records(df)]
    if not (tl.segments or tl.states or tl.tcp_info or tl.queues):
        # a real run that could not capture says why in its notes
        why = next((f"; {n}" for n in result.notes if "capture" in n), "")
        raise ValueError(f"result must hold segments, states, TCP_INFO or queue samples; this {result.name} Result "
                         f"({result.badge}) has none (tables: {', '.join(tables) or 'none'}; "
                         f"{'no ' if result.timeline is None else ''}timeline){why}")
    missing = [what for what, rows in (("segments", tl.segments), ("states", tl.states),
                                       ("TCP_INFO samples", tl.tcp_info), ("queue samples", tl.queues)) if not rows]
    if missing:
        tl.notes.append(f"this {result.name} Result has no {', no '.join(missing)}")
    return tl


def _records(df: Any) -> list[dict[str, Any]]:
    """DataFrame rows as dicts with NaN (pandas' missing) as None."""
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in df.to_dict("records")]


def _from_packets_table(tl: Timeline, df: Any) -> None:
    """handshake's ``packets``: direction "client->server" / "server->client", absolute seq/ack."""
    segs = []
    for r in _records(df):
        src, dst = str(r["direction"]).split("->")
        opts = _parse_options_text(r.get("options"))
        window = r.get("window")
        segs.append({"t": float(r["t"]), "conn": 0, "src_end": src, "dst_end": dst, "flags": r["flags"],
                     "seq": int(r["seq"]), "ack": int(r["ack"]), "len": int(r["payload"]),
                     "window": None if window is None else int(window), "sack": [], "options": opts})
    tl.segments = _relative(segs)
    tl.states = _derive_states(tl.segments)
    tl.notes.append("the experiment's table keeps no addresses or ports: its segments cannot be written as pcap")
    if any(s["window"] is None for s in segs):
        tl.notes.append("simulated segments (tcplab.sim.ladder): fixed ISNs, and no window (the model does not "
                        "decide it)")


def _syn_retries_states(tl: Timeline) -> None:
    """syn_retries' listener drops every SYN (its accept queue is full): the server end never takes one, so
    only the client's states stand, and the client's end (connect() giving up, a timeout, no segment) is
    taken from the TCP_INFO sample that shows it."""
    tl.states = [r for r in tl.states if r["end"] == "client"]
    gone = next((x for x in tl.tcp_info if x.get("state") == "CLOSE"), None)
    if gone is not None and (not tl.states or tl.states[-1]["state"] != "CLOSE"):
        tl.states.append({"t": gone["t"], "conn": 0, "end": "client", "state": "CLOSE",
                          "why": "sampled (TCP_INFO): connect() gave up (tcp_write_timeout())"})
    if tl.segments:
        tl.notes.append("the listener drops every SYN (accept queue full: ListenOverflows): no segment answers them, "
                        "and the server end's states are not derived")


def _from_loss_recovery(tl: Timeline, df: Any) -> None:
    """loss_recovery's ``segments``: data out of the sender (new / retransmit / lost) and ACKs in (ack / dupack),
    byte offsets from the start of the data, ms after the first data segment; no flags or windows kept."""
    segs = []
    for r in _records(df):
        out = r["direction"] == "out"
        sack = ast.literal_eval(r["sack"]) if isinstance(r.get("sack"), str) and r["sack"] else []
        kind = r.get("kind") or ""
        segs.append({"t": float(r["t_ms"]) / 1000, "conn": 0, "src_end": "client" if out else "server",
                     "dst_end": "server" if out else "client", "flags": "A", "seq": None, "ack": None,
                     "rel_seq": int(r["seq"]) + 1 if out else None,
                     "rel_ack": None if out else int(r["ack"]) + 1, "len": int(r["len"] or 0), "window": None,
                     "sack": [(a + 1, b + 1) for a, b in sack], "options": {},
                     "mark": kind if kind in ("lost", "retransmit", "dupack") else ""})
    tl.segments = [{k: s.get(k) for k in _SEGMENT_KEYS} for s in segs]
    tl.notes.append("loss_recovery keeps the sender's data segments and the ACKs it received, from the first data "
                    "segment (t = 0) on: numbers are relative to the ISN (data starts at 1), flags and windows are "
                    "not kept, and the states (ESTABLISHED throughout) are not derived; client = the sender")


def _lifecycle_states(tl: Timeline, result: Result) -> None:
    """lifecycle reports both ends' states (derived from its packets, or sampled from /proc when it could not
    capture: ``Result.sampled``) and the script's steps: those are the timeline's states and events."""
    if result.timeline is None:
        return
    states = []
    for r in _records(result.timeline):
        ev = str(r.get("event") or "")
        end, arrow, state = ev.partition(" -> ")
        if arrow and end in ("client", "server"):
            states.append({"t": float(r["t"]), "conn": 0, "end": end, "state": state,
                           "why": "sampled from /proc" if result.sampled else "derived from the packets"})
    if states:
        tl.states = states
    ev_df = result.tables.get("events")
    if ev_df is not None:
        tl.events = [{"t": float(r["t"]), "event": r["event"]} for r in _records(ev_df)]


def _samples(tl: Timeline, result: Result) -> None:
    """Result.timeline's TCP_INFO columns (one row per sample, per flow where there are several) and
    accept-queue lengths (recv_q of a listener)."""
    rows = _records(result.timeline)
    cols = set(rows[0]) if rows else set()
    keep = [c for c in TCP_INFO_COLUMNS if c in cols]
    if result.name != "lifecycle" and keep:
        for r in rows:
            end = f"flow {int(r['flow'])}" if r.get("flow") is not None else _SAMPLED_END.get(result.name, "sender")
            row = {"t": float(r["t"]), "end": end, **{c: r[c] for c in keep}}
            if result.name in _IN_FLIGHT_BYTES and row.get("in_flight") is not None:
                row["in_flight"] = round(row["in_flight"] / MSS, 1)
            tl.tcp_info.append(row)
    if "state" in keep and tl.tcp_info and not tl.states:
        # the sampled socket's state as TCP_INFO (tcpi_state) gave it, at the samples where it changed
        last = None
        for r in tl.tcp_info:
            if r.get("state") and r["state"] != last:
                tl.states.append({"t": r["t"], "conn": 0, "end": r["end"], "state": r["state"],
                                  "why": "sampled (TCP_INFO)"})
                last = r["state"]
    if result.name in _ACCEPT_QUEUE and "recv_q" in cols:
        tl.queues += [{"t": float(r["t"]), "queue": "accept queue", "length": int(r["recv_q"]), "unit": "connections"}
                      for r in rows if r.get("recv_q") is not None]
    if result.name == "flow_control":
        for col, name in (("send_q", "send queue (sender)"), ("recv_q", "receive queue (receiver)")):
            if col in cols:
                tl.queues += [{"t": float(r["t"]), "queue": name, "length": int(r[col]), "unit": "bytes"}
                              for r in rows if r.get(col) is not None]
    if "syn_recv" in cols:
        tl.queues += [{"t": float(r["t"]), "queue": "SYN queue", "length": int(r["syn_recv"]), "unit": "requests"}
                      for r in rows if r.get("syn_recv") is not None]
