"""The "articles vs Linux (this kernel)" boxes: every line is checked now, on this machine."""

from __future__ import annotations

import pytest

from tcplab.articles import CLAIMS, articles_vs_kernel
from tcplab.kernel.sysctl import read_sysctl


@pytest.mark.real
def test_live_lines_read_the_live_sysctl():
    box = articles_vs_kernel("09").set_index("claim")
    assert box.loc["net.core.netdev_max_backlog", "this kernel"].startswith(str(read_sysctl("net.core.netdev_max_backlog")))
    assert list(box.columns) == ["articles say", "this kernel", "checked by"]


@pytest.mark.real
def test_run_lines_say_what_ran():
    box = articles_vs_kernel("03").set_index("claim")
    line = box.loc["listen(N)"]
    assert line["this kernel"] == "listen(5) holds 6" and line["checked by"].endswith(("REAL", "SIMULATED"))


def test_every_notebook_has_a_box():
    assert all(CLAIMS[nb] for nb in CLAIMS)


@pytest.mark.parametrize("name", ["linux-6.18", "linux-6.12", "linux-6.1", "linux-5.15"])
def test_the_syn_queue_label_follows_the_running_kernels_profile(monkeypatch, name):
    # the label and the limit come from the profile of the kernel found, never a fixed "backlog + 1";
    # a run that disagrees with the profile says so
    from types import SimpleNamespace

    import tcplab.kernel.release as release
    from tcplab.articles import _syn_backlog, syn_queue_rule
    from tcplab.model.profiles import PROFILES

    prof = PROFILES[name]
    monkeypatch.setattr(release, "running_profile", lambda: SimpleNamespace(profile=prof))
    limit, rule = syn_queue_rule(prof.synq_full_strict, 8, name)
    assert limit == (9 if prof.synq_full_strict else 8) and name in rule
    for got in (8, 9):
        run = SimpleNamespace(summary={"syn_recv": got}, mode="sim")
        now, _ = _syn_backlog({"sq": run})
        assert now.startswith(f"listen(8), tcp_max_syn_backlog=256: {got} SYN_RECV")
        assert rule in now and (("expects" in now) == (got != limit)), now
