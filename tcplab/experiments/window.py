"""window: the sliding window on a path with delay - window/RTT caps throughput, window scaling,
and receive-buffer autotuning.

One bulk transfer through the bottleneck path of :mod:`tcplab.kernel.bottleneck` (a tbf rate, a
drop-tail buffer, a userspace TUN delay line of ``rtt_ms``). The receiver, in its own namespace,
either never sets SO_RCVBUF (autotuning: ``tcp_rcv_space_adjust()`` grows the buffer and the window
with it) or locks it before listen(); ``net.ipv4.tcp_window_scaling`` is written in *both* ends'
namespaces (the sender's by the registry, the receiver's by the receiver before it accepts), because
each end reads its own namespace's value when the SYNs are exchanged (:mod:`tcplab.model.rwnd`).

A sender never has more than one receive window unacknowledged, so it delivers at most a window per
round trip: throughput <= min(rate, window x 8 / RTT). Without scaling the window field tops out at
65535 bytes: 13 Mbit/s at 40 ms, whatever the link.

>>> s = window(rcvbuf=None, window_scaling=False, rtt_ms=40, rate_mbit=20, seconds=3, mode="sim").summary
>>> s["sender_wscale"], s["receiver_wscale"], s["window_limit_packets"], s["window_cap_mbit"]
(None, None, 45, 13.032)
>>> s["throughput_mbit"] <= s["window_cap_mbit"]
True
"""

from __future__ import annotations

import os
import select
import socket
import statistics
import time
from collections.abc import Mapping
from typing import Any

from tcplab.errors import ExperimentError
from tcplab.experiments._common import PATH_RATE_PARAM, PATH_RTT_PARAM, LagMeter, delay_line_timings, send_and_sample
from tcplab.experiments.registry import make_function
from tcplab.experiments.spec import (Experiment, FromRun, GridPoint, Key, Param, Plot, Slider, Table, When,
                                     named)
from tcplab.kernel.bottleneck import DELAY_METHOD, bottleneck_path
from tcplab.kernel.namespace import set_namespace_sysctl
from tcplab.kernel.pipemsg import read_msg, send_msg
from tcplab.kernel.sysctl import read_sysctl
from tcplab.kernel.tcpinfo import packets_in_flight, tcp_info
from tcplab.model.cc import MSS, receive_window_packets
from tcplab.model.outcome import Outcome
from tcplab.model.profiles import KernelProfile, get_profile
from tcplab.model.rcvbuf import autotuning as autotuning_rule
from tcplab.model.rwnd import autotune_cap_packets, syn_wscale, window_cap_mbit, window_limit_packets
from tcplab.sim.bottleneck import simulate

__all__ = ["window", "SPEC"]

WSCALE_SYSCTL = "net.ipv4.tcp_window_scaling"
TCP_RMEM = "net.ipv4.tcp_rmem"
RMEM_MAX = "net.core.rmem_max"
_RCVBUF_HI = get_profile(None).rmem_max
#: the bottleneck's buffer: deep enough that a window-limited flow never fills it
BUFFER_PACKETS = 100
#: see tcplab.experiments.congestion: the delay line's p99 lateness, and the sender's own lag
DELAY_LINE_TOLERANCE_MS = 10.0
SENDER_LAG_TOLERANCE_MS = 250.0
#: "delay_line_p50": the delay line's median lateness. A window-limited flow delivers one window per
#: (RTT + lateness), so the typical packet's lateness, not only the p99's stalls, moves its throughput:
#: 1 ms is 5 % of the 20 ms RTT the course's shortest runs use (measured here: 0.03-0.05 ms at SCHED_FIFO,
#: 0.08-0.09 ms at normal priority as an unprivileged learner)
DELAY_LINE_P50_TOLERANCE_MS = 1.0
_TIMED = {"delay_line": DELAY_LINE_TOLERANCE_MS, "delay_line_p50": DELAY_LINE_P50_TOLERANCE_MS}
_SENT = {**_TIMED, "sender": SENDER_LAG_TOLERANCE_MS}
#: the sender's congestion control, set per socket (TCP_CONGESTION)
ALGORITHM = "cubic"
TIMELINE = ("t", "delivered_bytes", "snd_wnd", "cwnd", "srtt_ms", "in_flight")


