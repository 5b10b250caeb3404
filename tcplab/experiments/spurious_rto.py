"""spurious_rto: an RTT spike outlives the RTO, the retransmission timer fires for data that was only
late, and the kernel finds out and undoes it - by the echoed timestamp, by F-RTO, or (with neither) only
after going back N and reading the DSACKs.

A bulk sender through the bottleneck path of :mod:`tcplab.kernel.bottleneck`, limited by the
receiver's window (SO_RCVBUF locked: 13 full segments a round trip, nothing queues at the
bottleneck). ``spike_at_s`` seconds in, the delay line holds every packet ``spike_ms / 2`` each way
for ``spike_s``: no ACK comes back for ``spike_ms / 2``, the window stays full, the loss probe then
the RTO fire. The sender's ``tcp_info`` (cwnd, ca_state, srtt, rto, backoff, total_retrans) is sampled
every 2 ms; the TcpExt counters of its namespace say which undo ran. The rules are
:mod:`tcplab.model.undo`.

>>> s = spurious_rto(mode="sim").summary
>>> s["rtos"], s["undone"], s["undone_by"], s["cwnd_lowest"], s["first_rto_s"], s["undo_s"]
(1, True, 'timestamps', 1, 0.281, 0.6)
>>> spurious_rto(timestamps=False, mode="sim").summary["undone_by"]
'F-RTO'
>>> spurious_rto(timestamps=False, frto=0, mode="sim").summary["undone_by"]
'DSACK'
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from typing import Any

from tcplab.errors import ExperimentError
from tcplab.experiments._common import counters_now, delay_line_timings, delta
from tcplab.experiments.registry import make_function
from tcplab.experiments.spec import Abs, Exact, Experiment, GridPoint, Key, Param, Plot, Rel, Slider, When, Within
from tcplab.kernel.bottleneck import DELAY_METHOD, bottleneck_path
from tcplab.kernel.tcpinfo import tcp_info
from tcplab.model.outcome import Outcome, Timing
from tcplab.model.profiles import KernelProfile, get_profile
from tcplab.model.undo import Episode, episode

__all__ = ["spurious_rto", "SPEC"]

TIMESTAMPS = "net.ipv4.tcp_timestamps"
FRTO = "net.ipv4.tcp_frto"
RATE_MBIT = 50.0
BUFFER_PACKETS = 100
#: the receiver's SO_RCVBUF request, locked: the kernel doubles it and advertises 18824 bytes, 13 full
#: segments (measured). The sender is window-limited: its last segments leave as the last ACK before the
#: spike arrives and nothing more until an ACK comes back, so the probe timer set then is not re-armed
#: by new sends. An application-limited sender (rtt_rto's, two segments every 10 ms) re-armed it at every
#: write and its RTO came 0.1-0.3 s later than its head's RTO, varying run to run (measured)
RCVBUF = 16384
#: segments the window lets into flight (what tcp_schedule_loss_probe() sees as packets_out)
WINDOW_SEGMENTS = 13
SAMPLE_S = 0.002
#: the sampler sees an event up to the gap before the sample that saw it late: judged at the events only
#: (the probe, the first RTO, the undo), not over the whole run (a gap elsewhere moves no figure)
SAMPLER_TOLERANCE_MS = 10.0
#: the delay line's median lateness moves every ACK, so the probe, the RTO and the undo. Its p99 is not
#: judged here: when the spike ends, packets wait behind the spiked ones (FIFO, no reordering) and that
#: wait counts as lateness (measured: p99 100-500 ms on quiet runs), the path's design, not a busy host
DELAY_LINE_P50_TOLERANCE_MS = 5.0
_TIMED = {"sampler": SAMPLER_TOLERANCE_MS, "delay_line_p50": DELAY_LINE_P50_TOLERANCE_MS}
#: after the spike the DSACKs of a go-back-N recovery need this long to come back (see model.undo.episode)
AFTER_SPIKE_S = 0.5
TIMELINE = ("t", "cwnd", "ssthresh", "ca_state", "srtt_ms", "rto_ms", "backoff", "retrans", "path_rtt_ms")
#: the sender's congestion control, set per socket (TCP_CONGESTION): a fresh namespace's default follows the
#: host's (bbr on this 6.18 host, cubic on Debian's), and the undo differs: CUBIC's (tcp_reno_undo_cwnd())
#: restores max(cwnd, prior_cwnd), BBR's bbr_undo_cwnd() keeps cwnd and restores its own saved cwnd on leaving
#: Loss. The model (tcplab.model.undo) is the former
ALGORITHM = "cubic"
#: SO_MAX_PACING_RATE (include/uapi/asm-generic/socket.h), payload Mbit/s: see _real()
SO_MAX_PACING_RATE = getattr(socket, "SO_MAX_PACING_RATE", 47)
PACING_MBIT = 10.0
_UNDO_COUNTERS = ("TCPTimeouts", "TCPLossProbes", "TCPLossUndo", "TCPSpuriousRTOs", "TCPDSACKUndo", "TCPDSACKRecv",
                  "TCPSackRecovery", "TCPLostRetransmit")
_REAL_WHY = "real runs are kept short; mode=\"sim\" runs any spike"


def _spike_s(p: Mapping[str, Any]) -> float:
    return p["spike_ms"] / 1000 if p["spike_s"] is None else p["spike_s"]


def _episode(p: Mapping[str, Any], tick: float | None = None) -> Episode:
    kw = {} if tick is None else {"tick": tick}
    return episode(p["rtt_ms"], p["spike_ms"], p["spike_at_s"], bool(p["timestamps"]), p["frto"], spike_s=p["spike_s"],
                   seconds=p["seconds"], in_flight=WINDOW_SEGMENTS, **kw)


def _timed_undo(p: Mapping[str, Any]) -> bool:
    """The model times the undo when timestamps or F-RTO do it (the first ACK the spike held)."""
    return _episode(p).undone_by in ("timestamps", "F-RTO")


def _no_go_back_n(p: Mapping[str, Any]) -> bool:
    """The RTOs are counted exactly unless the sender goes back N (see the rtos key)."""
    ep = _episode(p)
    return not ep.rto_at_s or _timed_undo(p)


#: going back N, whether the RTO is undone at all is a race (see the undo_replaced_by key): the undo keys are shown
_UNDO_RACE = When(_no_go_back_n, Exact(), None, name="exact (first ACK undoes)",
                  meaning="exact when the first ACK back undoes (or no RTO); going back N, a fast recovery RACK may start "
                          "in the Loss state replaces the RTO's undo record (tcp_enter_recovery() -> tcp_init_undo()), "
                          "or a second RTO does, a race (measured with CUBIC on 6.18: 7 runs of 9; undo_replaced_by "
                          "says which): shown",
                  then_shows="exact", otherwise_shows="shown (go-back-N race)")


def _window(p: Mapping[str, Any], timer_us: int, profile: str | None) -> tuple[float, float]:
    """Where the kernel puts a timer set at the sender's last send before the spike, ``timer_us`` later,
    in s from the spike: the window-limited flight leaves in a burst, so its last prompt ACK came in
    anywhere from ``rtt_ms / 2`` before the spike to ``rtt_ms / 2`` after; plus two jiffies (the timer wheel)."""
    tick = get_profile(profile).timer_tick
    half = p["rtt_ms"] / 2000
    return round(max(0.0, timer_us / 1e6 - half), 4), round(timer_us / 1e6 + half + 2 * tick, 4)


def _probe_window(p: Mapping[str, Any], profile: str | None) -> tuple[float, float] | None:
    ep = _episode(p, get_profile(profile).timer_tick)
    return None if ep.probe_at_s is None else _window(p, ep.pto_us, profile)


def _rto_window(p: Mapping[str, Any], profile: str | None) -> tuple[float, float] | None:
    ep = _episode(p, get_profile(profile).timer_tick)
    return None if not ep.rto_at_s else _window(p, ep.pto_us + ep.rto_us, profile)


def _checks(p: dict[str, Any]) -> None:
    if p["spike_ms"] <= p["rtt_ms"]:
        raise ValueError(f"spike_ms must be more than rtt_ms ({p['rtt_ms']:g} ms): a spike lengthens the RTT, "
                         f"not {p['spike_ms']:g}")
    need = p["spike_at_s"] + _spike_s(p) + AFTER_SPIKE_S
    if p["seconds"] < need:
        raise ValueError(f"seconds must be at least spike_at_s + the spike + {AFTER_SPIKE_S:g} = {need:g} s (the "
                         f"ACKs and DSACKs the spike held must come back), not {p['seconds']:g}")


SPEC = Experiment(
    name="spurious_rto",
    title="A spurious RTO undone: an RTT spike outlives the RTO; timestamps or F-RTO find the data was only late",
    doc="""A bulk sender limited by the receiver's window (13 full segments a round trip) through the
    bottleneck path (50 Mbit/s, nothing queues) whose delay line holds packets ``rtt_ms / 2`` each way,
    ``spike_ms / 2`` from ``spike_at_s`` for ``spike_s``. No ACK comes back for ``spike_ms / 2``: the
    loss probe fires (``tcp_send_loss_probe()``: the window is full, so it retransmits the last segment),
    then the RTO (``tcp_retransmit_timer()``, ``tcp_enter_loss()``: cwnd 1, everything marked lost, the head
    retransmitted, the RTO doubled) and again at each doubling until the ACK is back. That ACK decides
    (``tcp_process_loss()``): with timestamps it echoes a TSval older than the retransmission and
    ``tcp_try_undo_loss()`` undoes at once (TCPLossUndo); without them F-RTO (net.ipv4.tcp_frto) sends new
    data and undoes when the next ACK covers never-retransmitted data (TCPLossUndo and TCPSpuriousRTOs);
    with neither the sender goes back N, every copy is DSACKed and ``tcp_try_undo_dsack()`` restores
    cwnd at the end (TCPDSACKUndo). Karn's rule shows in the go-back-N: no ACK of a retransmitted
    segment gives an RTT sample without timestamps, srtt does not move. ``timestamps`` and ``frto`` are
    sysctls of the sender's namespace.""",
    params=(
        Param("rtt_ms", "float", 20.0, lo=5, hi=200, unit="ms", help="the path's round trip outside the spike",
              slider=Slider(5, 200, step=5)),
        Param("spike_ms", "float", 1200.0, lo=10, hi=10_000, real_hi=5000, real_why=_REAL_WHY, unit="ms",
              help="the path's round trip during the spike (no ACK comes back for half of it)",
              slider=Slider(100, 3000, step=100)),
        Param("spike_at_s", "float", 1.0, lo=0.5, hi=60, unit="s", help="when the spike starts (after the path is ready)",
              slider=Slider(0.5, 5, step=0.5)),
        Param("spike_s", "float", None, lo=0.01, hi=60, optional=True, unit="s",
              help="how long the delay line keeps the spike's delay (None: spike_ms, one spiked round trip)"),
        Param("timestamps", "bool", True, sysctl=TIMESTAMPS, help="net.ipv4.tcp_timestamps in the sender's namespace"),
        Param("frto", "choice", 2, choices=(0, 1, 2), sysctl=FRTO,
              help="net.ipv4.tcp_frto in the sender's namespace: 0 off; 1 or 2 on (since Linux 4.x both mean the "
                   "SACK-enhanced F-RTO of RFC 5682)"),
        Param("seconds", "float", 3.0, lo=1, hi=120, real_hi=15, real_why=_REAL_WHY, unit="s",
              help="how long the sender runs (from the path being ready)", slider=Slider(1, 15, step=1)),
    ),
    summary=(
        Key("rtos", "retransmission timeouts that fired until the undo (TcpExt TCPTimeouts; with an undo, the backoff "
            "TCP_INFO showed in Loss before it)",
            rule=When(_no_go_back_n, Exact(), Abs(1, "the second RTO races the copies' ACKs"), name="exact (first ACK undoes)",
                      meaning="exact when the first ACK back undoes (or no RTO); going back N, the RTO re-armed at "
                              "the held flight's last ACK, still doubled, races the copies' ACKs (0.16 s apart at the "
                              "defaults; measured 2 in 15 of 16 runs, 1 in one): within 1",
                      then_shows="exact", otherwise_shows="within 1 (go-back-N)")),
        Key("rtos_after_undo", "RTOs that fired after the undo (the spike still holding what was sent after it: a "
            "second spurious episode; sim: 0, the model ends at the undo)", rule="shown"),
        Key("loss_probes", "tail loss probes sent (TCPLossProbes): the first before the RTO; a later one after the "
            "undo depends on the srtt the spike's samples left (sim: the first only)", rule="shown"),
        Key("first_probe_s", "seconds from the spike to the loss probe's retransmission (None: none)",
            rule=Within(_probe_window, Exact(), name="in the PTO's window",
                        meaning="within 10 % of the window the kernel allows: PTO after the last send, which is within "
                                "rtt_ms / 2 of the spike (the flight leaves in a burst), plus two jiffies"),
            tolerates=_TIMED),
        Key("first_rto_s", "seconds from the spike to the first RTO (cwnd 1, ca_state Loss; None: none)",
            rule=Within(_rto_window, Exact(), name="in the RTO's window",
                        meaning="within 10 % of the window the kernel allows: PTO + RTO after the last send (within "
                                "rtt_ms / 2 of the spike), plus two jiffies"),
            tolerates=_TIMED),
        Key("undone", "the RTO was undone: a loss or DSACK undo counted and cwnd back to the RTO's prior_cwnd",
            rule=_UNDO_RACE),
        Key("undone_by", "what undid it: 'timestamps' (TCPLossUndo without TCPSpuriousRTOs), 'F-RTO' "
            "(TCPSpuriousRTOs), 'DSACK' (TCPDSACKUndo), None (also when the counted undo was of a later fast "
            "reduction, not the RTO's: see undo_replaced_by)", rule=_UNDO_RACE),
        Key("undo_replaced_by", "going back N, what replaced the RTO's undo record before the DSACKs could undo it: "
            "'fast recovery' (RACK found a retransmission lost in the Loss state, tcp_enter_recovery() -> "
            "tcp_init_undo()), 'second RTO' (Loss ended without an undo and the next RTO's tcp_enter_loss() started a "
            "new record), None (not replaced, or no RTO; sim: None, a race the model does not time)", rule="shown"),
        Key("undo_s", "seconds from the spike to the undo (back to Open, cwnd restored; None: none)",
            rule=When(_timed_undo, Rel(0.10), None, name="rel10 (timestamps, F-RTO)",
                      meaning="rel10 when the first ACK back undoes; the DSACK undo's time (after go-back-N) is shown",
                      otherwise_shows="shown"), tolerates=_TIMED),
        Key("cwnd_before", "cwnd just before the spike: slow start's growth under the receiver's window (sim: None, "
            "not modelled)", rule="shown"),
        Key("cwnd_lowest", "the lowest cwnd after the first RTO: tcp_enter_loss() sets 1 (None: no RTO)"),
        Key("cwnd_restored", "cwnd came back to what it was when the RTO fired (prior_cwnd, tcp_undo_cwnd_reduction(), "
            "read from the Loss state's ssthresh, CUBIC's 717/1024 of it; None: no RTO)", rule=_UNDO_RACE),
        Key("cwnd_end", "cwnd at the end (sim: None)", rule="shown"),
        Key("srtt_before_ms", "tcp_info.rtt just before the spike", rule="rel10", tolerates={"delay_line_p50": 1.0}),
        Key("srtt_moved_in_loss_ms", "how far srtt moved while the sender was in Loss after the RTO (0: no RTT "
            "sample - Karn's rule without timestamps, or no ACK before the undo; None: no RTO)"),
        Key("retrans_segs", "segments retransmitted (tcp_info total_retrans): the probe, one per RTO, then a "
            "go-back-N's copies or a later probe (sim: the probe and the RTOs only)", rule="shown"),
        Key("dsacks", "DSACKs received (TCPDSACKRecv): the receiver saying a copy was a duplicate (sim: None)",
            rule="shown"),
        Key("timestamps", "both SYNs carried the timestamp option (tcp_info options)"),
        Key("delay_method", "how the delay was made (and, real, how late the delay line ran)", rule="shown"),
    ),
    tables=(),
    timeline=TIMELINE,
    grid=(
        GridPoint(dict(), quick=True, why="the course's case: timestamps undo at the first ACK back, 0.6 s in"),
        GridPoint(dict(timestamps=False), quick=True, why="no timestamps: F-RTO decides (TCPSpuriousRTOs)"),
        GridPoint(dict(timestamps=False, frto=0), quick=True,
                  why="neither: go-back-N from cwnd 1, srtt held (Karn), a DSACK undo after the spike"),
        GridPoint(dict(frto=0), why="timestamps alone undo: F-RTO off changes nothing"),
        GridPoint(dict(spike_ms=400, seconds=2), why="a spike shorter than the RTO: the ACKs are back at 0.2 s, "
                  "before the RTO at 0.28 s; only the probe"),
        GridPoint(dict(spike_ms=1800, seconds=4), why="a long spike: two timeouts (0.28 s, then 0.45 s later), "
                  "backoff 2, then the timestamp undo at 0.9 s"),
        GridPoint(dict(rtt_ms=60, spike_ms=1500, seconds=4, timestamps=False),
                  why="a longer base RTT: RTO 264 ms, PTO 132 ms; F-RTO"),
    ),
    real=lambda p: _real(p),
    sim=lambda p, profile, rng: _sim(p, profile),
    needs_namespace="it builds namespaces, a veth, TUN devices, a qdisc and a route",
    checks=_checks,
    expected_s=lambda p: p["seconds"] + 1.5,
    timeout=lambda p: p["seconds"] * 2 + 40,
    plot=Plot(y=("cwnd",), title="cwnd through a spurious RTO", y_title="segments", kind="step"),
    smoke=(dict(spike_ms=400, seconds=2),),
)

