"""The timeline of a connection (issue 25): Timeline from Results, the figure, pcap export/import, trace.

Pure tests build timelines from simulated Results and synthetic segments and round-trip pcap files;
``real`` tests trace a function in a private namespace (root and unprivileged) and read a real
lifecycle's timeline.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import encodings.idna  # noqa: F401 - socket.create_connection() needs it; uid 65534 cannot import it from /root
import pytest

from tcplab.errors import NamespaceUnavailable
from tcplab.experiments import congestion, handshake, lifecycle, loss_recovery
from tcplab.experiments.registry import functions, names
from tcplab.experiments.timeline import CONNECTIONLESS, PARTS, Timeline, timeline_from_pcap, timeline_from_segments, timeline_of
from tcplab.experiments.trace import trace
from tcplab.kernel.capture import decode_ipv4_tcp
from tcplab.kernel.pcap import encode_ipv4_tcp, read_pcap, write_pcap
from tcplab.viz.timeline import timeline_figure

C, S = ("127.0.0.1", 40000), ("127.0.0.1", 8080)


def _seg(t, a, b, flags, seq, ack, n=0, **opts):
    if "sack_blocks" in opts:
        opts = {"sack": len(opts["sack_blocks"]), **opts}     # as decode_ipv4_tcp() gives them
    return {"t": t, "src": a[0], "src_port": a[1], "dst": b[0], "dst_port": b[1], "flags": flags, "seq": seq,
            "ack": ack, "window": 512, "options": opts, "payload": n}


#: a whole connection: handshake, 3 data segments (the second lost and retransmitted, a SACKed dupACK), close
CONNECTION = [
    _seg(0.000, C, S, "S", 1000, 0, mss=1460, sack_perm=True, ts_val=1, ts_ecr=0, wscale=7),
    _seg(0.010, S, C, "SA", 5000, 1001, mss=1460, sack_perm=True, ts_val=9, ts_ecr=1, wscale=7),
    _seg(0.020, C, S, "A", 1001, 5001),
    _seg(0.021, C, S, "PA", 1001, 5001, 100),
    _seg(0.022, C, S, "PA", 1101, 5001, 100),
    _seg(0.023, C, S, "PA", 1201, 5001, 100),
    _seg(0.031, S, C, "A", 5001, 1101),
    _seg(0.033, S, C, "A", 5001, 1101, sack_blocks=[(1201, 1301)]),
    _seg(0.034, C, S, "PA", 1101, 5001, 100),
    _seg(0.044, S, C, "A", 5001, 1301),
    _seg(0.050, C, S, "FA", 1301, 5001),
    _seg(0.060, S, C, "FA", 5001, 1302),
    _seg(0.070, C, S, "A", 1302, 5002),
]


def test_segments_are_numbered_marked_and_followed_through_the_state_table():
    tl = timeline_from_segments(CONNECTION, "synthetic")
    rows = tl.segments
    assert [(r["src_end"], r["rel_seq"], r["rel_ack"]) for r in rows[:3]] == [
        ("client", 0, None), ("server", 0, 1), ("client", 1, 1)]
    assert [r["mark"] for r in rows].count("retransmit") == 1 and rows[8]["mark"] == "retransmit"
    assert rows[7]["sack"] == [(201, 301)]          # relative to the client's ISN, as the data it names
    states = {e: [r["state"] for r in tl.states if r["end"] == e] for e in ("client", "server")}
    assert states == {"client": ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"],
                      "server": ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSE"]}
    df = tl.table()
    assert len(df) == len(tl.segments) + len(tl.states) and list(df["t"]) == sorted(df["t"])
    assert df.loc[df["part"] == "segment", "options"].iloc[0] == "mss=1460, sack_perm, ts_val=1, ts_ecr=0, wscale=7"


def test_a_capture_without_the_syn_is_said_to_start_mid_connection():
    tl = timeline_from_segments(CONNECTION[3:], "mid")
    assert tl.notes and "without their SYN" in tl.notes[0]
    assert [r["state"] for r in tl.states if r["end"] == "client"][:1] == ["ESTABLISHED"]
    assert tl.segments[0]["src_end"] == "client" and tl.segments[0]["src_port"] == C[1]   # the higher port


@pytest.mark.parametrize("name", names())
def test_every_experiment_gives_a_timeline_or_says_why_not(name):
    r = functions()[name](mode="sim")
    if name in CONNECTIONLESS or name == "rebind":
        with pytest.raises(ValueError, match="result must"):
            timeline_of(r)
        return
    tl = timeline_of(r)
    assert tl.segments or tl.states or tl.tcp_info or tl.queues
    assert set(tl.table()["part"]) <= set(PARTS)


def test_window_counts_in_flight_in_packets_like_every_other_timeline():
    from tcplab.experiments import window
    tl = timeline_of(window(mode="sim"))
    assert max(r["in_flight"] for r in tl.tcp_info) == max(r["cwnd"] for r in tl.tcp_info)   # cwnd-limited


def test_what_the_simulated_results_give():
    hs = timeline_of(handshake(mode="sim"))
    assert [r["state"] for r in hs.states if r["end"] == "client"] == [
        "SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"]
    assert hs.segments[0]["options"]["mss"] == 65495
    lr = timeline_of(loss_recovery(drop="5th", mode="sim"))
    marks = [s["mark"] for s in lr.segments]
    assert "lost" in marks and "retransmit" in marks and "dupack" in marks
    lost = next(s for s in lr.segments if s["mark"] == "lost")
    assert lost["rel_seq"] == 4 * 1448 + 1      # the 5th segment, relative to the ISN
    cg = timeline_of(congestion(duration=1, mode="sim"))
    assert all(r["cwnd"] for r in cg.tcp_info) and {q["queue"] for q in cg.queues} == {"bottleneck"}
    assert len(cg.table("tcp_info")) == len(cg.tcp_info)


def test_milestones_put_each_mechanism_in_its_order_on_the_time_axis():
    loss = timeline_of(loss_recovery(drop="5th", mode="sim")).milestones()
    order = list(loss["event"])
    assert order.index("lost") < order.index("duplicate ACK 1") < order.index("duplicate ACK 3") \
        <= order.index("retransmission"), order
    assert order.count("retransmission") == 1 and "duplicate ACK 5" in order and "duplicate ACK 6" not in order
    assert list(loss.columns) == ["t", "t_ms", "end", "event", "detail", "part"]
    assert (loss["t"].diff().dropna() >= 0).all()
    hs = timeline_of(handshake(mode="sim")).milestones()
    events = list(zip(hs["end"], hs["event"]))
    assert events.index(("client", "SYN")) < events.index(("server", "SYN-ACK")) \
        < events.index(("server", "-> ESTABLISHED")) < events.index(("client", "FIN"))
    assert set(hs["part"]) == {"segment", "state"}
    # a congestion state change comes from TCP_INFO, with cwnd and ssthresh
    tl = Timeline("demo", tcp_info=[{"t": 0.0, "end": "client", "ca_state": "Open", "cwnd": 10, "ssthresh": None},
                                    {"t": 0.1, "end": "client", "ca_state": "Open", "cwnd": 11, "ssthresh": None},
                                    {"t": 0.2, "end": "client", "ca_state": "Recovery", "cwnd": 3, "ssthresh": 9}])
    ms = tl.milestones()
    assert list(ms["event"]) == ["congestion state Open", "congestion state Recovery"]
    assert list(ms["detail"]) == ["cwnd 10, ssthresh -", "cwnd 3, ssthresh 9"]
    assert tl.milestones(conn=1).empty


def test_the_figure_shares_one_time_axis_and_says_what_it_thinned():
    big = [_seg(0.0, C, S, "S", 0, 0), _seg(0.001, S, C, "SA", 0, 1), _seg(0.002, C, S, "A", 1, 1)]
    for i in range(20_000):     # two data segments, then an ACK: a stride over all could alias onto one kind
        big.append(_seg(0.003 + i * 1e-5, C, S, "A", 1 + 100 * i, 1, 100) if i % 3 != 2
                   else _seg(0.003 + i * 1e-5, S, C, "A", 1, 1 + 100 * i))
    tl = timeline_from_segments(big, "big")
    fig = timeline_figure(tl, max_segments=1000)
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0].startswith("segments (") and "of 20003 drawn" in titles[0]
    drawn = int(titles[0].split("(")[1].split()[0])
    assert 900 <= drawn <= 1000                    # the budget, and SYN + SYN-ACK kept
    assert "20003 segments drawn" in fig.layout.title.text
    drawn_kinds = {t.name: len(t.x) for t in fig.data if t.name in ("data", "ack", "SYN")}
    assert drawn_kinds["SYN"] == 2 and drawn_kinds["data"] > 500 and drawn_kinds["ack"] > 250, drawn_kinds
    assert len(tl.table("segment")) == 20_003                     # the table keeps every row
    xaxes = [k for k in fig.layout if k.startswith("xaxis")]
    # make_subplots(shared_xaxes=True): every x axis matches the bottom one, so zooming one zooms all
    bottom = f"x{len(xaxes)}"
    assert len(xaxes) >= 3 and all(fig.layout[k].matches == bottom for k in xaxes if k != f"xaxis{len(xaxes)}")


def test_bad_input_names_the_parameter():
    tl = timeline_from_segments(CONNECTION, "synthetic")
    with pytest.raises(ValueError, match="part must be one of"):
        tl.table("packets")
    with pytest.raises(ValueError, match=r"max_segments must be an int in 10\.\.1000000"):
        timeline_figure(tl, max_segments=5)
    with pytest.raises(ValueError, match="conn must be one of"):
        timeline_figure(tl, conn=3)
    with pytest.raises(TypeError, match="result must be an experiment's Result"):
        timeline_of("handshake")
    with pytest.raises(ValueError, match=r"timeout must be"):
        trace(lambda: None, timeout=0)
    with pytest.raises(ValueError, match=r"interval must be"):
        trace(lambda: None, interval=2)
    with pytest.raises(TypeError, match="fn must be a callable"):
        trace(42)
    with pytest.raises(ValueError, match="path must be an existing pcap file"):
        timeline_from_pcap("/nonexistent/x.pcap")
    with pytest.raises(ValueError, match="segments must carry addresses and ports"):
        timeline_of(handshake(mode="sim")).to_pcap("/tmp/never-written.pcap")


def test_trace_says_why_where_namespaces_are_forbidden(monkeypatch):
    monkeypatch.setenv("TCPLAB_FORBID_NAMESPACES", "1")
    with pytest.raises(NamespaceUnavailable, match="tcplab.trace runs your function in a private network namespace"):
        trace(lambda: None)


# ---------------------------------------------------------------- pcap

def test_a_segment_encodes_and_decodes_to_itself():
    for seg in CONNECTION:
        back = decode_ipv4_tcp(encode_ipv4_tcp(seg))
        assert {k: back[k] for k in seg if k != "t"} == {k: v for k, v in seg.items() if k != "t"}


def test_pcap_round_trip_gives_the_same_segments(tmp_path):
    tl = timeline_from_segments(CONNECTION, "synthetic", t0_unix=1_700_000_000.25)
    path = tmp_path / "c.pcap"
    assert tl.to_pcap(path) == len(CONNECTION)
    back = timeline_from_pcap(path)
    assert back.t0_unix == pytest.approx(1_700_000_000.25, abs=1e-6)
    keys = ("conn", "src_end", "flags", "seq", "ack", "rel_seq", "rel_ack", "len", "window", "sack", "options", "mark",
            "src", "src_port", "dst", "dst_port")
    assert [{k: s[k] for k in keys} for s in back.segments] == [{k: s[k] for k in keys} for s in tl.segments]
    assert [s["t"] for s in back.segments] == pytest.approx([s["t"] for s in tl.segments], abs=1e-6)
    assert [{k: v for k, v in r.items() if k != "t"} for r in back.states] == [
        {k: v for k, v in r.items() if k != "t"} for r in tl.states]


def test_pcap_reader_takes_ethernet_big_endian_nanoseconds_and_snapped_packets(tmp_path):
    ip = encode_ipv4_tcp(CONNECTION[3])                       # 100 bytes of data
    eth = b"\x00" * 12 + b"\x08\x00" + ip
    arp = b"\x00" * 12 + b"\x08\x06" + b"\x00" * 28
    snapped = eth[:14 + 20 + 32]                             # headers only, as tcpdump -s 66 keeps
    path = tmp_path / "e.pcap"
    with open(path, "wb") as f:
        f.write(struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 66, 1))
        for i, frame in enumerate((eth, arp, snapped)):
            f.write(struct.pack(">IIII", 10, 500_000_000 + i, len(frame), len(eth)) + frame)
    segs, skipped = read_pcap(path)
    assert skipped == 1 and len(segs) == 2
    assert segs[0]["time"] == pytest.approx(10.5) and [s["payload"] for s in segs] == [100, 100]


@pytest.mark.parametrize("content, match", [
    (b"\x0a\x0d\x0d\x0a" + b"\0" * 40, "is pcapng"),
    (b"GIF89a" + b"\0" * 40, "must be a classic pcap file"),
    (b"\xd4\xc3\xb2\xa1", "24-byte header"),
    (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 147), "link type 147 is not supported"),
])
def test_pcap_reader_refuses_what_it_cannot_read(tmp_path, content, match):
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        timeline_from_pcap(path)


def test_write_pcap_writes_a_classic_header(tmp_path):
    path = tmp_path / "h.pcap"
    write_pcap(path, [(1.5, encode_ipv4_tcp(CONNECTION[0]))])
    data = path.read_bytes()
    assert struct.unpack_from("<IHHiIII", data) == (0xA1B2C3D4, 2, 4, 0, 0, 262144, 101)
    assert struct.unpack_from("<II", data, 24) == (1, 500_000)


# ---------------------------------------------------------------- real: trace and lifecycle

def _echo(rounds: int = 5, size: int = 20_000) -> bytes:
    """A learner's client and server on 127.0.0.1: the client sends ``size`` bytes ``rounds`` times, 20 ms
    apart (its think time: long enough for the trace to sample both sockets), the server echoes each
    round whole; both close."""
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]
        srv.settimeout(5)

        def serve() -> None:
            conn, _ = srv.accept()
            with conn:
                conn.settimeout(5)
                for _ in range(rounds):
                    got = b""
                    while len(got) < size:
                        got += conn.recv(size - len(got))
                    conn.sendall(got)

        th = threading.Thread(target=serve)
        th.start()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            for _ in range(rounds):
                time.sleep(0.02)
                c.sendall(b"x" * size)
                back = b""
                while len(back) < size:
                    back += c.recv(size - len(back))
        th.join(5)
        return back[:5]


def _trace_echo(sysctls):
    tl = trace(_echo, 5, sysctls=sysctls, timeout=20)
    return tl


@pytest.mark.real
@pytest.mark.parametrize("sack", [1, 0])
def test_trace_captures_the_connection_and_samples_tcp_info(as_user, sack):
    from tests.conftest import child_pids

    before = child_pids()
    tl = as_user(_trace_echo, {"net.ipv4.tcp_sack": sack})
    assert child_pids() <= before
    assert tl.value == b"xxxxx"
    syn = tl.segments[0]
    assert syn["flags"] == "S" and tl.segments[1]["flags"] == "SA"
    # the sysctl reached the namespace: the SYN offers SACK only with tcp_sack=1 (tcp_syn_options())
    assert bool(syn["options"].get("sack_perm")) is bool(sack)
    data = sum(s["len"] for s in tl.segments if s["src_end"] == "client")
    assert data == 5 * 20_000
    states = [r["state"] for r in tl.states if r["end"] == "client"]
    assert states[:2] == ["SYN_SENT", "ESTABLISHED"] and states[-1] in ("TIME_WAIT", "CLOSE")
    ends = {r["end"] for r in tl.tcp_info}
    assert ends <= {"client", "server"} and any(r["cwnd"] and r["srtt_ms"] > 0 for r in tl.tcp_info)


def _boom():
    with socket.create_connection(("127.0.0.1", 9), timeout=2):
        pass


@pytest.mark.real
def test_trace_reraises_with_the_timeline_so_far():
    with pytest.raises(ConnectionRefusedError) as e:
        trace(_boom, timeout=10)
    tl = e.value.timeline
    # the SYN and the RST that refused it: the client goes SYN_SENT -> CLOSE
    assert [s["flags"] for s in tl.segments] == ["S", "RA"]
    assert [r["state"] for r in tl.states if r["end"] == "client"] == ["SYN_SENT", "CLOSE"]


@pytest.mark.real
def test_trace_is_bounded_in_time():
    from tests.conftest import child_pids

    before = child_pids()
    start = time.monotonic()
    tl = trace(time.sleep, 30, timeout=0.5)
    assert time.monotonic() - start < 15
    assert any("still running after timeout=0.5 s" in n for n in tl.notes)
    assert child_pids() <= before


@pytest.mark.real
def test_trace_round_trips_through_pcap(tmp_path):
    tl = trace(_echo, 2, timeout=20)
    path = tmp_path / "trace.pcap"
    assert tl.to_pcap(path) == len(tl.segments)
    back = timeline_from_pcap(path)
    keys = ("flags", "seq", "ack", "rel_seq", "rel_ack", "len", "window", "sack", "options", "src_port", "dst_port")
    assert [{k: s[k] for k in keys} for s in back.segments] == [{k: s[k] for k in keys} for s in tl.segments]
    assert [r["state"] for r in back.states] == [r["state"] for r in tl.states]


@pytest.mark.real
def test_a_real_lifecycle_timeline_holds_its_segments_and_states():
    if os.geteuid() != 0:
        pytest.skip("not root")
    r = lifecycle("client_closes_first", mode="real")
    if r.sampled:
        pytest.skip("no packet capture in this run: " + "; ".join(r.notes))
    tl = timeline_of(r)
    assert tl.segments and tl.segments[0]["flags"] == "S"
    assert [x["state"] for x in tl.states if x["end"] == "client"] == r.summary["client_states"]
    # the lifecycle's own states and those the timeline derives again from the same segments agree
    again = timeline_from_segments(r.tables["segments"].to_dict("records"), "again")
    assert [x["state"] for x in again.states if x["end"] == "server"] == r.summary["server_states"]
    assert tl.events and timeline_figure(tl).data


def test_a_snapped_packet_keeps_its_payload_length_from_the_ip_header():
    packet = encode_ipv4_tcp(CONNECTION[3])
    assert decode_ipv4_tcp(packet[:40 + 12])["payload"] == 100 == decode_ipv4_tcp(packet)["payload"]


@pytest.mark.parametrize("snaplen", [0, 59, 65536, True, 1.5])
def test_capture_snaplen_is_checked_before_opening_anything(snaplen):
    from tcplab.kernel.capture import Capture

    with pytest.raises(ValueError, match=r"snaplen must be an int in 60\.\.65535 or None"):
        Capture("lo", snaplen=snaplen)


def test_kernel_vs_model_names_a_sample_the_state_table_never_had():
    tl = timeline_from_segments(CONNECTION, "synthetic")
    tl.tcp_info = [{"t": 0.025, "conn": 0, "end": "client", "state": "ESTABLISHED"},
                   {"t": 0.055, "conn": 0, "end": "client", "state": "FIN_WAIT2"},    # FIN_WAIT1 until 0.060
                   {"t": 0.0601, "conn": 0, "end": "server", "state": "CLOSE_WAIT"},  # LAST_ACK from 0.060: near
                   {"t": 0.040, "conn": 0, "end": "server", "state": "CLOSE_WAIT"}]   # ESTABLISHED: they part
    parted = tl.kernel_vs_model(tolerance=0.002)
    assert parted[["t", "end", "kernel", "model"]].to_dict("records") == [
        {"t": 0.055, "end": "client", "kernel": "FIN_WAIT2", "model": "FIN_WAIT1"},
        {"t": 0.040, "end": "server", "kernel": "CLOSE_WAIT", "model": "ESTABLISHED"}]
    with pytest.raises(ValueError, match=r"tolerance must be"):
        tl.kernel_vs_model(tolerance=-1)


def _close(server_delay_s: float, listener_delay_s: float) -> None:
    """The client closes first; the server reads the FIN and closes ``server_delay_s`` later, the listener
    ``listener_delay_s`` after that. With 40 ms the server sits in CLOSE_WAIT long enough to be sampled, the
    client in FIN_WAIT1 (measured: the server's ACK of the FIN is delayed and rides on its own FIN:
    tcp_fin(), net/ipv4/tcp_input.c, only schedules the ACK and enters pingpong mode on ESTABLISHED ->
    CLOSE_WAIT)."""
    with socket.create_server(("127.0.0.1", 0)) as srv:
        srv.settimeout(5)
        with socket.create_connection(srv.getsockname(), timeout=5) as c:
            s, _ = srv.accept()
            time.sleep(0.03)
            c.sendall(b"hello")
        with s:
            s.settimeout(5)
            while s.recv(100):
                pass
            time.sleep(server_delay_s)
        time.sleep(listener_delay_s)


@pytest.mark.real
def test_the_kernel_and_the_state_table_agree_on_a_traced_close():
    tl = trace(_close, 0.04, 0.0, timeout=20, interval=0.002)
    sampled = {(r["end"], r["state"]) for r in tl.tcp_info}
    assert {("client", "ESTABLISHED"), ("client", "FIN_WAIT1"), ("server", "CLOSE_WAIT")} <= sampled, sampled
    # the bound is the host's: a received segment is captured before the kernel processes it
    parted = tl.kernel_vs_model(tolerance=0.05)
    assert parted.empty, parted


@pytest.mark.real
def test_a_closed_connection_is_not_sampled_as_its_listener():
    # inet_diag_find_one_icsk() finds the listener for a 4-tuple whose connection is gone
    tl = trace(_close, 0.0, 0.05, timeout=20, interval=0.002)          # the listener stays open 50 ms more
    assert tl.tcp_info and not [r for r in tl.tcp_info if r["state"] == "LISTEN"], tl.tcp_info[-3:]
    assert tl.kernel_vs_model(tolerance=0.05).empty


@pytest.mark.real
def test_a_real_loss_has_the_senders_tcp_info_under_its_segments():
    from tcplab.errors import RealModeUnavailable

    try:
        r = loss_recovery(drop="5th", bytes=50_000, mode="real")
    except RealModeUnavailable as e:
        pytest.skip(str(e))
    if "segments" not in r.tables or not len(r.tables["segments"]):
        pytest.skip("no packet capture in this run: " + "; ".join(r.notes))
    tl = timeline_of(r)
    assert [s["mark"] for s in tl.segments].count("lost") == 1
    ca = [x["ca_state"] for x in tl.tcp_info]
    # the fast retransmission: the sender entered Recovery, retransmitted once, and left it
    assert "Recovery" in ca and ca[-1] == "Open" and tl.tcp_info[-1]["total_retrans"] == 1, ca
    first_retx = next(x["t"] for x in tl.tcp_info if x["total_retrans"])
    retx = next(s["t"] for s in tl.segments if s["mark"] == "retransmit")
    assert abs(first_retx - retx) < 0.01                          # one clock for both: the segments' origin
    assert any(getattr(t, "y", None) is not None and "ca: client" in t.y for t in timeline_figure(tl).data)


def test_an_experiment_panel_draws_the_timeline_with_one_argument():
    pytest.importorskip("ipywidgets")
    pytest.importorskip("anywidget")
    from tcplab.widgets.generic import ExperimentPanel

    panel = ExperimentPanel("loss_recovery", mode="sim", run_first=False,
                            figure=lambda r: timeline_figure(timeline_of(r)))
    fig = panel.figure(loss_recovery(mode="sim"))
    assert [a.text for a in fig.layout.annotations][:2] == ["segments (20 of 20 drawn)", "relative sequence numbers"]


def test_several_connections_are_told_apart_and_the_figure_says_which_it_draws(tmp_path):
    other = ("127.0.0.1", 40001)
    second = [dict(s, t=s["t"] + 1, src_port=other[1] if s["src_port"] == C[1] else s["src_port"],
                   dst_port=other[1] if s["dst_port"] == C[1] else s["dst_port"]) for s in CONNECTION[:4]]
    tl = timeline_from_segments(CONNECTION + second, "two")
    assert [c["segments"] for c in tl.connections()] == [len(CONNECTION), 4]
    assert {r["conn"] for r in tl.states} == {0, 1}
    fig = timeline_figure(tl)
    assert "connection 0 of 2" in fig.layout.title.text
    assert "connection 1 of 2" in timeline_figure(tl, conn=1).layout.title.text
    path = tmp_path / "two.pcap"
    tl.to_pcap(path)
    assert [c["segments"] for c in timeline_from_pcap(path).connections()] == [len(CONNECTION), 4]
