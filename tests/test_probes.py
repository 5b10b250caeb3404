"""Probes the course shows as runs: tcp_fin_timeout ends an orphaned FIN_WAIT2, not TIME_WAIT."""

from __future__ import annotations

import pytest

import tcplab
from tcplab.errors import NamespaceUnavailable
from tcplab.kernel.probes import fin_timeout_probe


@pytest.mark.real
def test_fin_timeout_ends_orphan_fin_wait2_not_time_wait():
    try:
        r = tcplab.in_namespace(fin_timeout_probe, 2.5, sysctls={"net.ipv4.tcp_fin_timeout": 1}, timeout=30)
    except NamespaceUnavailable as e:
        pytest.skip(str(e))
    assert r["tcp_fin_timeout"] == 1
    assert r["samples"][0]["time_wait"] == "TIME_WAIT" and r["samples"][0]["fin_wait2"] == "FIN_WAIT2"
    assert r["fin_wait2_gone_at"] is not None and 0.5 <= r["fin_wait2_gone_at"] <= 2.0
    assert r["time_wait_gone_at"] is None and r["samples"][-1]["time_wait"] == "TIME_WAIT"


def _probe_behind_delay(delay_ms: float, watch: float):
    from tcplab.errors import KernelUnavailable
    from tcplab.kernel.qdisc import add_delay
    try:
        add_delay(delay_ms)
    except KernelUnavailable as e:
        return "none: " + e.reason
    return fin_timeout_probe(watch)


@pytest.mark.real
def test_fin_timeout_probe_waits_for_fin_wait2_on_a_slow_path():
    """The ACK of the client's FIN 40 ms late (as when a busy host defers softirq work): the probe
    must still sample FIN_WAIT2, not FIN_WAIT1 (issue 20, item 5: it read the state before the ACK)."""
    try:
        r = tcplab.in_namespace(_probe_behind_delay, 20, 1.5, sysctls={"net.ipv4.tcp_fin_timeout": 1}, timeout=30)
    except NamespaceUnavailable as e:
        pytest.skip(str(e))
    if isinstance(r, str):
        pytest.skip(f"no qdisc to slow lo down: {r}")
    assert r["samples"][0]["time_wait"] == "TIME_WAIT" and r["samples"][0]["fin_wait2"] == "FIN_WAIT2"
    # the ACK came 40 ms after the close, so the first sample (times from the close) is later
    assert r["samples"][0]["t"] >= 0.04


def test_bad_watch():
    with pytest.raises(ValueError, match="watch must be"):
        fin_timeout_probe(0)


@pytest.mark.real
def test_close_wait_ends_with_one_send():
    from tcplab.kernel.probes import close_wait_probe
    assert close_wait_probe() == {"before": "CLOSE_WAIT", "first_send": 1, "after": "CLOSE",
                                  "second_send_error": "EPIPE"}
