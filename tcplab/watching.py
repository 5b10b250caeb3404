"""Watch the TCP sockets of a live server: ``tcplab.watch()``, sampled through sock_diag.

Every ``interval`` seconds for ``duration`` seconds, one NETLINK_SOCK_DIAG dump with
INET_DIAG_INFO (what ``ss -ti`` asks for) of the sockets matching the filter; the kernel does
the filtering (states by the request's mask, ports and addresses by a bytecode program, see
:mod:`tcplab.kernel.diag_filter`). The result is one long-format DataFrame, a row per socket
per sample.

Memory: rows are kept as typed columns (``array``), not Python objects, 93 bytes a
row; ``max_rows`` bounds the total (the watch stops early and says so in ``df.attrs``).

>>> import socket, tcplab
>>> srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(8)
>>> df = tcplab.watch(port=srv.getsockname()[1], duration=0.2, interval=0.1)
>>> row = df.iloc[0]
>>> str(row.state), int(row.accept_queue), int(row.accept_limit)
('LISTEN', 0, 8)
>>> srv.close()
"""

from __future__ import annotations

import ipaddress
import math
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from tcplab._validate import check_float, check_int, check_optional_int
from tcplab.kernel import diag_watch
from tcplab.kernel.diag_filter import port_address_filter
from tcplab.kernel.tcpinfo import CA_STATES
from tcplab.model.states import STATE_NAMES, TcpState

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["watch", "watch_samples", "format_table", "WATCH_COLUMNS"]

#: the columns of :func:`watch`'s DataFrame, in order
WATCH_COLUMNS = [
    "time", "conn", "state", "family", "local_address", "local_port", "remote_address", "remote_port",
    "cookie", "inode", "uid", "recv_q", "send_q", "accept_queue", "accept_limit", "ca_state", "cwnd",
    "ssthresh", "srtt_ms", "rttvar_ms", "rto_ms", "min_rtt_ms", "retransmits", "backoff", "unacked", "lost",
    "retrans", "total_retrans", "bytes_acked", "bytes_received", "notsent_bytes", "delivery_rate_bps"]

_STATE_NAMES = {**STATE_NAMES, 12: "SYN_RECV"}  # TCP_NEW_SYN_RECV: a request socket, which ss shows as SYN-RECV
_STATE_NUMBERS = {name: number for number, name in STATE_NAMES.items()}
_LISTEN = int(TcpState.LISTEN)
_INFINITE_SSTHRESH = 0x7FFFFFFF                 # TCP_INFINITE_SSTHRESH: "no ssthresh yet"
_MAX_SAMPLES = 1_000_000
_MAX_ROWS = 50_000_000

# stored per row (array typecode, as the kernel's type: B u8, I u32, Q u64); the rest of a row
# (addresses, ports, uid, inode) is per connection. ~93 bytes a row with the time and connection.
_R = {n: i for i, n in enumerate(diag_watch.ROW_FIELDS)}
_STORED: list[tuple[str, str]] = [
    ("state", "B"), ("tcpi_state", "B"), ("ca_state", "B"), ("retransmits", "B"), ("backoff", "B"),
    ("rqueue", "I"), ("wqueue", "I"), ("rto_us", "I"), ("unacked", "I"), ("lost", "I"), ("retrans", "I"),
    ("rtt_us", "I"), ("rttvar_us", "I"), ("ssthresh", "I"), ("cwnd", "I"), ("total_retrans", "I"),
    ("notsent_bytes", "I"), ("min_rtt_us", "I"), ("bytes_acked", "Q"), ("bytes_received", "Q"),
    ("delivery_rate", "Q")]
_STORED_INDEX = [_R[name] for name, _ in _STORED]
_COOKIE, _UID, _INODE = _R["cookie"], _R["uid"], _R["inode"]


def _check_states(state: str | Iterable[str] | None) -> int:
    """The idiag_states mask for ``state`` (one name or several; None: all)."""
    if state is None:
        return 0xFFF
    names = [state] if isinstance(state, str) else list(state) if isinstance(state, (list, tuple, set, frozenset)) \
        else None
    allowed = ", ".join(_STATE_NUMBERS)
    if not names or not all(isinstance(n, str) for n in names):
        raise TypeError(f"state must be None, a state name or a list of them ({allowed}), not {state!r}")
    mask = 0
    for n in names:
        number = _STATE_NUMBERS.get(n.upper())
        if number is None:
            raise ValueError(f"state must be None or among {allowed}, not {n!r}")
        mask |= 1 << number
    return mask