spurious_rto = make_function(SPEC)


def _from_timeline(rows: list[dict[str, Any]], p: Mapping[str, Any]) -> dict[str, Any]:
    """The summary's timing and cwnd figures from the sampled tcp_info."""
    if not rows:
        raise ExperimentError("the sender's tcp_info was never sampled")
    at = p["spike_at_s"]
    before = [r for r in rows if r["t"] < at] or rows[:1]
    b = before[-1]
    after = [r for r in rows if r["t"] >= at]
    probe = next((r for r in after if r["retrans"] > b["retrans"] and r["ca_state"] == "Open"), None)
    loss_i = next((i for i, r in enumerate(rows) if r["t"] >= at and r["ca_state"] == "Loss"), None)
    out: dict[str, Any] = {"first_probe_s": None if probe is None or (loss_i is not None and probe["t"] > rows[loss_i]["t"])
                           else round(probe["t"] - at, 4),
                           "first_rto_s": None, "undo_s": None, "cwnd_before": b["cwnd"], "cwnd_lowest": None,
                           "cwnd_restored": None, "cwnd_end": rows[-1]["cwnd"], "srtt_before_ms": b["srtt_ms"],
                           "srtt_moved_in_loss_ms": None}
    if loss_i is not None:
        lost = rows[loss_i:]
        prior = _prior_cwnd(rows, loss_i, p)
        back = next((r for r in lost if r["ca_state"] in ("Open", "Disorder") and r["cwnd"] >= prior), None)
        # Loss only: a fast recovery that may follow (RACK, once the spike is over) sends new data, whose ACKs are samples
        # the first Loss stretch only: once out of it (Recovery, Open) new data's ACKs are samples, and a later RTO's
        # Loss starts from the srtt they made (measured: 168 ms, after a fast recovery, third RTO)
        end = next((i for i, r in enumerate(lost) if r["ca_state"] != "Loss"), len(lost))
        held = lost[:end]
        if back is not None:
            held = [r for r in held if r["t"] < back["t"]]
        out.update(first_rto_s=round(rows[loss_i]["t"] - at, 4), cwnd_lowest=min(r["cwnd"] for r in lost),
                   cwnd_restored=back is not None, undo_s=None if back is None else round(back["t"] - at, 4),
                   srtt_moved_in_loss_ms=round(max(abs(r["srtt_ms"] - rows[loss_i]["srtt_ms"]) for r in held), 3))
    return out


