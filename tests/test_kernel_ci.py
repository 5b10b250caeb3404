"""scripts/kernel-ci.py's checks against the facts measured in Debian's 6.1 and 6.12 guests
(docs/kernels/facts-linux-*.json): they pass with tcplab's profiles, and a kernel-dependent
regression in a profile fails them (so `make test-kernels-ci` would catch it in the guests)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest

from tcplab.model.profiles import PROFILES

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("kernel_ci", ROOT / "scripts" / "kernel-ci.py")
kci = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kci)


def facts(k: str) -> dict[str, str | None]:
    return json.loads((ROOT / "docs" / "kernels" / f"facts-linux-{k}.json").read_text())["sysctls"]


@pytest.mark.parametrize("k", ["6.1", "6.12", "6.18"])
def test_measured_facts_pass_with_the_kernels_profile(k: str) -> None:
    rows = kci.check_sysctls(PROFILES[f"linux-{k}"], facts(k), "4096")
    assert [r for r in rows if not r[1]] == []
    assert any(r[0] == "somaxconn in userns" for r in rows)


@pytest.mark.parametrize("change, check", [
    ({"absent": frozenset()}, "sysctl present: net.ipv4.tcp_syn_linear_timeouts"),   # 6.5's sysctl on 6.1
    ({"somaxconn_in_userns": True}, "somaxconn in userns"),                           # 6b754d7bd007 is 6.3
    ({"syn_retries": 5}, "sysctl default: net.ipv4.tcp_syn_retries"),
    ({"port_range": (32768, 61000)}, "sysctl default: net.ipv4.ip_local_port_range"),
])
def test_a_regression_in_the_61_profile_fails(change: dict, check: str) -> None:
    bad = dataclasses.replace(PROFILES["linux-6.1"], **change)
    failing = [r[0] for r in kci.check_sysctls(bad, facts("6.1"), "4096") if not r[1]]
    assert check in failing


def test_612_lacks_rto_max_ms_and_tw_reuse_delay() -> None:
    bad = dataclasses.replace(PROFILES["linux-6.12"], absent=frozenset())
    failing = {r[0] for r in kci.check_sysctls(bad, facts("6.12"), "4096") if not r[1]}
    assert {"sysctl present: net.ipv4.tcp_tw_reuse_delay", "sysctl present: net.ipv4.tcp_rto_max_ms"} <= failing


def test_ram_scaled_defaults_are_not_checked() -> None:
    assert "net.ipv4.tcp_max_syn_backlog" not in kci.expected_sysctls(PROFILES["linux-6.1"])
    assert "net.core.somaxconn" not in kci.expected_sysctls(PROFILES["linux-6.1"])
    assert kci.expected_sysctls(PROFILES["linux-6.12"])["net.ipv4.tcp_rto_min_us"] == "200000"


def test_config_hz(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    cfg.write_text("CONFIG_HZ_250=y\nCONFIG_HZ=250\n")
    assert kci.config_hz(str(cfg)) == 250
    cfg.write_text("# nothing\n")
    assert kci.config_hz(str(cfg)) is None
