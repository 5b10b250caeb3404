"""Binder: repo2docker accepts binder/ (it builds from a fresh clone of what is committed),
and the environment it would install is the course's pinned stack plus tcplab itself.
(`make test-restricted` installs binder/requirements.txt into a fresh venv and runs the
whole course from it.)"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[1]


def test_requirements_pin_the_course_and_install_tcplab():
    lines = [l.strip() for l in (ROOT / "binder" / "requirements.txt").read_text().splitlines()
             if l.strip() and not l.startswith("#")]
    assert "." in lines  # tcplab itself, from the repository root
    pinned = {l.split("==")[0] for l in lines if "==" in l}
    assert {"jupyterlab", "ipywidgets", "plotly", "anywidget", "pandas"} <= pinned
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"


def test_repo2docker_accepts_the_configuration(tmp_path):
    r2d = shutil.which("repo2docker") or str(pathlib.Path(sys.executable).parent / "repo2docker")
    if not pathlib.Path(r2d).exists():
        pytest.skip("jupyter-repo2docker is not installed")
    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(".venv*", ".git", "__pycache__", ".pytest_cache"))
    out = subprocess.run([r2d, "--no-build", "--debug", str(repo)], capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-2000:]
    assert 'pip install --no-cache-dir -r "binder/requirements.txt"' in text
    assert "python=3.11" in text or "python-3.11" in text or "3.11" in text
