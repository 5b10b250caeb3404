"""A room of learners on a real JupyterHub on this host: create accounts, start the hub,
log everyone in, spawn their servers and drive all their kernels at the same time.

Used by tests/test_workshop.py (checks) and by ``make workshop-bench`` (the capacity table
in docs/instructors.md)::

    sudo .venv/bin/python workshop/room.py bench --levels 1,4,8,12     # needs `make workshop-env`
    sudo .venv/bin/python workshop/room.py bench14 --levels 1,2,4,8    # notebook 15's congestion runs

Everything runs as root (accounts are created with useradd and removed with userdel at the
end, hub and proxy are started and stopped here). Learners log in through the hub's login
form with their own Unix password (PAM, the real authenticator of workshop/jupyterhub_config.py),
then ask the hub's REST API for their own token; from there on each learner only uses that token.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import json
import os
import pwd
import queue
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests
import websocket

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ENV = Path(os.environ.get("TCPLAB_WORKSHOP_ENV", HERE / "build" / "env"))
GROUP = os.environ.get("TCPLAB_LEARNER_GROUP", "tcplab-learners")
INSTRUCTORS = os.environ.get("TCPLAB_INSTRUCTOR_GROUP", "tcplab-instructors")
PREFIX = "tcplab-l"
ROOM_VIEW = "/services/tcplab-room/"

# what every learner's kernel defines first (notebook 00's setup cell, plus a JSON printer)
SETUP = """
import json, os, time
from tcplab.experiments import accept_queue, congestion, syn_queue, syn_retries
def _emit(r):
    f = r.fidelity
    print("@@" + json.dumps({"mode": r.mode, "reason": r.reason, "summary": r.summary, "counters": r.counters,
                             "notes": r.notes, "duration_s": r.duration_s, "sysctls": r.sysctls,
                             "trusted": r.trusted, "fidelity": f and f.reason, "attempts": f and f.attempts,
                             "fidelity_ok": f and f.ok, "timings": f and {t.name: t.ms for t in f.timings}},
                            default=str))
"""

# a learner tries to look at / interfere with another learner's process and home directory
PROBE = """
import errno, json, os, signal
def _try(f):
    try:
        f()
        return "ALLOWED"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
_pid, _home, _mine = {pid}, {home!r}, os.getuid()
_visible = [int(p) for p in os.listdir("/proc") if p.isdigit()]
_foreign = [p for p in _visible if _try(lambda: os.stat(f"/proc/{{p}}")) == "ALLOWED"
            and os.stat(f"/proc/{{p}}").st_uid != _mine]
print("@@" + json.dumps({{
    "list_home": _try(lambda: os.listdir(_home)),
    "proc_dir": _try(lambda: os.listdir(f"/proc/{{_pid}}")),
    "proc_net_netstat": _try(lambda: open(f"/proc/{{_pid}}/net/netstat").read()),
    "ns_net": _try(lambda: os.readlink(f"/proc/{{_pid}}/ns/net")),
    "signal_0": _try(lambda: os.kill(_pid, 0)),
    "sigstop": _try(lambda: os.kill(_pid, signal.SIGSTOP)),
    "foreign_pids_visible": len(_foreign),
}}))
"""


# a learner commits predictions through the public grading API in their own kernel (JUPYTERHUB_USER
# is them, so the record goes to their ~/.tcplab/answers.jsonl): one attempt per offset from
# backlog + 1 at notebook 00's question, each run and graded by the kernel unless it is the last
# and run_last is False (committed, not run yet). A run that fails (here: a mode the experiment
# refuses, ValueError) is recorded as an error, as the widget does for any failed run.
PREDICT = """
from tcplab.widgets.predict import Prediction
_p = Prediction("00.first", mode={mode!r})
_out, _offsets = [], {offsets!r}
for _k, _off in enumerate(_offsets):
    if _k:
        _p.new_attempt()
    _p.commit(_p.params["backlog"] + 1 + _off)
    if {run_last!r} or _k < len(_offsets) - 1:
        _g = _p.run()
        _out.append("error" if _g is None else _g.status)
    else:
        _out.append("pending")
print("@@" + json.dumps({{"statuses": _out, "params": _p.params,
                          "mode": _p.result.mode if _p.result is not None else None}}))
