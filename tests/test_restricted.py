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
