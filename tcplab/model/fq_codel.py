"""fq_codel (RFC 8290) as Linux runs it: flows hashed into buckets, each a FIFO with its own CoDel, served
by deficit round robin with a quantum, new flows before old ones.

``net/sched/sch_fq_codel.c`` (Linux 3.5+, the same logic in 6.1, 6.12 and 6.18):

- ``fq_codel_enqueue()``: the packet goes to the tail of its flow's queue (bucket
  ``reciprocal_scale(skb_get_hash(skb), flows_cnt)``, 1024 buckets); a flow not on a list joins the tail
  of **new_flows** with ``deficit = quantum`` (``psched_mtu()``: 1500 on the path's TUN device). Over
  ``limit`` packets, ``fq_codel_drop()`` finds the flow with the largest backlog and drops from its
  **head** until half of its bytes are gone or 64 packets (``drop_batch_size``), and adds them to that
  flow's CoDel ``count``.
- ``fq_codel_dequeue()``: take the first flow of new_flows (else of old_flows); if its deficit is spent,
  add a quantum and move it to the tail of old_flows; else CoDel-dequeue from it (with the whole qdisc's
  backlog, ``sch->qstats.backlog``) and charge the packet's length to its deficit. A flow found empty
  moves to old_flows if it was new and old flows wait (so new flows cannot starve old ones), else leaves
  the lists, and becomes new again with its next packet.

So a flow that sends a packet now and then (a ping, a DNS query, a game's update) finds its queue empty,
enters new_flows and is served next, ahead of a bulk flow's standing queue: its wait is at most the packet
the link is sending. A bulk flow's own queue is held near ``target`` by its CoDel.

>>> from tcplab.model.codel import Packet
>>> fq = FqCoDel(limit=100)
>>> for i in range(20):                                   # a bulk flow's burst in bucket 0
...     _ = fq.enqueue(0.0, 0, Packet(0.0, 1500, False, ("bulk", i)))
>>> fq.dequeue(0.001).packet.data
('bulk', 0)
>>> _ = fq.enqueue(0.002, 1, Packet(0.002, 100, False, ("ping", 0)))    # a sparse flow's packet
>>> fq.dequeue(0.002).packet.data                           # served next: it is a new flow
('ping', 0)
>>> fq.dequeue(0.003).packet.data, len(fq), fq.new_flow_count
(('bulk', 1), 18, 2)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from tcplab.model.codel import INTERVAL_S, TARGET_S, CoDel, Dequeued, Fifo, Packet

__all__ = ["FqCoDel", "FLOWS", "DROP_BATCH"]

#: fq_codel_init(): q->flows_cnt = 1024, q->drop_batch_size = 64
FLOWS = 1024
DROP_BATCH = 64


class _FlowQueue(Fifo):
    """One bucket's FIFO; pushes and pops also count in the qdisc's totals (``sch->q.qlen``, ``backlog``)."""

    __slots__ = ("owner",)

    def __init__(self, owner: FqCoDel) -> None:
        super().__init__()
        self.owner = owner

    def push(self, p: Packet) -> None:
        super().push(p)
        self.owner.qlen += 1
        self.owner.backlog += p.size

    def pop(self) -> Packet | None:
        p = super().pop()
        if p is not None:
            self.owner.qlen -= 1
            self.owner.backlog -= p.size
        return p


@dataclass
class _Flow:
    """``struct fq_codel_flow``: its queue, its deficit, its CoDel, and which list it is on."""

    q: _FlowQueue
    codel: CoDel
    deficit: int = 0
    on: str | None = None           # "new", "old" or None (list_empty(&flow->flowchain))


class FqCoDel:
    """The qdisc: ``enqueue(now, bucket, packet)`` (returns the packets an overlimit drop removed),
    ``dequeue(now)`` (a :class:`tcplab.model.codel.Dequeued`), ``len()`` packets queued.

    ``bucket``: the caller's hash of the packet's flow, in ``[0, flows)`` (the delay line hashes the
    5-tuple; the simulator numbers its flows). ``quantum`` defaults to ``mtu`` (``psched_mtu()``).

    >>> FqCoDel(limit=0)
    Traceback (most recent call last):
    ValueError: limit must be at least 1 packet, not 0
    """

    def __init__(self, limit: int, target: float = TARGET_S, interval: float = INTERVAL_S, mtu: int = 1500,
                 ecn: bool = False, quantum: int | None = None, flows: int = FLOWS,
                 drop_batch: int = DROP_BATCH) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1 packet, not {limit!r}")
        if not 1 <= flows <= 65536:
            raise ValueError(f"flows must be in [1, 65536] (fq_codel_change()), not {flows!r}")
        self.limit, self.flows_cnt, self.drop_batch = limit, flows, drop_batch
        self.target, self.interval, self.mtu, self.ecn = target, interval, mtu, ecn
        self.quantum = max(256, quantum if quantum is not None else mtu)   # fq_codel_change(): max(256, q)
        self.flows: dict[int, _Flow] = {}
        self.new_flows: deque[_Flow] = deque()
        self.old_flows: deque[_Flow] = deque()
        self.qlen = 0
        self.backlog = 0
        self.new_flow_count = 0
        self.drop_overlimit = 0
        self.aqm_drops = 0
        self.marks = 0

    def __len__(self) -> int:
        return self.qlen

    def _flow(self, bucket: int) -> _Flow:
        f = self.flows.get(bucket)
        if f is None:
            if not 0 <= bucket < self.flows_cnt:
                raise ValueError(f"bucket must be in [0, {self.flows_cnt}), not {bucket!r}")
            f = self.flows[bucket] = _Flow(_FlowQueue(self), CoDel(self.target, self.interval, self.mtu, self.ecn))
        return f

    def enqueue(self, now: float, bucket: int, p: Packet) -> list[Packet]:
        """``fq_codel_enqueue()``: queue ``p`` in its bucket; over the limit, drop from the fattest flow's head."""
        f = self._flow(bucket)
        f.q.push(p)
        if f.on is None:
            self.new_flows.append(f)
            f.on = "new"
            self.new_flow_count += 1
            f.deficit = self.quantum
        if self.qlen <= self.limit:
            return []
        return self._drop()

    def _drop(self) -> list[Packet]:
        """``fq_codel_drop()``: half the fattest flow's bytes, from its head, at most ``drop_batch`` packets."""
        fat = max(self.flows.values(), key=lambda fl: fl.q.backlog)   # the first of equals, as the scan keeps
        threshold = fat.q.backlog >> 1
        gone: list[Packet] = []
        size = 0
        while True:
            p = fat.q.pop()
            if p is None:
                break
            gone.append(p)
            size += p.size
            if len(gone) >= self.drop_batch or size >= threshold:
                break
        fat.codel.count += len(gone)        # "Tell codel to increase its signal strength also"
        self.drop_overlimit += len(gone)
        return gone

    def dequeue(self, now: float) -> Dequeued:
        """``fq_codel_dequeue()``: the next packet, from the first flow of new_flows, else of old_flows."""
        dropped: list[Packet] = []
        for _ in range(4 * len(self.flows) + 4):      # each pass moves or removes a flow: bounded
            head = self.new_flows if self.new_flows else self.old_flows
            if not head:
                return Dequeued(None, dropped=dropped)
            f = head[0]
            if f.deficit <= 0:
                f.deficit += self.quantum
                head.popleft()
                self.old_flows.append(f)
                f.on = "old"
                continue
            d = f.codel.dequeue(now, f.q, self._backlog)
            dropped += d.dropped
            self.aqm_drops += len(d.dropped)
            if d.packet is None:
                head.popleft()
                if head is self.new_flows and self.old_flows:
                    self.old_flows.append(f)        # force a pass through old_flows to prevent starvation
                    f.on = "old"
                else:
                    f.on = None                     # list_del_init()
                continue
            self.marks += d.marked
            f.deficit -= d.packet.size
            d.dropped = dropped
            return d
        raise RuntimeError("fq_codel dequeue did not settle")   # unreachable: every pass shortens the work

    def _backlog(self) -> int:
        return self.backlog
