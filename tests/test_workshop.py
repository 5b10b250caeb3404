"""A real JupyterHub with a room of learners on this host (issue 16): ``make test-workshop``.

One scenario, run once per module (tests below check its parts): TCPLAB_LEARNERS (default 12)
fresh Unix accounts; the hub of workshop/jupyterhub_config.py on loopback (PAM login, the
local process spawner, configurable-http-proxy); every learner logs in through the hub's login
form with their own password and takes their own API token from the hub's REST API; all spawn
their servers at once and run notebooks 03–05's real experiments at the same time over the
Jupyter Server REST API and the kernel websocket. While those run, each learner tries, from a
second notebook, to look at and stop the next learner's experiment process. Then the hub stops.

Needs root (useradd, PAM, setuid spawner) and ``make workshop-env`` (the learners' Python
environment and the proxy); without them the tests skip and say why. No test-only
authenticator: the real PAM one is used with random passwords set by chpasswd.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "workshop"))

pytestmark = [pytest.mark.workshop, pytest.mark.real]

N = int(os.environ.get("TCPLAB_LEARNERS", "12"))
PREFIX = os.environ.get("TCPLAB_LEARNER_PREFIX", "tcplab-l")
ENV = Path(os.environ.get("TCPLAB_WORKSHOP_ENV", ROOT / "workshop" / "build" / "env"))
CHP = ROOT / "workshop" / "build" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (useradd, PAM and a setuid spawner)"
    if not (ENV / "bin" / "jupyterhub").exists() or not CHP.exists():
        return "the workshop environment is not built: run `make workshop-env` (or `make test-workshop`)"
    try:
        import psutil  # noqa: F401
        import requests  # noqa: F401
        import websocket  # noqa: F401
    except ImportError as e:
        return f"the test driver needs the `workshop` extra ({e.name} missing): pip install -e '.[workshop]'"
    return None


def _unreachable_by_learners(path: Path) -> Path | None:
    """The first directory on ``path`` that other users cannot traverse (e.g. a clone under /root)."""
    for d in [*reversed(path.resolve().parents), path.resolve()]:
        if not os.stat(d).st_mode & 0o001:
            return d
    return None


def _netns(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def _experiment_process(uid: int, host_ns: int) -> tuple[int, float, int] | None:
    """(pid, create_time, netns inode) of a process of ``uid`` in a network namespace not the host's."""
    import room
    for p in room.learner_processes({uid}):
        ns = _netns(p.pid)
        if ns is not None and ns != host_ns:
            with contextlib.suppress(Exception):
                return p.pid, p.create_time(), ns
    return None


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> dict[str, Any]:
    why = _why_not()
    if why:
        pytest.skip(why)
    blocked = _unreachable_by_learners(ENV / "bin")
    if blocked is not None:
        pytest.fail(f"learners cannot reach {ENV}: {blocked} is mode {os.stat(blocked).st_mode & 0o777:o}. Build the "
                    "environment somewhere every account can read (make test-workshop WS_ENV=/opt/tcplab-workshop/env)")
    import psutil
    import room

    report: dict[str, Any] = {"probes": {}, "netns": {}, "t": {}}
    host_ns = _netns(os.getpid())  # the hub's (pid 1 may live in another user namespace)
    t0 = time.monotonic()
    report["sysctl_before"] = room.snapshot_proc_sys_net()
    learners = room.create_learners(N, PREFIX)
    # the instructor: an account in the instructors' group, which the hub makes an admin
    instructor = room.create_learners(1, "tcplab-i", group=room.INSTRUCTORS)[0]
    uids = {lr.uid for lr in [*learners, instructor]}
    # the course as an instructor's clone on the hub, handed out by nbgitpuller (not copied at spawn)
    course_parent = Path(tempfile.mkdtemp(prefix="tcplab-course-"))
    os.chmod(course_parent, 0o755)
    course_git = room.course_repository(course_parent / "tcplab.git")
    hub = room.Hub(tmp_path_factory.mktemp("hub"), course_git=course_git)
    try:
        hub.start()
        report["t"]["hub_up"] = time.monotonic() - t0
        sessions = room.start_sessions(hub, learners, spare_kernel=True)
        report["t"]["all_first_results"] = time.monotonic() - t0
        report["first_errors"] = [f"{s.learner.name}: {s.error}" for s in sessions if s.error]
        report["course_at_spawn"] = [lr.name for lr in learners if os.path.lexists(Path(lr.home) / "tcplab-course")]
        t = time.monotonic()
        report["pull"] = room.pull_course(hub, learners[0], course_git)
        report["t"]["nbgitpuller"] = time.monotonic() - t
        pulled = Path(learners[0].home) / "tcplab-course" / "course" / "00_welcome.ipynb"
        report["pulled"] = {"learner_uid": learners[0].uid, "exists": pulled.is_file(), "uid": pulled.stat().st_uid if pulled.exists() else None,
                            "same": pulled.is_file() and pulled.read_bytes() == subprocess.run(
                                ["git", "-C", str(ROOT), "show", "HEAD:course/00_welcome.ipynb"],
                                capture_output=True, timeout=60).stdout}
        if report["first_errors"]:
            report["hub_log"] = hub.log_tail(80)

        def probe_neighbours() -> None:
            """Meanwhile: learner i (second notebook) against learner i+1's running experiment."""
            deadline = time.monotonic() + 60
            pending = list(range(len(sessions)))
            while (pending or "netns_at_once" not in report) and time.monotonic() < deadline:
                if "netns_at_once" not in report:  # one instant at which every learner's experiment runs
                    seen = {s.learner.name: _experiment_process(s.learner.uid, host_ns) for s in sessions}
                    if all(seen.values()):
                        report["netns_at_once"] = {k: v[2] for k, v in seen.items()}
                for i in list(pending):
                    a, b = sessions[i], sessions[(i + 1) % len(sessions)]
                    if a.error or b.error or a.spare is None:
                        pending.remove(i)
                        continue
                    found = _experiment_process(b.learner.uid, host_ns)
                    if found is None:
                        continue
                    pid, created, ns = found
                    res = a.spare.execute(room.PROBE.format(pid=pid, home=b.learner.home), timeout=60)
                    with contextlib.suppress(psutil.Error):  # only a probe of a still-running experiment counts
                        if psutil.Process(pid).create_time() == created:
                            report["probes"][a.learner.name] = {"target": b.learner.name, **res}
                            report["netns"][b.learner.name] = ns
                            pending.remove(i)
                time.sleep(0.05)

        room.run_round(sessions, ("syn_queue", "syn_retries"), during=probe_neighbours)
        report["t"]["round_done"] = time.monotonic() - t0
        report["sessions"] = [{"name": s.learner.name, "error": s.error, "results": s.results,
                               "latency": s.latency, "first_result_s": s.first_result_s} for s in sessions]
        report["violations"] = {s.learner.name: [v for name, params in room.experiment_plan(i)
                                                 for v in room.rule_violations(name, params,
                                                                               s.results.get(name, {"error": "no result"}))]
                                for i, s in enumerate(sessions)}
        # `tcplab doctor --workshop` as learner 0, from their own notebook
        s0 = sessions[0]
        if s0.kernel is not None:
            report["doctor"] = s0.kernel.execute(
                "import subprocess, json\n"
                "p = subprocess.run(['tcplab', 'doctor', '--workshop'], capture_output=True, text=True, timeout=120)\n"
                "print('@@' + json.dumps({'rc': p.returncode, 'out': p.stdout, 'err': p.stderr}))", timeout=150)
        if s0.kernel is not None:  # kernels on Unix sockets, not loopback ports (jupyterhub_config.py)
            report["transport"] = s0.kernel.execute(
                "from ipykernel.kernelapp import IPKernelApp\n"
                "print('@@' + json.dumps(IPKernelApp.instance().transport))")
        # self-checks: learner 0 answers notebook 03's quiz right, learner 1 wrong; the admin's view
        for k, s in enumerate(sessions[:2]):
            if s.kernel is not None:
                report.setdefault("self_checks", []).append(s.kernel.execute(
                    "from tcplab.widgets.quiz import accept_queue_quiz\n"
                    "q = accept_queue_quiz(rng=3, mode='real')\n"
                    "right = min(q.params['backlog'], q.params['somaxconn']) + 1\n"
                    f"ok = q.check(answer=right + {k})\n"
                    "print('@@' + json.dumps({'ok': ok, 'mode': q.result.mode}))", timeout=120))
        # predictions (issue 24): every learner but the last commits at notebook 00's question in their own
        # kernel at the same time; then the instructor opens the room view in Chromium while learner 3's
        # committed prediction is run, and learners ask for the view too
        t = time.monotonic()
        report["predictions"] = _predict_all(sessions)
        report["t"]["predictions"] = time.monotonic() - t
        t = time.monotonic()
        report["room_view"] = _instructor_view(hub, instructor, sessions)
        report["t"]["room_view"] = time.monotonic() - t
        report["refused"] = _learner_asks_for_the_view(hub, learners[0])
        report["progress"] = subprocess.run([sys.executable, "-m", "tcplab", "workshop", "progress"], cwd=ROOT,
                                            capture_output=True, text=True, timeout=60).stdout
        for s in sessions:
            for k in (s.kernel, s.spare):
                if k is not None:
                    k.close()
    finally:
        hub.stop()
        report["t"]["hub_stopped"] = time.monotonic() - t0
        report["left_processes"] = [f"{p.pid} {p.name()}" for p in room.learner_processes(uids)
                                    if p.is_running()]
        report["left_sockets"] = room.host_sockets_of(uids)
        report["sysctl_after"] = room.snapshot_proc_sys_net()
        room.remove_learners([*learners, instructor])
        shutil.rmtree(course_parent, ignore_errors=True)
        report["homes_left"] = [lr.home for lr in [*learners, instructor] if os.path.exists(lr.home)]
        report["t"]["total"] = time.monotonic() - t0
        print(f"\nworkshop room of {N}: " + ", ".join(f"{k} {v:.1f} s" for k, v in report["t"].items()))
    return report


