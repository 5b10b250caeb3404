"""JupyterHub for a tcplab workshop on ONE host (what The Littlest JupyterHub sets up).

    make workshop-env                      # the user environment + configurable-http-proxy (once)
    sudo workshop/build/env/bin/jupyterhub -f workshop/jupyterhub_config.py

* Authentication: PAM. A learner is a real Unix account in the group ``tcplab-learners``
  (``useradd -m -G tcplab-learners -K HOME_MODE=0700 alice && passwd alice``); nobody else
  (root included) can log in.
* Spawner: JupyterHub's local process spawner, as the learner's own uid (``setuid``), with
  JupyterLab as the default UI. Before the server starts, a copy of ``course/`` lands in
  ``~/tcplab-course`` (only if it is not there yet: a learner's work is never overwritten); or,
  with TCPLAB_COURSE_GIT, nothing is copied and every learner lands on an nbgitpuller link that
  clones the course repository into ``~/tcplab-course`` and later merges its updates.
* The instructor's live view of the room: ``/services/tcplab-room/`` (workshop/room_view.py),
  for the hub's admins = accounts in TCPLAB_INSTRUCTOR_GROUP.
* Per-learner limits, set in the child before it drops to the learner's uid: open files
  (``RLIMIT_NOFILE``, an experiment with 1000 clients needs ~2100) and processes
  (``RLIMIT_NPROC``, counted per uid, threads included).
* Privacy: each learner's server gets its own mount namespace with its own ``/proc`` mounted
  ``hidepid=invisible`` (Linux >= 5.8), so a learner does not even see another learner's
  processes — without it, ``/proc/<pid>/net/*`` of a neighbour's experiment (its private
  namespace's sockets and counters) is world-readable. TLJH's systemd spawner gets the same
  with ``ProtectProc=invisible``. Experiments still create their own user+net namespaces
  inside (checked by tests/test_workshop.py).

Everything that differs between hosts comes from the environment (defaults in brackets):
TCPLAB_WORKSHOP_ENV [workshop/build/env] the Python environment with jupyterhub, jupyterlab and
tcplab[course]; TCPLAB_HUB_STATE [workshop/build/state] database, cookie secret, logs;
TCPLAB_HUB_PORT [8000], TCPLAB_HUB_API_PORT [8081], TCPLAB_PROXY_API_PORT [8001];
TCPLAB_COURSE_DIR [course/]; TCPLAB_COURSE_GIT [''] and TCPLAB_COURSE_BRANCH [main] (nbgitpuller);
TCPLAB_LEARNER_GROUP [tcplab-learners]; TCPLAB_INSTRUCTOR_GROUP
[tcplab-instructors] (its accounts are the hub's admins); TCPLAB_ROOM_PORT [8002] and TCPLAB_ROOM_REFRESH [5]
(the room view, below);
TCPLAB_NOFILE [4096], TCPLAB_NPROC [512]; TCPLAB_HUB_ADMIN_TOKEN (optional: a service token with
admin scopes, for scripts such as workshop/room.py).
"""

from __future__ import annotations

import ctypes
import grp
import os
import pwd
import resource
import shutil
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Bool, Int

HERE = Path(__file__).resolve().parent
ENV = Path(os.environ.get("TCPLAB_WORKSHOP_ENV", HERE / "build" / "env"))
STATE = Path(os.environ.get("TCPLAB_HUB_STATE", HERE / "build" / "state"))
COURSE = Path(os.environ.get("TCPLAB_COURSE_DIR", HERE.parent / "course"))
GROUP = os.environ.get("TCPLAB_LEARNER_GROUP", "tcplab-learners")
INSTRUCTORS = os.environ.get("TCPLAB_INSTRUCTOR_GROUP", "tcplab-instructors")
ROOM_PORT = int(os.environ.get("TCPLAB_ROOM_PORT", 8002))
CHP = HERE / "build" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
COURSE_DIR_NAME = "tcplab-course"
# The course handed out by nbgitpuller instead of copied: a git URL of the course repository (or the
# path of a clone on this host, e.g. /opt/tcplab). Every learner then lands on the git-pull link,
# which clones it the first time and later merges the instructor's updates into their copy, keeping
# their edits (nbgitpuller's merge rules). Empty: the course is copied at the first spawn.
COURSE_GIT = os.environ.get("TCPLAB_COURSE_GIT", "")
COURSE_BRANCH = os.environ.get("TCPLAB_COURSE_BRANCH", "main")


