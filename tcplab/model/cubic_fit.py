"""CUBIC's curve measured: K, Wmax, C and the 717/1024 reduction fitted to a cwnd trace.

``bictcp_update()`` (net/ipv4/tcp_cubic.c) steers cwnd towards W(t) = C (t - K)^3 + Wmax, t counted
from the epoch's start (the first ACK in congestion avoidance after a reduction), C = 410/1024
(``bic_scale`` 41 x 10 over 2^10), K = cbrt((Wmax - cwnd) / C) and Wmax the cwnd at the last loss
(``cubictcp_recalc_ssthresh()``: 717/1024 of it is kept, and with fast convergence a loss below the
previous Wmax sets Wmax = cwnd x (1024 + 717) / 2048). The target is computed one ``delay_min``
ahead and cwnd reaches it about one RTT later, so cwnd itself follows W(t) from the epoch start.

This module takes a sampled trace (``t``, ``cwnd``, ``ssthresh``, ``ca_state`` of one flow, e.g. a
congestion Result's timeline) and, for every epoch that follows a loss:

- measures the reduction: ssthresh over the last cwnd sampled before the loss (losses in
  congestion avoidance only: in slow start cwnd grows too fast between samples);
- states the kernel's prediction: Wmax by the rule above, K = cbrt((Wmax - ssthresh) / C);
- fits W(t) = C (t - K)^3 + Wmax to the epoch's samples by least squares, once with C, K and Wmax
  free (C is only determined where the curve passes its plateau) and once with C at the kernel's
  value, and says where the fitted curve is concave (t < K, below Wmax) and convex (t > K).

The kernel lines are those of torvalds/linux net/ipv4/tcp_cubic.c at commit 617e407 (a 6.x tree):
HyStart's thresholds there date from 5.7 (microsecond clock, the pacing-aware ACK train) and 5.19
(``sk_gso_max_size``), so 6.1, 6.12 and 6.18 share them; beta = 717 is already in 3.0's file.

Pure: no I/O, no clock; the trace is a parameter.

>>> rows = synthetic_epoch(wmax=120, ssthresh=84, t0=1.0, duration=10.0, step=0.05)
>>> e = cubic_epochs(rows)[0]
>>> round(e.fit.c, 2), round(e.fit.k, 1), round(e.fit.wmax), round(e.k_kernel, 1)
(0.4, 4.5, 120, 4.5)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tcplab.model.profiles import DEFAULT_PROFILE, PROFILES

__all__ = ["CubicFit", "CubicEpoch", "fit_cubic", "cubic_epochs", "kernel_k", "kernel_wmax",
           "hystart_delay_threshold", "hystart_train_threshold", "synthetic_epoch", "C", "BETA"]

_P = PROFILES[DEFAULT_PROFILE]
#: C in packets / s^3: cube_rtt_scale = bic_scale x 10, over 2^10 (tcp_cubic.c, ``cubictcp_register()``)
C = _P.cubic_bic_scale * 10 / 1024
#: the multiplicative decrease, ``beta`` over BICTCP_BETA_SCALE (717/1024; 3.0's tcp_cubic.c already has it)
BETA = _P.cubic_beta / 1024
_REDUCING = ("Recovery", "Loss", "CWR")


@dataclass(frozen=True)
class CubicFit:
    """W(t) = c (t - k)^3 + wmax fitted to ``n`` samples, t from the epoch start (s, packets)."""

    c: float
    k: float
    wmax: float
    rms: float
    n: int

    def at(self, t: float) -> float:
        """The fitted window ``t`` seconds into the epoch.

        >>> CubicFit(0.4, 2.0, 100.0, 0.0, 10).at(3.0)
        100.4
        """
        return self.c * (t - self.k) ** 3 + self.wmax


@dataclass(frozen=True)
class CubicEpoch:
    """One congestion-avoidance epoch after a loss: the kernel's prediction and the fit.

    ``t_start``: the first sample back in the Open state with cwnd at ssthresh; ``t_end``: the
    last sample before the next reduction (or the trace's end, ``ended_by_loss`` False).
    ``loss_cwnd``: the last cwnd sampled before the loss that opened the epoch (None when that
    loss came in slow start); ``beta_measured``: ssthresh / loss_cwnd.
    ``fit``: C, K and Wmax all free; ``fit_c``: C fixed at the kernel's, K and Wmax fitted (the
    one to compare where the epoch never reaches its plateau). ``concave_samples``/``convex_samples``:
    samples before and after the freely fitted K; C is measured only where both are many.
    """

    t_start: float
    t_end: float
    ssthresh: int
    loss_cwnd: int | None
    beta_measured: float | None
    wmax_kernel: float
    k_kernel: float
    fit: CubicFit
    fit_c: CubicFit
    concave_samples: int
    convex_samples: int
    ended_by_loss: bool


def kernel_k(wmax: float, cwnd: float, c: float = C) -> float:
    """``bictcp_update()``'s K in seconds: the time from the epoch start to Wmax (0 above it).

    >>> round(kernel_k(120, 84), 2), kernel_k(80, 84)
    (4.48, 0.0)
    """
    return (max(wmax - cwnd, 0.0) / c) ** (1 / 3)


def kernel_wmax(loss_cwnd: float, previous_wmax: float | None) -> float:
    """``cubictcp_recalc_ssthresh()``'s Wmax: the cwnd at the loss, or with fast convergence
    cwnd x (1024 + 717) / 2048 when the loss came below the previous Wmax.

    >>> kernel_wmax(200, None), round(kernel_wmax(198, 205), 1)
    (200, 168.3)
    """
    if previous_wmax is not None and loss_cwnd < previous_wmax:
        return loss_cwnd * (1024 + _P.cubic_beta) / 2048
    return loss_cwnd


def hystart_delay_threshold(delay_min_s: float) -> float:
    """HyStart's delay test (``hystart_update()``): slow start ends when the minimum RTT of a
    round's samples (at least ``HYSTART_MIN_SAMPLES`` = 8 of them, from cwnd 16 on) exceeds
    delay_min by clamp(delay_min / 8, 4 ms, 16 ms). Returns that excess in seconds.

    >>> hystart_delay_threshold(0.020), hystart_delay_threshold(0.200), hystart_delay_threshold(0.040)
    (0.004, 0.016, 0.005)
    """
    return min(max(delay_min_s / 8, 0.004), 0.016)


def hystart_train_threshold(delay_min_s: float, pacing_rate_bytes: float, gso_max_size: int = 65536,
                            paced: bool = False) -> float:
    """HyStart's ACK-train test (``hystart_update()``): a train of ACKs at most 2 ms apart that
    lasts past threshold = delay_min + ``hystart_ack_delay()`` ends slow start, where
    hystart_ack_delay() = min(1 ms, 4 x sk_gso_max_size / sk_pacing_rate); unless the socket is
    paced (``sk_pacing_status`` not SK_PACING_NONE: fq, or BBR's internal pacing) the threshold
    is halved. Seconds.

    A CUBIC socket through a 10-50 Mbit/s path is not paced here, and its pacing rate is far
    below the 2 Gbit/s at which 4 x 64 KiB take less than 1 ms: the threshold is
    (delay_min + 1 ms) / 2.

    >>> hystart_train_threshold(0.040, 2.5e6), hystart_train_threshold(0.040, 2.5e6, paced=True)
    (0.0205, 0.041)
    >>> round(hystart_train_threshold(0.001, 1e9), 6)
    0.000631
    """
    ack_delay = min(0.001, 4 * gso_max_size / pacing_rate_bytes) if pacing_rate_bytes > 0 else 0.0
    threshold = delay_min_s + ack_delay
    return threshold if paced else threshold / 2


def fit_cubic(ts: Sequence[float], ws: Sequence[float], k_step: float = 0.005, c: float | None = None) -> CubicFit:
    """Least squares W(t) = c (t - k)^3 + wmax over samples ``ts`` (s from the epoch start) and
    ``ws`` (packets): for a given k, c and wmax come from a linear regression on (t - k)^3; k is
    searched from 0 to 30 s past the last t, first every 20 ``k_step`` and then every ``k_step`` around
    the best coarse value (the residual is smooth in k). With ``c`` given, only k and wmax are fitted:
    on an arc that never reaches its plateau, c and k trade off against each other, and fixing c
    at the kernel's value leaves a well-posed fit of k and wmax.

    >>> ts = [i / 10 for i in range(60)]
    >>> f = fit_cubic(ts, [0.4 * (t - 3) ** 3 + 100 for t in ts])
    >>> round(f.c, 3), round(f.k, 2), round(f.wmax, 1), f.rms < 1e-6
    (0.4, 3.0, 100.0, True)
    >>> g = fit_cubic(ts[:20], [0.4 * (t - 3) ** 3 + 100 for t in ts[:20]], c=0.4)
    >>> round(g.k, 2), round(g.wmax, 1), g.c
    (3.0, 100.0, 0.4)
    >>> fit_cubic([0, 1], [1, 2])
    Traceback (most recent call last):
    ...
    ValueError: ts must hold at least 5 samples (and as many as ws), not 2
    """
    if len(ts) < 5 or len(ts) != len(ws):
        raise ValueError(f"ts must hold at least 5 samples (and as many as ws), not {len(ts)}")
    if not k_step > 0:
        raise ValueError(f"k_step must be above 0 s, not {k_step!r}")
    if max(ts) == min(ts):
        raise ValueError("ts must not all be the same time")
    if min(ts) < 0:
        raise ValueError(f"ts must be seconds from the epoch start (0 or more), not {min(ts)!r}")
    n = len(ts)
    mean_w = sum(ws) / n

    def at(k: float) -> tuple[float, float, float] | None:
        xs = [(t - k) ** 3 for t in ts]
        mx = sum(xs) / n
        if c is None:
            sxx = sum((x - mx) ** 2 for x in xs)
            if sxx == 0:
                return None
            cc = sum((x - mx) * (w - mean_w) for x, w in zip(xs, ws)) / sxx
        else:
            cc = c
        wmax = mean_w - cc * mx
        return sum((cc * x + wmax - w) ** 2 for x, w in zip(xs, ws)), cc, wmax

    def scan(ks: Iterable[float]) -> tuple[float, float, float, float] | None:
        best = None
        for k in ks:
            r = at(k)
            if r is not None and (best is None or r[0] < best[0]):
                best = (r[0], k, r[1], r[2])
        return best

    top = max(ts) + 30.0              # K up to 30 s past the last sample: an arc may end long before its plateau
    coarse = 20 * k_step
    first = scan(i * coarse for i in range(int(top / coarse) + 2))
    assert first is not None      # distinct times: (t - k)^3 varies for every k
    lo = max(0.0, first[1] - coarse)
    best = scan(lo + i * k_step for i in range(int(2 * coarse / k_step) + 1)) or first
    sse, k, c_fit, wmax = min(best, first)
    return CubicFit(c_fit, k, wmax, math.sqrt(sse / n), n)


def cubic_epochs(rows: Iterable[Mapping[str, Any]], min_samples: int = 20) -> list[CubicEpoch]:
    """The congestion-avoidance epochs after a loss in a sampled trace of one flow (dicts with
    ``t``, ``cwnd``, ``ssthresh`` (None while infinite), ``ca_state``), each with the kernel's
    prediction and the fit (see the module docstring). Skipped: epochs with fewer than
    ``min_samples`` samples, those after an RTO (the ``Loss`` state resets CUBIC: no Wmax) and
    reductions the kernel undid (cwnd back above ssthresh).

    >>> rows = synthetic_epoch(wmax=205, ssthresh=144, t0=0.0, duration=3.0, step=0.025)
    >>> e = cubic_epochs(rows)[0]
    >>> e.loss_cwnd, round(e.beta_measured, 3), e.ended_by_loss, e.convex_samples
    (205, 0.702, False, 0)
    """
    if min_samples < 5:
        raise ValueError(f"min_samples must be at least 5 (a cubic has three parameters), not {min_samples!r}")
    rs = [r for r in rows if r.get("cwnd") is not None]
    epochs: list[CubicEpoch] = []
    prev_wmax: float | None = None
    i = 0
    while i < len(rs):
        r = rs[i]
        if r.get("ca_state") not in _REDUCING:
            i += 1
            continue
        # a reduction starts at i: the loss cwnd is the last one sampled before it, if that was
        # congestion avoidance (ssthresh already finite and below cwnd)
        before = rs[i - 1] if i else None
        j = i
        while j < len(rs) and rs[j].get("ca_state") in _REDUCING:
            j += 1
        if j >= len(rs):
            break
        ssthresh = rs[j].get("ssthresh")
        if ssthresh is None:
            i = j
            continue
        in_ca = before is not None and before.get("ssthresh") is not None and before["cwnd"] >= before["ssthresh"]
        loss_cwnd = int(before["cwnd"]) if in_ca and before is not None else None
        # slow start's loss: only ssthresh tells the cwnd (ssthresh = cwnd x 717 / 1024)
        w_loss = loss_cwnd if loss_cwnd is not None else (ssthresh + 0.5) * 1024 / _P.cubic_beta
        wmax = kernel_wmax(w_loss, prev_wmax)
        k = j
        while k < len(rs) and rs[k].get("ca_state") not in _REDUCING:
            k += 1
        seg = rs[j:k]
        t0 = float(seg[0]["t"])
        if any(x.get("ca_state") == "Loss" for x in rs[i:j]):
            # an RTO: cubictcp_state(TCP_CA_Loss) calls bictcp_reset(), last_max_cwnd = 0, and cwnd
            # restarts from 1 in slow start: no Wmax to return to, no epoch to fit
            prev_wmax = None
            i = k
            continue
        if seg[0]["cwnd"] > ssthresh + 1:
            # tcp_undo_cwnd(): the reduction was spurious and cwnd came back; Wmax stays set
            prev_wmax = wmax
            i = k
            continue
        if len(seg) >= min_samples:
            ts = [float(x["t"]) - t0 for x in seg]
            ws = [float(x["cwnd"]) for x in seg]
            fit = fit_cubic(ts, ws)
            epochs.append(CubicEpoch(
                t_start=t0, t_end=float(seg[-1]["t"]), ssthresh=int(ssthresh), loss_cwnd=loss_cwnd,
                beta_measured=ssthresh / loss_cwnd if loss_cwnd else None, wmax_kernel=wmax,
                k_kernel=kernel_k(wmax, ssthresh), fit=fit, fit_c=fit_cubic(ts, ws, c=C),
                concave_samples=sum(1 for t in ts if t < fit.k), convex_samples=sum(1 for t in ts if t > fit.k),
                ended_by_loss=k < len(rs)))
        prev_wmax = wmax
        i = k
    return epochs


def synthetic_epoch(wmax: float, ssthresh: int, t0: float, duration: float, step: float) -> list[dict[str, Any]]:
    """A trace for examples and tests: one Open sample at ``wmax`` just before a loss, one
    Recovery sample, then cwnd = floor(C (t - K)^3 + wmax) from ``ssthresh`` for ``duration`` s.

    >>> [r["cwnd"] for r in synthetic_epoch(100, 70, 0.0, 0.1, 0.05)]
    [100, 85, 70, 71, 72]
    """
    k = kernel_k(wmax, ssthresh)
    rows: list[dict[str, Any]] = [
        {"t": round(t0 - 2 * step, 6), "cwnd": int(wmax), "ssthresh": ssthresh - 10, "ca_state": "Open"},
        {"t": round(t0 - step, 6), "cwnd": (int(wmax) + ssthresh) // 2, "ssthresh": ssthresh, "ca_state": "Recovery"}]
    n = int(round(duration / step))
    for i in range(n + 1):
        t = i * step
        rows.append({"t": round(t0 + t, 6), "cwnd": max(ssthresh, math.floor(C * (t - k) ** 3 + wmax)),
                     "ssthresh": ssthresh, "ca_state": "Open"})
    return rows
