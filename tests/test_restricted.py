"""The Binder / locked-down hub case for real: non-root, namespaces forbidden by the kernel
(scripts/run_restricted.py), not by the TCPLAB_FORBID_NAMESPACES switch."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).parents[1] / "scripts" / "run_restricted.py"

pytestmark = [pytest.mark.real,  # probes namespaces (which the kernel refuses) in a child
              pytest.mark.skipif(os.geteuid() != 0, reason="run_restricted.py needs root to build the restriction")]


def restricted_python(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TCPLAB_FORBID_NAMESPACES"}
    return subprocess.run([sys.executable, str(SCRIPT), sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=120, env=env, cwd=str(SCRIPT.parents[1]))


def test_capabilities_say_why_when_namespaces_are_really_forbidden():
    out = restricted_python("import os, tcplab; c = tcplab.capabilities(); "
                            "print(os.geteuid(), c.real_with_sysctls, c['netns_unprivileged'].detail)")
    assert out.returncode == 0, out.stderr
    uid, real, detail = out.stdout.split(" ", 2)
    assert uid == "1000" and real == "False"
    assert "No space left on device" in detail  # ENOSPC from user.max_user_namespaces=0


def test_doctor_runs_restricted():
    out = restricted_python("import sys; from tcplab.cli import main; sys.exit(main(['doctor']))")
    assert out.returncode == 0, out.stderr
    assert "SIMULATED" in out.stdout and "not root (uid 1000)" in out.stdout


def test_watch_runs_restricted():
    """tcplab.watch needs no privilege and no namespace: a restricted learner watches its own listener
    and a connection to it (with tcp_info), and the command prints its table."""
    out = restricted_python(
        "import os, socket, tcplab\n"
        "srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(3)\n"
        "c = socket.create_connection(srv.getsockname())\n"
        "df = tcplab.watch(port=srv.getsockname()[1], duration=0)\n"
        "est = df[df.state == 'ESTABLISHED']\n"
        "print(os.geteuid(), sorted(df.state.astype(str)), int(df[df.state == 'LISTEN'].accept_queue.iloc[0]),"
        " bool((est.cwnd >= 1).all()))\n"
        "from tcplab.cli import main; main(['watch', '--state', 'LISTEN', '--duration', '0'])\n")
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0]
    assert first == "1000 ['ESTABLISHED', 'ESTABLISHED', 'LISTEN'] 1 True", out.stdout
    assert "sample 1" in out.stdout and "LISTEN" in out.stdout.split("sample 1", 1)[1]
