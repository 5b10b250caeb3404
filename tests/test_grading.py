"""Predictions graded by runs (tcplab.grading, tcplab.widgets.predict, `tcplab grades`): the spec's own
rules as tolerance, untrusted runs refused, parameters per learner, the answers file, the exports."""

from __future__ import annotations

import io
import json
import re
import threading

import pytest

from tcplab.cli import main
from tcplab.experiments.result import Result
from tcplab.grading import store
from tcplab.grading.export import (GRADEBOOK_COLUMNS, gradebook_rows, read_csv, read_gradebook, scores, write_csv,
                                   write_gradebook)
from tcplab.grading.grade import grade
from tcplab.grading.question import Question
from tcplab.grading.questions import QUESTIONS, for_notebook, question
from tcplab.model.outcome import Fidelity
from tcplab.widgets.predict import Attempts, Prediction


def run_of(q: Question, summary: dict, *, mode: str = "sim", fidelity: Fidelity | None = None, params=None) -> Result:
    return Result(q.experiment, mode, "test", dict(params or {}), kernel="6.18" if mode == "real" else None,
                  profile=None if mode == "real" else "linux-6.18", summary=summary, fidelity=fidelity)


# -- grading: the experiment's own rule --------------------------------------------------------------

def test_exact_rule_grades_a_count():
    q = question("03.somaxconn")
    r = run_of(q, {"established_clients": 4})
    assert q.rule.name == "exact"
    assert grade(q, 4, r).status == "right"
    assert grade(q, 5, r).status == "wrong" and grade(q, 3, r).status == "wrong"


def test_rel10_rule_grades_a_time_within_ten_percent():
    q = question("05.failed_after")   # syn_retries' failed_after: Rel(0.10) in its spec
    r = run_of(q, {"failed_after": 3.0})
    assert q.rule.name == "rel10"
    assert grade(q, 3.25, r).status == "right"      # within 10 % of the larger
    assert grade(q, 3.5, r).status == "wrong"
    assert grade(q, 2.6, r).status == "wrong"


def test_abs_rule_with_the_learners_unit():
    q = question("13.latency")        # nagle's median_latency_s: Abs(0.01) s; the learner types ms
    r = run_of(q, {"median_latency_s": 0.044})
    g = grade(q, 40, r)
    assert (g.status, g.observed, g.rule) == ("right", 44, "abs10ms")
    assert grade(q, 0.05, r).status == "wrong"       # a round trip: 40 ms off
    assert grade(q, 55, r).status == "wrong"


def test_a_choice_is_graded_by_its_value():
    q = question("07.rebind")
    r = run_of(q, {"bound": False})
    g = grade(q, "fails (EADDRINUSE)", r)
    assert g.status == "right" and g.observed == "fails (EADDRINUSE)"
    assert grade(q, "binds", r).status == "wrong"


def test_an_untrusted_run_does_not_grade():
    q = question("15.bufferbloat")
    busy = Fidelity(False, "host busy: the delay line released packets up to 30 ms late")
    r = run_of(q, {"srtt_max_ms": 260.0}, mode="real", fidelity=busy)
    g = grade(q, 260, r)
    assert g.status == "untrusted" and g.correct is None and g.observed is None
    assert "host busy" in g.why and "run it again" in g.why
    ok = run_of(q, {"srtt_max_ms": 260.0}, mode="real", fidelity=Fidelity(True, "timing held"))
    assert grade(q, 250, ok).status == "right"


def test_no_answer_is_ungraded_and_the_result_is_still_shown():
    q = question("03.java")
    g = grade(q, None, run_of(q, {"established_clients": 51}))
    assert (g.status, g.observed, g.correct) == ("ungraded", 51, None)


