"""CUBIC's curve measured (tcplab.model.cubic_fit): the fit recovers K, Wmax and C from a trace;
the epochs follow cubictcp_recalc_ssthresh() (717/1024, fast convergence); the simulator's
trace and a real one through the bottleneck both follow bictcp_update()."""

from __future__ import annotations

import random

import pytest

from tcplab.errors import RealModeUnavailable
from tcplab.experiments import congestion
from tcplab.model.cubic_fit import (BETA, C, cubic_epochs, fit_cubic, hystart_delay_threshold,
                                    hystart_train_threshold, kernel_k, kernel_wmax, synthetic_epoch)
from tcplab.viz.cubic import cubic_epoch_table, cubic_figure, flow_rows

#: the path notebook 15 measures CUBIC on: 200 ms make Reno's friendly estimate slow (one packet
#: per 1.9 windows of ACKs) so the cubic itself shows; 20 s hold three epochs
PATH = dict(rate_mbit=10, rtt_ms=200, buffer_packets=30, algorithm="cubic", duration=20)


def test_an_arc_that_ends_long_before_its_plateau():
    # a real trace's concave-only epoch (loss 2.4 s into a 5.3 s K): K lies beyond twice the last
    # sample, and must still be found (the search once stopped there and fitted C = 0.51, K = 4.9)
    ts = [i * 0.025 for i in range(96)]
    k = kernel_k(205, 144)
    ws = [float(int(0.4 * (t - k) ** 3 + 205)) for t in ts]
    free, fixed = fit_cubic(ts, ws), fit_cubic(ts, ws, c=C)
    assert abs(free.k - k) < 0.3 and abs(free.wmax - 205) < 3 and 0.35 < free.c < 0.45, free
    assert abs(fixed.k - k) < 0.1 and abs(fixed.wmax - 205) < 1.5, fixed


def test_the_fit_recovers_a_noisy_cubic():
    rng = random.Random(7)
    ts = [i * 0.025 for i in range(400)]
    ws = [0.4 * (t - 4.5) ** 3 + 150 + rng.uniform(-1, 1) for t in ts]
    f = fit_cubic(ts, ws)
    assert abs(f.c - 0.4) < 0.01 and abs(f.k - 4.5) < 0.05 and abs(f.wmax - 150) < 0.5
    assert f.rms < 0.7


def test_fast_convergence_and_the_reduction_across_epochs():
    # a loss at 205 (ssthresh 144), then a loss at 198 < 205: Wmax = 198 x 1741 / 2048
    first = synthetic_epoch(205, 143, 0.0, 3.0, 0.025)
    t1 = first[-1]["t"] + 0.025
    second = synthetic_epoch(198, int(198 * BETA), t1 + 0.05, 3.0, 0.025)
    second[0]["cwnd"] = 198
    e1, e2 = cubic_epochs(first + second)
    assert e1.wmax_kernel == 205 and e1.ended_by_loss
    assert e2.loss_cwnd == 198 and abs(e2.wmax_kernel - 168.3) < 0.1
    assert abs(e2.beta_measured - 0.7) < 0.01
    assert abs(e2.k_kernel - kernel_k(e2.wmax_kernel, e2.ssthresh)) < 1e-9


def test_an_rto_resets_cubic_and_an_undo_is_not_an_epoch():
    first = synthetic_epoch(205, 143, 0.0, 3.0, 0.025)
    t1 = first[-1]["t"]
    # an RTO: Loss, cwnd 1, slow start back to ssthresh 140 (bictcp_reset(): no Wmax)
    rto = [{"t": t1 + 0.025, "cwnd": 1, "ssthresh": 140, "ca_state": "Loss"}]
    rto += [{"t": t1 + 0.05 + i * 0.025, "cwnd": min(2 ** i, 200), "ssthresh": 140, "ca_state": "Open"} for i in range(30)]
    # then a loss at 200 after the RTO: Wmax is 200, no fast convergence (last_max_cwnd was reset)
    t2 = rto[-1]["t"]
    after = synthetic_epoch(200, 140, t2 + 0.05, 3.0, 0.025)
    epochs = cubic_epochs(first + rto + after)
    assert [round(e.wmax_kernel) for e in epochs] == [205, 200], epochs
    # an undone reduction: cwnd back above ssthresh at once (tcp_undo_cwnd()) is skipped
    undo = [dict(r) for r in synthetic_epoch(190, 133, t2 + 0.05, 3.0, 0.025)]
    for r in undo[2:]:
        r["cwnd"] = 190
    assert [round(e.wmax_kernel) for e in cubic_epochs(first + undo)] == [205]


