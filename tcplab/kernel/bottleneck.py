"""A bottleneck path between private network namespaces: rate, drop-tail buffer, one-way delay.

Three namespaces, all children of the caller's private one (call only inside
:func:`tcplab.kernel.namespace.in_namespace`; as an unprivileged user they are owned by its user
namespace)::

    sender (caller's ns)          router R                          receiver B
    a0 10.15.1.1 ==veth== r0 10.15.1.2  tunR 10.15.2.1 ~~ delay line ~~ tunB 10.15.2.2
                                        tbf rate + pfifo limit N

- **Rate and buffer**: tbf (rate, a bucket of one packet: see ``_TBF_BURST``) with a pfifo child of ``buffer_packets``
  on tunR's egress in R: a drop-tail queue counted in packets. It sits in R, not in the sender's
  namespace, on purpose: a packet that crossed the veth into another namespace is orphaned (no
  longer charged to the sending socket), so TCP Small Queues (``tcp_small_queue_check()``) cannot
  keep the queue short as it would for a qdisc on the sender's own device.
- **Delay**: netem is not built into this kernel (CONFIG_NET_SCH_NETEM is not set), so a userspace
  delay line forwards between two TUN devices: every packet read from tunR is written to tunB
  ``rtt_ms / 2`` later, and every packet read from tunB is written to tunR ``rtt_ms / 2`` later.
  The forwarder (a forked process) records how late each release was (its jitter) and samples the
  bottleneck qdisc's queue length and drops by rtnetlink.
- **MTU** 1500 on every device (a tbf burst must hold one packet).

>>> DELAY_METHOD.split(":")[0]
'userspace TUN delay line'
"""

from __future__ import annotations

import array
import ctypes
import fcntl
import os
import select
import signal
import socket
import struct
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tcplab.errors import KernelUnavailable
from tcplab.kernel.aqmlink import Aqm, Link, kernel_qdisc_args
from tcplab.kernel.droprule import DropRule, Dropped, SegmentFilter, TraceRow
from tcplab.kernel.pipemsg import read_msg, send_msg
from tcplab.kernel.qdisc import ip_available, tc_available

__all__ = ["Path", "PathStats", "DropRule", "Aqm", "bottleneck_path", "set_route_metrics", "qdisc_queue", "DELAY_METHOD", "SENDER_ADDR", "RECEIVER_ADDR",
           "MTU"]

SENDER_ADDR = "10.15.1.1"
ROUTER_ADDR = "10.15.1.2"
TUN_R_ADDR = "10.15.2.1"
RECEIVER_ADDR = "10.15.2.2"
MTU = 1500
DELAY_METHOD = ("userspace TUN delay line: a forked process holds each packet rtt/2 in each direction "
                "(netem is not built into this kernel)")

#: tbf's bucket: more than one 1500-byte packet, less than two. tbf_enqueue() segments only a GSO
#: skb longer than the bucket (``qdisc_pkt_len(skb) > q->max_size``, net/sched/sch_tbf.c); with a
#: two-packet bucket the 2-segment GSO skbs TCP builds at low rates (``tcp_tso_autosize()``, at
#: least ``tcp_min_tso_segs`` = 2) entered the pfifo whole, one "packet" of its limit holding two:
#: measured at 10 Mbit/s, 30 ms, 20 packets, the path held ~12 segments more than the pfifo's qlen
_TBF_BURST = 1600
_HELPER = "the bottleneck path's helper process"
#: the pfifo on tunR when the bottleneck is the delay line's own (``aqm``): packets wait there only
#: until the line reads them
_AQM_HANDOFF_LIMIT = 1000
#: how many of the first connection's data packets and ACKs the delay line records for HyStart's ACK train
#: (``PathStats.departures`` and ``PathStats.acks``): slow start's are the first few thousand
ACK_RECORD_LIMIT = 6000
_CLONE_NEWNET = 0x40000000
_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
# rtnetlink (include/uapi/linux/rtnetlink.h, pkt_sched.h, gen_stats.h)
_RTM_NEWQDISC, _RTM_GETQDISC = 36, 38
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_DONE, _NLMSG_ERROR = 3, 2
_TCA_STATS2, _TCA_STATS_QUEUE = 7, 3
_TC_H_ROOT = 0xFFFFFFFF