def _undo_replaced_by(rows: list[dict[str, Any]], p: Mapping[str, Any], restored: bool | None) -> str | None:
    """What replaced the first RTO's undo record when cwnd never came back (None if it did, or no RTO), from the
    states sampled after the spike's first Loss: straight into Recovery is tcp_fastretrans_alert()'s Loss case
    falling through to tcp_enter_recovery() (RACK marked a retransmission lost, FLAG_LOST_RETRANS); a new ssthresh
    in Loss, or Loss again after leaving it, is a second tcp_enter_loss() that re-inits the record
    (tcp_init_undo(): from Open, or in Loss once an ACK advanced snd_una and tcp_ack() zeroed icsk_retransmits)."""
    if restored is not False:
        return None
    after = [r for r in rows if r["t"] >= p["spike_at_s"]]
    first = next((i for i, r in enumerate(after) if r["ca_state"] == "Loss"), None)
    if first is None:
        return None
    rest = after[first:]
    left = next((i for i, r in enumerate(rest) if r["ca_state"] != "Loss"), len(rest))
    # a second RTO while still in Loss re-inits the record too when an ACK had advanced snd_una in between
    # (tcp_ack() zeroes icsk_retransmits; tcp_enter_loss() re-inits when in Loss with it 0): a new ssthresh
    if any(r["ssthresh"] != rest[0]["ssthresh"] for r in rest[:left]):
        return "second RTO"
    if left == len(rest):
        return None
    if rest[left]["ca_state"] == "Recovery":
        return "fast recovery"
    return "second RTO" if any(r["ca_state"] == "Loss" for r in rest[left:]) else None