def test_a_run_that_could_not_measure_the_key_grades_nothing():
    q = question("02.packets")   # handshake's packets is None when AF_PACKET is not allowed
    g = grade(q, 10, run_of(q, {"packets": None}))
    assert (g.status, g.observed) == ("ungraded", None) and "could not measure packets" in g.why
    assert grade(q, 10, run_of(q, {"packets": 10})).status == "right"
    q = question("12.close_wait")   # None is a choice there ("no timer"), so it grades
    assert grade(q, "none: no timer runs in CLOSE_WAIT", run_of(q, {"error": None})).status == "right"


def test_a_run_of_another_experiment_is_refused():
    with pytest.raises(ValueError, match="result must be a run of accept_queue"):
        grade(question("03.java"), 51, Result("nagle", "sim", "", {}))


# -- questions: definition checked, parameters per learner -------------------------------------------

def test_parameters_are_stable_per_learner_and_differ_between_learners():
    q = question("03.somaxconn")
    room = [f"learner{i:02d}" for i in range(12)]
    first = {u: q.params_for(u) for u in room}
    assert all(q.params_for(u) == first[u] for u in room)           # a re-run gets the same
    assert len({tuple(sorted(p.items())) for p in first.values()}) >= 6   # 20 combinations, 12 learners
    # pinned: the seed is SHA-256, not Python's per-process salted hash(), so a new kernel agrees
    assert q.params_for("ana") == {"clients": 20, "backlog": 8, "somaxconn": 2}
    for u in room:                                                   # inside the question's ranges
        assert first[u]["backlog"] in q.vary["backlog"] and first[u]["somaxconn"] in q.vary["somaxconn"]
    # another question, another draw for the same learner (seeded by user AND question)
    assert len({str(question(i).params_for("ana")) for i in ("13.stalls", "13.latency", "13.segments")}) >= 2


def test_every_course_question_is_defined_against_its_experiment():
    assert {q.notebook for q in QUESTIONS.values()} >= {"03", "05", "07", "13", "15"}
    for q in QUESTIONS.values():
        assert q.kernel_line and ("(" in q.kernel_line or "#define" in q.kernel_line), q.id
        assert q.rule.name not in ("shown", "host_rmem"), q.id
        p = q.params_for("someone")
        assert q.prompt(p) and not re.search(r"\{[a-z_]+\}", q.prompt(p)), q.id    # every field filled
    assert [q.id for q in for_notebook("05")] == ["05.syns_sent", "05.failed_after"]


@pytest.mark.parametrize("kwargs,message", [
    (dict(vary={"backlog": [5, -1]}), r"backlog must be an int in 0\.\.65535, not -1"),
    (dict(vary={"nope": [1]}), r"accept_queue has no parameter 'nope'"),
    (dict(vary={"backlog": []}), r"vary\['backlog'\] must be a non-empty list"),
    (dict(key="nope"), r"key must be one of established_clients, .*not 'nope'"),
    (dict(answer_range=(5, 1)), r"answer_range must be \(lo, hi\) with lo < hi"),
    (dict(kernel_line=" "), r"kernel_line must name the kernel source"),
    (dict(id="bad"), r"id must look like '<notebook>.<name>'"),
])
def test_a_bad_question_is_refused_naming_what(kwargs, message):
    base = dict(id="03.t", notebook="03", experiment="accept_queue", text="?", key="established_clients",
                kernel_line="sk_acceptq_is_full()", vary={"backlog": [5]}, answer_range=(0, 20))
    with pytest.raises(ValueError, match=message):
        Question(**{**base, **kwargs})


def test_a_key_its_experiment_does_not_compare_cannot_grade():
    with pytest.raises(ValueError, match="not compared by its experiment"):
        Question("15.t", "15", "congestion", "?", "queue_max_packets", "pfifo_enqueue()", answer_range=(0, 1e4))
    with pytest.raises(ValueError, match="kernel's own window"):   # time_wait's first_failure_at: Within
        Question("07.t", "07", "time_wait", "?", "first_failure_at", "tcp_twsk_unique()", answer_range=(0, 10))