@dataclass
class PathStats:
    """What the forwarder measured: its own lateness and the bottleneck queue over time.

    lateness_*: how late (ms) packets left the delay line after their due time (its jitter).
    queue: rows (t_monotonic, qlen packets, backlog bytes, drops so far) sampled every
    ``queue_period_s``.
    dropped: the packets a :class:`DropRule` dropped (time.monotonic(), stream offset, length,
    segment index, transmission); trace: every TCP packet of the connection when asked (``trace=True``).
    """

    packets: int = 0
    lateness_p50_ms: float = 0.0
    lateness_p99_ms: float = 0.0
    lateness_max_ms: float = 0.0
    queue: list[tuple[float, int, int, int]] = field(default_factory=list)
    error: str | None = None
    dropped: list[Dropped] = field(default_factory=list)
    trace: list[TraceRow] = field(default_factory=list)
    #: with ``aqm``: the delay line's own bottleneck (:meth:`tcplab.kernel.aqmlink.LinkStats.summary`)
    link: dict[str, Any] | None = None
    #: the first connection's data segments as the bottleneck sent them: (end sequence number, when the
    #: link sent it, time.monotonic() s); its ACKs as the delay line released them towards the sender:
    #: (ACK number, due, written). HyStart's ACK train (``hystart_update()``) counts ACKs that reach the
    #: sender at most 2 ms apart: the link's send times are the train a punctual host delivers, the
    #: written times the train this sender got (:func:`tcplab.experiments._common.ack_train_timing`)
    departures: list[tuple[int, float]] = field(default_factory=list)
    acks: list[tuple[int, float, float]] = field(default_factory=list)


@dataclass
class Path:
    """A live path (see :func:`bottleneck_path`)."""

    rate_mbit: float
    rtt_ms: float
    buffer_packets: int
    receiver: tuple[str, int]
    stats: PathStats | None = None
    scheduling: str = ""
    #: the receiver's SO_RCVBUF as getsockopt reports it after the lock (twice the request,
    #: capped at twice net.core.rmem_max); its initial size where no lock was asked for
    rcvbuf: int = 0
    notes: list[str] = field(default_factory=list)


def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG(SIGKILL): if the process that forked us dies (e.g. the namespace child is
    killed at its timeout), the kernel kills us too, so no helper outlives a run."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