def _check_address(address: Any) -> str | None:
    if address is None:
        return None
    if not isinstance(address, str):
        raise TypeError(f"address must be None or an IP address or network string (e.g. '127.0.0.1', "
                        f"'10.0.0.0/8'), not {address!r}")
    try:
        ipaddress.ip_network(address, strict=False)
    except ValueError:
        raise ValueError(f"address must be None or an IP address or network (e.g. '127.0.0.1', '10.0.0.0/8', "
                         f"'::1'), not {address!r}") from None
    return address


class _Plan:
    """Validated arguments of a watch: the kernel request and the schedule."""

    def __init__(self, port: Any, duration: Any, interval: Any, state: Any, local_port: Any, remote_port: Any,
                 address: Any, max_samples: Any) -> None:
        self.port = check_optional_int("port", port, 0, 65535)
        self.local_port = check_optional_int("local_port", local_port, 0, 65535)
        self.remote_port = check_optional_int("remote_port", remote_port, 0, 65535)
        self.duration = check_float("duration", duration, 0, 7 * 86400)
        self.interval = check_float("interval", interval, 0.01, 3600)
        self.states = _check_states(state)
        self.address = _check_address(address)
        wanted = math.floor(self.duration / self.interval + 1e-9) + 1
        self.max_samples = check_int("max_samples", max_samples, 1, _MAX_SAMPLES) if max_samples is not None \
            else min(wanted, _MAX_SAMPLES)
        self.samples = min(wanted, self.max_samples)
        self.bytecode = port_address_filter(self.port, self.local_port, self.remote_port, self.address)


def _raw_samples(plan: _Plan) -> Iterator[tuple[float, list[tuple]]]:
    """(seconds since start, rows) every interval, on a fixed schedule (no drift); a sample that
    overruns its slot makes the next one start at once, never a burst to catch up."""
    with diag_watch.DiagSampler(states=plan.states, bytecode=plan.bytecode) as sampler:
        start = time.monotonic()
        for k in range(plan.samples):
            due = start + k * plan.interval
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            t = time.monotonic() - start
            if t > plan.duration + plan.interval:   # fell far behind (host stalled): the duration is the bound
                return
            yield t, sampler.sample()


class _Columns:
    """The rows of a watch as typed columns, with one entry per socket (its cookie) for the rest."""

    def __init__(self) -> None:
        self.time = array("d")
        self.conn = array("I")
        self.values = [array(code) for _, code in _STORED]
        self.conn_of: dict[int, int] = {}
        self.conns: list[tuple] = []    # (label, family, local, lport, remote, rport, cookie, inode, uid)

    def __len__(self) -> int:
        return len(self.time)

    def nbytes(self) -> int:
        """Bytes held by the row columns (the per-socket table is small next to them)."""
        return sum(c.itemsize * len(c) for c in (self.time, self.conn, *self.values))

    def add(self, t: float, rows: Sequence[tuple]) -> None:
        if not rows:
            return
        picked = list(zip(*rows))                    # one C-level transpose, then a C-level extend per column
        ids = list(map(self.conn_of.get, picked[_COOKIE]))
        if None in ids:                              # new sockets: format their addresses once
            for i, cid in enumerate(ids):
                if cid is None:
                    r = rows[i]
                    cid = self.conn_of.get(r[_COOKIE])
                    if cid is None:
                        cid = self.conn_of[r[_COOKIE]] = len(self.conns)
                        self.conns.append(_identity(r))
                    ids[i] = cid
        self.conn.extend(ids)
        self.time.extend([t] * len(rows))
        for column, index in zip(self.values, _STORED_INDEX):
            column.extend(picked[index])


def _identity(r: tuple) -> tuple:
    """(label, family, local, lport, remote, rport, cookie, inode, uid) of a row's socket."""
    fam, local, lport, remote, rport = diag_watch.endpoints(r)
    label = f"{local}:{lport}->{remote}:{rport}" if fam == 4 else f"[{local}]:{lport}->[{remote}]:{rport}"
    if r[1] == _LISTEN:
        label = label.rsplit("->", 1)[0] + " (listen)"
    return label, fam, local, r[3], remote, r[5], r[_COOKIE], r[_INODE], r[_UID]