def git_pull_path(repo: str = COURSE_GIT, branch: str = COURSE_BRANCH) -> str:
    """The nbgitpuller link's path and query, below a learner's server (or behind
    ``<hub>/hub/user-redirect/``): the repository into ~/tcplab-course, JupyterLab on its course/."""
    from urllib.parse import urlencode

    return "git-pull?" + urlencode({"repo": repo, "branch": branch, "targetpath": COURSE_DIR_NAME,
                                    "urlpath": f"lab/tree/{COURSE_DIR_NAME}/course"})

# mount(2) / unshare(2) constants (linux/mount.h, linux/sched.h)
_CLONE_NEWNS = 0x00020000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x8, 0x4000, 0x40000


def _private_proc() -> None:
    """In the spawned child (still root): a mount namespace of its own with a /proc that
    shows only the learner's processes. Raises OSError if the kernel refuses."""
    libc = ctypes.CDLL(None, use_errno=True)

    def check(rc: int, what: str) -> None:
        if rc != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    check(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # stop mounts from propagating back to the host before mounting anything
    check(libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "mount --make-rprivate /")
    check(libc.mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, b"hidepid=invisible"),
          "mount -t proc -o hidepid=invisible proc /proc")


class TcplabSpawner(LocalProcessSpawner):
    """LocalProcessSpawner + per-learner rlimits + a private /proc + the course copied at spawn."""

    nofile = Int(int(os.environ.get("TCPLAB_NOFILE", 4096)), config=True, help="RLIMIT_NOFILE per learner server")
    nproc = Int(int(os.environ.get("TCPLAB_NPROC", 512)), config=True,
                help="RLIMIT_NPROC for the learner's uid (threads count too)")
    private_proc = Bool(True, config=True, help="own mount namespace with /proc hidepid=invisible")

    def make_preexec_fn(self, name: str):
        drop_privileges = super().make_preexec_fn(name)  # setgid/initgroups/setuid + chdir home
        limits = [(resource.RLIMIT_NOFILE, self.nofile), (resource.RLIMIT_NPROC, self.nproc)]
        private = self.private_proc

        def preexec() -> None:
            if private:
                _private_proc()
            for which, value in limits:
                resource.setrlimit(which, (value, value))
            drop_privileges()

        return preexec


