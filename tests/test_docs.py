"""Docs kept honest: the API reference matches the docstrings; the README's commands exist."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).parents[1]


def test_api_reference_is_in_sync():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_api.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_readme_has_exactly_the_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^(make \w+)", quick, flags=re.M)
    assert commands == ["make lab", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^lab:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_notebook_is_committed_without_outputs():
    import json
    for path in sorted((ROOT / "course").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        assert "widgets" not in nb.get("metadata", {}), path.name
        for cell in nb["cells"]:
            assert not cell.get("outputs") and not cell.get("execution_count"), path.name
