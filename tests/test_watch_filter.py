"""tcplab.watch's pure parts: the INET_DIAG_REQ_BYTECODE compiler (against a model of the kernel's
inet_diag_bc_run/inet_diag_bc_audit), the sock_diag message decoder, the DataFrame's NA rules and
the text table. No socket: the real runs are in test_watch_real.py."""

from __future__ import annotations

import itertools
import random
import struct

import pytest

from tcplab.errors import ParseError, SockDiagUnavailable
from tcplab.kernel import diag_watch
from tcplab.kernel.diag_filter import (BC_D_COND, BC_JMP, BC_S_COND, Cond, audit_filter, compile_filter,
                                       port_address_filter, run_filter)
from tcplab.kernel.tcpinfo import decode_tcp_info
from tcplab.watching import WATCH_COLUMNS, _Columns, _frame, format_table


def test_port_filter_layout_is_ss_shape():
    """``sport = :80 or dport = :80`` as ss compiles it: S_COND, JMP to the end, D_COND rejecting."""
    prog = port_address_filter(port=80)
    ops = [struct.unpack_from("=BBH", prog, at) for at in (0, 12, 16)]
    assert len(prog) == 28
    assert ops == [(BC_S_COND, 12, 16), (BC_JMP, 4, 16), (BC_D_COND, 12, 16)]
    assert struct.unpack_from("=BBxxi", prog, 4) == (0, 0, 80)          # AF_UNSPEC, prefix 0, port 80
    assert port_address_filter() == b""


ADDRS = ["127.0.0.1", "127.0.0.2", "10.1.2.3"]
PORTS = [80, 8080, 40000]


@pytest.mark.parametrize("kwargs", [
    {"port": 80}, {"local_port": 8080}, {"remote_port": 80}, {"address": "127.0.0.2"},
    {"address": "127.0.0.0/8"}, {"port": 8080, "address": "10.0.0.0/8"},
    {"local_port": 80, "remote_port": 40000}, {"port": 80, "local_port": 80, "address": "127.0.0.1"},
])
def test_filter_accepts_exactly_what_it_says(kwargs):
    import ipaddress
    prog = port_address_filter(**kwargs)
    audit_filter(prog)
    for (sa, sp), (da, dp) in itertools.product(itertools.product(ADDRS, PORTS), repeat=2):
        want = True
        if "port" in kwargs:
            want &= kwargs["port"] in (sp, dp)
        if "local_port" in kwargs:
            want &= sp == kwargs["local_port"]
        if "remote_port" in kwargs:
            want &= dp == kwargs["remote_port"]
        if "address" in kwargs:
            net = ipaddress.ip_network(kwargs["address"])
            want &= ipaddress.ip_address(sa) in net or ipaddress.ip_address(da) in net
        assert run_filter(prog, (sa, sp), (da, dp)) == want, (kwargs, sa, sp, da, dp)


def test_ipv6_address_condition():
    prog = port_address_filter(address="::1")
    audit_filter(prog)
    assert run_filter(prog, ("::1", 80), ("::2", 5)) and not run_filter(prog, ("::3", 80), ("::2", 5))
    assert len(Cond("src", network="::1").encode()) == 4 + 8 + 16


def test_random_cnf_programs_pass_the_audit():
    rng = random.Random(7)
    for _ in range(200):
        clauses = [[Cond(rng.choice(["src", "dst"]), port=rng.choice([None, 80, 443]),
                         network=rng.choice([None, "127.0.0.0/8", "10.0.0.1", "::1"]))
                    for _ in range(rng.randint(1, 3))] for _ in range(rng.randint(1, 3))]
        audit_filter(compile_filter(clauses))


def test_audit_catches_a_broken_program():
    prog = bytearray(port_address_filter(port=80))
    prog[2:4] = struct.pack("=H", 8)                  # S_COND's "no" into the middle of itself
    with pytest.raises(ValueError, match="no="):
        audit_filter(bytes(prog))
    with pytest.raises(ValueError, match="each clause needs"):
        compile_filter([[]])
    with pytest.raises(ValueError, match="port must be None or an int in 0..65535"):
        Cond("src", port=70000).encode()


# --- the decoder ----------------------------------------------------------------------------------

def _tcp_info(rng: random.Random, n: int = 232) -> bytes:
    raw = bytearray(rng.randbytes(n))
    raw[0] = 1                                        # ESTABLISHED: a real tcp_info
    return bytes(raw)


