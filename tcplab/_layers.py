"""The layer map of the package: which part may import which, and what only ``kernel/`` may do.

The one copy of the map. ``tests/test_architecture.py`` reads it and holds every module to it;
``scripts/gen_api.py`` draws it into docs/layers.md. An exception to a rule is a line in
:data:`EXCEPTIONS` with its reason, never a loosened rule.

>>> sorted(LAYERS["model"])
['_validate', 'errors']
>>> "kernel" in LAYERS["widgets"]
False
"""

from __future__ import annotations

__all__ = ["LAYERS", "HOST_PRIMITIVES", "EXCEPTIONS", "render_markdown"]

#: each top-level module or subpackage of tcplab -> the others it may import (itself always).
#: Every module belongs to exactly one key, the most specific one: a dotted key
#: ("experiments.spec") narrows one module of a subpackage and may not import the rest of it.
LAYERS: dict[str, frozenset[str]] = {
    "errors": frozenset(),                                               # the bottom: imports nothing of tcplab
    "_layers": frozenset(),                                              # this map: pure data
    "_validate": frozenset({"errors"}),
    "_safeio": frozenset(),                                              # reading a learner's file as root, safely
    "model": frozenset({"errors", "_validate"}),                         # pure rules, tables, kernel profiles
    "sim": frozenset({"model", "errors", "_validate"}),                  # pure: time and rng are parameters
    "kernel": frozenset({"model", "errors", "_validate", "_safeio"}),               # the only host I/O; model: data tables only
    "observe": frozenset({"kernel", "model", "errors", "_validate"}),    # tcplab.sockets() & co, for users and panels
    "watching": frozenset({"kernel", "model", "errors", "_validate"}),   # tcplab.watch(): sock_diag samples over time
    "experiments": frozenset({"kernel", "sim", "model", "errors", "_validate"}),
    "experiments.spec": frozenset({"model", "sim", "errors", "_validate"}),  # pure data; sim: the Rng type only
    "viz": frozenset({"experiments", "model", "errors", "_validate"}),   # figures of Results
    "grading": frozenset({"experiments", "model", "errors", "_validate", "_safeio"}),  # predictions graded by runs; answers files
    "widgets": frozenset({"viz", "experiments", "grading", "observe", "model", "errors", "_validate"}),
    "doctor": frozenset({"observe", "kernel", "model", "errors", "_validate"}),
    "articles": frozenset({"experiments", "kernel", "model", "errors", "_validate"}),  # claims checked by runs and sysctls
    "cli": frozenset({"doctor", "observe", "watching", "experiments", "grading", "kernel", "model", "errors",
                      "_validate"}),
    "__main__": frozenset({"cli"}),
    # the facade: lazy re-exports of the public names (never of cli/doctor, which are programs)
    "__init__": frozenset({"observe", "watching", "experiments", "sim", "model", "kernel", "viz", "widgets", "errors", "_validate"}),
}

#: host-level primitives: written once, in ``kernel/``; an experiment's real runner uses kernel/'s
#: functions and ordinary sockets, nothing lower. name -> how the test recognises a use.
HOST_PRIMITIVES: dict[str, str] = {
    "fcntl": "import fcntl (ioctl: interface flags, queue sizes)",
    "ctypes": "import ctypes (unshare, setns)",
    "ioctl": "a call to .ioctl(",
    "AF_PACKET": "socket.AF_PACKET (packet capture)",
    "/proc/": "a path string under /proc/ (sysctls, /proc/net, namespaces, processes)",
    "/sys/": "a path string under /sys/ (interfaces)",
}

#: (module, primitive) -> why it may use it outside kernel/. Empty is the goal; a line here is a decision.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("tcplab._layers", "/proc/"): "this map names the primitive; it opens nothing",
    ("tcplab._layers", "/sys/"): "this map names the primitive; it opens nothing",
}


def render_markdown() -> str:
    """docs/layers.md: the map as a table and the rule for host primitives."""
    out = ["# The layers of tcplab", "",
           "_Generated from `tcplab/_layers.py` by `python scripts/gen_api.py`; `tests/test_architecture.py` "
           "holds every module to it._", "",
           "Imports go one way. `model/` and `sim/` are pure (no I/O: time and random generators are "
           "parameters); `kernel/` is the only part that touches the host; `experiments/` decide real or "
           "simulated and run either; `viz/` draws Results; `widgets/` are the panels.", "",
           "| part | may import |", "|---|---|"]
    out += [f"| `{k}` | {', '.join(f'`{v}`' for v in sorted(vs)) or '(nothing of tcplab)'} |"
            for k, vs in LAYERS.items()]
    out += ["", "## Host primitives live in `kernel/`", "",
            "No module outside `tcplab/kernel/` may use:", ""]
    out += [f"- **{k}**: {v}" for k, v in HOST_PRIMITIVES.items()]
    out += ["", "Exceptions, each with its reason: " + ("none." if not EXCEPTIONS else "")]
    out += [f"- `{m}` may use {p}: {why}" for (m, p), why in EXCEPTIONS.items()]
    return "\n".join(out) + "\n"