def test_kernel_rules():
    assert kernel_wmax(100, None) == 100 and kernel_wmax(100, 90) == 100
    assert kernel_k(84, 84) == 0.0 and abs(C - 0.4) < 0.001 and abs(BETA - 0.7) < 0.001
    # the clamp: 4 ms below a 32 ms delay_min, 16 ms above 128 ms
    assert [hystart_delay_threshold(d) for d in (0.001, 0.032, 0.064, 0.128, 1.0)] == [0.004, 0.004, 0.008, 0.016, 0.016]
    # unpaced: (delay_min + min(1 ms, 4 x gso / rate)) / 2
    assert hystart_train_threshold(0.2, 1e6) == pytest.approx(0.1005)
    assert hystart_train_threshold(0.2, 0.0) == pytest.approx(0.1)


@pytest.mark.parametrize("kw,msg", [(dict(ts=[0, 1, 2], ws=[1, 2, 3]), "ts must hold at least 5"),
                                    (dict(ts=[0, 1, 2, 3, 4, 5], ws=[1, 2]), "ts must hold")])
def test_bad_input(kw, msg):
    with pytest.raises(ValueError, match=msg):
        fit_cubic(**kw)
    with pytest.raises(ValueError, match="min_samples must be at least 5"):
        cubic_epochs([], min_samples=2)
    with pytest.raises(ValueError, match="k_step must be above 0"):
        fit_cubic([0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6], k_step=0)
    with pytest.raises(ValueError, match="ts must not all be the same time"):
        fit_cubic([1.0] * 6, [1, 2, 3, 4, 5, 6])
    with pytest.raises(ValueError, match="ts must be seconds from the epoch start"):
        fit_cubic([-1, 0, 1, 2, 3], [1, 2, 3, 4, 5])


def _check_epochs(epochs, what):
    assert len(epochs) >= 2, (what, epochs)
    for e in epochs:
        both = e.concave_samples >= 20 and e.convex_samples >= 20
        f = e.fit if both else e.fit_c          # C is pinned down only past the plateau
        assert abs(f.wmax - e.wmax_kernel) <= max(3, 0.03 * e.wmax_kernel), (what, e)
        assert abs(f.k - e.k_kernel) <= 0.5, (what, e)
        if both:
            assert 0.3 <= e.fit.c <= 0.5, (what, e)
        if e.beta_measured is not None:
            assert abs(e.beta_measured - BETA) <= 0.02, (what, e)
    # concave below Wmax and convex above it, both seen in one epoch
    assert any(e.concave_samples >= 20 and e.convex_samples >= 20 for e in epochs), (what, epochs)


def test_the_simulator_follows_bictcp_update():
    r = congestion(mode="sim", **PATH)
    _check_epochs(cubic_epochs(flow_rows(r)), "sim")
    t = cubic_epoch_table(r)
    assert list(t.columns[:3]) == ["epoch", "starts_s", "ssthresh"] and len(t) >= 2
    assert any((n or "").startswith("fit: epoch") for n in (tr.name for tr in cubic_figure(r).data))


@pytest.mark.real
@pytest.mark.slow
def test_the_kernel_follows_bictcp_update():
    try:
        r = congestion(mode="real", **PATH)
    except RealModeUnavailable as e:
        pytest.skip(str(e))
    if not r.trusted:
        pytest.skip(f"the host disturbed the run: {r.provenance}")
    _check_epochs(cubic_epochs(flow_rows(r)), "real")
