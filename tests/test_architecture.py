"""Keep the layers honest (DESIGN.md): imports go one way, the model does no I/O,
``__all__`` lists exactly what exists, and ``import tcplab`` loads no pandas/plotly."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

import tcplab

PKG = pathlib.Path(tcplab.__file__).parent

# layer -> tcplab layers it may import
ALLOWED = {
    "model": {"model", "errors", "_validate"},
    "sim": {"sim", "model", "errors", "_validate"},
    "kernel": {"kernel", "model", "errors", "_validate"},  # model: pure data tables only
    "experiments": {"experiments", "kernel", "sim", "model", "errors", "_validate"},
    "viz": {"viz", "model", "errors", "_validate", "experiments"},
    "widgets": {"widgets", "viz", "experiments", "model", "errors", "_validate", "observe", "kernel"},
}
IO_MODULES = {"socket", "os", "time", "subprocess", "select", "fcntl", "ctypes", "io", "pathlib", "random"}


def _imports(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(layer: str):
    return sorted((PKG / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_go_one_way(layer):
    for path in _modules(layer):
        for name in _imports(path):
            if name == "tcplab" or name.startswith("tcplab."):
                parts = name.split(".")
                target = parts[1] if len(parts) > 1 else "tcplab"
                assert target in ALLOWED[layer], f"{path.relative_to(PKG)} imports {name}"


@pytest.mark.parametrize("layer", ["model", "sim"])
def test_model_and_sim_do_no_io(layer):
    for path in _modules(layer):
        bad = {n.split(".")[0] for n in _imports(path)} & IO_MODULES
        assert not bad, f"{path.relative_to(PKG)} imports {bad}: the model is pure (time and rng are parameters)"


def test_nothing_outside_widgets_imports_widgets():
    for path in PKG.rglob("*.py"):
        if "widgets" in path.relative_to(PKG).parts:
            continue
        assert not any(n.startswith("tcplab.widgets") for n in _imports(path)), path


def test_all_is_honest():
    for name in tcplab.__all__:
        assert getattr(tcplab, name) is not None, name
    public = {n for n in dir(tcplab) if not n.startswith("_")}
    assert public == set(tcplab.__all__) - {"__version__"} | (public & {"annotations"})


def test_import_is_light():
    code = "import sys, tcplab; print(sorted(m for m in ('pandas', 'plotly', 'numpy', 'ipywidgets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("module", ["tcplab.viz", "tcplab.widgets", "tcplab.experiments", "tcplab.model"])
def test_subpackage_all_is_honest(module):
    import importlib
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert getattr(mod, name) is not None, f"{module}.{name}"
