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