def _predict_all(sessions) -> dict[str, Any]:
    """Each learner's PREDICT cell at the same time; learner name -> what their kernel said."""
    import room

    out: dict[str, Any] = {}

    def one(i: int) -> None:
        s = sessions[i]
        offsets, run_last, mode = room.prediction_plan(i, len(sessions))
        if s.kernel is None or not offsets:
            out[s.learner.name] = {"statuses": []}
            return
        try:
            out[s.learner.name] = s.kernel.execute(room.PREDICT.format(offsets=offsets, run_last=run_last, mode=mode),
                                                   timeout=240)
        except Exception as e:  # noqa: BLE001 — a test assert reports it
            out[s.learner.name] = {"error": f"{type(e).__name__}: {e}"}

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(sessions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return out


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def _rows(page, qid: str) -> dict[str, list[str]]:
    return page.evaluate("""(qid) => Object.fromEntries([...document.querySelectorAll(
        `div[data-question="${qid}"] table.points tr`)].slice(1).map(tr => {
            const td = [...tr.querySelectorAll('td')].map(c => c.textContent); return [td[0], td.slice(1)]; }))""", qid)


def _instructor_view(hub, instructor, sessions) -> dict[str, Any]:
    """The instructor logs in through the hub's form in headless Chromium and opens the room view;
    then learner 3 runs their committed prediction and the open page must show it by itself."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"skipped": "the browser check needs playwright (pip install -e '.[test]')"}
    if not os.path.exists(CHROMIUM):
        return {"skipped": f"the browser check needs Debian's chromium at {CHROMIUM} (scripts/ensure-chromium)"}

    import room

    out: dict[str, Any] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, timeout=180_000)
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{hub.url}/hub/login?next={room.ROOM_VIEW}")
            page.fill("#username_input", instructor.name)
            page.fill("#password_input", instructor.password)
            page.click("#login_submit")
            page.wait_for_selector("#summary")
            out["url"] = page.url
            out["summary"] = page.text_content("#summary")
            out["stuck"] = page.evaluate("""() => [...document.querySelectorAll('#stuck li')].map(
                li => [li.dataset.user, li.textContent])""")
            q = 'div[data-question="00.first"]'
            out["answered"] = page.text_content(f"{q} .answered")
            out["runs_drawn"] = page.locator(f"{q} svg circle.run").count()
            out["predictions_drawn"] = page.locator(f"{q} svg path.prediction").count()
            out["chart_label"] = page.get_attribute(f"{q} svg", "aria-label")
            out["rows"] = _rows(page, "00.first")
            api = page.request.get(f"{hub.url}{room.ROOM_VIEW}api/room")
            out["api_status"] = api.status
            out["api_learners"] = api.json().get("learners") if api.ok else None
            # live: learner 3 runs the prediction they committed; the open page reloads itself (2 s)
            s3 = sessions[2]
            out["late_run"] = s3.kernel.execute("_g = _p.run()\nprint('@@' + json.dumps(_g and _g.status))",
                                                timeout=120) if s3.kernel is not None else None
            t = time.monotonic()
            late = None
            while time.monotonic() - t < 30:
                try:
                    row = _rows(page, "00.first").get(s3.learner.name)
                except Exception:  # noqa: BLE001 — the page was reloading itself at that moment
                    row = None
                if row and row[-1] != "pending":
                    late = row
                    break
                page.wait_for_timeout(500)
            out["late_row"], out["late_seen_s"] = late, time.monotonic() - t
        finally:
            browser.close()
    return out


def _learner_asks_for_the_view(hub, learner) -> dict[str, Any]:
    """A learner, logged in with their browser cookie, and with their API token: never the data."""
    import room
    import requests

    out: dict[str, Any] = {}
    s = room.login_session(hub, learner)
    for what, path in (("page", room.ROOM_VIEW), ("api", f"{room.ROOM_VIEW}api/room")):
        r = s.get(f"{hub.url}{path}", timeout=60)   # follows the OAuth redirects as a browser would
        out[f"cookie_{what}"] = {"status": r.status_code, "url": r.url, "body": r.text[:4000]}
        r = requests.get(f"{hub.url}{path}", headers={"Authorization": f"token {learner.token}"},
                         allow_redirects=False, timeout=60)
        out[f"token_{what}"] = {"status": r.status_code, "body": r.text[:4000]}
    return out


def test_every_learner_logs_in_spawns_and_gets_a_real_result(scenario):
    assert scenario["first_errors"] == [], scenario.get("hub_log")
    assert len(scenario["sessions"]) == N
    for s in scenario["sessions"]:
        assert s["error"] is None, s
        assert s["first_result_s"] is not None


def test_summaries_follow_the_kernel_rules_with_everyone_running_at_once(scenario):
    bad = {k: v for k, v in scenario["violations"].items() if v}
    assert bad == {}, json.dumps(bad, indent=1)


def test_each_learner_experiment_runs_in_its_own_network_namespace(scenario):
    """Counters cannot include a neighbour's traffic: every running experiment had its own netns
    (and the counter rules above hold exactly for each learner's own parameters)."""
    # (a namespace's inode number is reused once it is freed: compare experiments running at one instant)
    ns = scenario.get("netns_at_once")
    assert ns is not None, "never saw every learner's experiment running at the same instant"
    assert len(ns) == N and len(set(ns.values())) == N, ns
    assert _netns(os.getpid()) not in ns.values()


def test_a_learner_cannot_see_or_touch_a_neighbours_experiment(scenario):
    probes = scenario["probes"]
    assert len(probes) == N, f"probed only {sorted(probes)}"
    for who, p in probes.items():
        assert "error" not in p, (who, p)
        # private /proc (hidepid=invisible): the neighbour's process does not exist for them
        assert p["proc_dir"] == "ENOENT" and p["proc_net_netstat"] == "ENOENT" and p["ns_net"] == "ENOENT", (who, p)
        assert p["foreign_pids_visible"] == 0, (who, p)
        assert p["list_home"] == "EACCES", (who, p)  # home 0700
        assert p["signal_0"] == "EPERM" and p["sigstop"] == "EPERM", (who, p)  # another uid


def test_doctor_as_a_learner_says_what_the_course_does_for_them(scenario):
    d = scenario.get("doctor")
    assert d and d.get("rc") == 0, d
    out = d["out"]
    assert "In the course on this host" in out
    assert "real: every experiment, each in its own namespace" in out
    assert "[ok] open files limit 4096" in out, out
    assert "[ok] other users' processes are hidden from you" in out, out
    assert "self-check results are recorded in" in out, out


def test_self_checks_are_recorded_and_the_admin_sees_who_passed(scenario):
    assert [c.get("ok") for c in scenario["self_checks"]] == [True, False], scenario["self_checks"]
    import re

    table = [re.split(r"\s{2,}", line) for line in scenario["progress"].splitlines()]
    # the graded predictions count too (learner 1 right at 00.first, learner 2 wrong twice)
    assert table[0] == ["learner", "00.first", "accept_queue"], scenario["progress"]
    rows = {r[0]: r[1:] for r in table[1:]}
    first, second = f"{PREFIX}01", f"{PREFIX}02"
    assert rows[first] == ["passed (1)", "passed (1)"], scenario["progress"]
    assert rows[second] == ["not yet (2)", "not yet (1)"], scenario["progress"]


def test_kernels_use_unix_sockets_not_loopback_ports(scenario):
    assert scenario.get("transport") == "ipc"


def test_host_sysctls_unchanged(scenario):
    before, after = scenario["sysctl_before"], scenario["sysctl_after"]
    assert len(before) > 100
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert changed == []


def test_nothing_left_after_the_hub_stops(scenario):
    assert scenario["left_processes"] == []
    assert scenario["left_sockets"] == []
    assert scenario["homes_left"] == []


def test_the_course_comes_by_an_nbgitpuller_link_not_a_copy_at_spawn(scenario):
    assert scenario["course_at_spawn"] == [], "the spawn copied the course"
    p = scenario["pull"]
    assert p["link_status"] == 200 and "/git-pull" in p["link_url"], p
    assert "/git-pull?" in p["landing_url"] and "targetpath=tcplab-course" in p["landing_url"], p   # where a learner lands
    assert p["api_status"] == 200 and p["phases"][-1] == "finished", p
    pulled = scenario["pulled"]
    assert pulled["exists"] and pulled["same"], pulled          # the hub's committed course, byte for byte
    assert pulled["uid"] == pulled["learner_uid"], pulled        # cloned by the learner's own server


def test_learners_commit_predictions_and_the_kernel_grades_them(scenario):
    import room

    for i, s in enumerate(scenario["sessions"]):
        offsets, run_last, mode = room.prediction_plan(i, N)
        got = scenario["predictions"][s["name"]]
        assert "error" not in got, (s["name"], got)
        assert len(got["statuses"]) == len(offsets), (s["name"], got)
        # backlog + 1 is what the kernel admits (sk_acceptq_is_full: >): the run says right / wrong
        want = [("right" if off == 0 else "wrong") if (run_last or k < len(offsets) - 1) else "pending"
                for k, off in enumerate(offsets)]
        if mode != "auto":
            want = ["error"]
        assert got["statuses"] == want, (s["name"], got)


def test_the_instructor_sees_the_room_live_in_chromium(scenario):
    v = scenario["room_view"]
    if "skipped" in v:
        pytest.skip(v["skipped"])
    names = [s["name"] for s in scenario["sessions"]]
    assert "/services/tcplab-room/" in v["url"], v["url"]
    assert f"{N} learners" in v["summary"]
    assert v["answered"].startswith(f"{N - 1} of {N} answered"), v["answered"]
    # everyone but the last answered; learner 3 had committed without running when the page opened, and
    # learner 5's run failed (no value to draw)
    assert v["predictions_drawn"] == N - 1 and v["runs_drawn"] == N - 3, v
    assert "00.first" in v["chart_label"] and "backlog" in v["chart_label"]
    rows = v["rows"]
    assert sorted(rows) == sorted(names[:-1]), rows
    for i, name in enumerate(names[:-1]):
        want = scenario["predictions"][name]["statuses"][-1]
        assert rows[name][-1] == want, (name, rows[name], want)                       # the status the kernel gave
        assert rows[name][0] == str(scenario["predictions"][name]["params"]["backlog"])  # their own backlog
    stuck: dict[str, str] = {}
    for u, why in v["stuck"]:
        stuck[u] = stuck.get(u, "") + why + "; "
    assert "wrong 2 times in a row at 00.first" in stuck[names[1]], stuck
    assert "no answer in notebook 00 yet" in stuck[names[-1]], stuck
    assert "last attempt at 00.first: its run failed" in stuck[names[4]], stuck
    assert names[0] not in stuck, stuck
    assert v["api_status"] == 200 and v["api_learners"] == sorted(names)
    # live: the run learner 3 made after the page opened reached the open page by itself
    assert v["late_run"] in ("right", "wrong") and v["late_row"] is not None, v
    assert v["late_row"][-1] == v["late_run"] and v["late_seen_s"] < 30, v


def test_a_learner_is_refused_the_room_view(scenario):
    r = scenario["refused"]
    others = [s["name"] for s in scenario["sessions"][1:]]
    for what in ("cookie_page", "cookie_api", "token_page", "token_api"):
        got = r[what]
        assert got["status"] in (302, 403), (what, got["status"], got.get("url"))
        assert not any(name in got["body"] for name in others), (what, got["body"][:300])
        assert "00.first" not in got["body"], what
    assert r["cookie_page"]["status"] == 403 and r["token_api"]["status"] == 403, r