def _prior_cwnd(rows: list[dict[str, Any]], loss_i: int, p: Mapping[str, Any]) -> int:
    """The cwnd an undo of the RTO restores: ``prior_cwnd``, what cwnd was when the RTO fired (tcp_enter_loss()).
    TCP_INFO does not report it, but the ssthresh it set then is CUBIC's ``max(prior_cwnd x 717 / 1024, 2)``
    (bictcp_recalc_ssthresh()): the smallest cwnd that gives the Loss state's ssthresh. A sample of cwnd before
    the RTO is not it: the sampler may have seen cwnd before tcp_cwnd_validate() shrank it during the stall
    (the window-limited sender does not use it all), and in a slow guest the last sample before the RTO can be
    tens of ms older (6.12: undone_by 'DSACK' with cwnd_restored False, the sample above the restored cwnd).

    >>> rows = [{"cwnd": 40, "ssthresh": None, "ca_state": "Open"}, {"cwnd": 1, "ssthresh": 26, "ca_state": "Loss"}]
    >>> _prior_cwnd(rows, 1, {})       # 37 x 717 // 1024 = 25, 38 x 717 // 1024 = 26
    38
    """
    ss = rows[loss_i].get("ssthresh")
    if ss is None or ss < 2:
        return rows[loss_i - 1]["cwnd"] if loss_i else rows[0]["cwnd"]
    beta = get_profile(None).cubic_beta
    c = max(1, ss * 1024 // beta)
    while c * beta // 1024 < ss:
        c += 1
    return c


def _sampler_timing(rows: list[dict[str, Any]], s: Mapping[str, Any], at: float) -> Timing:
    """How late the sampler may have seen the events it timed: the gap before each sample that saw one."""
    gaps = []
    for key in ("first_probe_s", "first_rto_s", "undo_s"):
        if s.get(key) is not None:
            i = next(i for i, r in enumerate(rows) if r["t"] >= round(at + s[key], 4) - 1e-9)
            gaps.append(rows[i]["t"] - rows[i - 1]["t"] if i else 0.0)
    worst = round(max(gaps, default=0.0) * 1000, 3)
    return Timing("sampler", worst, f"the sampler (every {SAMPLE_S * 1000:g} ms) saw an event up to {worst:g} ms after "
                  "the sample before it: the event happened somewhere in that gap")


def _undone_by(c: Mapping[str, int], timestamps: bool) -> str | None:
    """The counters' verdict (tcp_try_undo_loss() counts TCPLossUndo for both its callers, and
    TCPSpuriousRTOs only for F-RTO's)."""
    if c.get("TCPSpuriousRTOs"):
        return "F-RTO"
    if c.get("TCPLossUndo"):
        # tcp_may_undo(): an older echoed TSval, or every retransmission DSACKed before the first ACK (undo_retrans 0)
        return "timestamps" if timestamps else "DSACK"
    if c.get("TCPDSACKUndo"):
        return "DSACK"
    return None


def _real(p: dict[str, Any]) -> Outcome:
    out = Outcome()
    out.notes.append(f"the sender's socket ran {ALGORITHM} (TCP_CONGESTION), whatever the namespace's default")
    at, spike_end = p["spike_at_s"], p["spike_at_s"] + _spike_s(p)
    changes = [(at, p["spike_ms"]), (spike_end, p["rtt_ms"])]
    with bottleneck_path(RATE_MBIT, p["rtt_ms"], BUFFER_PACKETS, max_seconds=p["seconds"] + 30,
                         delay_changes=changes, rcvbuf=RCVBUF) as path:
        t0 = time.monotonic()
        before = counters_now()
        with socket.socket() as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, ALGORITHM.encode())
            # paced just above the window's rate (13 segments a round trip): the flight is spread over the round
            # trip as BBR's is, so some of its ACKs always cross the line after the spike began and come back
            # spike_ms / 2 later; unpaced, CUBIC's window-limited bursts left the line empty at the spike's start
            # in some runs, and the first ACK back came a whole spiked round trip later (measured: undo at 1.2 s)
            s.setsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, int(PACING_MBIT * 1e6 / 8))
            s.settimeout(5)
            s.connect(path.receiver)
            s.setblocking(False)
            chunk = b"\0" * 65536
            rows: list[dict[str, Any]] = []
            end = t0 + p["seconds"]
            while True:
                now = time.monotonic()
                if now >= end:
                    break
                try:                                   # keep the send buffer full: the window is the limit
                    while s.send(chunk):
                        pass
                except BlockingIOError:
                    pass
                x = tcp_info(s)
                t = now - t0
                ss = x.extra.get("snd_ssthresh", 0x7FFFFFFF)
                rows.append({"t": round(t, 4), "cwnd": x.extra.get("snd_cwnd", 0),
                             "ssthresh": None if ss >= 0xFFFF else ss, "ca_state": x.ca_state,
                             "srtt_ms": x.extra.get("rtt", 0) / 1000, "rto_ms": x.rto / 1000, "backoff": x.backoff,
                             "retrans": x.total_retrans,
                             "path_rtt_ms": p["spike_ms"] if at <= t < spike_end else p["rtt_ms"]})
                time.sleep(max(0.0, min(now + SAMPLE_S, end) - time.monotonic()))
            final = tcp_info(s)
        c = {k: v for k, v in delta(before).items() if k in _UNDO_COUNTERS}
    stats = path.stats
    if stats is None:
        raise ExperimentError("the delay line did not report its measurements")
    out.timeline = rows
    out.summary = {"rtos": c.get("TCPTimeouts", 0), "loss_probes": c.get("TCPLossProbes", 0)}
    out.summary.update(_from_timeline(rows, p))
    # the episode the model times ends at the undo; the spike may still hold what the sender sent after it, and
    # its RTO then fires again (measured: F-RTO, paced CUBIC, 2 runs of 6): counted apart
    total = out.summary["rtos"]
    if out.summary["undo_s"] is not None:
        undo_t = p["spike_at_s"] + out.summary["undo_s"]
        out.summary["rtos"] = max((r["backoff"] for r in rows if r["ca_state"] == "Loss" and r["t"] < undo_t),
                                  default=total)
    out.summary["rtos_after_undo"] = total - out.summary["rtos"]
    by = _undone_by(c, final.timestamps)
    if by is not None and out.summary["cwnd_restored"] is False:
        # the counter counts an undo of any reduction: a fast recovery RACK starts after the go-back-N makes its
        # own undo record (tcp_enter_recovery() -> tcp_init_undo(), prior_cwnd the small cwnd then), whose DSACK
        # undo bumps TCPDSACKUndo without bringing back the cwnd the RTO cut
        out.notes.append(f"{by}: the counters show an undo (TcpExt {', '.join(k for k in _UNDO_COUNTERS[2:5] if c.get(k))}) "
                         f"but cwnd never came back to the RTO's prior_cwnd: that undo was of a later reduction, "
                         "not of the RTO; undone_by None")
        by = None
    out.summary.update(undone=by is not None, undone_by=by, retrans_segs=final.total_retrans,
                       dsacks=c.get("TCPDSACKRecv", 0), timestamps=final.timestamps,
                       undo_replaced_by=_undo_replaced_by(rows, p, out.summary["cwnd_restored"]))
    if not out.summary["rtos"]:
        out.summary.update(first_rto_s=None, cwnd_lowest=None, cwnd_restored=None, undo_s=None,
                           srtt_moved_in_loss_ms=None)
    out.summary["delay_method"] = (f"{DELAY_METHOD}; {path.scheduling}; lateness p50 {stats.lateness_p50_ms} ms, "
                                   f"p99 {stats.lateness_p99_ms} ms, max {stats.lateness_max_ms} ms over "
                                   f"{stats.packets} packets")
    out.notes.append("TcpExt counters of the sender's namespace: " + ", ".join(f"{k} {c.get(k, 0)}" for k in _UNDO_COUNTERS))
    out.notes += path.notes
    out.timings += delay_line_timings(stats, path.scheduling, median="every ACK, so the probe, the RTO and the undo, "
                                      "came that much later")
    out.timings.append(_sampler_timing(rows, out.summary, p["spike_at_s"]))
    if stats.error:
        out.notes.append(stats.error)
    return out


