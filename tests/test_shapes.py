"""Every registered experiment returns exactly what its spec declares — summary keys, table
names and columns, timeline columns — real and simulated (docs/experiments.md is generated from
the same specs). A learner switching the real/sim toggle gets the same charts and tables."""

from __future__ import annotations

import inspect

import pytest

import tcplab.experiments as ex
from tcplab.errors import RealModeUnavailable
from tcplab.experiments.registry import SPECS, names, spec
from tcplab.kernel.namespace import namespace_support

names()
POINTS = [(n, p) for n, s in SPECS.items() for p in s.smoke_points()]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(POINTS)]


def shape(r):
    # a table the spec marks optional (e.g. read from a packet capture) may be missing; the notes say why
    lacks = {t.name: sorted(t.columns) for t in spec(r.name).tables if t.optional and t.name not in r.tables}
    return {"tables": {**{k: sorted(map(str, df.columns)) for k, df in r.tables.items()}, **lacks},
            "timeline": None if r.timeline is None else sorted(map(str, r.timeline.columns)),
            "summary": sorted(r.summary)}


def declared(name, params):
    s = spec(name)
    p = s.validate(params)
    return {"tables": {k: sorted(v) for k, v in s.tables_for(p).items()},
            "timeline": None if s.timeline is None else sorted(s.timeline),
            "summary": sorted(s.summary_keys)}


@pytest.fixture(scope="module")
def can_run_real():
    ok, why = namespace_support()
    if not ok:
        pytest.skip(f"no private network namespace here: {why}")


@pytest.mark.real
@pytest.mark.parametrize("name,params", POINTS, ids=IDS)
def test_real_run_has_the_declared_shape(name, params, can_run_real):
    try:
        real = getattr(ex, name)(**params, mode="real")
    except RealModeUnavailable as e:
        pytest.skip(str(e))
    assert shape(real) == declared(name, params)


@pytest.mark.parametrize("name,params", POINTS, ids=IDS)
def test_sim_run_has_the_declared_shape(name, params):
    assert shape(getattr(ex, name)(**params, mode="sim")) == declared(name, params)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_experiment_is_complete(name):
    """A real runner, a sim runner, grid points, a public function with the spec's parameters,
    and a section of the generated docs."""
    s = spec(name)
    assert callable(s.real) and callable(s.sim)
    assert s.grid, f"{name} has no agreement-grid points"
    assert any(g.quick for g in s.grid) or len(s.grid) == 1, f"{name}: no point in the quick grid"
    fn = getattr(ex, name)
    assert name in ex.__all__ and fn.spec is s
    sig = list(inspect.signature(fn).parameters)
    assert sig[:len(s.params)] == [p.name for p in s.params]
    assert sig[-3:] == ["mode", "seed", "profile"]
    doc = (pytest.importorskip("pathlib").Path(__file__).parents[1] / "docs" / "experiments.md").read_text()
    assert f"## {name}\n" in doc
    for k in s.summary:
        assert f"`{k.name}`" in doc


def test_state_names_agree():
    """Value conventions: a closed socket is "CLOSE" (TCP_CLOSE), missing values are None."""
    r = ex.accept_queue(backlog=0, clients=3, settle=0.2, mode="sim")
    assert set(r.tables["clients"]["state"]) <= {"ESTABLISHED", "SYN_SENT", "CLOSE"}
    assert r.tables["clients"]["server_side"].isna().sum() == 2
    s = ex.syn_retries(1, linear_timeouts=0, mode="sim")
    assert s.timeline["state"].iloc[-1] == "CLOSE"