def _categorical(codes: Any, name_of: Callable[[int], str | None]) -> pd.Categorical:
    """Numbers -> a Categorical of their names (several numbers may share a name; None is NA)."""
    import numpy as np
    import pandas as pd

    uniq, inverse = np.unique(codes, return_inverse=True)
    names = [name_of(int(u)) for u in uniq]
    categories = list(dict.fromkeys(n for n in names if n is not None))
    where = {n: i for i, n in enumerate(categories)}
    lookup = np.array([where[n] if n is not None else -1 for n in names] or [0], dtype="i8")
    return pd.Categorical.from_codes(lookup[inverse] if len(uniq) else np.zeros(0, dtype="i8"),
                                     categories=categories)


def _signed(x: Any) -> str:
    """The narrowest *signed* dtype holding ``x`` (a kernel u8/u32/u64 column): signed, so that
    ``df.bytes_acked.diff()`` is negative where it should be, not 2**64 - 1."""
    size = x.dtype.itemsize
    if size == 1:
        return "i2"
    if size == 4 and (not len(x) or int(x.max()) < 2**31):
        return "i4"
    return "i8"


def _frame(cols: _Columns, start: float | None = None, *, consume: bool = False) -> pd.DataFrame:
    """The long-format DataFrame of :data:`WATCH_COLUMNS`. A value the kernel did not give (no
    tcp_info for TIME_WAIT and request sockets; queue *bytes* of a listener; a listener's
    cwnd) is <NA>, never 0. Columns are about as narrow as the kernel's types (Int32 for a u32 field),
    per-connection text is categorical. ``consume``: release each stored column once converted
    (the peak memory of a long watch is then the frame plus one column, not both whole)."""
    import numpy as np
    import pandas as pd

    n = len(cols)
    v = {name: np.frombuffer(col, dtype=f"u{col.itemsize}") if n else np.zeros(0, dtype=f"u{col.itemsize}")
         for (name, _), col in zip(_STORED, cols.values)}
    conn = np.frombuffer(cols.conn, dtype=f"u{cols.conn.itemsize}") if n else np.zeros(0, dtype="u4")
    times = np.frombuffer(cols.time, dtype="f8") if n else np.zeros(0)
    if consume:
        cols.values, cols.time, cols.conn = [], array("d"), array("I")
    table = list(zip(*cols.conns)) if cols.conns else [()] * 9
    state = v.pop("state")
    listen = state == _LISTEN
    no_info = (v.pop("tcpi_state") == 0) | listen    # a listener's tcp_info has no connection figures

    def ints(name: str, mask: Any, *, keep: bool = False, scale: int = 1) -> pd.arrays.IntegerArray:
        x = v[name] if keep else v.pop(name)
        if scale != 1:
            x = x * scale
        return pd.arrays.IntegerArray(np.where(mask, 0, x).astype(_signed(x)), np.asarray(mask, dtype=bool))

    def ms(name: str) -> Any:
        return np.where(no_info, np.nan, v.pop(name) / 1000.0)

    def per_conn(i: int, dtype: str) -> Any:
        return np.asarray(table[i], dtype=dtype)[conn] if n else np.zeros(0, dtype=dtype)

    def text_per_conn(i: int) -> pd.Categorical:
        return _categorical(conn, list(table[i]).__getitem__)

    data = {
        "time": times,
        "conn": text_per_conn(0),
        "state": _categorical(state, _STATE_NAMES.get),
        "family": per_conn(1, "i1"),
        "local_address": text_per_conn(2),
        "local_port": per_conn(3, "i4"),
        "remote_address": text_per_conn(4),
        "remote_port": per_conn(5, "i4"),
        "cookie": per_conn(6, "u8"),
        "inode": per_conn(7, "u4"),
        "uid": per_conn(8, "u4"),
        "recv_q": ints("rqueue", listen, keep=True),
        "send_q": ints("wqueue", listen, keep=True),
        "accept_queue": ints("rqueue", ~listen),
        "accept_limit": ints("wqueue", ~listen),
        "ca_state": _categorical(np.where(no_info, 255, v.pop("ca_state")),
                                 lambda c: None if c == 255 else CA_STATES.get(c, str(c))),
        "cwnd": ints("cwnd", no_info),
        "ssthresh": ints("ssthresh", no_info | (v["ssthresh"] >= _INFINITE_SSTHRESH)),
        "srtt_ms": ms("rtt_us"),
        "rttvar_ms": ms("rttvar_us"),
        "rto_ms": ms("rto_us"),
        "min_rtt_ms": ms("min_rtt_us"),
    }
    for name in ("retransmits", "backoff", "unacked", "lost", "retrans", "total_retrans", "bytes_acked",
                 "bytes_received", "notsent_bytes"):
        data[name] = ints(name, no_info)
    data["delivery_rate_bps"] = ints("delivery_rate", no_info, scale=8)   # tcp_info: bytes/s; ss prints bit/s
    df = pd.DataFrame(data, columns=WATCH_COLUMNS, copy=False)
    if start is not None:
        df.attrs["start"] = start
    return df


