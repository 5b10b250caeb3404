"""Keep the layers honest (docs/contributing.md): imports go one way over every module of the package,
the model does no I/O, only the kernel and the experiments' real runners open sockets and
processes, ``__all__`` lists exactly what exists, every exception is in the one tree of
``tcplab.errors``, and ``import tcplab`` loads no pandas/plotly."""

from __future__ import annotations

import ast
import importlib
import pathlib
import pkgutil
import re
import subprocess
import sys
import types

import pytest

import tcplab
from tcplab import _layers

PKG = pathlib.Path(tcplab.__file__).parent

#: THE layer map lives in the package (tcplab/_layers.py, drawn in docs/layers.md); this test holds
#: every module to it. Imports at module level, inside functions, under TYPE_CHECKING and relative
#: ones all count.
LAYERS = _layers.LAYERS
#: the package's own facade (``import tcplab``, ``from tcplab import sockets``): a module of the
#: package that imports it could reach every layer through it
FACADE = "tcplab"

IO_MODULES = {"socket", "os", "time", "subprocess", "select", "fcntl", "ctypes", "io", "pathlib", "random"}
#: what opens sockets, processes and namespaces; only kernel/ and the experiments' real runners may
SYSTEM_MODULES = {"socket", "select", "subprocess", "ctypes", "fcntl", "multiprocessing", "signal"}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module ``module``'s source imports, absolute, relative ones resolved; for ``from X
    import a`` both ``X`` and ``X.a`` (``a`` may be a submodule), but not ``tcplab`` itself for
    ``from tcplab import a`` (that is a dependency on ``a``, not on the facade)."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            if origin != "tcplab":
                names.add(origin)
            names |= {f"{origin}.{a.name}" for a in node.names if a.name != "*"}
    return names


def _layer(module: str) -> str | None:
    """``tcplab.kernel.loopback`` -> ``kernel``, ``tcplab.cli`` -> ``cli``, ``tcplab`` -> the
    facade; None for a module outside tcplab."""
    parts = module.split(".")
    if parts[0] != "tcplab":
        return None
    if len(parts) == 1:
        return FACADE
    return parts[1]


def _layers_imported(source: str, module: str, is_package: bool = False) -> set[str]:
    out = set()
    for name in _imported_modules(source, module, is_package):
        layer = _layer(name)
        if layer is None:
            continue
        if layer != FACADE and not (PKG / layer).is_dir() and not (PKG / f"{layer}.py").exists():
            layer = FACADE  # a public name of the facade (from tcplab import sockets), not a module
        out.add(layer)
    return out


def _declared_layer(module: str) -> str:
    """The most specific LAYERS key of ``module`` (``tcplab.experiments.spec`` -> ``experiments.spec``,
    ``tcplab.experiments.load`` -> ``experiments``); its top-level name if none is declared."""
    rel = module.removeprefix("tcplab").removeprefix(".") or "__init__"
    keys = [k for k in LAYERS if rel == k or rel.startswith(k + ".")]
    return max(keys, key=len) if keys else rel.split(".")[0]


def _package_modules() -> list[tuple[pathlib.Path, str, str]]:
    """(path, module name, layer) of every module of the package."""
    return [(path, _module_name(path), _declared_layer(_module_name(path))) for path in sorted(PKG.rglob("*.py"))]


MODULES = _package_modules()


def test_every_module_has_a_declared_layer():
    undeclared = sorted(str(p.relative_to(PKG)) for p, _, layer in MODULES if layer not in LAYERS)
    assert not undeclared, f"add these to LAYERS (which layers may they import?): {undeclared}"
    on_disk = {layer for _, _, layer in MODULES}
    assert set(LAYERS) <= on_disk, f"LAYERS names what does not exist: {set(LAYERS) - on_disk}"
    top_level = {k for k in LAYERS if "." not in k} - {"__init__", "__main__"}
    for layer, allowed in LAYERS.items():
        assert allowed <= top_level, layer


