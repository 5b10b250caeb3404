"""The room at a glance, for the instructor: pure aggregation of every learner's answers, and its page.

The hub's room view (``workshop/room_view.py``, a JupyterHub service for admins) reads each
learner's ``~/.tcplab/answers.jsonl`` (:func:`tcplab.grading.store.read_home`, as root, safely) and
hands the records here. Nothing in this module touches a file or the clock: :func:`room_view`
turns records into numbers, :func:`render_html` turns those into a page (escaped, self-contained:
inline SVG, no script from anywhere). Per question: how many learners committed a prediction,
their latest attempt's status, each learner's prediction against what their own run did, the
room's runs on one chart (the run's value against the learner's varied parameter: everyone's
accept-queue count for their backlog), and who is stuck.

>>> recs = [{"event": "commit", "user": "ana", "notebook": "00", "question": "00.first", "attempt": "a",
...          "answer": 7, "params": {"backlog": 6, "clients": 20}, "t": "2026-12-08T00:00:00.000+00:00"},
...         {"event": "run", "user": "ana", "notebook": "00", "question": "00.first", "attempt": "a",
...          "status": "right", "observed": 7, "mode": "real", "correct": True, "params": {"backlog": 6}}]
>>> v = room_view(recs, ["ana", "bo"])
>>> q = v["notebooks"][0]["questions"][0]
>>> q["answered"], q["learners"], q["status"]["right"], q["points"][0]["x"], q["points"][0]["observed"]
(1, 2, 1, 6, 7)
>>> [(s["user"], s["why"]) for s in v["stuck"]]
[('bo', 'no answer in notebook 00 yet (1 of 2 answered)')]
>>> "<svg" in render_html(v)
True
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tcplab.grading import store
from tcplab.grading.question import Question

__all__ = ["room_view", "render_html", "STATUSES", "WRONG_IN_A_ROW"]

#: the latest attempt of a learner at a question is one of these
STATUSES = ("right", "wrong", "pending", "untrusted", "error", "ungraded")
#: this many graded attempts in a row wrong (and none right since) and the learner is "stuck"
WRONG_IN_A_ROW = 2


def _questions() -> Mapping[str, Question]:
    from tcplab.grading.questions import QUESTIONS

    return QUESTIONS


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def room_view(records: Iterable[Mapping[str, Any]], learners: Sequence[str],
              questions: Mapping[str, Question] | None = None) -> dict[str, Any]:
    """The room as data: ``{"learners", "notebooks": [{"notebook", "questions": [...]}], "stuck"}``.

    records: every learner's records (``user`` already set from the home they were read from);
    learners: the room's learners (those with no record count too: "no answer yet"). Each
    question: ``answered`` (learners with a commit) of ``learners``, ``status`` (counts of each
    learner's latest attempt), ``points`` (one per learner whose latest attempt has a run or a
    commit: ``x`` the first varied parameter, ``observed`` the run's value, ``answer``, ``mode``),
    ``spread`` (a number question's graded latest attempts: too low / right / too high against the
    learner's own run), ``choices`` (label -> predicted, observed counts) for a choice question. Only questions someone
    answered or ran are listed, in the course's order.
    """
    qs = dict(questions if questions is not None else _questions())
    names = sorted(set(learners))
    rows = store.attempts(r for r in records if r.get("user") in set(names))
    by_uq: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for a in rows:
        by_uq.setdefault((str(a["user"]), a["question"]), []).append(a)
    order = {qid: k for k, qid in enumerate(qs)}
    qids = sorted({q for _, q in by_uq}, key=lambda q: (order.get(q, len(order)), q))
    notebooks: dict[str, list[dict[str, Any]]] = {}
    stuck: list[dict[str, Any]] = []
    for qid in qids:
        q = qs.get(qid)
        xkey = next(iter(q.vary), None) if q is not None else None
        status = dict.fromkeys(STATUSES, 0)
        spread = {"too low": 0, "right": 0, "too high": 0}   # graded latest attempts, against their own run
        points, answered = [], 0
        choices: dict[str, list[int]] | None = {str(c): [0, 0] for c in q.choices} if q and q.choices else None
        notebook = None
        for user in names:
            tries = by_uq.get((user, qid))
            if not tries:
                continue
            notebook = notebook or tries[-1].get("notebook")
            committed = [a for a in tries if a.get("committed_at") is not None]
            answered += bool(committed)
            last = tries[-1]
            st = last.get("status") if last.get("status") in STATUSES else "pending"
            status[st] += 1
            params = last.get("params") if isinstance(last.get("params"), dict) else {}
            points.append({"user": user, "x": params.get(xkey) if xkey else None, "answer": last.get("answer"),
                           "observed": last.get("observed"), "mode": last.get("mode"), "status": st})
            ans, obs = _number(last.get("answer")), _number(last.get("observed"))
            if st == "right":
                spread["right"] += 1
            elif st == "wrong" and ans is not None and obs is not None:
                spread["too low" if ans < obs else "too high"] += 1
            if choices is not None:
                for k, v in ((0, last.get("answer")), (1, last.get("observed"))):
                    if str(v) in choices:
                        choices[str(v)][k] += 1
            graded = [a.get("status") for a in tries if a.get("status") in ("right", "wrong")]
            wrong_run = 0
            for g in reversed(graded):
                if g != "wrong":
                    break
                wrong_run += 1
            if wrong_run >= WRONG_IN_A_ROW:
                stuck.append({"user": user, "question": qid, "why": f"wrong {wrong_run} times in a row at {qid}"})
            if st in ("error", "untrusted"):
                what = "its run failed" if st == "error" else "its run was disturbed (host busy: no grade, re-run)"
                stuck.append({"user": user, "question": qid, "why": f"last attempt at {qid}: {what}"})
        notebooks.setdefault(str(notebook or (q.notebook if q else qid.split(".")[0])), []).append({
            "question": qid, "text": q.text if q else qid, "unit": q.unit if q else "", "xkey": xkey,
            "answered": answered, "learners": len(names), "status": status, "spread": spread if choices is None else None,
            "points": points, "choices": choices})
    # who has not answered anything in the notebooks the room is in
    for nb, items in notebooks.items():
        users_in = {p["user"] for it in items for p in it["points"]}
        for user in names:
            if user not in users_in:
                stuck.append({"user": user, "question": None,
                              "why": f"no answer in notebook {nb} yet ({len(users_in)} of {len(names)} answered)"})
    stuck.sort(key=lambda s: (s["user"], s["why"]))
    return {"learners": names, "notebooks": [{"notebook": nb, "questions": notebooks[nb]} for nb in sorted(notebooks)],
            "stuck": stuck}


# -- the page ---------------------------------------------------------------------------------------------

_W, _H, _PAD = 360, 220, 36
# colour-blind-safe (Okabe-Ito) and told apart by shape too: a run is a dot, a prediction a cross
_RUN, _PRED = "#0072B2", "#D55E00"


def _chart(item: Mapping[str, Any]) -> str:
    """One question's room on one chart: x the learner's varied parameter, y the run's value (dot:
    real filled, simulated hollow) and the prediction (cross). Empty without numbers to draw."""
    pts = [p for p in item["points"] if _number(p["x"]) is not None]
    ys = [v for p in pts for v in (_number(p["observed"]), _number(p["answer"])) if v is not None]
    if not pts or not ys:
        return ""
    xs = [float(p["x"]) for p in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(0.0, min(ys)), max(ys)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def px(x: float) -> float:
        return _PAD + (x - x0) / (x1 - x0) * (_W - 2 * _PAD)

    def py(y: float) -> float:
        return _H - _PAD - (y - y0) / (y1 - y0) * (_H - 2 * _PAD)

    real = sum(1 for p in pts if p["mode"] == "real" and _number(p["observed"]) is not None)
    label = (f"{item['question']}: the run's value against {item['xkey']} for {len(pts)} learners "
             f"({real} real runs); dots are runs, crosses predictions")
    out = [f'<svg role="img" aria-label="{html.escape(label)}" width="{_W}" height="{_H}" '
           f'viewBox="0 0 {_W} {_H}" class="chart"><title>{html.escape(label)}</title>',
           f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#555"/>',
           f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="#555"/>',
           f'<text x="{_W / 2}" y="{_H - 6}" text-anchor="middle" font-size="11">{html.escape(str(item["xkey"]))}</text>',
           f'<text x="4" y="{_PAD - 8}" font-size="11">{y1:g}</text><text x="4" y="{_H - _PAD}" font-size="11">{y0:g}</text>',
           f'<text x="{_PAD + 4}" y="14" font-size="11">&#9679; a run (real) &#9675; a run (simulated) '
           f'<tspan fill="{_PRED}">&#10005;</tspan> a prediction</text>']
    ticks = sorted(set(xs)) if len(set(xs)) <= 8 else [x0, x1]
    out += [f'<text x="{px(t):.1f}" y="{_H - _PAD + 14}" font-size="11" text-anchor="middle">{t:g}</text>'
            for t in ticks]
    for k, p in enumerate(pts):
        jitter = ((k % 5) - 2) * 3   # learners with the same x side by side, not on top of each other
        x = px(float(p["x"])) + jitter
        obs, ans = _number(p["observed"]), _number(p["answer"])
        who = html.escape(str(p["user"]))
        if obs is not None:
            fill = _RUN if p["mode"] == "real" else "white"
            out.append(f'<circle class="run" cx="{x:.1f}" cy="{py(obs):.1f}" r="4" fill="{fill}" stroke="{_RUN}">'
                       f'<title>{who}: run {obs:g} ({html.escape(str(p["mode"]))})</title></circle>')
        if ans is not None:
            y = py(ans)
            out.append(f'<path class="prediction" d="M{x - 4:.1f},{y - 4:.1f}L{x + 4:.1f},{y + 4:.1f}'
                       f'M{x - 4:.1f},{y + 4:.1f}L{x + 4:.1f},{y - 4:.1f}" stroke="{_PRED}" stroke-width="2">'
                       f'<title>{who}: predicted {ans:g}</title></path>')
    out.append("</svg>")
    return "".join(out)


def _status_line(s: Mapping[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in s.items() if v) or "no attempt"


def render_html(view: Mapping[str, Any], *, refresh_s: int = 5, title: str = "tcplab: the room") -> str:
    """The instructor's page for :func:`room_view`'s data; reloads itself every ``refresh_s`` seconds
    (2..300: live, and bounded so that a forgotten tab does not hammer the hub)."""
    if not 2 <= refresh_s <= 300:
        raise ValueError(f"refresh_s must be in 2..300 seconds, not {refresh_s!r}")
    e = html.escape
    n = len(view["learners"])
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>",
             f"<meta http-equiv='refresh' content='{refresh_s}'>",
             "<style>body{font-family:sans-serif;margin:1em 2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}.q{margin:1em 0;padding:.5em;"
             "border:1px solid #d0d7de}.stuck{color:#a00}</style></head><body>",
             f"<h1>{e(title)}</h1><p id='summary'>{n} learners; this page reloads every {refresh_s} s.</p>",
             "<h2>Who is stuck</h2>"]
    if view["stuck"]:
        parts.append("<ul id='stuck'>" + "".join(f"<li class='stuck' data-user='{e(s['user'])}'><b>{e(s['user'])}</b>: "
                                                  f"{e(s['why'])}</li>" for s in view["stuck"]) + "</ul>")
    else:
        parts.append("<p id='stuck'>nobody</p>")
    if not view["notebooks"]:
        parts.append("<p>No prediction committed yet.</p>")
    for nb in view["notebooks"]:
        parts.append(f"<h2>Notebook {e(nb['notebook'])}</h2>")
        for it in nb["questions"]:
            unit = f" ({e(it['unit'])})" if it["unit"] else ""
            parts.append(f"<div class='q' data-question='{e(it['question'])}'><h3>{e(it['question'])}</h3>"
                         f"<p>{e(it['text'])}</p><p class='answered'><b>{it['answered']} of {it['learners']}</b> "
                         f"answered; latest attempts: {e(_status_line(it['status']))}</p>")
            if it["spread"] and any(it["spread"].values()):
                parts.append("<p class='spread'>predictions against their own run: " + ", ".join(
                    f"{v} {k}" for k, v in it["spread"].items()) + "</p>")
            if it["choices"]:
                parts.append("<table><tr><th>choice</th><th>predicted</th><th>the runs</th></tr>" + "".join(
                    f"<tr><td>{e(c)}</td><td>{a}</td><td>{b}</td></tr>" for c, (a, b) in it["choices"].items())
                    + "</table>")
            parts.append(_chart(it))
            parts.append(f"<table class='points'><tr><th>learner</th><th>{e(str(it['xkey']))}</th>"
                         f"<th>prediction{unit}</th><th>the run{unit}</th><th>mode</th><th>status</th></tr>" + "".join(
                             f"<tr><td>{e(str(p['user']))}</td><td>{e(_shown(p['x']))}</td><td>{e(_shown(p['answer']))}</td>"
                             f"<td>{e(_shown(p['observed']))}</td><td>{e(_shown(p['mode']))}</td><td>{e(p['status'])}</td></tr>"
                             for p in it["points"]) + "</table></div>")
    parts.append("</body></html>")
    return "".join(parts)


def _shown(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:g}" if isinstance(v, float) else str(v)