@pytest.mark.parametrize("qid,answer,message", [
    ("03.somaxconn", 21, r"answer must be a number in 0\.\.20, not 21"),
    ("03.somaxconn", float("nan"), r"answer must be a number in 0\.\.20"),
    ("03.somaxconn", True, r"answer must be a number in 0\.\.20, not True"),
    ("03.somaxconn", "4", r"answer must be a number in 0\.\.20, not '4'"),
    ("13.latency", -1, r"answer must be a number in 0\.\.1000 ms, not -1"),
    ("07.rebind", "yes", r"answer must be one of 'binds', 'fails \(EADDRINUSE\)', not 'yes'"),
])
def test_a_bad_answer_names_the_parameter_and_range(qid, answer, message):
    with pytest.raises(ValueError, match=message):
        question(qid).check_answer(answer)


def test_an_unknown_question_names_the_ids():
    with pytest.raises(ValueError, match=r"question must be one of 00\.first, .*not .x."):
        question("x")
    with pytest.raises(ValueError, match="user must be a non-empty str"):
        question("03.java").params_for("")


# -- the answers file ------------------------------------------------------------------------------

def rec(event, attempt, question_id="03.somaxconn", user="ana", **kw):
    return {"event": event, "user": user, "notebook": question_id[:2], "question": question_id, "attempt": attempt,
            **kw}


def test_history_appends_and_reads_back_joined_by_attempt(tmp_path):
    p = tmp_path / "sub" / "answers.jsonl"
    store.append(rec("commit", "a", answer=3), p)
    store.append(rec("run", "a", status="untrusted"), p)
    store.append(rec("run", "a", status="wrong", observed=4, correct=False), p)   # the re-run grades
    store.append(rec("commit", "b", answer=4), p)
    store.append(rec("commit", "c", "05.syns_sent", answer=3), p)
    lines = p.read_text().splitlines()
    assert len(lines) == 5 and all(json.loads(x)["v"] == store.SCHEMA for x in lines)
    assert oct(p.stat().st_mode & 0o777) == "0o600"
    rows = store.attempts(store.read(p), notebook="03")
    assert [(a["attempt"], a["answer"], a["status"]) for a in rows] == [("a", 3, "wrong"), ("b", 4, "pending")]
    assert rows[1]["seen_before"] is True and rows[0]["seen_before"] is False
    assert [a["question"] for a in store.attempts(store.read(p), notebook="05")] == ["05.syns_sent"]
    assert store.attempts(store.read(p), user="bo") == []


def test_history_skips_bad_lines_and_refuses_bad_records(tmp_path):
    p = tmp_path / "answers.jsonl"
    store.append(rec("commit", "a", answer=3), p)
    with open(p, "a") as f:
        f.write("not json\n{\"event\": \"commit\"}\n[1, 2]\n")
    store.append(rec("run", "a", status="right"), p)
    assert [r["event"] for r in store.read(p)] == ["commit", "run"]
    with pytest.raises(ValueError, match="record needs attempt"):
        store.append({"event": "commit", "user": "a", "notebook": "03", "question": "03.x"}, p)
    with pytest.raises(ValueError, match="event must be one of commit, run, not 'edit'"):
        store.append(rec("edit", "a"), p)
    with pytest.raises(ValueError, match="record must be at most 8192 bytes"):
        store.append(rec("commit", "a", answer="x" * 9000), p)


def test_history_is_bounded_by_rotation(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "MAX_BYTES", 2000)
    p = tmp_path / "answers.jsonl"
    for i in range(60):
        store.append(rec("commit", f"a{i}", answer=i), p)
    rotated = p.with_name("answers.jsonl.1")
    assert p.stat().st_size <= 2000 and rotated.stat().st_size <= 2000
    got = [r["answer"] for r in store.read(p)]
    assert got == sorted(got) and got[-1] == 59 and len(got) < 60       # newest kept, oldest gone, in order


