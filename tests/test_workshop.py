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
import subprocess
import sys
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
    uids = {lr.uid for lr in learners}
    hub = room.Hub(tmp_path_factory.mktemp("hub"))
    try:
        hub.start()
        report["t"]["hub_up"] = time.monotonic() - t0
        sessions = room.start_sessions(hub, learners, spare_kernel=True)
        report["t"]["all_first_results"] = time.monotonic() - t0
        report["first_errors"] = [f"{s.learner.name}: {s.error}" for s in sessions if s.error]
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
        room.remove_learners(learners)
        report["homes_left"] = [lr.home for lr in learners if os.path.exists(lr.home)]
        report["t"]["total"] = time.monotonic() - t0
        print(f"\nworkshop room of {N}: " + ", ".join(f"{k} {v:.1f} s" for k, v in report["t"].items()))
    return report


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
    rows = {line.split()[0]: line for line in scenario["progress"].splitlines()[1:]}
    first, second = f"{PREFIX}01", f"{PREFIX}02"
    assert "passed (1)" in rows[first] and "not yet (1)" in rows[second], scenario["progress"]
    assert scenario["progress"].splitlines()[0].split() == ["learner", "accept_queue"]


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