def _limited(p: Mapping[str, Any]) -> bool:
    """The receiver's window, not the link or cwnd, decides: a locked buffer or no scaling."""
    return p["rcvbuf"] is not None or not p["window_scaling"]


def _own_wscale(side: str) -> Any:
    def predict(p: Mapping[str, Any], real: Mapping[str, Any], profile: str | None) -> int | None:
        if real.get("tcp_rmem_max") is None or real.get("rmem_max") is None:
            return None
        rcvbuf = p["rcvbuf"] if side == "receiver" else None      # the sender never sets SO_RCVBUF
        return syn_wscale(rcvbuf, real["tcp_rmem_max"], real["rmem_max"], p["window_scaling"])
    return predict


def _wscale_key(side: str, what: str) -> Key:
    return Key(f"{side}_wscale", what, rule=FromRun(
        _own_wscale(side), then=named("exact"), otherwise=named("host_rmem"), name="exact of the rule",
        meaning="tcp_select_initial_window() on this run's own tcp_rmem[2] and net.core.rmem_max"))


SPEC = Experiment(
    name="window",
    title="The sliding window on a path with delay: throughput capped at window/RTT, window scaling, autotuning",
    doc="""One bulk transfer for ``seconds`` through a bottleneck of ``rate_mbit`` and ``rtt_ms`` (the
    path of ``congestion``: tbf, a drop-tail buffer, a userspace TUN delay line). The sender can have at
    most one receive window unacknowledged, so it delivers at most ``min(rate, window / RTT)``.
    ``rcvbuf=N``: the receiver sets SO_RCVBUF before listen() (``__sock_set_rcvbuf()``: 2 N and
    SOCK_RCVBUF_LOCK): its window stays at ``tcp_win_from_space(2 N)``. ``rcvbuf=None``: autotuning
    (``tcp_rcv_space_adjust()``, net/ipv4/tcp_input.c) doubles the window each RTT the reader keeps up,
    toward ``tcp_rmem[2]``. ``window_scaling=False``: ``net.ipv4.tcp_window_scaling=0`` in both ends'
    namespaces; ``tcp_syn_options()`` (net/ipv4/tcp_output.c) leaves the wscale option off the SYN, the
    listener's ``tcp_parse_options()`` would ignore it anyway, and the 16-bit window field caps the
    window at 65535 bytes. The shift each SYN carries is ``tcp_select_initial_window()``'s
    ``ilog2(max(tcp_rmem[2], rmem_max)) - 15``, or less for a locked buffer.""",
    params=(
        Param("rcvbuf", "int", None, lo=1024, hi=_RCVBUF_HI, optional=True, unit="B",
              help="SO_RCVBUF the receiver sets (None: not set, autotuning)",
              slider=Slider(1024, _RCVBUF_HI, scale="log")),
        Param("window_scaling", "bool", True, sysctl=WSCALE_SYSCTL,
              help="net.ipv4.tcp_window_scaling in the sender's and the receiver's namespace"),
        PATH_RTT_PARAM,
        PATH_RATE_PARAM,
        Param("seconds", "float", 3.0, lo=0.5, hi=120, real_hi=20, unit="s",
              real_why="real runs are kept short; mode=\"sim\" runs minutes in about a second",
              help="how long the sender sends", slider=Slider(1, 20, step=1)),
    ),
    summary=(
        Key("throughput_mbit", "payload delivered, Mbit/s over the run (slow start included)", rule="rel10",
            tolerates=_SENT),
        Key("window_cap_mbit", "predicted: min(the link's payload rate, window_limit_packets x 1448 B x 8 / rtt)",
            rule="shown"),
        Key("window_limit_packets", "predicted: the most full segments the receiver lets out (locked: "
            "tcp_win_from_space(2 x SO_RCVBUF); no scaling: 65535 B; else what autotuning may reach)",
            rule="shown"),
        _wscale_key("sender", "the window scale on the sender's SYN (None: no option)"),
        _wscale_key("receiver", "the window scale on the receiver's SYN-ACK (None: no option)"),
        Key("max_advertised_window", "the largest window the receiver advertised, bytes (the sender's "
            "tcp_info.snd_wnd; sim: whole segments)",
            rule=When(_limited, named("rel10"), named("shown"), name="rel10 if the receiver limits",
                      otherwise_shows="shown", meaning="within 10 % when the buffer is locked or unscaled; "
                      "else autotuning's growth is shown")),
        Key("autotuned", "the receiver's SO_RCVBUF grew during the transfer (tcp_rcv_space_adjust())"),
        Key("rcvbuf_max", "the receiver's largest getsockopt(SO_RCVBUF) (sim: None without SO_RCVBUF)",
            rule=When(lambda p: p["rcvbuf"] is not None, named("exact"), named("shown"), name="exact if set",
                      otherwise_shows="shown", meaning="twice the request when set; else autotuning's, shown")),
        Key("srtt_ms", "median smoothed RTT the sender measured", rule="rel10", tolerates=_TIMED),
        Key("tcp_rmem_max", "tcp_rmem[2]: what autotuning may reach, and what sets the shift", rule="host_rmem"),
        Key("rmem_max", "net.core.rmem_max: the most SO_RCVBUF may ask for (host-wide)", rule="host_rmem"),
        Key("delay_method", "how the delay was made (and, real, how late the delay line ran)", rule="shown"),
    ),
    tables=(Table("receiver", ("t", "received", "rcvbuf", "rcv_wnd"),
                  "the receiver's SO_RCVBUF and advertised window each time its buffer changed"),),
    timeline=TIMELINE,
    grid=(
        GridPoint(dict(rcvbuf=None, window_scaling=False, rtt_ms=40, rate_mbit=20, seconds=3), quick=True,
                  why="no scaling: 45 segments per 40 ms, 13 Mbit/s of 19.3"),
        GridPoint(dict(rcvbuf=32768, window_scaling=True, rtt_ms=40, rate_mbit=20, seconds=3), quick=True,
                  why="a locked 64 KB buffer: a 40 KB window, shift 0"),
        GridPoint(dict(rcvbuf=None, window_scaling=True, rtt_ms=40, rate_mbit=20, seconds=3), quick=True,
                  why="autotuning opens the window past the path: the link decides"),
        GridPoint(dict(rcvbuf=131072, window_scaling=True, rtt_ms=80, rate_mbit=30, seconds=4),
                  why="a locked 256 KB buffer on a longer path: 113 segments per 80 ms"),
        GridPoint(dict(rcvbuf=None, window_scaling=False, rtt_ms=100, rate_mbit=10, seconds=4),
                  why="no scaling on a long path: 5.2 Mbit/s of 9.7"),
        GridPoint(dict(rcvbuf=16384, window_scaling=True, rtt_ms=20, rate_mbit=30, seconds=3)),
        GridPoint(dict(rcvbuf=None, window_scaling=True, rtt_ms=150, rate_mbit=40, seconds=4),
                  why="a 500-packet BDP: how fast autotuning opens the window decides the run (tcp_rcv_space_adjust() "
                      "grows ~3x per RTT in slow start; a model growing 2x gave 17.7 Mbit/s for the kernel's 25.4)"),
        GridPoint(dict(rcvbuf=212992, window_scaling=False, rtt_ms=30, rate_mbit=30, seconds=3),
                  why="a big locked buffer cannot beat the 16-bit field: 45 segments per 30 ms"),
    ),
    real=lambda p: _real(p),
    sim=lambda p, profile, rng: _sim(p, profile),
    record=(TCP_RMEM, RMEM_MAX, "net.ipv4.tcp_moderate_rcvbuf"),
    needs_namespace="it builds namespaces, a veth, TUN devices and a qdisc",
    host_limit=lambda p: _host_limit(p),
    expected_s=lambda p: p["seconds"] + 1.5,
    timeout=lambda p: p["seconds"] * 2 + 40,
    plot=Plot(y=("snd_wnd", "in_flight"), title="the receiver's window and the bytes in flight",
              y_title="bytes"),
    smoke=(dict(rcvbuf=32768, window_scaling=True, rtt_ms=20, rate_mbit=10, seconds=1),),
)

