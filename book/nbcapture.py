"""A pytest plugin that keeps what nbval ran: each notebook with the outputs its cells produced.

The course is executed once in CI, by ``make test-course`` (nbval, real where the host allows).
With this plugin loaded (``-p nbcapture``, ``book/`` on ``PYTHONPATH``) and ``TCPLAB_NB_CAPTURE``
naming a directory, every notebook nbval collected is written there at the end of the session
with the outputs nbval received from the kernel, so the site (``make site``, ``make test-site``)
renders those runs instead of executing the 19 notebooks a second time (docs/site.md).

What is kept is what nbval saw: ``stream``, ``display_data``, ``execute_result`` and ``error``
outputs (an error output too, so a failed cell shows on the site and the site test fails on it).
Widget views keep their model id; nbval does not record widget (comm) messages, so after a
notebook's last cell the plugin asks its kernel, once, what every live widget holds (a panel's
boxes, HTML, control values, and each FigureWidget's figure as plotly JSON) and keeps that in the
notebook's metadata (``tcplab_widgets``): the site draws a panel's figures from it and says the
controls need a running kernel. A cell nbval skipped keeps no output.

Without ``TCPLAB_NB_CAPTURE`` the plugin does nothing.

    cd course && TCPLAB_NB_CAPTURE=../build/executed PYTHONPATH=../book \\
        python -m pytest -p nbcapture --nbval-lax 00_welcome.ipynb
"""

from __future__ import annotations

import datetime
import os
import pathlib
import platform
from typing import Any

import pytest

ENV = "TCPLAB_NB_CAPTURE"

#: notebook path -> {code cell index: outputs}, filled as nbval runs the cells
_RUNS: dict[pathlib.Path, dict[int, list[Any]]] = {}
#: notebook path -> code cell indexes that failed (an error, a timeout, differing outputs)
_FAILED: dict[pathlib.Path, list[int]] = {}
#: notebook path -> the widgets its kernel held after its last cell (model id -> what it shows)
_WIDGETS: dict[pathlib.Path, dict[str, Any]] = {}
#: how long the widget dump may take (it only serializes objects already in the kernel)
DUMP_S = 60.0
MARK = "TCPLAB_WIDGETS "

#: run in the notebook's kernel after its last cell: every live widget, as JSON on one line
DUMP_CODE = r"""
def _tcplab_widget_dump():
    import json
    try:
        from ipywidgets import Widget
    except ImportError:
        return {}
    out = {}
    for mid, w in list(getattr(Widget, "widgets", {}).items()):
        e = {"type": type(w).__name__}
        kids = getattr(w, "children", None)
        if kids:
            e["children"] = [getattr(c, "model_id", None) for c in kids]
        if hasattr(w, "_widget_data") and hasattr(w, "to_plotly_json"):
            import plotly.io as pio
            e["figure"] = json.loads(pio.to_json(w, validate=False))
        elif type(w).__name__ in ("HTML", "HTMLMath", "Label"):
            e["html"] = str(w.value)
        elif type(w).__name__ == "Output":
            e["outputs"] = list(w.outputs)
        elif hasattr(w, "value") and hasattr(w, "description"):
            e["control"] = {"description": str(w.description), "value": w.value}
        out[mid] = e
    return out
print("TCPLAB_WIDGETS " + __import__("json").dumps(_tcplab_widget_dump(), default=str))
del _tcplab_widget_dump
"""


def _target() -> pathlib.Path | None:
    d = os.environ.get(ENV)
    return pathlib.Path(d).resolve() if d else None


def _is_nbval_cell(item: pytest.Item) -> bool:
    return hasattr(item, "cell_num") and hasattr(item, "test_outputs") and hasattr(item, "cell")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    outcome = yield
    if _target() is None or not _is_nbval_cell(item):
        return
    path = pathlib.Path(str(item.fspath)).resolve()
    _RUNS.setdefault(path, {})
    if call.when == "call":
        # nbval keeps the outputs it read, also of a cell that raised (the error output is in them)
        if item.test_outputs is not None:
            _RUNS[path][item.cell_num] = list(item.test_outputs)
        if outcome.get_result().failed:
            _FAILED.setdefault(path, []).append(item.cell_num)


