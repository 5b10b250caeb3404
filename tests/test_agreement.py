"""The quick agreement grid: real kernel vs simulator (issue 4 §3; rules in
tcplab/experiments/agreement.py). Runs the real experiments, so it needs a private network
namespace (root or unprivileged user namespaces); points that cannot run real here are skipped.
The full grid is `python -m tcplab.experiments.agreement` (it writes docs/agreement.md)."""

from __future__ import annotations

import pytest

from tcplab.experiments.agreement import GRID, RULES, agreement_grid, compare


def test_rules_cover_every_summary_key():
    from tcplab.experiments import simulate
    for name in RULES:
        assert set(simulate(name, {}).summary) == set(RULES[name]), name


def test_compare_rules():
    assert compare("syn_retries", {}, "failed_after", 3.07, 3.0) == ("rel10", "agree")
    assert compare("syn_retries", {}, "failed_after", 3.5, 3.0)[1] == "DIFFER"
    assert compare("syn_retries", {}, "retransmit_times", [1.02], [1.0, 2.0])[1] == "DIFFER"
    assert compare("syn_queue", {"flood": False}, "legit_client_connected", False, None)[1] == "not compared"
    st = ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"]
    # states derived from packets: exact, at any slow motion (a missing FIN_WAIT1 is a difference)
    for sm in (0, 20):
        assert compare("lifecycle", {"slow_motion": sm}, "client_states", st, st) == ("states", "agree")
        assert compare("lifecycle", {"slow_motion": sm}, "client_states", [st[1], st[3], st[4]], st)[1] == "DIFFER"
    # sampled from /proc (no capture): a subsequence with the same ends, and the verdict says so
    sampled = compare("lifecycle", {"slow_motion": 0}, "client_states", [st[1], st[3], st[4]], st, sampled=True)
    assert sampled == ("states (sampled: subsequence)", "agree")
    assert compare("lifecycle", {}, "client_states", [st[1], st[2]], st, sampled=True)[1] == "DIFFER"
    assert compare("lifecycle", {}, "client_states", [st[3], st[2], st[4]], st, sampled=True)[1] == "DIFFER"


def test_quick_grid_is_a_subset():
    assert any(q for *_, q in GRID) and not all(q for *_, q in GRID)


@pytest.fixture(scope="module")
def quick_rows():
    rows = agreement_grid(quick=True)
    if all(r["verdict"].startswith("real unavailable") for r in rows):
        pytest.skip(rows[0]["verdict"])
    # A real run on a shared 2-core host can be knocked off its timers by load (a descheduled
    # process, a late timer wheel). A point that differs is run once more, real and simulated;
    # only a difference that repeats fails the test (both runs are printed).
    shown = {(n, ", ".join(f"{k}={v}" for k, v in p.items())): (n, p) for n, p, q in GRID if q}
    keys = dict.fromkeys((r["experiment"], r["params"]) for r in rows if r["verdict"] == "DIFFER")
    again = [shown[k] for k in keys]
    if again:
        print("differed once, run again:\n" + _bad(rows))
        redo = agreement_grid(points=again)
        names = {(n, ", ".join(f"{k}={v}" for k, v in p.items())) for n, p in again}
        rows = [r for r in rows if (r["experiment"], r["params"]) not in names] + redo
    return rows


def _bad(rows):
    bad = [r for r in rows if r["verdict"] not in ("agree", "not compared")
           and not r["verdict"].startswith("real unavailable")]
    return "\n".join(f"{r['experiment']}({r['params']}) {r['key']}: real {r['real']!r} "
                     f"sim {r['sim']!r} [{r['rule']}]" for r in bad)


@pytest.mark.real
def test_quick_grid_agrees(quick_rows):
    assert not _bad([r for r in quick_rows if r["experiment"] != "lifecycle"])


@pytest.mark.real
def test_quick_grid_lifecycle_agrees(quick_rows):
    assert not _bad([r for r in quick_rows if r["experiment"] == "lifecycle"])
