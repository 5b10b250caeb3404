"""Self-check results in the learner's home and the instructor's view (issue 16)."""

from __future__ import annotations

import json
import os
import stat

from tcplab.cli import main
from tcplab.experiments.result import Result
from tcplab.kernel.progress import PROGRESS_ENV, progress_path, read_room, record_self_check
from tcplab.widgets.common import SelfCheck


def _fake(mode, **p):
    return Result("accept_queue", "sim", "test", p, summary={"n": p["k"] + 1})


_fake.__name__ = "accept_queue"


def _home(tmp_path, monkeypatch, name):
    home = tmp_path / name
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def test_nothing_is_written_unless_the_hub_asks_for_it(tmp_path, monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    home = _home(tmp_path, monkeypatch, "ana")
    q = SelfCheck(_fake, "k={k}: n?", {"k": [3]}, "n", "n is k+1", rng=0)
    assert q.check(4) is True
    assert not progress_path(home).exists()
    assert record_self_check("x", {}, 1, 1, True, "sim") is None


def test_a_self_check_appends_one_private_line(tmp_path, monkeypatch):
    monkeypatch.setenv(PROGRESS_ENV, "1")
    home = _home(tmp_path, monkeypatch, "ana")
    q = SelfCheck(_fake, "k={k}: n?", {"k": [3]}, "n", "n is k+1", rng=0)
    q.check(5)
    q.check(4)
    path = progress_path(home)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [(e["check"], e["answer"], e["expected"], e["correct"], e["mode"]) for e in lines] == [
        ("accept_queue", 5, 4, False, "sim"), ("accept_queue", 4, 4, True, "sim")]
    assert lines[0]["params"] == {"k": 3}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_the_admin_sees_who_passed_which_check(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(PROGRESS_ENV, "1")
    _home(tmp_path, monkeypatch, "ana")
    record_self_check("accept_queue", {}, 4, 4, True, "real")
    record_self_check("syn_queue", {}, 3, 5, False, "real")
    bo = _home(tmp_path, monkeypatch, "bo")
    record_self_check("syn_queue", {"user": "ana"}, 5, 5, True, "real")
    with open(progress_path(bo), "a") as f:
        f.write("not json\n{\"user\": \"ana\", \"check\": \"syn_queue\", \"correct\": true}\n[1]\n")
    (tmp_path / "carl").mkdir()  # a learner with no results yet
    rows = read_room(tmp_path)
    assert {r["user"] for r in rows} == {"ana", "bo"}  # the directory decides who, not the file
    assert main(["workshop", "progress", "--homes", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["learner", "accept_queue", "syn_queue"]
    assert out[1].split() == ["ana", "passed", "(1)", "not", "yet", "(1)"]
    assert out[2].split() == ["bo", "-", "passed", "(2)"]


def test_bad_homes_directory_exits_2_with_one_line(tmp_path, capsys):
    assert main(["workshop", "progress", "--homes", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tcplab: error: homes must be a directory") and err.count("\n") == 1


def test_workshop_without_a_subcommand_exits_2():
    import pytest
    with pytest.raises(SystemExit) as e:
        main(["workshop"])
    assert e.value.code == 2