def test_two_writers_never_interleave_a_line(tmp_path):
    p = tmp_path / "answers.jsonl"

    def write(who):
        for i in range(200):
            store.append(rec("commit", f"{who}{i}", user=who, answer=i, params={"pad": "x" * 300}), p)

    threads = [threading.Thread(target=write, args=(w,)) for w in ("ana", "bo")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    records = store.read(p)
    assert len(records) == 400 == len(p.read_text().splitlines())


def test_a_link_or_a_fifo_in_place_of_the_file_is_not_read(tmp_path):
    import os

    secret = tmp_path / "secret.jsonl"
    store.append(rec("commit", "a", answer=1), secret)
    home = tmp_path / "homes" / "ana" / ".tcplab"
    home.mkdir(parents=True)
    (home / "answers.jsonl").symlink_to(secret)
    fifo_home = tmp_path / "homes" / "bo" / ".tcplab"
    fifo_home.mkdir(parents=True)
    os.mkfifo(fifo_home / "answers.jsonl")             # open() would block: it is never opened
    assert store.read_room(tmp_path / "homes") == []


def test_answers_path_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(store.ANSWERS_ENV, str(tmp_path / "x.jsonl"))
    assert store.answers_path() == tmp_path / "x.jsonl"
    assert store.answers_path(tmp_path) == tmp_path / ".tcplab" / "answers.jsonl"


# -- exports ---------------------------------------------------------------------------------------

def room_records():
    return [rec("commit", "a1", answer=4, t="2026-01-01T10:00:00"),
            rec("run", "a1", status="right", observed=4, correct=True, rule="exact", mode="real", badge="REAL",
                params={"backlog": 3, "somaxconn": 3, "clients": 20}, t="2026-01-01T10:00:02"),
            rec("commit", "a2", "03.java", answer=50, t="2026-01-01T10:01:00"),
            rec("run", "a2", "03.java", status="wrong", observed=51, correct=False, t="2026-01-01T10:01:02"),
            rec("commit", "a3", "03.java", answer=51, t="2026-01-01T10:02:00"),   # after seeing: no credit
            rec("run", "a3", "03.java", status="right", observed=51, correct=True, t="2026-01-01T10:02:02"),
            rec("run", "r1", "13.stalls", user="bo", status="ungraded", observed=7, t="2026-01-01T10:00:00"),
            rec("commit", "b1", "13.stalls", user="bo", answer=7, t="2026-01-01T10:03:00"),  # seen first
            rec("run", "b1", "13.stalls", user="bo", status="right", correct=True, observed=7,
                t="2026-01-01T10:03:02"),
            rec("commit", "b2", "03.abort_on_overflow", user="bo", answer=4, t="2026-01-01T10:04:00"),
            rec("run", "b2", "03.abort_on_overflow", user="bo", status="untrusted", t="2026-01-01T10:04:05")]


def test_csv_round_trip(tmp_path):
    recs = room_records()
    n = write_csv(recs, tmp_path / "g.csv")
    back = read_csv(tmp_path / "g.csv")
    assert n == len(back) == 6
    assert back[0] == {**store.attempts(recs)[0]}
    assert [(r["user"], r["question"], r["answer"], r["status"], r["correct"]) for r in back] == [
        ("ana", "03.somaxconn", 4, "right", True), ("ana", "03.java", 50, "wrong", False),
        ("ana", "03.java", 51, "right", True), ("bo", "13.stalls", None, "ungraded", None),
        ("bo", "13.stalls", 7, "right", True), ("bo", "03.abort_on_overflow", 4, "untrusted", None)]
    buf = io.StringIO()
    write_csv(recs, buf)
    assert read_csv(io.StringIO(buf.getvalue())) == back
    with pytest.raises(ValueError, match="src must have the columns user, notebook"):
        read_csv(io.StringIO("a,b\n1,2\n"))


def test_gradebook_scores_first_blind_attempts_and_round_trips(tmp_path):
    recs = room_records()
    s = scores(recs)
    # ana: somaxconn right first time; java wrong first (the right second attempt came after seeing the run)
    n03 = float(len([q for q in QUESTIONS.values() if q.notebook == "03"]))   # every question of 03 is out of
    assert s[("ana", "03")]["questions"] == {q: int(q == "03.somaxconn") for q in QUESTIONS if q.startswith("03.")}
    assert s[("ana", "03")]["score"] == 1.0 and s[("ana", "03")]["max_score"] == n03
    # bo: ran 13.stalls before committing, so the later right answer was no prediction; untrusted: no attempt
    assert s[("bo", "13")]["score"] == 0.0 and s[("bo", "03")]["score"] == 0.0
    n = write_gradebook(recs, tmp_path / "grades.csv")
    text = (tmp_path / "grades.csv").read_text()
    assert text.splitlines()[0] == ",".join(GRADEBOOK_COLUMNS)    # nbgrader's CsvExportPlugin header
    back = read_gradebook(tmp_path / "grades.csv")
    assert n == len(back) == 2 * len({q.notebook for q in QUESTIONS.values()})
    rows = gradebook_rows(recs)
    assert [{k: str(v) for k, v in r.items()} for r in back] == [{k: str(v) for k, v in r.items()} for r in rows]
    ana03 = next(r for r in back if r["student_id"] == "ana" and r["assignment"] == "03")
    assert (ana03["raw_score"], ana03["score"], ana03["max_score"], ana03["timestamp"]) == \
        (1.0, 1.0, n03, "2026-01-01T10:01:02")   # the last attempt that counts
    with pytest.raises(ValueError, match="nbgrader's export columns"):
        read_gradebook(io.StringIO("student,score\n"))


# -- the widget ------------------------------------------------------------------------------------

class FakeRuns:
    """An experiment function giving the kernel's rule, trusted or not as told."""

    def __init__(self, *trusted: bool) -> None:
        self.trusted = list(trusted)
        self.calls: list[dict] = []

    def __call__(self, mode, **p):
        self.calls.append({**p, "mode": mode})
        ok = self.trusted.pop(0) if self.trusted else True
        fid = Fidelity(ok, "timing held" if ok else "host busy: the sampler went 200 ms without the CPU")
        return Result("accept_queue", "real", "test", p, kernel="6.18", fidelity=fid,
                      summary={"established_clients": min(p["backlog"], p["somaxconn"]) + 1, "ListenOverflows": 9})


def test_widget_commit_then_untrusted_run_then_rerun_grades(tmp_path):
    path, runs = tmp_path / "a.jsonl", FakeRuns(False, True)
    w = Prediction("03.somaxconn", user="ana", path=path, run=runs)   # backlog 8, somaxconn 2
    w.answer_box.value = "3"
    w.commit_button.click()
    assert w.state == "pending" and w.answer_box.disabled and w.commit_button.disabled
    w.run_button.click()
    assert w.grade.status == "untrusted" and w.run_button.description == "Re-run"
    assert "host busy" in w.feedback.value and w.answer_box.disabled
    with pytest.raises(ValueError, match=r"this attempt is committed \(3\)"):
        w.commit(4)                                     # the committed answer cannot change
    g = w.run()
    assert g.status == "right" and "sk_acceptq_is_full()" in w.feedback.value and "REAL" in w.header.value
    assert all(c == {"clients": 20, "backlog": 8, "somaxconn": 2, "mode": "auto"} for c in runs.calls)
    rows = w.attempts()
    assert [(a["answer"], a["status"], a["badge"]) for a in rows] == [(3.0, "right", "REAL")]
    events = [(r["event"], r.get("status")) for r in store.read(path)]
    assert events == [("commit", None), ("run", "untrusted"), ("run", "right")]
    w.new_button.click()                               # a new attempt is a new record
    w.commit(2)
    assert w.run().status == "wrong"
    assert [(a["answer"], a["status"]) for a in w.attempts()] == [(3.0, "right"), (2.0, "wrong")]
    table = Attempts("03", user="ana", path=path)
    assert table.table.value.count("<tr>") == 3 and "right" in table.table.value


def test_widget_works_with_no_answer_committed(tmp_path):
    path = tmp_path / "a.jsonl"
    w = Prediction("03.somaxconn", user="ana", path=path, run=FakeRuns())
    assert not path.exists()                           # building it writes nothing (nbval)
    g = w.run()
    assert g.status == "ungraded" and "3" in w.feedback.value
    assert [a["status"] for a in w.attempts()] == ["ungraded"]


def test_widget_shows_a_bad_answer_instead_of_raising(tmp_path):
    w = Prediction("03.somaxconn", user="ana", path=tmp_path / "a.jsonl", run=FakeRuns())
    w.answer_box.value = "lots"
    w.commit_button.click()
    assert "answer must be a number in 0..20, not &#x27;lots&#x27;" in w.status.value and w.state == "open"


def test_widget_choice_commit_checks_the_label_first(tmp_path):
    w = Prediction("07.rebind", user="ana", path=tmp_path / "a.jsonl", run=FakeRuns())
    with pytest.raises(ValueError, match="answer must be one of 'binds', 'fails"):
        w.commit("maybe")
    assert w.commit("binds").answer_box.value == "binds" and w.state == "pending"


def test_widget_says_when_it_cannot_save(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "answers.jsonl").mkdir()                     # a directory where the file should be: write fails
    w = Prediction("03.somaxconn", user="ana", path=ro / "answers.jsonl", run=FakeRuns())
    w.commit(3)
    assert "not saved" in w.status.value and w.run().status == "right"


# -- the command line ------------------------------------------------------------------------------

def write_room(tmp_path):
    for user in ("ana", "bo"):
        p = tmp_path / user / ".tcplab" / "answers.jsonl"
        for r in room_records():
            if r["user"] == user:
                store.append({**r, "user": "someone-else"}, p)   # the home's name wins over the record's
    return tmp_path


def test_cli_grades_export(tmp_path, capsys):
    homes = write_room(tmp_path / "homes")
    assert main(["grades", "export", "--homes", str(homes), "--csv", str(tmp_path / "a.csv"),
                 "--gradebook", str(tmp_path / "g.csv")]) == 0
    assert {r["user"] for r in read_csv(tmp_path / "a.csv")} == {"ana", "bo"}
    assert {r["student_id"] for r in read_gradebook(tmp_path / "g.csv")} == {"ana", "bo"}
    assert main(["grades", "export", "--answers", str(homes / "ana" / ".tcplab" / "answers.jsonl"),
                 "--gradebook", "-"]) == 0
    assert capsys.readouterr().out.startswith(",".join(GRADEBOOK_COLUMNS))


@pytest.mark.parametrize("argv,message", [
    (["grades", "export"], "needs --csv FILE or --gradebook FILE"),
    (["grades", "export", "--csv", "x.csv", "--answers", "/no/such/file"], "--answers must be an existing"),
    (["grades", "export", "--csv", "/no/such/dir/x.csv", "--answers", __file__], "must exist"),
    (["grades", "export", "--csv", "-", "--homes", "/no/such/dir"], "homes must be a directory"),
    (["grades", "export", "--csv", "-", "--homes", "/tmp", "--answers", __file__], "not allowed with"),
    (["grades", "nope"], "invalid choice"),
])
def test_cli_grades_bad_input_exits_2_without_traceback(argv, message, capsys):
    with pytest.raises(SystemExit) if message in ("not allowed with", "invalid choice") else _nothing():
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_workshop_progress_reads_the_predictions(tmp_path, capsys):
    homes = write_room(tmp_path / "homes")
    assert main(["workshop", "progress", "--homes", str(homes)]) == 0
    out = capsys.readouterr().out
    assert "03.somaxconn" in out and "13.stalls" in out
    ana = next(line for line in out.splitlines() if line.startswith("ana"))
    assert "passed (1)" in ana       # 03.somaxconn right once; the untrusted run is not an attempt


# -- a real run grades ----------------------------------------------------------------------------

@pytest.mark.real
def test_a_real_run_grades_a_committed_prediction(tmp_path):
    """The kernel grades: listen() clamps to somaxconn, and the queue holds one more than its limit."""
    from tcplab.errors import RealModeUnavailable

    w = Prediction("03.somaxconn", user="ana", path=tmp_path / "a.jsonl", mode="real")
    p = w.params
    w.commit(min(p["backlog"], p["somaxconn"]) + 1)
    try:
        g = w.run()
    except RealModeUnavailable as e:    # pragma: no cover - a host without user namespaces
        pytest.skip(str(e))
    if g is None:
        pytest.skip(f"real mode is not available here: {w.header.value}")
    assert w.result.mode == "real" and "REAL" in w.header.value
    if not w.result.trusted:
        assert g.status == "untrusted"
        return
    assert g.status == "right", (p, w.result.summary)
    assert grade(w.question, min(p["backlog"], p["somaxconn"]), w.result).status == "wrong"   # the missing +1
    assert [(a["status"], a["mode"]) for a in w.attempts()] == [("right", "real")]


def test_every_question_sits_under_a_predict_first_of_its_notebook():
    import pathlib

    course = pathlib.Path(__file__).parents[1] / "course"
    placed: dict[str, str] = {}
    for path in sorted(course.glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        for i, c in enumerate(cells):
            src = "".join(c["source"])
            for qid in re.findall(r"Prediction\('([^']+)'\)", src):
                assert c["cell_type"] == "code" and "predict" in "".join(cells[i - 1]["source"]).lower(), (path, qid)
                placed[qid] = path.name[:2]
            if "Attempts(" in src:
                assert f"Attempts('{path.name[:2]}')" in src, path
    assert placed == {qid: q.notebook for qid, q in QUESTIONS.items()}


# the predictions converted last (02 and the multi-part "predict" places of 03, 04, 06, 07, 10-16):
# each learner's value from a simulated run grades right as typed, and a value off by a clear margin wrong
CONVERTED = ("02.packets", "03.phantoms", "04.flood", "04.synack_retries", "06.time_wait", "06.fd_after_rst",
             "07.tw_reuse", "09.backlog", "10.window_cap", "10.user_timeout", "10.rcvbuf_start", "11.rto_min",
             "11.user_timeout", "11.orphan", "11.spurious", "12.user_timeout", "12.alive", "12.close_wait",
             "12.fd_limit", "13.delack_wait", "14.timeouts", "15.cubic_exit", "15.bbr_rtt", "16.ecn_loss",
             "16.paced_rtt")


@pytest.mark.parametrize("qid,user", [(q, u) for q in CONVERTED for u in ("ana", "bo")])
def test_a_converted_prediction_is_graded_by_its_own_run(qid, user):
    q = question(qid)
    params = q.params_for(user)
    from tcplab.experiments.registry import functions

    r = functions()[q.experiment](**params, mode="sim")
    observed = r.summary[q.key]
    answer = q.label_of(observed)
    assert grade(q, answer, r).status == "right", (params, observed)
    if q.choices is not None:   # every other label is wrong
        assert all(grade(q, other, r).status == "wrong" for other in q.choices if other != answer), (params, observed)
        return
    lo, hi = q.answer_range
    off = answer + 5 if answer < 2 else min(hi, answer * 2 + 5)
    assert grade(q, off, r).status == "wrong", (params, observed, off)