def _message(state: int, sport: int, dport: int, cookie: int, rq: int, wq: int, info: bytes | None,
             family: int = 2, after: bytes = b"") -> bytes:
    src = bytes([127, 0, 0, 1]) + bytes(12)
    dst = bytes([127, 0, 0, 2]) + bytes(12)
    msg = struct.pack("=BBBB", family, state, 0, 0) + struct.pack(">HH", sport, dport) + src + dst \
        + struct.pack("=IQ", 0, cookie) + struct.pack("=IIIII", 0, rq, wq, 1000, 99)
    attrs = struct.pack("=HHB3x", 5, 8, 0)            # INET_DIAG_SHUTDOWN (u8), padded: comes before INFO
    if info is not None:
        attrs += struct.pack("=HH", 4 + len(info), diag_watch.INET_DIAG_INFO) + info
    body = msg + attrs + after
    return struct.pack("=IHHII", 16 + len(body), 20, 2, 1, 0) + body


DONE = struct.pack("=IHHII", 20, 3, 2, 1, 0) + bytes(4)


def test_decoder_reads_the_fields_where_tcpinfo_decodes_them():
    rng = random.Random(3)
    info = _tcp_info(rng)
    rows: list[tuple] = []
    assert diag_watch.parse_info_messages(_message(1, 80, 5000, 42, 7, 9, info) + DONE, rows)
    row = dict(zip(diag_watch.ROW_FIELDS, rows[0]))
    assert (row["sport"], row["dport"], row["cookie"], row["rqueue"], row["wqueue"], row["uid"], row["inode"]) \
        == (80, 5000, 42, 7, 9, 1000, 99)
    ref = decode_tcp_info(info)
    x = ref.extra
    assert row["ca_state"] == info[1] and row["retransmits"] == ref.retransmits and row["backoff"] == ref.backoff
    assert (row["rto_us"], row["snd_mss"], row["total_retrans"]) == (ref.rto, ref.snd_mss, ref.total_retrans)
    for mine, theirs in [("unacked", "unacked"), ("lost", "lost"), ("retrans", "retrans"), ("rtt_us", "rtt"),
                         ("rttvar_us", "rttvar"), ("ssthresh", "snd_ssthresh"), ("cwnd", "snd_cwnd"),
                         ("bytes_acked", "bytes_acked"), ("bytes_received", "bytes_received"),
                         ("notsent_bytes", "notsent_bytes"), ("min_rtt_us", "min_rtt"),
                         ("delivery_rate", "delivery_rate")]:
        assert row[mine] == x[theirs], mine


def test_decoder_without_info_and_with_a_short_info():
    rows: list[tuple] = []
    diag_watch.parse_info_messages(_message(6, 80, 5000, 1, 0, 0, None)
                                   + _message(1, 80, 5001, 2, 0, 0, _tcp_info(random.Random(1), 104)), rows)
    assert rows[0][len(rows[0]) - len(diag_watch.INFO_FIELDS):] == diag_watch.NO_INFO
    short = dict(zip(diag_watch.ROW_FIELDS, rows[1]))
    assert short["tcpi_state"] == 1 and short["delivery_rate"] == 0 and short["bytes_acked"] == 0


def test_decoder_finds_tcp_info_last_or_anywhere():
    """tcp_info as the last attribute (as the kernel usually writes it) or followed by another (a
    ULP's info), even when another attribute's payload ends with bytes that look like its header."""
    rng = random.Random(11)
    info = _tcp_info(rng)
    ulp = struct.pack("=HH", 12, 19) + b"tls\0" + bytes(4)             # INET_DIAG_ULP_INFO after tcp_info
    fake = struct.pack("=HH", 4 + len(info), diag_watch.INET_DIAG_INFO)  # INFO's header inside ULP's payload
    odd = struct.pack("=HH", 4 + len(info) + 4, 19) + bytes(len(info) - 4) + fake + bytes(4)
    rows: list[tuple] = []
    diag_watch.parse_info_messages(_message(1, 80, 1, 1, 0, 0, info)
                                   + _message(1, 80, 2, 2, 0, 0, info, after=ulp)
                                   + _message(1, 80, 3, 3, 0, 0, info)
                                   + _message(6, 80, 4, 4, 0, 0, None)               # no tcp_info at all
                                   + _message(1, 80, 5, 5, 0, 0, info, after=odd), rows)
    n = len(diag_watch.INFO_FIELDS)
    assert rows[0][-n:] != diag_watch.NO_INFO and rows[3][-n:] == diag_watch.NO_INFO
    assert [r[-n:] for r in rows] == [rows[0][-n:]] * 3 + [diag_watch.NO_INFO, rows[0][-n:]]