def deliver_course(spawner: TcplabSpawner) -> None:
    """pre_spawn_hook: home dir 0700 every time; ~/tcplab-course from course/ the first time, unless
    nbgitpuller hands out the course (TCPLAB_COURSE_GIT)."""
    pw = pwd.getpwnam(spawner.user.name)
    home = Path(pw.pw_dir)
    os.chmod(home, 0o700)  # learners cannot list or read each other's notebooks and results
    dest = home / COURSE_DIR_NAME
    if COURSE_GIT or dest.exists():
        return
    shutil.copytree(COURSE, dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    for root, dirs, files in os.walk(dest):
        for n in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
            os.chown(n, pw.pw_uid, pw.pw_gid)


c = get_config()  # noqa: F821 (defined by JupyterHub when it loads this file)

STATE.mkdir(mode=0o700, parents=True, exist_ok=True)
c.JupyterHub.ip = "127.0.0.1"  # behind a TLS reverse proxy in production; loopback in tests
c.JupyterHub.port = int(os.environ.get("TCPLAB_HUB_PORT", 8000))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("TCPLAB_HUB_API_PORT", 8081))
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(os.environ.get('TCPLAB_PROXY_API_PORT', 8001))}"
c.ConfigurableHTTPProxy.command = [str(CHP)]
c.ConfigurableHTTPProxy.pid_file = str(STATE / "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "cookie_secret")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every learner's server
c.JupyterHub.cleanup_proxy = True

c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.allowed_groups = {GROUP, INSTRUCTORS}
# an instructor is an account in INSTRUCTORS: a hub admin (the admin page, and the room view below)
c.PAMAuthenticator.admin_groups = {INSTRUCTORS}
c.PAMAuthenticator.open_sessions = False  # no systemd-logind session per learner on a container host
c.Authenticator.admin_users = set()

c.JupyterHub.spawner_class = TcplabSpawner
c.Spawner.cmd = [str(ENV / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = f"/{git_pull_path()}" if COURSE_GIT else f"/lab/tree/{COURSE_DIR_NAME}"
c.Spawner.notebook_dir = "~"
c.Spawner.pre_spawn_hook = deliver_course
# Kernels talk to their server over Unix sockets in the learner's runtime dir, not loopback TCP.
# With TCP the server picks free ports and the kernel binds them a moment later; with 24 learners
# starting kernels at once a port was taken meanwhile (ZMQError: Address already in use, the
# kernel died). Unix sockets also keep every kernel's channels off the shared loopback.
c.Spawner.args = ["--KernelManager.transport=ipc"]
# only what the learner needs: not the hub's PYTHONPATH (a learner imports the installed tcplab)
c.Spawner.env_keep = ["LANG", "LC_ALL", "TZ"]
c.Spawner.environment = {"PATH": f"{ENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",
                         "TCPLAB_PROGRESS": "1"}  # self-checks go to ~/.tcplab/progress.jsonl (tcplab workshop progress)
if COURSE_GIT.startswith("/"):
    # A clone on this host belongs to root, and git refuses to read a repository another user owns unless
    # it is a safe.directory (CVE-2022-24765), which only system or global config may say: `-c` and
    # GIT_CONFIG_COUNT are dropped for the local clone's upload-pack. So the learners' git gets a system
    # config of its own: the host's /etc/gitconfig, plus this one repository.
    GITCONFIG = ENV / "etc" / "tcplab-gitconfig"
    GITCONFIG.parent.mkdir(parents=True, exist_ok=True)
    GITCONFIG.write_text(f"[include]\n\tpath = /etc/gitconfig\n[safe]\n\tdirectory = {COURSE_GIT}\n")
    GITCONFIG.chmod(0o644)
    c.Spawner.environment["GIT_CONFIG_SYSTEM"] = str(GITCONFIG)
c.Spawner.start_timeout = 300  # 48 servers starting at once on 2 cores take ~3.4 s of CPU each
c.Spawner.http_timeout = 300
c.JupyterHub.concurrent_spawn_limit = 100
# an idle kernel holds ~60 MB; the culler (jupyterhub-idle-culler) is the TLJH default, not needed here

# The instructor's live view of the room (workshop/room_view.py) at /services/tcplab-room/: a
# hub-managed service, started and stopped with the hub, as the hub's user (it reads the learners'
# 0700 homes, never following a link in them). Access is the scope access:services!service=tcplab-room:
# the admin role has it, the user role does not, so a learner is refused (403) by the hub's OAuth.
c.JupyterHub.services = [{
    "name": "tcplab-room", "display": True, "oauth_no_confirm": True,
    "url": f"http://127.0.0.1:{ROOM_PORT}",
    "command": [str(ENV / "bin" / "python"), str(HERE / "room_view.py")],
    "environment": {"TCPLAB_LEARNER_GROUP": GROUP, "PATH": f"{ENV / 'bin'}:/usr/bin:/bin",
                    "TCPLAB_ROOM_REFRESH": os.environ.get("TCPLAB_ROOM_REFRESH", "5")},
}]

admin_token = os.environ.get("TCPLAB_HUB_ADMIN_TOKEN")
if admin_token:
    c.JupyterHub.services.append({"name": "workshop-admin", "api_token": admin_token})
    c.JupyterHub.load_roles = [{"name": "workshop-admin",
                                "scopes": ["admin:users", "admin:servers", "list:users", "read:users"],
                                "services": ["workshop-admin"]}]

if not any(g.gr_name == GROUP for g in grp.getgrall()):
    print(f"jupyterhub_config: group {GROUP!r} does not exist yet: nobody can log in "
          f"(groupadd {GROUP}; useradd -m -G {GROUP} -K HOME_MODE=0700 NAME)")