def watch_samples(port: int | None = None, *, duration: float = 10.0, interval: float = 1.0,
                  state: str | Sequence[str] | None = None, local_port: int | None = None,
                  remote_port: int | None = None, address: str | None = None,
                  max_samples: int | None = None) -> Iterator[pd.DataFrame]:
    """Like :func:`watch`, one DataFrame per sample as it is taken (for a live figure or table).

    Arguments are checked when called, before the first sample. Closing the iterator (or
    leaving a ``for`` loop) closes the netlink socket.

    >>> import tcplab
    >>> for sample in tcplab.watch_samples(port=1, duration=0.1, interval=0.05):   # doctest: +SKIP
    ...     print(len(sample))
    """
    plan = _Plan(port, duration, interval, state, local_port, remote_port, address, max_samples)
    return _sample_frames(plan)


def _sample_frames(plan: _Plan) -> Iterator[pd.DataFrame]:
    import pandas  # noqa: F401 - loaded before the clock starts: the first sample is not late for it

    start = time.time()
    cols = _Columns()
    for t, rows in _raw_samples(plan):
        one = _Columns()
        one.conn_of, one.conns = cols.conn_of, cols.conns     # one id per socket across samples
        one.add(t, rows)
        frame = _frame(one, start)
        frame.attrs["t"] = t
        yield frame


def watch(port: int | None = None, *, duration: float = 10.0, interval: float = 1.0,
          state: str | Sequence[str] | None = None, local_port: int | None = None,
          remote_port: int | None = None, address: str | None = None, max_samples: int | None = None,
          max_rows: int = 5_000_000, on_sample: Callable[[pd.DataFrame], object] | None = None) -> pd.DataFrame:
    """Sample the TCP sockets of this host (this network namespace) matching a filter, every
    ``interval`` seconds for ``duration`` seconds, through NETLINK_SOCK_DIAG with tcp_info, as
    ``ss -ti`` does. No privilege needed: every socket of the namespace is visible, whoever owns it.

    Filter (all given ones must hold; the kernel applies it): ``port`` local or remote,
    ``local_port``, ``remote_port``, ``address`` (local or remote; an address or CIDR),
    ``state`` (a kernel state name or a list, e.g. ``["ESTABLISHED", "LISTEN"]``).

    Returns a long-format DataFrame, one row per socket per sample (:data:`WATCH_COLUMNS`):
    ``time`` (s since the first sample), ``conn`` (the 4-tuple; a listener is ``addr:port (listen)``),
    ``state``; ``recv_q``/``send_q``: bytes not yet read / not yet acknowledged (ss's Recv-Q /
    Send-Q); for a listener ``accept_queue``/``accept_limit`` instead; from tcp_info ``cwnd``
    (segments), ``ssthresh`` (<NA> while infinite), ``srtt_ms``, ``rttvar_ms``, ``rto_ms``,
    ``min_rtt_ms``, ``retransmits`` (of the current segment), ``total_retrans``, ``bytes_acked``,
    ``delivery_rate_bps``... TIME_WAIT and request sockets have no tcp_info: <NA> there.

    Bounded: ``duration`` (0..7 days; 0 = one sample), ``interval`` (0.01..3600 s),
    ``max_samples`` (1..1,000,000), ``max_rows`` (1..50,000,000 rows kept; beyond, the watch stops
    and ``df.attrs["truncated"]`` is True). A watch the host stalls past ``duration + interval``
    stops there (``df.attrs["fell_behind"]``; ``samples`` and ``planned_samples`` say how many).
    ``on_sample(frame)`` is called with each sample's
    DataFrame (e.g. :class:`tcplab.viz.WatchFigure`'s ``update``). Ctrl-C (KeyboardInterrupt)
    ends the watch early and returns what was sampled.

    >>> import socket, tcplab
    >>> srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(4)
    >>> cli = socket.create_connection(srv.getsockname())
    >>> df = tcplab.watch(port=srv.getsockname()[1], duration=0.1, interval=0.05)
    >>> sorted(df.state.astype(str).unique())
    ['ESTABLISHED', 'LISTEN']
    >>> int(df[df.state == "LISTEN"].accept_queue.iloc[-1])
    1
    >>> cli.close(); srv.close()
    """
    plan = _Plan(port, duration, interval, state, local_port, remote_port, address, max_samples)
    max_rows = check_int("max_rows", max_rows, 1, _MAX_ROWS)
    if on_sample is not None and not callable(on_sample):
        raise TypeError(f"on_sample must be None or a callable taking a DataFrame, not {on_sample!r}")
    import pandas  # noqa: F401 - loaded before the clock starts: the first sample is not late for it

    start = time.time()
    cols = _Columns()
    truncated = interrupted = False
    samples = 0
    gen = _raw_samples(plan)
    try:
        for t, rows in gen:
            if len(cols) + len(rows) > max_rows:
                truncated = True
                break
            samples += 1
            cols.add(t, rows)
            if on_sample is not None:
                one = _Columns()
                one.conn_of, one.conns = cols.conn_of, cols.conns
                one.add(t, rows)
                frame = _frame(one, start)
                frame.attrs["t"] = t
                on_sample(frame)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        gen.close()
    df = _frame(cols, start, consume=True)
    # fewer samples than planned, neither cut nor interrupted: the host stalled the watch past its duration
    behind = samples < plan.samples and not (truncated or interrupted)
    df.attrs.update(samples=samples, planned_samples=plan.samples, interval=plan.interval, truncated=truncated,
                    interrupted=interrupted, fell_behind=behind)
    return df


