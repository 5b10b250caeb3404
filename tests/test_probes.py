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


def test_bad_watch():
    with pytest.raises(ValueError, match="watch must be"):
        fin_timeout_probe(0)


@pytest.mark.real
def test_close_wait_ends_with_one_send():
    from tcplab.kernel.probes import close_wait_probe
    assert close_wait_probe() == {"before": "CLOSE_WAIT", "first_send": 1, "after": "CLOSE",
                                  "second_send_error": "EPIPE"}