def _dump_widgets(nbfile: Any) -> dict[str, Any] | None:
    """Ask ``nbfile``'s kernel (nbval's, still alive after the last cell) what its widgets hold."""
    import queue
    import time

    kernel = getattr(nbfile, "kernel", None)
    if kernel is None or not kernel.is_alive():
        return None
    msg_id = kernel.execute_cell_input(DUMP_CODE, allow_stdin=False)
    text = []
    deadline = time.monotonic() + DUMP_S
    while time.monotonic() < deadline:
        try:
            msg = nbfile.get_kernel_message(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            return None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream" and msg["content"].get("name") == "stdout":
            text.append(msg["content"]["text"])
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    for line in "".join(text).splitlines():
        if line.startswith(MARK):
            import json

            return json.loads(line[len(MARK):])
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    # before the last cell's teardown, which ends the notebook's kernel
    if _target() is not None and _is_nbval_cell(item) and (nextitem is None or nextitem.parent is not item.parent):
        try:
            dump = _dump_widgets(item.parent)
        except Exception as e:  # noqa: BLE001 - the test run matters more than the site's panels
            print(f"nbcapture: no widget dump for {item.fspath}: {type(e).__name__}: {e}")
            dump = None
        if dump is not None:
            _WIDGETS[pathlib.Path(str(item.fspath)).resolve()] = dump
    yield


def _output(out: Any) -> Any:
    import nbformat

    kind = out.get("output_type")
    if kind == "stream":
        return nbformat.v4.new_output("stream", name=out.get("name", "stdout"), text=out.get("text", ""))
    if kind == "error":
        return nbformat.v4.new_output("error", ename=out.get("ename", ""), evalue=out.get("evalue", ""),
                                      traceback=list(out.get("traceback", [])))
    if kind in ("display_data", "execute_result"):
        # saved as display_data: the execution count nbval does not keep is not invented here
        return nbformat.v4.new_output("display_data", data=dict(out.get("data", {})),
                                      metadata=dict(out.get("metadata", {})))
    return None


def write_executed(source: pathlib.Path, runs: dict[int, list[Any]], failed: list[int],
                   dest: pathlib.Path, widgets: dict[str, Any] | None = None) -> pathlib.Path:
    """Write ``source`` with the outputs in ``runs`` (code cell index -> nbval outputs) to ``dest``/name.

    >>> import nbformat, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
    >>> nbformat.write(nb, str(d / "a.ipynb"))
    >>> out = write_executed(d / "a.ipynb", {0: [{"output_type": "stream", "name": "stdout", "text": "1\\n"}]},
    ...                      [], d / "x")
    >>> nbformat.read(str(out), 4).cells[0].outputs[0].text
    '1\\n'
    """
    import nbformat

    nb = nbformat.read(str(source), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code):
        outs = [o for o in (_output(x) for x in runs.get(i, [])) if o is not None]
        cell.outputs = outs
        cell.execution_count = i + 1 if i in runs else None
    nb.metadata["tcplab_executed"] = {
        "by": "nbval (book/nbcapture.py)",
        "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host_kernel": platform.release(),
        "uid": os.getuid(),
        "cells_run": len(runs),
        "code_cells": len(code),
        "failed_cells": sorted(failed),
    }
    if widgets is not None:
        nb.metadata["tcplab_widgets"] = widgets
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / source.name
    nbformat.write(nb, str(out))
    return out


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    dest = _target()
    if dest is None:
        return
    for path, runs in sorted(_RUNS.items()):
        write_executed(path, runs, _FAILED.get(path, []), dest, _WIDGETS.get(path))