@pytest.mark.parametrize("path,module,layer", MODULES, ids=[str(p.relative_to(PKG)) for p, _, _ in MODULES])
def test_layer_imports_go_one_way(path, module, layer):
    imported = _layers_imported(path.read_text(), module, path.name == "__init__.py")
    bad = imported - LAYERS[layer] - ({layer} if "." not in layer else set())
    assert not bad, (f"{path.relative_to(PKG)} ({layer}) imports {sorted(bad)}; "
                     f"{layer} may import only {sorted(LAYERS[layer])} (LAYERS in this file)")


def test_the_import_scanner_sees_every_form():
    """The check above is only as good as this scanner: relative imports, imports in
    functions and under TYPE_CHECKING, the facade and its names all count."""
    source = (
        "import tcplab.sim.engine\n"
        "from tcplab import viz, sockets\n"
        "from . import common\n"
        "from ..kernel import loopback\n"
        "from .. import observe\n"
        "def f():\n    from tcplab.cli import main\n"
        "if TYPE_CHECKING:\n    from ...elsewhere import x\n    import tcplab.widgets\n"
    )
    got = _layers_imported(source, "tcplab.model.states")
    assert got == {"sim", "viz", FACADE, "model", "kernel", "observe", "cli", "widgets"}
    assert _layers_imported("from . import listen\n", "tcplab.model", is_package=True) == {"model"}


@pytest.mark.parametrize("layer", ["model", "sim"])
def test_model_and_sim_do_no_io(layer):
    for path, module, _ in (m for m in MODULES if m[2] == layer):
        top = {n.split(".")[0] for n in _imported_modules(path.read_text(), module, path.name == "__init__.py")}
        bad = top & IO_MODULES
        assert not bad, f"{path.relative_to(PKG)} imports {bad}: the model is pure (time and rng are parameters)"


def test_only_the_kernel_and_real_runners_open_sockets_and_processes():
    """Ordinary sockets: kernel/ and the experiments' real runners. Processes: kernel/ only."""
    for path, module, layer in MODULES:
        if layer == "kernel":
            continue
        top = {n.split(".")[0] for n in _imported_modules(path.read_text(), module, path.name == "__init__.py")}
        allowed = {"socket", "select"} if layer == "experiments" else set()
        bad = top & (SYSTEM_MODULES - allowed)
        assert not bad, f"{path.relative_to(PKG)} imports {bad}: sockets and processes belong in tcplab.kernel"


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes of a module and its classes and functions (prose may name /proc)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def host_primitives(source: str) -> set[str]:
    """The host-level primitives of _layers.HOST_PRIMITIVES that ``source`` uses."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found |= {n for n in names if n.split(".")[0] in {"fcntl", "ctypes"}}
        elif isinstance(node, ast.Attribute) and node.attr in {"ioctl", "AF_PACKET"}:
            found.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            found |= {p for p in ("/proc/", "/sys/") if node.value.startswith(p)}
    return found


def test_the_primitive_scanner_sees_every_form():
    src = ('"""Reads /proc/net/tcp (prose)."""\nimport fcntl\nimport ctypes.util\n'
           'def f(s):\n    """/proc/ in prose"""\n    fcntl.ioctl(s, 1)\n    socket.AF_PACKET\n'
           '    open("/proc/self/ns/net")\n    open(f"/sys/class/net/{x}/mtu")\n')
    assert host_primitives(src) == {"fcntl", "ctypes.util", "ioctl", "AF_PACKET", "/proc/", "/sys/"}


@pytest.mark.parametrize("path,module,layer", [m for m in MODULES if m[2] != "kernel"],
                         ids=[str(p.relative_to(PKG)) for p, _, layer in MODULES if layer != "kernel"])
def test_host_primitives_live_in_the_kernel_layer(path, module, layer):
    used = {p for p in host_primitives(path.read_text())
            if (module, p.split(".")[0]) not in _layers.EXCEPTIONS}
    assert not used, (f"{path.relative_to(PKG)} uses {sorted(used)}: host primitives are written once, in "
                      "tcplab/kernel/ (tcplab/_layers.py HOST_PRIMITIVES); call the kernel layer's function")


def test_nothing_outside_widgets_imports_widgets():
    for path, module, layer in MODULES:
        if layer not in {"widgets", "__init__"}:
            assert "widgets" not in _layers_imported(path.read_text(), module, path.name == "__init__.py"), path


def _public_namespace(module: types.ModuleType) -> tuple[set[str], set[str]]:
    """(public names bound in ``vars(module)`` that are not its submodules, its submodules),
    after loading every lazy name and importing every submodule."""
    for name in module.__all__:
        getattr(module, name)
    for info in pkgutil.iter_modules(module.__path__):
        if info.name != "__main__":  # that one runs the CLI
            importlib.import_module(f"{module.__name__}.{info.name}")
    names = {n for n in vars(module) if not n.startswith("_")}
    submodules = {n for n in names if isinstance(vars(module)[n], types.ModuleType)
                  and vars(module)[n].__name__ == f"{module.__name__}.{n}"}
    return names - submodules, submodules


@pytest.mark.parametrize("name", ["tcplab", "tcplab.widgets"])
def test_public_names_are_all(name):
    # vars(), not dir(): __dir__ returns __all__, so dir() cannot disagree with it
    module = importlib.import_module(name)
    public, submodules = _public_namespace(module)
    declared = {n for n in module.__all__ if not n.startswith("_")}
    assert public == declared - submodules, (
        f"in {name} but not in __all__: {sorted(public - declared)}; "
        f"in __all__ but not in {name}: {sorted(declared - submodules - public)}")
    for n in module.__all__:
        assert getattr(module, n) is not None, n


def test_import_is_light():
    code = "import sys, tcplab; print(sorted(m for m in ('pandas', 'plotly', 'numpy', 'ipywidgets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("module", ["tcplab.viz", "tcplab.widgets", "tcplab.experiments", "tcplab.model"])
def test_subpackage_all_is_honest(module):
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert getattr(mod, name) is not None, f"{module}.{name}"


# --- the exception tree -------------------------------------------------------------------------

def _drawn_tree() -> dict[str, str]:
    """child -> parent, as drawn in tcplab.errors' docstring."""
    import tcplab.errors as errors

    lines = errors.__doc__.splitlines()
    root_at = next(i for i, line in enumerate(lines) if line.strip() == "TcpLabError")
    indent = len(lines[root_at]) - len(lines[root_at].lstrip())
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in lines[root_at + 1:]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break  # the drawing ended
        m = re.search(r"[├└]── (\w+)", line)
        if not m:
            continue  # a blank line, or a description going on
        col = m.start()
        while stack and stack[-1][0] >= col:
            stack.pop()
        parents[m.group(1)] = stack[-1][1] if stack else "TcpLabError"
        stack.append((col, m.group(1)))
    return parents