"""


def prediction_plan(i: int, n: int) -> tuple[list[int], bool, str]:
    """Learner ``i`` of ``n``: (offsets of their attempts from backlog + 1, whether the last one is run,
    the mode). The last learner answers nothing; learner 2 is wrong twice; learner 3 commits and does
    not run yet; learner 5's run fails."""
    if i == n - 1:
        return [], False, "auto"
    if i == 1:
        return [1, -1], True, "auto"
    if i == 2:
        return [0], False, "auto"
    if i == 4:
        return [0], True, "no-such-mode"
    return [0 if i % 2 == 0 else 2], True, "auto"


def experiment_plan(i: int) -> list[tuple[str, dict[str, Any]]]:
    """Learner ``i``'s cells: notebooks 03–05's real experiments, parameters differing per learner
    (so that a neighbour's traffic in someone's counters would show)."""
    b = 1 + i % 6
    return [
        ("accept_queue", {"backlog": b, "clients": b + 6 + i % 5}),
        ("syn_queue", {"backlog": b, "clients": b + 10 + i % 7, "syncookies": 0}),
        ("syn_retries", {"retries": 2}),
    ]


def cell(name: str, params: dict[str, Any]) -> str:
    """The notebook cell that runs experiment ``name`` for real and prints its Result."""
    args = ", ".join(f"{k}={v!r}" for k, v in params.items())
    return f"_emit({name}({args}, mode='real'))"


# ---------------------------------------------------------------------------------------------
# accounts

@dataclass
class Learner:
    name: str
    password: str
    uid: int
    home: str
    token: str | None = None


def _run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60, **kw)


def create_learners(n: int, prefix: str = PREFIX, start: int = 1, group: str = GROUP) -> list[Learner]:
    """``n`` Unix accounts ``<prefix>01``… in ``group`` (the learners'; INSTRUCTORS makes hub admins),
    home 0700, a random password each."""
    if os.geteuid() != 0:
        raise PermissionError("creating learner accounts needs root (useradd)")
    _run(["groupadd", "-f", group])
    learners = []
    try:
        for k in range(start, start + n):
            name = f"{prefix}{k:02d}"
            with contextlib.suppress(KeyError):
                pwd.getpwnam(name)
                raise FileExistsError(f"account {name} already exists (left over? remove it with userdel -r {name})")
            _run(["useradd", "-m", "-K", "HOME_MODE=0700", "-G", group, "-s", "/bin/bash", name])
            password = secrets.token_urlsafe(16)
            _run(["chpasswd"], input=f"{name}:{password}\n")
            pw = pwd.getpwnam(name)
            learners.append(Learner(name, password, pw.pw_uid, pw.pw_dir))
    except BaseException:
        remove_learners(learners)
        raise
    return learners


def learner_processes(uids: set[int]) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["uids"]):
        with contextlib.suppress(psutil.Error):
            if p.info["uids"] and (p.info["uids"].real in uids or p.info["uids"].effective in uids):
                out.append(p)
    return out


def remove_learners(learners: list[Learner], remove_group: bool = True) -> None:
    """Kill what is left of the learners' processes (by pid), then userdel -r each account."""
    uids = {lr.uid for lr in learners}
    for p in learner_processes(uids):
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(learner_processes(uids), timeout=10)
    for lr in learners:
        subprocess.run(["userdel", "-r", "-f", lr.name], capture_output=True, timeout=60)
    if remove_group:
        for group in (GROUP, INSTRUCTORS):
            with contextlib.suppress(KeyError):
                if not grp.getgrnam(group).gr_mem:
                    subprocess.run(["groupdel", group], capture_output=True, timeout=60)


