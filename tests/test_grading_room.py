"""The instructor's view of the room (tcplab.grading.room) and reading learners' files safely as root
(tcplab._safeio, used by grading.store.read_home and kernel.progress.read_room)."""

from __future__ import annotations

import os
import threading

import pytest

from tcplab import _safeio
from tcplab.grading import store
from tcplab.grading.room import WRONG_IN_A_ROW, render_html, room_view
from tcplab.kernel import progress


def commit(user, attempt, answer, qid="00.first", backlog=5, t="2026-12-08T00:00:00.000+00:00"):
    return {"event": "commit", "user": user, "notebook": qid[:2], "question": qid, "attempt": attempt,
            "answer": answer, "params": {"backlog": backlog, "clients": 20}, "t": t}


def run(user, attempt, status, observed=None, qid="00.first", mode="real", backlog=5):
    return {"event": "run", "user": user, "notebook": qid[:2], "question": qid, "attempt": attempt,
            "status": status, "observed": observed, "mode": mode, "params": {"backlog": backlog, "clients": 20},
            "correct": {"right": True, "wrong": False}.get(status)}


def the(view, qid):
    return next(q for nb in view["notebooks"] for q in nb["questions"] if q["question"] == qid)


def test_counts_per_question_follow_each_learners_latest_attempt():
    recs = [commit("ana", "a1", 6), run("ana", "a1", "right", 6),
            commit("bo", "b1", 6, backlog=4), run("bo", "b1", "wrong", 5, backlog=4),
            commit("cy", "c1", 7, backlog=6),                                           # committed, not run yet
            commit("di", "d1", 4, backlog=3), run("di", "d1", "untrusted", backlog=3),
            run("ed", "run-1", "ungraded", 8, backlog=7, mode="sim")]                   # ran without committing
    v = room_view(recs, ["ana", "bo", "cy", "di", "ed", "fay"])
    q = the(v, "00.first")
    assert (q["answered"], q["learners"]) == (4, 6)
    assert {k: n for k, n in q["status"].items() if n} == {"right": 1, "wrong": 1, "pending": 1, "untrusted": 1,
                                                            "ungraded": 1}
    assert q["spread"] == {"too low": 0, "right": 1, "too high": 1}     # bo said 6, his own run 5
    pts = {p["user"]: p for p in q["points"]}
    assert (pts["bo"]["x"], pts["bo"]["answer"], pts["bo"]["observed"]) == (4, 6, 5)
    assert pts["cy"]["status"] == "pending" and pts["cy"]["observed"] is None
    assert q["xkey"] == "backlog"
    stuck = {(s["user"], s["why"]) for s in v["stuck"]}
    assert ("di", "last attempt at 00.first: its run was disturbed (host busy: no grade, re-run)") in stuck
    assert ("fay", "no answer in notebook 00 yet (5 of 6 answered)") in stuck
    assert {s["user"] for s in v["stuck"]} == {"di", "fay"}


def test_wrong_in_a_row_is_stuck_until_a_right_answer():
    recs = []
    for k in range(WRONG_IN_A_ROW):
        recs += [commit("ana", f"a{k}", 9), run("ana", f"a{k}", "wrong", 6)]
    v = room_view(recs, ["ana"])
    assert [s["why"] for s in v["stuck"]] == [f"wrong {WRONG_IN_A_ROW} times in a row at 00.first"]
    recs += [commit("ana", "ok", 6), run("ana", "ok", "right", 6)]
    assert room_view(recs, ["ana"])["stuck"] == []
    one_wrong = [commit("bo", "b", 9), run("bo", "b", "wrong", 6)]
    assert room_view(one_wrong, ["bo"])["stuck"] == []


def test_an_error_is_stuck_and_records_of_someone_not_in_the_room_are_ignored():
    recs = [commit("ana", "a", 6), run("ana", "a", "error"), commit("root", "r", 1), run("root", "r", "right", 1)]
    v = room_view(recs, ["ana"])
    assert v["learners"] == ["ana"]
    assert [p["user"] for p in the(v, "00.first")["points"]] == ["ana"]
    assert [s["why"] for s in v["stuck"]] == ["last attempt at 00.first: its run failed"]


def test_a_choice_question_counts_predicted_and_observed_labels():
    qid = "06.rst"
    from tcplab.grading.questions import question
    labels = list(question(qid).choices)
    recs = [commit("ana", "a", labels[0], qid), run("ana", "a", "right", labels[0], qid),
            commit("bo", "b", labels[1], qid), run("bo", "b", "wrong", labels[0], qid)]
    q = the(room_view(recs, ["ana", "bo"]), qid)
    assert q["spread"] is None
    assert q["choices"][labels[0]] == [1, 2] and q["choices"][labels[1]] == [1, 0]