window = make_function(SPEC)


def rmem_max_in_force() -> int:
    """net.core.rmem_max as the kernel applies it here. Host-wide, the same in every namespace, but a
    private namespace does not always show it (6.1 guest: "does not exist here"; 6.12 and 6.18 show it).
    ``__sock_set_rcvbuf()`` clamps a request to it and doubles it, so a throwaway socket that asks for
    1 GiB reads it back from the kernel itself.

    >>> rmem_max_in_force() > 0
    True
    """
    try:
        return int(read_sysctl(RMEM_MAX))
    except (OSError, ValueError):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 30)
            return s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2


def _host_limit(p: dict[str, Any]) -> str | None:
    """SO_RCVBUF beyond net.core.rmem_max (host-wide: no namespace can raise it) is cut to it."""
    if p["rcvbuf"] is None:
        return None
    try:
        rmem_max = read_sysctl(RMEM_MAX)
    except (OSError, ValueError):
        return None
    if isinstance(rmem_max, int) and rmem_max < p["rcvbuf"]:
        return (f"SO_RCVBUF {p['rcvbuf']} is more than the host's net.core.rmem_max {rmem_max}: the kernel would "
                f"cut it to that (the host's administrator can raise it; a namespace cannot)")
    return None


# -- the receiver, in its own namespace B (a forked process of kernel.bottleneck) ----------------------
def _receiver(scaling: bool, ctl: int, up: int) -> Any:
    def main(lst: socket.socket, deadline: float) -> None:
        # tcp_parse_options() reads the listener's own namespace's tcp_window_scaling on the SYN: set it
        # here, and tell the sender before it connects
        set_namespace_sysctl(WSCALE_SYSCTL, int(scaling))
        send_msg(up, {"ready": read_sysctl(WSCALE_SYSCTL), "tcp_rmem": list(read_sysctl(TCP_RMEM))})
        lst.settimeout(max(0.1, deadline - time.monotonic()))
        conn, _ = lst.accept()
        conn.setblocking(False)
        buf = bytearray(1 << 20)
        got, t0, last = 0, time.monotonic(), None
        rows: list[dict[str, Any]] = []
        wnd_max = 0
        while time.monotonic() < deadline:
            r, _, _ = select.select([conn, ctl], [], [], 0.2)
            if ctl in r:
                break
            if conn not in r:
                continue
            try:
                n = conn.recv_into(buf)
            except BlockingIOError:
                continue
            except ConnectionError:
                break
            if n == 0:
                break
            got += n
            rb = conn.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            wnd = tcp_info(conn).extra.get("rcv_wnd")
            wnd_max = max(wnd_max, wnd or 0)
            if rb != last and len(rows) < 500:
                rows.append({"t": round(time.monotonic() - t0, 5), "received": got, "rcvbuf": rb, "rcv_wnd": wnd})
                last = rb
        info = tcp_info(conn)
        send_msg(up, {"rows": rows, "received": got, "rcv_wnd_max": wnd_max or None,
                        "wscale": [info.snd_wscale, info.rcv_wscale, info.wscale],
                        "acks": [info.extra.get("segs_out"), info.extra.get("data_segs_in")]})
        conn.close()
    return main