def _sim(p: dict[str, Any], profile: KernelProfile) -> Outcome:
    ep = _episode(p, profile.timer_tick)
    at = p["spike_at_s"]
    srtt_ms, rto_ms = ep.srtt_us / 1000, ep.rto_us / 1000
    rows = [{"t": round(at, 4), "cwnd": None, "ssthresh": None, "ca_state": "Open", "srtt_ms": srtt_ms, "rto_ms": rto_ms, "backoff": 0,
             "retrans": 0, "path_rtt_ms": p["spike_ms"]}]
    if ep.probe_at_s is not None:
        rows.append({**rows[-1], "t": round(ep.probe_at_s, 4), "retrans": 1})
    for k, t in enumerate(ep.rto_at_s, 1):
        rows.append({**rows[-1], "t": round(t, 4), "cwnd": 1, "ca_state": "Loss", "rto_ms": rto_ms * 2 ** k,
                     "backoff": k, "retrans": 1 + k})
    if ep.undo_at_s is not None:
        rows.append({**rows[-1], "t": round(ep.undo_at_s, 4), "cwnd": None, "ca_state": "Open", "backoff": 0})
    out = Outcome(timeline=rows)
    fired = bool(ep.rto_at_s)
    out.summary = {
        "rtos": ep.rtos, "rtos_after_undo": 0, "loss_probes": int(ep.probe_at_s is not None),
        "first_probe_s": None if ep.probe_at_s is None else round(ep.probe_at_s - at, 4),
        "first_rto_s": round(ep.rto_at_s[0] - at, 4) if fired else None,
        "undone": ep.undone_by is not None, "undone_by": ep.undone_by, "undo_replaced_by": None,
        "undo_s": None if ep.undo_at_s is None else round(ep.undo_at_s - at, 4),
        "cwnd_before": None, "cwnd_lowest": ep.cwnd_lowest, "cwnd_restored": (ep.undone_by is not None) if fired else None,
        "cwnd_end": None, "srtt_before_ms": srtt_ms, "srtt_moved_in_loss_ms": 0.0 if fired else None,
        "retrans_segs": int(ep.probe_at_s is not None) + ep.rtos, "dsacks": None, "timestamps": bool(p["timestamps"]),
        "delay_method": "simulated: the timers of tcplab.model.undo",
    }
    out.sysctls = {TIMESTAMPS: int(p["timestamps"]), FRTO: p["frto"]}
    out.notes.append(f"kernel profile {profile.name}: srtt {srtt_ms:g} ms, RTO {rto_ms:g} ms, PTO {ep.pto_us / 1000:g} ms "
                     f"after the last send ({ep.last_send_s - at:.3f} s into the spike); the first ACK the spike held is "
                     f"back {ep.ack_back_s - at:.3f} s in")
    return out