def test_questions_are_listed_in_the_courses_order_per_notebook():
    recs = [commit("ana", "x", 3, "03.somaxconn"), commit("ana", "y", 6, "00.first"),
            commit("ana", "z", 40, "03.java")]
    v = room_view(recs, ["ana"])
    assert [(nb["notebook"], [q["question"] for q in nb["questions"]]) for nb in v["notebooks"]] == \
        [("00", ["00.first"]), ("03", ["03.somaxconn", "03.java"])]
    assert room_view([], ["ana"]) == {"learners": ["ana"], "notebooks": [], "stuck": []}


def test_the_page_escapes_what_learners_wrote_and_refreshes_within_bounds():
    evil = "<script>alert(1)</script>"
    recs = [commit(evil, "a", evil), run(evil, "a", "wrong", 6)]
    page = render_html(room_view(recs, [evil]), refresh_s=3)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<meta http-equiv='refresh' content='3'>" in page
    recs = [commit("ana", "a", 6), run("ana", "a", "right", 6), commit("bo", "b", 7, backlog=6)]
    page = render_html(room_view(recs, ["ana", "bo"]))
    assert page.count("class=\"run\"") == 1 and page.count("class=\"prediction\"") == 2
    assert 'aria-label="00.first: the run' in page
    for bad in (1, 301):
        with pytest.raises(ValueError, match="refresh_s must be in 2..300"):
            render_html(room_view([], []), refresh_s=bad)


# -- reading a learner's files as root -------------------------------------------------------------------

def _home(tmp_path, name="ana"):
    home = tmp_path / name
    (home / ".tcplab").mkdir(parents=True)
    return home


def _bounded(f, *args):
    """f(*args) in a thread: must return within 5 s (a FIFO opened for reading would block forever)."""
    out = []
    t = threading.Thread(target=lambda: out.append(f(*args)), daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive(), "blocked"
    return out[0]


def test_read_in_home_refuses_links_fifos_and_a_linked_directory(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text('{"secret": 1}\n')
    home = _home(tmp_path)
    (home / ".tcplab" / "answers.jsonl").symlink_to(secret)
    assert _safeio.read_in_home(home, ".tcplab/answers.jsonl", 100) is None
    os.mkfifo(home / ".tcplab" / "progress.jsonl")
    assert _bounded(_safeio.read_in_home, home, ".tcplab/progress.jsonl", 100) is None
    bo = tmp_path / "bo"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "answers.jsonl").write_text("x\n")
    bo.mkdir()
    (bo / ".tcplab").symlink_to(tmp_path / "elsewhere")     # the directory itself is a link
    assert _safeio.read_in_home(bo, ".tcplab/answers.jsonl", 100) is None
    assert _safeio.read_in_home(tmp_path, "elsewhere/answers.jsonl", 100) == b"x\n"


def test_read_in_home_reads_at_most_limit_and_checks_its_arguments(tmp_path):
    home = _home(tmp_path)
    (home / ".tcplab" / "a").write_bytes(b"x" * 5000)
    assert _safeio.read_in_home(home, ".tcplab/a", 1000) == b"x" * 1000
    assert _safeio.read_regular(home / ".tcplab" / "a", 10) == b"x" * 10
    with pytest.raises(ValueError, match="relative must be a path below the home"):
        _safeio.read_in_home(home, "../etc/passwd", 10)
    with pytest.raises(ValueError, match="limit must be >= 0"):
        _safeio.read_regular(home, -1)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another uid")
def test_a_file_not_owned_by_the_homes_owner_is_not_theirs_to_show(tmp_path):
    home = _home(tmp_path)
    f = home / ".tcplab" / "answers.jsonl"
    store.append({"event": "commit", "user": "x", "notebook": "00", "question": "00.first", "attempt": "a"}, f)
    assert len(store.read_home(home)) == 1
    os.chown(f, 65534, 65534)      # e.g. a hard link to someone else's file
    assert store.read_home(home) == []


def test_the_self_check_reader_skips_a_learners_link_or_fifo(tmp_path):
    secret = tmp_path / "secret.jsonl"
    secret.write_text('{"check": "accept_queue", "correct": true}\n')
    ana = _home(tmp_path / "homes", "ana")
    (ana / ".tcplab" / "progress.jsonl").symlink_to(secret)
    bo = _home(tmp_path / "homes", "bo")
    os.mkfifo(bo / ".tcplab" / "progress.jsonl")
    cy = _home(tmp_path / "homes", "cy")
    (cy / ".tcplab" / "progress.jsonl").write_text('{"check": "syn_queue", "correct": false}\n')
    rows = _bounded(progress.read_room, tmp_path / "homes")
    assert [(r["user"], r["check"]) for r in rows] == [("cy", "syn_queue")]


def test_the_answers_reader_reads_the_rotated_file_too_and_skips_a_fifo(tmp_path):
    home = _home(tmp_path)
    f = home / ".tcplab" / "answers.jsonl"
    store.append({"event": "commit", "user": "x", "notebook": "00", "question": "00.first", "attempt": "old"},
                 f.with_name("answers.jsonl.1"))
    os.mkfifo(f)
    assert [r["attempt"] for r in _bounded(store.read_home, home)] == ["old"]
    assert _bounded(store.read, f) == [r for r in store.read(f.with_name("answers.jsonl.1"))]