def _cell(value: Any, fmt: str = "{}") -> str:
    import pandas as pd

    return "-" if pd.isna(value) else fmt.format(value)


def format_table(frame: pd.DataFrame, rows: int = 20, title: str = "") -> list[str]:
    """One sample as the compact text table ``tcplab watch`` prints (a list of lines).

    Listeners come first. Recv-Q/Send-Q are bytes, except on a LISTEN row where they are the accept queue's length and
    limit (as ss prints them); rtt is srtt/rttvar in ms; retr is total_retrans; ``-``: the kernel
    gives no tcp_info for this socket (TIME_WAIT, SYN_RECV request).

    >>> format_table(_frame(_Columns()), title="sample 1")[0]
    'sample 1  t=0.0s  0 sockets'
    """
    import pandas as pd

    rows = check_int("rows", rows, 1, 1_000_000)
    t = float(frame.attrs.get("t", frame["time"].iloc[0] if len(frame) else 0.0))
    head = f"{title}  t={t:.1f}s  {len(frame)} sockets".strip()
    out = [head, f"{'State':11} {'Recv-Q':>7} {'Send-Q':>7}  {'Local':21} {'Peer':21} {'cwnd':>5} {'ssthr':>5} "
                 f"{'rtt/var ms':>11} {'rto':>5} {'retr':>4} {'delivery':>9}"]
    shown = frame
    if len(frame):   # listeners first (the server's view), then by state and connection
        order = frame.assign(_later=frame["state"].astype(str) != "LISTEN")
        shown = order.sort_values(["_later", "state", "conn"], kind="stable").head(rows)
    for r in shown.itertuples(index=False):
        listen = r.state == "LISTEN"
        rq = r.accept_queue if listen else r.recv_q
        sq = r.accept_limit if listen else r.send_q
        local = f"{r.local_address}:{r.local_port}" if r.family == 4 else f"[{r.local_address}]:{r.local_port}"
        peer = "*" if listen else (f"{r.remote_address}:{r.remote_port}" if r.family == 4
                                   else f"[{r.remote_address}]:{r.remote_port}")
        rtt = "-" if pd.isna(r.srtt_ms) else f"{r.srtt_ms:.2f}/{r.rttvar_ms:.2f}"
        rate = "-" if pd.isna(r.delivery_rate_bps) else _rate(int(r.delivery_rate_bps))
        out.append(f"{str(r.state):11} {_cell(rq):>7} {_cell(sq):>7}  {local:21} {peer:21} {_cell(r.cwnd):>5} "
                   f"{_cell(r.ssthresh):>5} {rtt:>11} {_cell(r.rto_ms, '{:.0f}'):>5} {_cell(r.total_retrans):>4} "
                   f"{rate:>9}")
    if len(frame) > rows:
        out.append(f"... and {len(frame) - rows} more (--rows)")
    return out


def _rate(bps: int) -> str:
    """A rate as ss prints it.

    >>> _rate(12_345_678)
    '12.3Mbps'
    """
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if bps >= scale:
            return f"{bps / scale:.3g}{unit}bps"
    return f"{bps}bps"