# ---------------------------------------------------------------------------------------------
# the hub

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    """JupyterHub (+ configurable-http-proxy) with workshop/jupyterhub_config.py, on loopback."""

    def __init__(self, state_dir: Path, env_dir: Path = ENV, course_git: str = "") -> None:
        self.state = Path(state_dir)
        self.course_git = course_git   # TCPLAB_COURSE_GIT: the course by nbgitpuller, not copied
        self.env_dir = env_dir
        self.port, self.hub_port, self.proxy_port, self.room_port = free_port(), free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token = secrets.token_hex(32)
        self.proc: subprocess.Popen | None = None
        self.log_path = self.state / "hub.log"

    def start(self, timeout: float = 90) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
        env.update(TCPLAB_HUB_STATE=str(self.state), TCPLAB_HUB_PORT=str(self.port),
                   TCPLAB_HUB_API_PORT=str(self.hub_port), TCPLAB_PROXY_API_PORT=str(self.proxy_port),
                   TCPLAB_HUB_ADMIN_TOKEN=self.admin_token, TCPLAB_WORKSHOP_ENV=str(self.env_dir),
                   TCPLAB_ROOM_PORT=str(self.room_port), TCPLAB_ROOM_REFRESH="2",
                   TCPLAB_COURSE_GIT=self.course_git, TCPLAB_COURSE_BRANCH="main")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(self.env_dir / "bin" / "jupyterhub"), "-f",
                                      str(HERE / "jupyterhub_config.py")],
                                     cwd=self.state, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited with {self.proc.returncode}; log:\n{self.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/hub/api/", timeout=2).ok:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"jupyterhub did not answer within {timeout} s; log:\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return "(no log)"

    def processes(self) -> list[psutil.Process]:
        """The hub and its children (the proxy; learners' servers run as their own uid)."""
        if self.proc is None:
            return []
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(self.proc.pid)
            return [p, *(c for c in p.children(recursive=True) if c.uids().real == 0)]
        return []

    def admin(self, method: str, path: str, **kw: Any) -> requests.Response:
        return requests.request(method, f"{self.url}/hub/api{path}", timeout=30,
                                headers={"Authorization": f"token {self.admin_token}"}, **kw)

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM: the hub stops every server (cleanup_servers) and the proxy, then exits."""
        if self.proc is None or self.proc.poll() is not None:
            return
        others = [p for p in self.processes() if p.pid != self.proc.pid]
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        _, alive = psutil.wait_procs(others, timeout=10)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()


# ---------------------------------------------------------------------------------------------
# one learner's session

def course_repository(dest: Path, source: Path = ROOT) -> str:
    """A bare repository at ``dest`` holding ``source``'s committed HEAD as branch main, readable by
    every account (what an instructor's clone on the hub is): the path, for TCPLAB_COURSE_GIT."""
    _run(["git", "init", "-q", "--bare", str(dest)])
    _run(["git", "-C", str(source), "push", "-q", str(dest), "HEAD:refs/heads/main"])
    _run(["git", "-C", str(dest), "symbolic-ref", "HEAD", "refs/heads/main"])
    _run(["chmod", "-R", "a+rX", str(dest)])
    return str(dest)


def git_pull_query(repo: str, branch: str = "main", target: str = "tcplab-course") -> str:
    """The nbgitpuller link's query (as workshop/jupyterhub_config.py's git_pull_path builds it)."""
    from urllib.parse import urlencode

    return urlencode({"repo": repo, "branch": branch, "targetpath": target, "urlpath": f"lab/tree/{target}/course"})


def pull_course(hub: Hub, lr: Learner, repo: str, timeout: float = 180) -> dict[str, Any]:
    """The learner follows the nbgitpuller link through the hub (their browser cookie), then the page's
    event stream (what its script reads) runs the pull: the phases it reported, and the link's page."""
    s = login_session(hub, lr)
    q = git_pull_query(repo)
    page = s.get(f"{hub.url}/hub/user-redirect/git-pull?{q}", timeout=60)
    landing = s.get(f"{hub.url}/user/{lr.name}/", timeout=60)    # the server's default URL: the same link
    out: dict[str, Any] = {"link_status": page.status_code, "link_url": page.url, "landing_url": landing.url,
                           "phases": [], "messages": []}
    t0 = time.monotonic()
    with requests.get(f"{hub.url}/user/{lr.name}/git-pull/api?{q}", headers=_auth(lr), stream=True,
                      timeout=60) as r:
        out["api_status"] = r.status_code
        for line in r.iter_lines(decode_unicode=True):
            if time.monotonic() - t0 > timeout:
                out["phases"].append("timeout")
                break
            if line and line.startswith("data: "):
                with contextlib.suppress(ValueError):
                    ev = json.loads(line[6:])
                    if isinstance(ev, dict):
                        out["phases"].append(ev.get("phase"))
                        out["messages"].append(str(ev.get("message") or ev.get("output") or "")[:300])
                        if ev.get("phase") in ("finished", "error"):
                            break
    out["pull_s"] = time.monotonic() - t0
    return out


def login_session(hub: Hub, lr: Learner) -> requests.Session:
    """The hub's login form with the account's Unix password (PAM): a session with the hub's cookie,
    as a browser has after logging in."""
    s = requests.Session()
    s.get(f"{hub.url}/hub/login", timeout=30).raise_for_status()
    xsrf = s.cookies.get("_xsrf")
    r = s.post(f"{hub.url}/hub/login", data={"username": lr.name, "password": lr.password, "_xsrf": xsrf},
               allow_redirects=False, timeout=60)
    if r.status_code != 302 or "jupyterhub-hub-login" not in s.cookies:
        raise RuntimeError(f"{lr.name}: login refused ({r.status_code})")
    return s


def login(hub: Hub, lr: Learner) -> str:
    """The hub's login form with the learner's Unix password (PAM), then their own API token."""
    s = login_session(hub, lr)
    xsrf = [c.value for c in s.cookies if c.name == "_xsrf"][-1]  # login issues a new one for the session
    r = s.post(f"{hub.url}/hub/api/users/{lr.name}/tokens", json={"note": "workshop room", "expires_in": 7200},
               headers={"X-XSRFToken": xsrf, "Referer": f"{hub.url}/hub/"}, timeout=30)
    r.raise_for_status()
    lr.token = r.json()["token"]
    return lr.token


def _auth(lr: Learner) -> dict[str, str]:
    return {"Authorization": f"token {lr.token}"}


def spawn(hub: Hub, lr: Learner, timeout: float = 400) -> None:
    """Start the learner's server with their own token and wait until the hub says it is ready."""
    r = requests.post(f"{hub.url}/hub/api/users/{lr.name}/server", headers=_auth(lr), timeout=60)
    if r.status_code not in (201, 202):
        raise RuntimeError(f"{lr.name}: spawn refused {r.status_code} {r.text[:200]}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        u = requests.get(f"{hub.url}/hub/api/users/{lr.name}", headers=_auth(lr), timeout=30).json()
        srv = u.get("servers", {}).get("")
        if srv and srv.get("ready"):
            return
        if not srv and not u.get("pending"):
            raise RuntimeError(f"{lr.name}: server failed to start; hub log:\n{hub.log_tail()}")
        time.sleep(0.25)
    raise TimeoutError(f"{lr.name}: server not ready after {timeout} s")


class Kernel:
    """A kernel in a learner's server, driven over Jupyter Server's REST API and kernel websocket.

    A reader thread keeps receiving, as a browser tab does: Jupyter Server pings every 30 s and
    closes a websocket that has not answered for 90 s (websocket-client answers pings in recv()).
    """

    def __init__(self, hub: Hub, lr: Learner) -> None:
        self.base = f"{hub.url}/user/{lr.name}"
        self.headers = _auth(lr)
        r = requests.post(f"{self.base}/api/kernels", json={"name": "python3"}, headers=self.headers, timeout=120)
        r.raise_for_status()
        self.id = r.json()["id"]
        self.session = uuid.uuid4().hex
        ws_url = self.base.replace("http://", "ws://") + f"/api/kernels/{self.id}/channels"
        self.ws = websocket.create_connection(ws_url, header=[f"Authorization: token {lr.token}"], timeout=120)
        self.ws.settimeout(2)
        self._inbox: queue.Queue[str | BaseException] = queue.Queue()
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                self._inbox.put(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            except Exception as e:  # noqa: BLE001 — handed to execute()
                self._inbox.put(e)
                return

    def execute(self, code: str, timeout: float = 120) -> dict[str, Any]:
        """Run ``code``; the JSON after the last ``@@`` it printed, or {"error": ...}."""
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "room", "session": self.session, "msg_type": "execute_request",
                       "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        out, error = [], None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply within {timeout} s to {code[:60]!r}")
            try:
                raw = self._inbox.get(timeout=left)
            except queue.Empty:
                continue
            if isinstance(raw, BaseException):
                raise raw
            m = json.loads(raw)
            if m.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            t, c = m["msg_type"], m["content"]
            if t == "stream":
                out.append(c["text"])
            elif t == "error":
                error = f"{c['ename']}: {c['evalue']}"
            elif t == "status" and c["execution_state"] == "idle":
                break
        text = "".join(out)
        if error:
            return {"error": error, "stdout": text}
        payload = text.rpartition("@@")[2]
        return json.loads(payload) if "@@" in text else {"stdout": text}

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(Exception):
            self.ws.close()
        self._reader.join(5)


# ---------------------------------------------------------------------------------------------
# checks on results (KERNEL.md rules)

def syn_schedule_agrees(summary: dict[str, Any], predicted: list[float], predicted_fail: float,
                        tol: float = 0.10) -> bool:
    """Every retransmission and the failure within ``tol`` (relative) of the kernel's schedule."""
    times = summary.get("retransmit_times") or []
    if len(times) != len(predicted) - 1 or summary.get("failed_after") is None:
        return False
    ok = all(abs(t - p) <= tol * p for t, p in zip(times, predicted[1:]))
    return ok and abs(summary["failed_after"] - predicted_fail) <= tol * predicted_fail


def rule_violations(name: str, params: dict[str, Any], res: dict[str, Any]) -> list[str]:
    """What in a learner's result contradicts KERNEL.md (empty: all rules hold)."""
    if "error" in res:
        return [f"{name}: {res['error']}"]
    bad = []
    s, c = res["summary"], res["counters"]
    if res["mode"] != "real" or not res["reason"].startswith("Linux kernel in a private"):
        bad.append(f"{name} ran {res['mode']} ({res['reason']})")
    if name == "accept_queue":
        b, n = int(params["backlog"]), int(params["clients"])
        somax = int(res["sysctls"]["net.core.somaxconn"])
        want = min(b, somax) + 1
        if (s["established_clients"], s["recv_q"], s["send_q"], s["syn_sent_clients"]) != (want, want, b, n - want):
            bad.append(f"accept_queue backlog={b}: ESTAB/recv_q/send_q/SYN_SENT {s['established_clients']}/"
                       f"{s['recv_q']}/{s['send_q']}/{s['syn_sent_clients']}, rule says {want}/{want}/{b}/{n - want}")
        # counters question (notebook 03): each SYN_SENT client's SYN and its 1 s retry are dropped
        if not (s["ListenOverflows"] == s["ListenDrops"] == 2 * (n - want)):
            bad.append(f"accept_queue: ListenOverflows={s['ListenOverflows']} ListenDrops={s['ListenDrops']}, "
                       f"own experiment alone gives 2 x {n - want}")
    elif name == "syn_queue":
        b, n = int(params["backlog"]), int(params["clients"])
        if (s["syn_recv"], s["TCPReqQFullDrop"], s["ListenDrops"]) != (b + 1, n - b - 1, n - b - 1):
            bad.append(f"syn_queue backlog={b} clients={n} cookies=0: SYN_RECV {s['syn_recv']} "
                       f"TCPReqQFullDrop {s['TCPReqQFullDrop']} ListenDrops {s['ListenDrops']}, rule says "
                       f"{b + 1}/{n - b - 1}/{n - b - 1}")
    elif name == "syn_retries":
        n = s["syns_sent"]
        if not (c.get("ListenOverflows") == c.get("ListenDrops") == c.get("TCPTimeouts") == n):
            bad.append(f"syn_retries: counters {c} should all equal syns_sent={n} (own namespace only)")
        if s["error"] != "ETIMEDOUT":
            bad.append(f"syn_retries: connect() ended with {s['error']}, not ETIMEDOUT")
    return bad


# ---------------------------------------------------------------------------------------------
# the room

@dataclass
class Session:
    """One learner's run: timings (s) and results."""
    learner: Learner
    kernel: Kernel | None = None
    spare: Kernel | None = None  # a second notebook: used to probe a neighbour while experiments run
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    first_result_s: float | None = None
    error: str | None = None


def _in_threads(fn: Callable[[int], Any], n: int) -> None:
    threads = [threading.Thread(target=fn, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)


def start_sessions(hub: Hub, learners: list[Learner], spare_kernel: bool = False) -> list[Session]:
    """Everyone at the same time (the first minute of a workshop): log in, spawn, open a notebook,
    run the setup cell and the first experiment. ``first_result_s`` is measured from the login."""
    sessions = [Session(lr) for lr in learners]
    go = threading.Barrier(len(learners))

    def one(i: int) -> None:
        s = sessions[i]
        try:
            go.wait(60)
            t0 = time.monotonic()
            login(hub, s.learner)
            spawn(hub, s.learner)
            s.kernel = Kernel(hub, s.learner)
            r = s.kernel.execute(SETUP)
            if "error" in r:
                raise RuntimeError(f"setup cell: {r['error']}")
            name, params = experiment_plan(i)[0]
            t1 = time.monotonic()
            s.results[name] = s.kernel.execute(cell(name, params))
            s.latency[name] = time.monotonic() - t1
            s.first_result_s = time.monotonic() - t0
            if spare_kernel:
                s.spare = Kernel(hub, s.learner)
        except Exception as e:  # noqa: BLE001 — reported per learner
            s.error = f"{type(e).__name__}: {e}"

    _in_threads(one, len(learners))
    return sessions


def run_round(sessions: list[Session], names: tuple[str, ...] = ("accept_queue", "syn_queue", "syn_retries"),
              during: Callable[[], None] | None = None) -> None:
    """Every learner runs the cells ``names`` at the same time; ``during`` runs meanwhile in this thread."""
    live = [s for s in sessions if s.error is None]
    if not live:
        return
    go = threading.Barrier(len(live) + (1 if during else 0))

    def one(i: int) -> None:
        s = live[i]
        try:
            go.wait(60)
            for name, params in experiment_plan(sessions.index(s)):
                if name not in names:
                    continue
                t = time.monotonic()
                s.results[name] = s.kernel.execute(cell(name, params))
                s.latency[name] = time.monotonic() - t
        except Exception as e:  # noqa: BLE001
            s.error = f"{type(e).__name__}: {e}"

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(live))]
    for t in threads:
        t.start()
    if during:
        go.wait(60)
        during()
    for t in threads:
        t.join(600)


def memory_per_learner(hub: Hub, sessions: list[Session]) -> dict[str, float]:
    """PSS and RSS (MB) per learner: their server + kernels, plus an equal share of hub + proxy."""
    def mem(procs: list[psutil.Process]) -> tuple[float, float]:
        pss = rss = 0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                m = p.memory_full_info()
                pss, rss = pss + m.pss, rss + m.rss
        return pss / 2**20, rss / 2**20

    hub_pss, hub_rss = mem(hub.processes())
    per = [mem(learner_processes({s.learner.uid})) for s in sessions if s.error is None]
    if not per:
        return {"pss_mb": float("nan"), "rss_mb": float("nan"), "hub_pss_mb": hub_pss,
                "server_kernel_pss_mb": float("nan")}
    n = len(per)
    return {"pss_mb": statistics.mean(p for p, _ in per) + hub_pss / n,
            "rss_mb": statistics.mean(r for _, r in per) + hub_rss / n,
            "hub_pss_mb": hub_pss, "server_kernel_pss_mb": statistics.mean(p for p, _ in per)}


def snapshot_proc_sys_net() -> dict[str, str]:
    """Every readable file under the host's /proc/sys/net (write-only ones record their error)."""
    snap = {}
    for root, _dirs, files in os.walk("/proc/sys/net"):
        for f in files:
            path = os.path.join(root, f)
            try:
                with open(path) as fh:
                    snap[path] = fh.read()
            except OSError as e:
                snap[path] = f"<{e.strerror}>"
    return snap


def host_sockets_of(uids: set[int]) -> list[str]:
    """Host-namespace TCP/UDP sockets owned by ``uids`` (the uid column of /proc/net/*)."""
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        with contextlib.suppress(OSError), open(f"/proc/net/{proto}") as f:
            for line in list(f)[1:]:
                cols = line.split()
                if int(cols[7]) in uids:
                    found.append(f"{proto} {cols[1]} uid {cols[7]}")
    return found


@contextlib.contextmanager
def room(n: int, state_dir: Path, prefix: str = PREFIX) -> Iterator[tuple[Hub, list[Learner]]]:
    """``n`` fresh learner accounts and a running hub; on exit the hub stops and the accounts go."""
    learners = create_learners(n, prefix)
    hub = Hub(state_dir)
    try:
        hub.start()
        yield hub, learners
    finally:
        hub.stop()
        remove_learners(learners)


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (with fewer than 100 samples, p99 is the slowest one)."""
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))
    return xs[k]


# ---------------------------------------------------------------------------------------------
# the capacity table (make workshop-bench)

def bench(levels: list[int], state_root: Path, rounds: int = 2) -> list[dict[str, Any]]:
    """For each level N: a fresh room of N learners, everyone starting together, then ``rounds``
    rounds of notebooks 03–05 at the same time. Returns one row per level."""
    sys.path.insert(0, str(ROOT))
    from tcplab.experiments.syn_retries import predict_syn_times

    lin = 4 if os.path.exists("/proc/sys/net/ipv4/tcp_syn_linear_timeouts") else 0
    predicted, predicted_fail = predict_syn_times(2, lin)
    rows = []
    for n in levels:
        load_before = os.getloadavg()[0]
        with room(n, state_root / f"n{n}") as (hub, learners):
            sessions = start_sessions(hub, learners)
            firsts = [s.first_result_s for s in sessions if s.first_result_s is not None]
            lat: dict[str, list[float]] = {}
            agree = total = busy = off_flagged = 0
            for _ in range(rounds):
                run_round(sessions)
                for s in sessions:
                    if s.error is None:
                        for k, v in s.latency.items():
                            lat.setdefault(k, []).append(v)
                        r = s.results.get("syn_retries", {})
                        if "summary" in r:
                            total += 1
                            ok = syn_schedule_agrees(r["summary"], predicted, predicted_fail)
                            flagged = not r.get("trusted", True)   # Result.trusted: fidelity lost
                            agree, busy, off_flagged = agree + ok, busy + flagged, off_flagged + (flagged and not ok)
            mem = memory_per_learner(hub, sessions)
            errors = [f"{s.learner.name}: {s.error}" for s in sessions if s.error]
        row = {"learners": n, "errors": errors, "first_result_p50": statistics.median(firsts) if firsts else None,
               "first_result_max": max(firsts) if firsts else None,
               **{f"{k}_p50": percentile(v, 50) for k, v in lat.items()},
               **{f"{k}_p99": percentile(v, 99) for k, v in lat.items()},
               "syn_retries_agree": f"{agree}/{total}", "syn_retries_flagged_busy": busy,
               # of the runs off by more than 10 %, how many said the host was too busy
               "syn_retries_off_and_flagged": f"{off_flagged}/{total - agree}",
               "load_before": load_before, **mem}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


# ---------------------------------------------------------------------------------------------
# notebook 15 at once (make workshop-bench14)

#: notebook 15's two load-sensitive real runs, with the utilization its asserts need
NB14_RUNS: tuple[tuple[str, dict[str, Any], float], ...] = (
    ("deep", {"rate_mbit": 10, "rtt_ms": 20, "buffer_packets": 200, "algorithm": "cubic", "duration": 5}, 0.9),
    ("two", {"rate_mbit": 20, "rtt_ms": 30, "buffer_packets": 40, "flows": 2, "duration": 6}, 0.8),
)


def run_congestion_round(sessions: list[Session]) -> None:
    """Every learner runs notebook 15's ``deep`` then ``two`` (mode='real') at the same time."""
    live = [s for s in sessions if s.error is None]
    if not live:
        return
    go = threading.Barrier(len(live))

    def one(i: int) -> None:
        s = live[i]
        try:
            go.wait(60)
            for label, params, _ in NB14_RUNS:
                t = time.monotonic()
                r = s.kernel.execute(cell("congestion", params), timeout=240)
                s.latency[label] = time.monotonic() - t
                s.results.setdefault(label + "_all", []).append(r)   # type: ignore[attr-defined]
        except Exception as e:  # noqa: BLE001
            s.error = f"{type(e).__name__}: {e}"

    _in_threads(one, len(live))


def bench14(levels: list[int], state_root: Path, rounds: int = 2) -> list[dict[str, Any]]:
    """For each level N: a fresh room of N learners (everyone logs in together, as in :func:`bench`),
    then ``rounds`` rounds in which all of them run notebook 15's ``deep`` and ``two`` congestion runs
    at once. Counts the real runs whose fidelity held at once, held on the repeat, or was lost twice
    (flagged: ``Result.trusted`` False), the delay line's p99 lateness, and the utilization of the runs
    that held against the notebook's asserts (a trusted run below them would be a fidelity miss)."""
    rows = []
    for n in levels:
        load_before = os.getloadavg()[0]
        t_level = time.monotonic()
        with room(n, state_root / f"c{n}") as (hub, learners):
            sessions = start_sessions(hub, learners)
            lat: list[float] = []
            for _ in range(rounds):
                run_congestion_round(sessions)
                lat += [v for s in sessions if s.error is None for k, v in s.latency.items() if k in ("deep", "two")]
            errors = [f"{s.learner.name}: {s.error}" for s in sessions if s.error]
            runs = []
            for s in sessions:
                for label, _params, need in NB14_RUNS:
                    for r in s.results.get(label + "_all", []):   # type: ignore[union-attr]
                        runs.append((label, need, r))
        real = [(lb, need, r) for lb, need, r in runs if r.get("mode") == "real"]
        held1 = sum(1 for _, _, r in real if r.get("trusted") and r.get("attempts") == 1)
        held2 = sum(1 for _, _, r in real if r.get("trusted") and r.get("attempts") == 2)
        lost = sum(1 for _, _, r in real if not r.get("trusted"))
        p99 = sorted((r.get("timings") or {}).get("delay_line", float("nan")) for _, _, r in real)
        trusted_util = [r["summary"]["utilization"] for _, _, r in real if r.get("trusted")]
        miss = sum(1 for _, need, r in real if r.get("trusted") and r["summary"]["utilization"] <= need)
        sched = sorted({n_ for _, _, r in real for n_ in r.get("notes", []) if n_.startswith("delay line scheduling")})
        row = {"learners": n, "errors": errors, "runs": len(runs), "real": len(real), "held_at_once": held1,
               "held_on_repeat": held2, "lost": lost, "sim": len(runs) - len(real) - sum(1 for _, _, r in runs if "error" in r),
               "run_errors": [r["error"] for _, _, r in runs if "error" in r][:3],
               "delay_line_p99_median_ms": statistics.median(p99) if p99 else None,
               "delay_line_p99_max_ms": max(p99) if p99 else None,
               "trusted_utilization_min": min(trusted_util) if trusted_util else None,
               "trusted_below_assert": miss, "cell_p50_s": percentile(lat, 50) if lat else None,
               "cell_max_s": max(lat) if lat else None, "scheduling": sched, "load_before": load_before,
               "level_s": time.monotonic() - t_level}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def table14(rows: list[dict[str, Any]]) -> str:
    head = ("| learners at once | real runs | held at once | held on the repeat | lost twice (flagged) "
            "| delay line p99 median / max (ms) | utilization min of trusted runs | trusted below the assert "
            "| cell p50 / max (s) |")
    lines = [head, "|" + "---|" * 9]

    def f(v: Any, fmt: str = ".1f") -> str:
        return "–" if v is None else format(v, fmt)

    for r in rows:
        lines.append(f"| {r['learners']} | {r['real']} of {r['runs']} | {r['held_at_once']} | {r['held_on_repeat']} "
                     f"| {r['lost']} | {f(r['delay_line_p99_median_ms'])} / {f(r['delay_line_p99_max_ms'])} "
                     f"| {f(r['trusted_utilization_min'], '.3f')} | {r['trusted_below_assert']} "
                     f"| {f(r['cell_p50_s'])} / {f(r['cell_max_s'])} |")
    return "\n".join(lines)


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| learners | first result p50 / max (s) | accept_queue p50 / p99 (s) | syn_queue p50 / p99 (s) "
            "| syn_retries p50 / p99 (s) | syn_retries within 10 % | flagged busy | PSS / RSS per learner (MB) |")
    lines = [head, "|" + "---|" * 8]

    def f(r: dict[str, Any], k: str) -> str:
        return "–" if r.get(k) is None else f"{r[k]:.1f}"

    for r in rows:
        lines.append(f"| {r['learners']} | {f(r, 'first_result_p50')} / {f(r, 'first_result_max')} "
                     f"| {f(r, 'accept_queue_p50')} / {f(r, 'accept_queue_p99')} "
                     f"| {f(r, 'syn_queue_p50')} / {f(r, 'syn_queue_p99')} "
                     f"| {f(r, 'syn_retries_p50')} / {f(r, 'syn_retries_p99')} | {r['syn_retries_agree']} "
                     f"| {r['syn_retries_flagged_busy']} | {r['pss_mb']:.0f} / {r['rss_mb']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="room.py", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench", help="the capacity table")
    b.add_argument("--levels", default="1,4,8,12", help="comma-separated learner counts")
    b.add_argument("--rounds", type=int, default=2)
    b.add_argument("--state", default=str(HERE / "build" / "bench-state"))
    b.add_argument("--out", help="also write rows as JSON here")
    c = sub.add_parser("bench14", help="notebook 15's congestion runs at once: when fidelity is lost")
    c.add_argument("--levels", default="1,2,4,8", help="comma-separated learner counts")
    c.add_argument("--rounds", type=int, default=2)
    c.add_argument("--state", default=str(HERE / "build" / "bench-state"))
    c.add_argument("--out", help="also write rows as JSON here")
    a = p.parse_args(argv)
    try:
        levels = [int(x) for x in a.levels.split(",")]
    except ValueError:
        p.error(f"--levels must be comma-separated ints in 1..200, not {a.levels!r}")
    if not all(1 <= x <= 200 for x in levels):
        p.error("--levels must be ints in 1..200")
    if not 1 <= a.rounds <= 20:
        p.error(f"--rounds must be in 1..20, not {a.rounds}")
    t0 = time.monotonic()
    if a.cmd == "bench14":
        rows = bench14(levels, Path(a.state), a.rounds)
        print(table14(rows))
    else:
        rows = bench(levels, Path(a.state), a.rounds)
        print(table(rows))
    print(f"(measured in {time.monotonic() - t0:.0f} s; {os.cpu_count()} CPUs; load average before each level: "
          + ", ".join(f"{r['load_before']:.1f}" for r in rows) + ")")
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