def _real(p: dict[str, Any]) -> Outcome:
    out = Outcome()
    ctl_r, ctl_w = os.pipe()
    up_r, up_w = os.pipe()
    sample_s = max(0.002, p["rtt_ms"] / 4000)
    try:
        with bottleneck_path(p["rate_mbit"], p["rtt_ms"], BUFFER_PACKETS, max_seconds=p["seconds"] + 30,
                             rcvbuf=p["rcvbuf"], receiver=_receiver(p["window_scaling"], ctl_r, up_w)) as path:
            hello = read_msg(up_r, time.monotonic() + 10, what="the receiver", error=ExperimentError)
            if bool(hello["ready"]) != p["window_scaling"]:
                raise ExperimentError(f"the receiver's namespace reads tcp_window_scaling={hello['ready']}")
            rcv_rmem = tuple(hello["tcp_rmem"])
            with socket.socket() as s:
                # per socket, as congestion does: a fresh namespace's default follows the host's, which may be
                # bbr; the sim and the course's figures are CUBIC's (tcp_set_congestion_control())
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, ALGORITHM.encode())
                s.settimeout(5)
                s.connect(path.receiver)
                s.setblocking(False)
                syn = tcp_info(s)
                rows: list[dict[str, Any]] = []
                acked0 = syn.extra.get("bytes_acked", 0)

                def sample(now: float, t: float) -> None:
                    x = tcp_info(s).extra
                    rows.append({"t": round(t, 5), "delivered_bytes": x.get("bytes_acked", 0) - acked0,
                                 "snd_wnd": x.get("snd_wnd"), "cwnd": x.get("snd_cwnd"),
                                 "srtt_ms": x.get("rtt", 0) / 1000 or None,
                                 "in_flight": packets_in_flight(x) * MSS})
                t0, elapsed = send_and_sample([s], p["seconds"], sample_s, sample,
                                              LagMeter(sample_s, SENDER_LAG_TOLERANCE_MS / 1000, name="sender"))
                final = tcp_info(s)
                os.write(ctl_w, b"x")                       # the receiver reports and stops
                rcv = read_msg(up_r, time.monotonic() + 10, what="the receiver", error=ExperimentError)
    finally:
        for fd in (ctl_r, ctl_w, up_r, up_w):
            os.close(fd)
    stats = path.stats
    if stats is None:
        raise ExperimentError("the delay line did not report its measurements")
    delivered = final.extra.get("bytes_acked", 0) - acked0
    rmem_max = rmem_max_in_force()
    rcv_rows = rcv["rows"]
    bufs = [r["rcvbuf"] for r in rcv_rows] or [path.rcvbuf]
    limit = window_limit_packets(p["rcvbuf"], p["window_scaling"], rcv_rmem[2], rmem_max)
    srtts = [r["srtt_ms"] for r in rows if r["srtt_ms"]]
    method = (f"{DELAY_METHOD}; {path.scheduling}; lateness p50 {stats.lateness_p50_ms} ms, p99 "
              f"{stats.lateness_p99_ms} ms, max {stats.lateness_max_ms} ms over {stats.packets} packets; "
              f"min_rtt measured {final.extra.get('min_rtt', 0) / 1000:g} ms for {p['rtt_ms']:g} ms configured")
    negotiated = syn.wscale
    out.timeline = rows
    out.tables["receiver"] = rcv_rows
    out.summary = {
        "throughput_mbit": round(delivered * 8 / elapsed / 1e6, 3),
        "window_cap_mbit": window_cap_mbit(limit, p["rtt_ms"], p["rate_mbit"]),
        "window_limit_packets": limit,
        # the sender's own shift (rcv_wscale) went on its SYN, the receiver's (snd_wscale) on the SYN-ACK;
        # tcp_info shows them only when both SYNs carried the option (TCPI_OPT_WSCALE)
        "sender_wscale": syn.rcv_wscale if negotiated else None,
        "receiver_wscale": syn.snd_wscale if negotiated else None,
        "max_advertised_window": max((r["snd_wnd"] or 0 for r in rows), default=0) or None,
        "autotuned": max(bufs) > bufs[0] or max(bufs) > path.rcvbuf,
        "rcvbuf_max": max(bufs),
        "srtt_ms": round(statistics.median(srtts), 3) if srtts else None,
        "tcp_rmem_max": rcv_rmem[2],
        "rmem_max": rmem_max,
        "delay_method": method,
    }
    out.notes += path.notes
    out.notes.append(f"receiver: SO_RCVBUF {path.rcvbuf} at the start, {max(bufs)} at most "
                     f"({'locked' if p['rcvbuf'] is not None else 'autotuning'}); its tcp_info saw wscale "
                     f"{rcv['wscale'][0]},{rcv['wscale'][1]} (negotiated: {bool(rcv['wscale'][2])}); "
                     f"largest rcv_wnd {rcv['rcv_wnd_max']}; tcp_rmem in its namespace {rcv_rmem}; it sent "
                     f"{rcv['acks'][0]} segments (ACKs) for {rcv['acks'][1]} data segments")
    out.timings += delay_line_timings(stats, path.scheduling, median="every round trip was that much longer")
    if stats.error:
        out.notes.append(stats.error)
    return out