def _unshare_net() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(ctypes.c_int(_CLONE_NEWNET)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")


def _run(tool: str, *args: str) -> None:
    try:
        res = subprocess.run([tool, *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise KernelUnavailable(f"`{os.path.basename(tool)} {' '.join(args)}` failed: {e}") from None
    if res.returncode != 0:
        raise KernelUnavailable(f"`{os.path.basename(tool)} {' '.join(args)}` failed: "
                                f"{res.stderr.strip() or res.returncode}")


def _tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH22x", name.encode(), _IFF_TUN | _IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


def qdisc_queue(nl: socket.socket, ifindex: int) -> tuple[int, int, int] | None:
    """(qlen packets, backlog bytes, drops) of the root qdisc of ``ifindex``, by an RTM_GETQDISC
    dump on the rtnetlink socket ``nl`` (its namespace's qdiscs), or None if not found."""
    req = struct.pack("=IHHII", 36, _RTM_GETQDISC, _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0) + struct.pack("=BxHiIII", 0, 0, 0, 0, 0, 0)
    nl.send(req)
    found = None
    while True:
        data = nl.recv(65536)
        off = 0
        while off + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, off)
            if length < 16:
                return found
            if kind == _NLMSG_DONE or kind == _NLMSG_ERROR:
                return found
            if kind == _RTM_NEWQDISC:
                _family, _pad, idx, _handle, parent, _info = struct.unpack_from("=BxHiIII", data, off + 16)
                if idx == ifindex and parent == _TC_H_ROOT:
                    found = _queue_attr(data[off + 36:off + length]) or found
            off += (length + 3) & ~3


def _queue_attr(attrs: bytes) -> tuple[int, int, int] | None:
    off = 0
    while off + 4 <= len(attrs):
        alen, atype = struct.unpack_from("=HH", attrs, off)
        if alen < 4:
            break
        if atype & 0x3FFF == _TCA_STATS2:
            inner = attrs[off + 4:off + alen]
            ioff = 0
            while ioff + 4 <= len(inner):
                ilen, itype = struct.unpack_from("=HH", inner, ioff)
                if ilen < 4:
                    break
                if itype == _TCA_STATS_QUEUE and ilen >= 4 + 20:
                    qlen, backlog, drops, _requeues, _over = struct.unpack_from("=5I", inner, ioff + 4)
                    return qlen, backlog, drops
                ioff += (ilen + 3) & ~3
        off += (alen + 3) & ~3
    return None


class _TrainLog:
    """The first connection's data departures and ACK releases, bounded (``limit`` of each): parsed
    only while recording, so a long run pays for its first ``limit`` packets only.

    >>> from tcplab.kernel.droprule import tcp_packet
    >>> log = _TrainLog(10)
    >>> log.data(tcp_packet(seq=1000, payload=100), 1.0)
    >>> log.ack(tcp_packet(seq=1, payload=0, ack=1100, flags=0x10, sport=5001, dport=40000), 1.5, 1.501)
    >>> log.result()
    ([(1100, 1.0)], [(1100, 1.5, 1.501)])
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.port: int | None = None        # the sender's port of the first connection
        self.sent = array.array("d")         # end seq, t, end seq, t, ...
        self.acked = array.array("d")        # ack, due, written, ...

    def data(self, pkt: bytes, t: float) -> None:
        if len(self.sent) >= 2 * self.limit:
            return
        h = _tcp_header(pkt)
        if h is None:
            return
        sport, _, seq, _, flags, payload = h
        if self.port is None:
            self.port = sport
        if sport == self.port and payload:
            self.sent.extend(((seq + payload) & 0xFFFFFFFF, t))

    def ack(self, pkt: bytes, due: float, written: float) -> None:
        if len(self.acked) >= 3 * self.limit or self.port is None:
            return
        h = _tcp_header(pkt)
        if h is not None and h[1] == self.port and h[4] & 0x10:
            self.acked.extend((h[3], due, written))

    def result(self) -> tuple[list[tuple[int, float]], list[tuple[int, float, float]]]:
        s, a = self.sent, self.acked
        return ([(int(s[i]), s[i + 1]) for i in range(0, len(s), 2)],
                [(int(a[i]), a[i + 1], a[i + 2]) for i in range(0, len(a), 3)])


def _tcp_header(pkt: bytes) -> tuple[int, int, int, int, int, int] | None:
    """(source port, destination port, seq, ack, flags, payload length) of an IPv4 TCP packet, or None."""
    if len(pkt) < 40 or pkt[0] >> 4 != 4 or pkt[9] != 6:
        return None
    ihl = (pkt[0] & 0x0F) * 4
    if len(pkt) < ihl + 20:
        return None
    sport, dport, seq, ack, off, flags = struct.unpack_from("!HHIIBB", pkt, ihl)
    total = (pkt[2] << 8) | pkt[3]
    return sport, dport, seq, ack, flags, max(0, total - ihl - (off >> 4) * 4)


def _percentile(values: array.array, q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _sample_queue(nl: socket.socket, ifindex: int, period_s: float, stop: threading.Event,
                  rows: list[tuple[float, int, int, int]]) -> None:
    """Sample the bottleneck qdisc every ``period_s`` (a thread: an RTM_GETQDISC dump takes the
    global rtnl lock, which other namespaces' setup and teardown may hold for milliseconds; the
    delay line must not wait for it)."""
    nxt = time.monotonic()
    while not stop.is_set():
        try:
            got = qdisc_queue(nl, ifindex)
        except OSError:
            got = None
        if got is not None:
            rows.append((time.monotonic(), *got))
        nxt = max(nxt + period_s, time.monotonic())
        stop.wait(max(0.0, nxt - time.monotonic()))


def _forward(tun_r: int, tun_b: int, one_way_s: float, ctrl: int, out: int, nl: socket.socket,
             ifindex: int, queue_period_s: float, deadline: float, filt: SegmentFilter | None = None,
             delay_changes: Sequence[tuple[float, float]] = (), link: Link | None = None) -> None:
    """The delay line (runs in its own process until ``ctrl`` is closed or ``deadline``).

    Both directions are FIFOs: the delay is constant, so due times are in arrival order.
    ``filt``: drops chosen segments and records packets (None: every packet passes, unparsed).
    A ``delay_changes`` entry (seconds from now, new RTT in ms) sets the delay of the packets that
    arrive from then on; after a decrease they still leave behind the packets already held.
    ``link``: the bottleneck is here, not in a qdisc (:mod:`tcplab.kernel.aqmlink`): what the sender
    sent waits in ``link``'s queue, and starts its delay when the link sends it.
    """
    changes = [(time.monotonic() + at, rtt_ms / 2000) for at, rtt_ms in sorted(delay_changes)]
    to_b: deque[tuple[float, bytes]] = deque()
    to_r: deque[tuple[float, bytes]] = deque()
    late = array.array("f")
    trains = _TrainLog(ACK_RECORD_LIMIT)
    stats = PathStats()
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_queue, args=(nl, ifindex, queue_period_s, stop, stats.queue),
                               daemon=True)
    sampler.start()
    read, write, mono = os.read, os.write, time.monotonic
    try:
        while True:
            now = mono()
            if now > deadline:
                stats.error = "the delay line reached its deadline"
                break
            if link is not None:
                for t, pkt in link.release(now):
                    to_b.append((t + one_way_s, pkt))
                    trains.data(pkt, t)
            for q, fd in ((to_b, tun_b), (to_r, tun_r)):
                while q and q[0][0] <= now:
                    due, pkt = q.popleft()
                    try:
                        write(fd, pkt)
                    except OSError:
                        pass  # the device is going away
                    late.append((now - due) * 1000)
                    if q is to_r:
                        trains.ack(pkt, due, now)
                    now = mono()
            wake = deadline
            if to_b:
                wake = min(wake, to_b[0][0])
            if to_r:
                wake = min(wake, to_r[0][0])
            if link is not None:
                nxt = link.next_event()
                if nxt is not None:
                    wake = min(wake, nxt)
            r, _, _ = select.select((tun_r, tun_b, ctrl), (), (), max(0.0, wake - mono()))
            if ctrl in r:
                break
            now = mono()
            while changes and now >= changes[0][0]:     # the path's RTT changes (delay_changes)
                one_way_s = changes.pop(0)[1]
            for fd, q in ((tun_r, to_b), (tun_b, to_r)):
                if fd in r:
                    if link is not None:
                        for _ in range(256):
                            try:
                                pkt = read(fd, 65536)
                            except BlockingIOError:
                                break
                            if fd == tun_b:
                                link.observe_ack(pkt)
                                q.append((now + one_way_s, pkt))
                            else:
                                link.enqueue(now, pkt)
                        continue
                    if filt is None:
                        for _ in range(256):
                            try:
                                pkt = read(fd, 65536)
                            except BlockingIOError:
                                break
                            q.append((now + one_way_s, pkt))
                            if fd == tun_r:                         # past tbf: the bottleneck sent it now
                                trains.data(pkt, now)
                        continue
                    for _ in range(256):
                        try:
                            pkt = read(fd, 65536)
                        except BlockingIOError:
                            break
                        if filt.forward(pkt, now, fd == tun_r):    # tunR holds what the sender sent
                            q.append((now + one_way_s, pkt))
                            if fd == tun_r:
                                trains.data(pkt, now)
    finally:
        stop.set()
        sampler.join(2.0)
        stats.packets = len(late)
        stats.lateness_p50_ms = round(_percentile(late, 0.5), 3)
        stats.lateness_p99_ms = round(_percentile(late, 0.99), 3)
        stats.lateness_max_ms = round(max(late, default=0.0), 3)
        stats.queue = list(stats.queue)
        stats.departures, stats.acks = trains.result()
        if filt is not None:
            stats.dropped, stats.trace = list(filt.dropped), list(filt.trace)
        if link is not None:
            stats.link = link.stats.summary()
        send_msg(out, stats)


def _realtime_priority() -> str:
    """Ask for SCHED_FIFO (priority 10) for the delay line: every packet's delay depends on this
    process being scheduled on time, and on a loaded machine a normal process waits for a CPU for
    milliseconds. Allowed only with CAP_SYS_NICE in the initial user namespace (root); otherwise
    the line runs at normal priority and its measured lateness says what that cost. The process
    sleeps in select() between packets and the kernel's RT throttling bounds it in any case.
    Root is refused too inside a child cgroup of a cgroup-v1 cpu controller on a kernel with
    CONFIG_RT_GROUP_SCHED (its cpu.rt_runtime_us is 0). ``TCPLAB_NO_REALTIME=1`` withholds it on
    purpose, to see what a learner without it gets (docs/fidelity.md)."""
    if os.environ.get("TCPLAB_NO_REALTIME"):
        return "normal priority (TCPLAB_NO_REALTIME is set: as for an unprivileged learner)"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        return "SCHED_FIFO priority 10"
    except (OSError, AttributeError) as e:
        return f"normal priority (SCHED_FIFO refused: {getattr(e, 'strerror', e)})"


def _router_and_receiver(go_r: int, up_w: int, ctrl_r: int, out_w: int, p: dict[str, Any],
                         receiver_main: Any) -> None:
    """Forked child: become R, configure it, become B for the receiver and the delay line."""
    status = 0
    try:
        _die_with_parent()
        try:
            ip, tc = ip_available(), tc_available()
            _unshare_net()                                  # R
            send_msg(up_w, ("unshared", None))
            if os.read(go_r, 1) != b"g":                    # the sender moved r0 here
                os._exit(0)
            _run(ip, "link", "set", "lo", "up")
            _run(ip, "link", "set", "r0", "mtu", str(MTU), "up")
            _run(ip, "addr", "add", f"{ROUTER_ADDR}/24", "dev", "r0")
            with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
                f.write("1")
            tun_r = _tun("tunR")
            _run(ip, "link", "set", "tunR", "mtu", str(MTU), "up")
            _run(ip, "addr", "add", TUN_R_ADDR, "peer", RECEIVER_ADDR, "dev", "tunR")
            rate_bit = int(p["rate_mbit"] * 1e6)
            if p["aqm"] is None or p["aqm"].kernel_qdisc:
                _run(tc, "qdisc", "replace", "dev", "tunR", "root", "handle", "1:", "tbf", "rate", f"{rate_bit}bit",
                     "burst", str(_TBF_BURST), "limit", str(MTU * (p["buffer_packets"] + 2)))
                # the kernel's own CoDel or fq_codel under the tbf where this kernel has it (aqm.kernel_qdisc):
                # it stamps each packet at enqueue and decides at dequeue, when tbf has the tokens to send it
                child = (["pfifo", "limit", str(p["buffer_packets"])] if p["aqm"] is None
                         else kernel_qdisc_args(p["aqm"], p["buffer_packets"]))
                _run(tc, "qdisc", "replace", "dev", "tunR", "parent", "1:1", "handle", "10:", *child)
            else:
                # the bottleneck is the delay line's (aqmlink): tunR only hands packets over; a long pfifo
                # whose drops (sampled below) say whether the line ever failed to keep up
                _run(tc, "qdisc", "replace", "dev", "tunR", "root", "handle", "1:", "pfifo", "limit",
                     str(_AQM_HANDOFF_LIMIT))
            ifindex = socket.if_nametoindex("tunR")
            nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)   # NETLINK_ROUTE, bound to R
            nl.settimeout(1.0)
            nl.bind((0, 0))
            _unshare_net()                                  # B
            _run(ip, "link", "set", "lo", "up")
            tun_b = _tun("tunB")
            _run(ip, "link", "set", "tunB", "mtu", str(MTU), "up")
            _run(ip, "addr", "add", RECEIVER_ADDR, "peer", TUN_R_ADDR, "dev", "tunB")
            _run(ip, "route", "add", "10.15.1.0/24", "dev", "tunB")
            lst = socket.socket()
            if p["rcvbuf"]:
                # locked before listen() so accepted sockets inherit it (see bottleneck_path())
                lst.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, p["rcvbuf"])
            rcvbuf = lst.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            lst.bind((RECEIVER_ADDR, p["port"]))
            lst.listen(64)
        except BaseException as e:  # noqa: BLE001 - reported to the sender
            send_msg(up_w, ("error", f"{type(e).__name__}: {e}"))
            os._exit(0)
        # the receiver's ACKs wait while its reader lags (``__tcp_ack_snd_check()`` sends the
        # every-second-segment ACK only if the window would not shrink): it shares the priority
        priority = _realtime_priority()
        sink = os.fork()
        if sink == 0:
            code = 0
            try:
                _die_with_parent()
                nl.close()
                os.close(tun_r)
                os.close(tun_b)
                receiver_main(lst, p["deadline"])
            except BaseException:  # noqa: BLE001
                code = 70
            finally:
                os._exit(code)
        lst.close()
        send_msg(up_w, ("ready", (priority, rcvbuf)))
        os.close(up_w)
        filt = SegmentFilter(p["drop"], p["trace"]) if p["drop"] is not None or p["trace"] else None
        link = Link(p["rate_mbit"], p["buffer_packets"], p["aqm"], MTU) if p["aqm"] is not None else None
        _forward(tun_r, tun_b, p["rtt_ms"] / 2000, ctrl_r, out_w, nl, ifindex, p["queue_period_s"], p["deadline"],
                 filt, p["delay_changes"], link)
        try:
            os.kill(sink, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(sink, 0)
    except BaseException:  # noqa: BLE001
        status = 70
    finally:
        os._exit(status)


def drain(lst: socket.socket, deadline: float) -> None:
    """The receiver: accept connections and read everything until each peer closes (or deadline)."""
    lst.setblocking(False)
    conns: list[socket.socket] = []
    buf = bytearray(4 << 20)
    open_count = 0
    while time.monotonic() < deadline:
        r, _, _ = select.select([lst, *conns], [], [], 0.2)
        for s in r:
            if s is lst:
                try:
                    c, _ = lst.accept()
                except BlockingIOError:
                    continue
                c.setblocking(False)
                conns.append(c)
                open_count += 1
                continue
            try:
                n = s.recv_into(buf)
            except (BlockingIOError, ConnectionError):
                n = -1
            if n == 0:
                conns.remove(s)
                s.close()
        if open_count and not conns:
            return


@contextmanager
def bottleneck_path(rate_mbit: float, rtt_ms: float, buffer_packets: int, *, port: int = 5001,
                    queue_period_s: float = 0.005, max_seconds: float = 60.0,
                    rcvbuf: int | None = None, receiver: Any = None, drop: DropRule | None = None,
                    trace: bool = False, delay_changes: Sequence[tuple[float, float]] = (),
                    aqm: Aqm | None = None) -> Iterator[Path]:
    """Build the path, yield a :class:`Path` (connect to ``path.receiver``), tear everything down.

    Only inside a private namespace of our own. After the ``with`` block, ``path.stats`` holds
    the forwarder's measurements. Raises :class:`KernelUnavailable` naming what failed.

    ``rcvbuf``: lock the receiver's SO_RCVBUF at this request (the kernel doubles it and caps it
    at twice net.core.rmem_max). Without a lock, autotuning (``tcp_rcv_space_adjust()``) grows
    the window by a factor that hinges on when the reader happened to wake up: with a deep buffer,
    runs differed by 2x in RTT depending only on how the receiver polled.

    ``receiver``: what the receiver process in B runs, ``receiver(listener, deadline)`` (default
    :func:`drain`: accept and read everything). It runs in a forked process until it returns or
    the path is torn down (then it is killed).

    ``drop``: data segments of the first connection (sender -> receiver) the delay line drops
    (:class:`DropRule`; None drops nothing and parses no packet). ``trace``: record every TCP packet of
    that connection at the delay line (``path.stats.trace``), a capture that needs no CAP_NET_RAW.

    ``delay_changes``: ``(seconds, rtt_ms)`` pairs: from ``seconds`` after the path is ready (the
    ``with`` block begins) the delay line holds each packet ``rtt_ms / 2`` each way (``rtt_ms`` is
    the RTT until the first change). A packet's delay is fixed when it arrives at the line; after a
    decrease, packets never overtake the ones already held (no reordering), and their wait behind them
    counts in ``stats``' lateness.

    ``aqm``: the rate and the ``buffer_packets`` queue are the delay line's own, drop-tail, CoDel or fq_codel
    (:class:`tcplab.kernel.aqmlink.Aqm`; this kernel has no codel qdisc), instead of tbf and pfifo;
    ``path.stats.link`` holds what it measured (sojourn times, drops, CE marks, ECN bits seen). It
    cannot be combined with ``drop`` or ``trace``.
    """
    if aqm is not None and not isinstance(aqm, Aqm):
        raise TypeError(f"aqm must be an Aqm or None, not {type(aqm).__name__}")
    if aqm is not None and (drop is not None or trace):
        raise ValueError("aqm cannot be combined with drop or trace (the delay line's link parses every packet itself)")
    if drop is not None and not isinstance(drop, DropRule):
        raise TypeError(f"drop must be a DropRule or None, not {type(drop).__name__}")
    changes = _check_delay_changes(delay_changes)
    ip, tc = ip_available(), tc_available()
    if ip is None or tc is None:
        raise KernelUnavailable("the bottleneck path needs iproute2's `ip` and `tc`")
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        raise KernelUnavailable("/dev/net/tun is not available (the delay line needs TUN devices)")
    deadline = time.monotonic() + max_seconds
    _run(ip, "link", "add", "a0", "mtu", str(MTU), "type", "veth", "peer", "name", "r0", "mtu", str(MTU))
    _run(ip, "addr", "add", f"{SENDER_ADDR}/24", "dev", "a0")
    _run(ip, "link", "set", "a0", "up")
    _run(ip, "route", "add", "10.15.2.0/24", "via", ROUTER_ADDR)
    go_r, go_w = os.pipe()
    up_r, up_w = os.pipe()
    ctrl_r, ctrl_w = os.pipe()
    out_r, out_w = os.pipe()
    params = {"rate_mbit": rate_mbit, "rtt_ms": rtt_ms, "buffer_packets": buffer_packets,
              "queue_period_s": queue_period_s, "deadline": deadline, "port": port, "rcvbuf": rcvbuf,
              "drop": drop, "trace": trace, "delay_changes": changes, "aqm": aqm}
    pid = os.fork()
    if pid == 0:
        for fd in (go_w, up_r, ctrl_w, out_r):
            os.close(fd)
        _router_and_receiver(go_r, up_w, ctrl_r, out_w, params, receiver or drain)
    for fd in (go_r, up_w, ctrl_r, out_w):
        os.close(fd)
    path = Path(rate_mbit, rtt_ms, buffer_packets, (RECEIVER_ADDR, port))
    try:
        what, _ = read_msg(up_r, time.monotonic() + 10, what=_HELPER)
        if what == "error":
            raise KernelUnavailable(f"building the router namespace failed: {_}")
        _run(ip, "link", "set", "r0", "netns", str(pid))
        os.write(go_w, b"g")
        what, info = read_msg(up_r, time.monotonic() + 20, what=_HELPER)
        if what == "error":
            raise KernelUnavailable(f"building the bottleneck path failed: {info}")
        path.scheduling, path.rcvbuf = info
        path.notes.append(f"delay line scheduling: {path.scheduling}")
        if aqm is None:
            path.notes.append(f"path: veth to a router namespace, tbf {rate_mbit:g} Mbit/s with a {buffer_packets}-packet "
                              f"drop-tail pfifo on tunR, then {DELAY_METHOD}; MTU {MTU}")
        elif aqm.kernel_qdisc:
            path.notes.append(f"path: veth to a router namespace, tbf {rate_mbit:g} Mbit/s on tunR with the kernel's own "
                              f"`{' '.join(kernel_qdisc_args(aqm, buffer_packets))}` under it, then {DELAY_METHOD} "
                              f"(which only reads the packets' ECN bits and flags); MTU {MTU}")
        else:
            what = ("drop-tail" if aqm.queue == "droptail" else
                    ("fq_codel (1024 buckets, quantum 1500, per-flow " if aqm.queue == "fq_codel" else "")
                    + f"CoDel (target {aqm.target_s * 1000:g} ms, interval {aqm.interval_s * 1000:g} ms"
                    + (", CE marks for ECT packets)" if aqm.ecn else ", drops)")
                    + (")" if aqm.queue == "fq_codel" else ""))
            path.notes.append(f"path: veth to a router namespace, tunR hands packets to the delay line, whose own "
                              f"{rate_mbit:g} Mbit/s link serves a {buffer_packets}-packet {what} queue "
                              f"(tcplab.kernel.aqmlink), then {DELAY_METHOD}; MTU {MTU}")
        yield path
    finally:
        os.close(ctrl_w)                                    # stops the delay line
        try:
            path.stats = read_msg(out_r, time.monotonic() + 5, what=_HELPER)
        except KernelUnavailable as e:
            path.notes.append(f"delay line statistics unavailable: {e}")
        for fd in (go_w, up_r, out_r):
            os.close(fd)
        _reap(pid, 5.0)


def _check_delay_changes(changes: Sequence[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """``delay_changes`` checked (ValueError naming the parameter and the ranges).

    >>> _check_delay_changes([(2, 80), (0.5, 20.5)])
    ((0.5, 20.5), (2.0, 80.0))
    >>> _check_delay_changes([(1.0, 0)])
    Traceback (most recent call last):
    ValueError: delay_changes must be (seconds >= 0, rtt_ms in 0.1..10000) pairs, not (1.0, 0)
    """
    out = []
    for c in changes:
        try:
            at, rtt_ms = (float(x) for x in c)
            ok = at >= 0 and 0.1 <= rtt_ms <= 10_000 and not any(isinstance(x, bool) for x in c)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"delay_changes must be (seconds >= 0, rtt_ms in 0.1..10000) pairs, not {c!r}")
        out.append((at, rtt_ms))
    return tuple(sorted(out))


def set_route_metrics(rto_min_ms: int | None = None, initcwnd: int | None = None) -> None:
    """Set metrics on the sender's route to the receiver (``ip route change 10.15.2.0/24 via ...``), in
    the caller's namespace, for the connections made afterwards. ``rto_min_ms``: a locked ``rto_min``
    (iproute2 always locks it), which ``tcp_rto_min()`` takes instead of the socket's floor.
    ``initcwnd``: the initial congestion window (``tcp_init_cwnd()`` reads RTAX_INITCWND). Call inside
    :func:`bottleneck_path` (its route exists only there)."""
    ip = ip_available()
    if ip is None:
        raise KernelUnavailable("changing a route needs iproute2's `ip`")
    args = ["route", "change", "10.15.2.0/24", "via", ROUTER_ADDR]
    if rto_min_ms is not None:
        args += ["rto_min", f"{int(rto_min_ms)}ms"]
    if initcwnd is not None:
        args += ["initcwnd", str(int(initcwnd))]
    _run(ip, *args)


def _reap(pid: int, grace_s: float) -> None:
    """Wait for ``pid`` (it exits by itself once the delay line stops: it kills and reaps the
    receiver first); SIGKILL it after ``grace_s``."""
    end = time.monotonic() + grace_s
    while time.monotonic() < end:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.01)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