def _exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in tcplab (imported module by module), by name."""
    found: dict[str, type[BaseException]] = {}
    for _, module, _ in MODULES:
        if module.endswith("__main__"):
            continue
        mod = importlib.import_module(module)
        for obj in vars(mod).values():
            if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == module:
                found[obj.__name__] = obj
    return found


def test_every_exception_is_in_the_drawn_tree():
    from tcplab.errors import TcpLabError

    drawn = _drawn_tree()
    classes = _exception_classes()
    public = {n: c for n, c in classes.items() if not n.startswith("_")}
    assert {"IllegalTransition", "EventLimitExceeded", "NamespaceTimeout"} <= set(public)  # the walk finds them
    missing = sorted(set(public) - set(drawn) - {"TcpLabError"})
    assert not missing, f"draw these in tcplab/errors.py's tree: {missing}"
    ghosts = sorted(set(drawn) - set(public))
    assert not ghosts, f"the tree in tcplab/errors.py draws classes that do not exist: {ghosts}"
    for name, parent in drawn.items():
        cls = public[name]
        assert issubclass(cls, TcpLabError), name
        tcplab_bases = [b.__name__ for b in cls.__bases__ if issubclass(b, TcpLabError)]
        assert tcplab_bases == [parent], f"{name} is drawn under {parent} but derives from {tcplab_bases}"
    # private ones are control flow inside one module, caught there (listenq's _Fallback)
    for name, cls in classes.items():
        if name.startswith("_"):
            assert not issubclass(cls, TcpLabError), name


def test_every_drawn_exception_is_importable_from_tcplab():
    for name in _drawn_tree():
        assert name in tcplab.__all__ and issubclass(getattr(tcplab, name), tcplab.TcpLabError), name
