"""Every kernel constant is written once, in tcplab.model.profiles (a KernelProfile field, per
kernel version); everything else reads the profile or a name derived from it.

The test walks the code (not docstrings or comments: prose may quote the kernel) of every
module of the package and every code cell of the course, and fails on a constant written
again: an assignment of a number to a kernel-constant name, or one of the kernel's
distinctive literals (CUBIC's 717, a 4 ms jiffy, the 120 s RTO ceiling, a retries2 of 15).
"""

from __future__ import annotations

import ast
import json
import pathlib

import pytest

import tcplab

PKG = pathlib.Path(tcplab.__file__).parent
COURSE = PKG.parent / "course"
HOME = PKG / "model" / "profiles.py"

#: names that, assigned a number, are a kernel constant written again
CONSTANT_NAMES = {"TCP_RTO_MIN", "TCP_RTO_MAX", "TCP_TIMEOUT_INIT", "HZ_TICK", "TCP_DELACK_MIN", "TCP_DELACK_MAX",
                  "TCP_RETR2", "DEFAULT_RETRIES2", "BETA_CUBIC", "C_CUBIC", "DELACK", "RTO_MIN", "RTO_MAX",
                  "_TICK", "SOMAXCONN"}
#: parameters that carry a kernel constant: a literal default or keyword value is a copy
CONSTANT_PARAMS = {"retries2": "the profile's retries2", "rto_max": "the profile's rto_max",
                   "rto_min": "the profile's rto_min", "rto_initial": "the profile's rto_initial",
                   "tick": "the profile's timer_tick"}
#: literals that only ever mean a kernel constant here
LITERALS = {717: "CUBIC's beta (717/1024): the profile's cubic_beta"}


def _number(node: ast.AST) -> bool:
    """A literal number, or arithmetic of literal numbers only (717 / 1024)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (int, float)) and not isinstance(node.value, bool)
    if isinstance(node, ast.BinOp):
        return _number(node.left) and _number(node.right)
    if isinstance(node, ast.UnaryOp):
        return _number(node.operand)
    return False


def offences(source: str, where: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None and _number(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id in CONSTANT_NAMES:
                    found.append(f"{where}:{node.lineno}: {t.id} = a literal (read it from the profile)")
        elif isinstance(node, ast.Constant) and type(node.value) is int and node.value in LITERALS:
            found.append(f"{where}:{node.lineno}: {node.value!r}, {LITERALS[node.value]}")
        elif isinstance(node, ast.arguments):
            names = [a.arg for a in node.posonlyargs + node.args][-len(node.defaults):] if node.defaults else []
            pairs = list(zip(names, node.defaults)) + [(a.arg, d) for a, d in zip(node.kwonlyargs, node.kw_defaults)]
            for name, default in pairs:
                if name in CONSTANT_PARAMS and default is not None and _number(default):
                    found.append(f"{where}:{default.lineno}: {name}= a literal default (use {CONSTANT_PARAMS[name]})")
        elif isinstance(node, ast.keyword) and node.arg in CONSTANT_PARAMS and _number(node.value) \
                and not (node.arg == "retries2"):    # a run's chosen retries2 is a parameter, not the default
            found.append(f"{where}:{node.lineno}: {node.arg}= a literal (use {CONSTANT_PARAMS[node.arg]})")
    return found


def _modules() -> list[pathlib.Path]:
    return sorted(p for p in PKG.rglob("*.py") if p != HOME)


def test_the_detector_finds_each_kind_of_copy():
    src = ("BETA_CUBIC = PROFILE.cubic_beta / 1024\nx = cwnd * 717 // 1024\ndef f(retries2=15, tick=0.004): pass\n"
           "TCP_RTO_MAX = 120.0\nsimulate(tick=0.004)\n")
    found = offences(src, "t")
    assert sorted(f.split(":")[1] for f in found) == ["2", "3", "3", "4", "5"], found
    assert offences("TCP_RTO_MIN = PROFILE.rto_min\ny = 0.004\n'717 in prose'\nrun(retries2=3)\n", "t") == []


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_no_kernel_constant_is_written_again_in_the_package(path):
    assert offences(path.read_text(), str(path.relative_to(PKG.parent))) == []


def test_no_kernel_constant_is_written_again_in_the_course():
    found = []
    for nb in sorted(COURSE.glob("*.ipynb")):
        for i, cell in enumerate(json.loads(nb.read_text())["cells"]):
            if cell["cell_type"] != "code":
                continue
            src = "".join(cell["source"])
            found += offences(src, f"{nb.name} cell {i}")
            if "def path_packets" in src:
                found.append(f"{nb.name} cell {i}: defines its own path_packets (use tcplab.model.cc.path_packets)")
    assert found == []
