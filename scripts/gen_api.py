#!/usr/bin/env python3
"""Write docs/api.md from the docstrings of tcplab's public names, docs/experiments.md from
the experiment specs, and docs/layers.md from the layer map (tcplab/_layers.py).

    python scripts/gen_api.py            # rewrite all three
    python scripts/gen_api.py --check    # exit 1 if either is out of date (a test runs this)
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECTIONS = [
    ("tcplab", "Look at this machine"),
    ("tcplab.experiments", "Experiments (real or simulated)"),
    ("tcplab.sim", "Simulator"),
    ("tcplab.model", "Model (pure TCP rules)"),
    ("tcplab.viz", "Figures"),
    ("tcplab.widgets", "Panels"),
    ("tcplab.grading", "Predictions graded by runs"),
]
SKIP = {"tcplab": {"experiments", "sim", "model", "kernel", "viz", "widgets", "__version__"}}


def _signature(obj) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""


def _doc(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.split("\n\n")[0].strip()


def render() -> str:
    out = ["# API reference", "",
           "Generated from the docstrings by `python scripts/gen_api.py`; a test keeps it in sync.", ""]
    for modname, title in SECTIONS:
        mod = importlib.import_module(modname)
        out += [f"## {title}: `{modname}`", "", _doc(mod), ""]
        for name in sorted(getattr(mod, "__all__", [])):
            if name in SKIP.get(modname, set()) or name.startswith("_"):
                continue
            obj = getattr(mod, name)
            if inspect.isclass(obj):
                kind = "exception" if issubclass(obj, BaseException) else "class"
                out += [f"### {kind} `{modname}.{name}{_signature(obj) if kind == 'class' else ''}`", ""]
            elif callable(obj):
                out += [f"### `{modname}.{name}{_signature(obj)}`", ""]
            else:
                out += [f"### `{modname}.{name}` (data)", ""]
            doc = _doc(obj) if (callable(obj) or inspect.isclass(obj)) else ""
            if doc:
                out += [doc, ""]
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    from tcplab._layers import render_markdown as render_layers
    from tcplab.experiments.registry import render_markdown

    stale = []
    for path, text in ((ROOT / "docs" / "api.md", render()), (ROOT / "docs" / "experiments.md", render_markdown()),
                       (ROOT / "docs" / "layers.md", render_layers())):
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
            continue
        path.write_text(text)
        print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)}: run python scripts/gen_api.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
