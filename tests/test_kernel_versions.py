"""An experiment runs on the kernel it finds: a sysctl this kernel lacks is never read or
written, its absence is recorded and explained, and asking to change it falls back to a
kernel that has it (simulated), saying why.

Kernels older than this machine's are booted for real by ``make test-kernels``; here the
absence is made by hiding one sysctl from the experiment (its existence check), so the
plumbing is tested on every host. The profiles' version rules are tested in test_model_listen.py.
"""

from __future__ import annotations

import pandas  # noqa: F401 - imported before forking
import pytest

from tcplab.errors import RealModeUnavailable
from tcplab.experiments import _mode, syn_retries, time_wait
import importlib
syn_module = importlib.import_module("tcplab.experiments.syn_retries")
from tcplab.kernel.release import running_profile

LINEAR = "net.ipv4.tcp_syn_linear_timeouts"
DELAY = "net.ipv4.tcp_tw_reuse_delay"


def _hide(monkeypatch, *names):
    """Make the experiment layer see a kernel without ``names`` (as 6.1 is without both)."""
    real_exists = _mode.sysctl_exists

    def exists(name, root="/proc"):
        return name not in names and real_exists(name, root)
    monkeypatch.setattr(_mode, "sysctl_exists", exists)
    monkeypatch.setattr(syn_module, "sysctl_exists", exists)


def test_asking_for_a_sysctl_this_kernel_lacks_refuses_real_and_names_the_version(monkeypatch):
    _hide(monkeypatch, LINEAR)
    with pytest.raises(RealModeUnavailable, match=r"tcp_syn_linear_timeouts \(added in Linux 6\.5, commit ccce324dabfe\)"):
        syn_retries(retries=1, linear_timeouts=4, mode="real")


def test_auto_simulates_a_kernel_that_has_it_and_says_why(monkeypatch):
    _hide(monkeypatch, LINEAR)
    r = syn_retries(retries=1, linear_timeouts=4)
    assert r.mode == "sim" and r.profile == "linux-6.18"
    assert "has no net.ipv4.tcp_syn_linear_timeouts" in r.reason and "6.5" in r.reason
    assert r.summary["syns_sent"] == 3          # what a 6.5+ kernel does with TCP_SYNCNT=1


@pytest.mark.real
def test_a_recorded_sysctl_that_is_absent_is_listed_not_invented(monkeypatch):
    _hide(monkeypatch, LINEAR, DELAY)
    r = time_wait(connections=4, port_range=(40000, 40009), tw_reuse=0, duration=0.3, mode="real")
    assert r.mode == "real"
    assert DELAY in r.absent_sysctls and DELAY not in r.sysctls
    assert any(n.startswith(f"this kernel has no {DELAY} (added in Linux 6.14") for n in r.notes), r.notes
    assert r.sysctls["net.ipv4.tcp_tw_reuse"] == 0   # what exists is still recorded


def test_the_simulator_follows_the_running_kernel():
    r = syn_retries(retries=1, mode="sim")
    assert r.profile == running_profile().profile.name
    named = syn_retries(retries=1, mode="sim", profile="linux-6.1")
    # 6.1 doubles the SYN RTO from the first retry: SYNs at 0 and 1 s, failure at 3 s
    assert named.profile == "linux-6.1" and named.summary["syns_sent"] == 2


def test_a_bad_profile_fails_before_anything_runs():
    with pytest.raises(ValueError, match="profile must be one of"):
        syn_retries(retries=1, mode="real", profile="linux-9.x")