def _sim(p: dict[str, Any], profile: KernelProfile) -> Outcome:
    rmem, rmem_max, scaling = profile.tcp_rmem, profile.rmem_max, p["window_scaling"]
    rule = autotuning_rule(p["rcvbuf"], rmem, rmem_max)
    limit = window_limit_packets(p["rcvbuf"], scaling, rmem[2], rmem_max)
    start = limit if p["rcvbuf"] is not None else receive_window_packets(rule.at_start)
    run = simulate(p["rate_mbit"], p["rtt_ms"], BUFFER_PACKETS, ALGORITHM, duration=p["seconds"],
                   sample_s=max(0.002, p["rtt_ms"] / 4000), rcv_window=start,
                   autotune=autotune_cap_packets(rmem[2]) if rule.may_grow else None, unscaled=not scaling)
    timeline = [{"t": r["t"], "delivered_bytes": r["delivered_bytes"], "snd_wnd": None, "cwnd": r["cwnd"],
                 "srtt_ms": r["srtt_ms"], "in_flight": r["in_flight"] * MSS} for r in run.timeline]
    srtts = [r["srtt_ms"] for r in timeline if r["srtt_ms"]]
    grew = run.rcv_clamp_max[0] > start
    out = Outcome(timeline=timeline, tables={"receiver": [{"t": 0.0, "received": 0, "rcvbuf": rule.at_start,
                                                           "rcv_wnd": None}]})
    out.summary = {
        "throughput_mbit": round(run.flows[0].delivered * MSS * 8 / p["seconds"] / 1e6, 3),
        "window_cap_mbit": window_cap_mbit(limit, p["rtt_ms"], p["rate_mbit"]),
        "window_limit_packets": limit,
        "sender_wscale": syn_wscale(None, rmem[2], rmem_max, scaling),
        "receiver_wscale": syn_wscale(p["rcvbuf"], rmem[2], rmem_max, scaling),
        "max_advertised_window": run.rwnd_max[0] * MSS,
        "autotuned": grew,
        "rcvbuf_max": None if rule.may_grow else rule.at_start,
        "srtt_ms": round(statistics.median(srtts), 3) if srtts else None,
        "tcp_rmem_max": rmem[2],
        "rmem_max": rmem_max,
        "delay_method": "simulated: a constant one-way delay of rtt/2 (tcplab.sim.bottleneck)",
    }
    out.sysctls = {TCP_RMEM: rmem, RMEM_MAX: rmem_max, WSCALE_SYSCTL: int(scaling)}
    out.notes.append(f"kernel profile {profile.name}: CUBIC through a {BUFFER_PACKETS}-packet buffer; the receiver's "
                     f"window starts at {start} segments and "
                     + (f"autotuning may grow it to {min(autotune_cap_packets(rmem[2]), limit)} (it reached "
                        f"{run.rcv_clamp_max[0]})" if rule.may_grow else "stays there (SO_RCVBUF locks it)")
                     + ("; no window scaling: at most 45 segments (65535 bytes)" if not scaling else ""))
    return out