@pytest.mark.parametrize("data,exc,match", [
    (struct.pack("=IHHII", 20, 2, 0, 1, 0) + struct.pack("=i", -1), SockDiagUnavailable, "error 1"),
    (struct.pack("=IHHII", 200, 20, 2, 1, 0), ParseError, "out of bounds"),
    (struct.pack("=IHHII", 20, 20, 2, 1, 0) + bytes(4), ParseError, "unexpected netlink message"),
    (b"\x01\x02", ParseError, "truncated"),
    (_message(1, 80, 1, 1, 0, 0, bytes(200))[:-100], ParseError, "out of bounds"),
    (struct.pack("=I", 88 + 8) + _message(1, 80, 1, 1, 0, 0, None)[4:88] + struct.pack("=HH", 300, 2) + bytes(4),
     ParseError, "attribute of length 300"),
])
def test_decoder_refuses_malformed_input(data, exc, match):
    with pytest.raises(exc, match=match):
        diag_watch.parse_info_messages(data, [])


def test_request_carries_the_bytecode_attribute():
    prog = port_address_filter(port=80)
    req = diag_watch.build_info_request(2, 1 << 10, prog)
    length, mtype, flags = struct.unpack_from("=IHH", req)
    assert length == len(req) == 16 + 56 + 4 + len(prog) and mtype == 20 and flags == 0x301
    assert req[16 + 2] == 1 << 1                       # idiag_ext: INET_DIAG_INFO
    assert struct.unpack_from("=HH", req, 72) == (4 + len(prog), 1) and req[76:] == prog


# --- the DataFrame and the table ------------------------------------------------------------------

def _rows() -> list[tuple]:
    rng = random.Random(5)
    out: list[tuple] = []
    info = bytearray(_tcp_info(rng))
    struct.pack_into("=I", info, 76, 0x7FFFFFFF)       # ssthresh infinite
    struct.pack_into("=I", info, 80, 10)               # cwnd
    diag_watch.parse_info_messages(_message(10, 80, 0, 1, 3, 128, _tcp_info(rng))          # listener
                                   + _message(1, 80, 5000, 2, 700, 50, bytes(info))        # established
                                   + _message(6, 80, 5001, 3, 0, 0, None), out)            # TIME_WAIT
    return out


def test_frame_puts_na_where_the_kernel_gave_nothing():
    cols = _Columns()
    cols.add(0.0, _rows())
    cols.add(1.0, _rows())
    df = _frame(cols)
    assert list(df.columns) == WATCH_COLUMNS and len(df) == 6
    lst, est, tw = (df.iloc[i] for i in range(3))
    assert str(lst.state) == "LISTEN" and (lst.accept_queue, lst.accept_limit) == (3, 128)
    assert lst.recv_q is __import__("pandas").NA and lst.cwnd is __import__("pandas").NA
    assert (est.recv_q, est.send_q, est.cwnd) == (700, 50, 10) and est.ssthresh is __import__("pandas").NA
    assert est.accept_queue is __import__("pandas").NA
    assert str(tw.state) == "TIME_WAIT" and tw.cwnd is __import__("pandas").NA and tw.srtt_ms != tw.srtt_ms
    assert df.conn.nunique() == 3 and str(lst.conn) == "127.0.0.1:80 (listen)"
    assert cols.nbytes() == 6 * (8 + 4 + 5 * 1 + 13 * 4 + 3 * 8)       # 93 bytes a row


def test_table_shows_listener_queue_and_dashes():
    cols = _Columns()
    cols.add(2.0, _rows())
    lines = format_table(_frame(cols), rows=2, title="sample 3")
    assert lines[0] == "sample 3  t=2.0s  3 sockets"
    assert lines[-1] == "... and 1 more (--rows)" and len(lines) == 5
    listen = next(line for line in lines if line.startswith("LISTEN"))
    assert listen.split()[1:3] == ["3", "128"] and listen.split()[-1] == "-"
