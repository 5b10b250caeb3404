#!/usr/bin/env python3
"""Accessibility audit of a notebook page: axe-core in headless Chromium over JupyterLab.

A notebook with a panel (``ExperimentPanel("accept_queue")``: int sliders, a log-scale
selection slider, a checkbox, the mode toggle), a figure (``experiment_figure``), the state
diagram panel (a dropdown, a checkbox) and a self-check (a number field) is run in JupyterLab; then axe-core (the npm package, fetched with ``npm pack`` into ~/.cache/tcplab when
not given) audits the page. The report counts violations per rule, split into the notebook's
outputs (tcplab's widgets and figures: ours to fix) and the rest (JupyterLab's own chrome), and
shows what the controls expose to assistive technology (role, aria-label, aria-valuetext...).

    python scripts/a11y_audit.py                      # this checkout's tcplab
    python scripts/a11y_audit.py --code /tmp/base     # another tree's tcplab (e.g. main, to compare)
    python scripts/a11y_audit.py --json out.json      # the full report as JSON

Safety: JupyterLab on 127.0.0.1 (a free port, a token), Chromium from /usr/bin/chromium with
the project's flags; both started here and ended here (their process groups), also on error;
every wait bounded. Exit 2 on bad arguments, 3 when axe-core or Chromium is unavailable.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
AXE_VERSION = "4.14.1"
CACHE = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "tcplab"
TOKEN = "tcplab-a11y"

#: the notebook audited: a panel with every kind of control, a figure, the state diagram (a
#: dropdown, a checkbox) and a self-check (a number field)
CELLS = [
    "from tcplab.widgets.generic import ExperimentPanel\n"
    "from tcplab import experiments\n"
    "from tcplab.viz.generic import experiment_figure\n"
    "panel = ExperimentPanel('accept_queue', mode='sim', backlog=5, clients=20)\n"
    "panel",
    "experiment_figure(experiments.accept_queue(backlog=5, clients=20, mode='sim'))",
    "from tcplab.widgets import StateDiagramPanel, accept_queue_quiz\n"
    "StateDiagramPanel()",
    "accept_queue_quiz(rng=1, mode='sim')",
]

#: what the controls expose (role, name, value text): read after axe, for the report
CONTROLS_JS = """() => {
  const pick = el => ({tag: el.tagName.toLowerCase(), cls: el.className && String(el.className).slice(0, 60),
    role: el.getAttribute('role'), label: el.getAttribute('aria-label'),
    labelledby: el.getAttribute('aria-labelledby'),
    labelledby_text: el.getAttribute('aria-labelledby') ? el.getAttribute('aria-labelledby').split(' ').map(
        i => (document.getElementById(i) || {}).textContent).join(' ') : null,
    valuenow: el.getAttribute('aria-valuenow'), valuetext: el.getAttribute('aria-valuetext'),
    pressed: el.getAttribute('aria-pressed'), checked: el.getAttribute('aria-checked'),
    tabindex: el.getAttribute('tabindex'), title: el.getAttribute('title'), text: (el.innerText || '').slice(0, 40)});
  const out = document.querySelectorAll('.jp-OutputArea');
  const q = s => Array.from(out).flatMap(o => Array.from(o.querySelectorAll(s)));
  return {handles: q('.noUi-handle, [role=slider]').map(pick), toggles: q('.widget-toggle-button, .jupyter-button').map(pick),
          checkboxes: q('input[type=checkbox]').map(pick),
          svgs: q('.js-plotly-plot').map(gd => pick(gd.querySelector('svg.main-svg'))),
          captions: q('details.tcplab-alt').map(d => d.innerText.slice(0, 200))};
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _end(proc: subprocess.Popen) -> None:
    """End a process group started here (by its leader's pid), SIGTERM then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def axe_script(path: str | None = None) -> pathlib.Path:
    """axe.min.js: ``path``, or the npm package axe-core fetched once with ``npm pack`` into the cache.
    Raises RuntimeError when it can be neither found nor fetched (no npm, no network)."""
    if path:
        p = pathlib.Path(path)
        if not p.is_file():
            raise RuntimeError(f"--axe {path}: no such file")
        return p
    dest = CACHE / f"axe-core-{AXE_VERSION}" / "axe.min.js"
    if dest.is_file():
        return dest
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("axe-core is not cached and npm is not installed (give --axe PATH/axe.min.js)")
    with tempfile.TemporaryDirectory(prefix="tcplab-axe-") as tmp:
        try:
            subprocess.run([npm, "pack", f"axe-core@{AXE_VERSION}", "--silent"], cwd=tmp, check=True,
                           capture_output=True, timeout=120)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            raise RuntimeError(f"npm pack axe-core@{AXE_VERSION} failed (offline?): {e}") from None
        import tarfile

        with tarfile.open(pathlib.Path(tmp) / f"axe-core-{AXE_VERSION}.tgz") as tar:
            member = tar.extractfile("package/axe.min.js")
            if member is None:
                raise RuntimeError("the axe-core package holds no axe.min.js")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(member.read())
    return dest


def _notebook(path: pathlib.Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


class _Lab:
    def __init__(self, work: pathlib.Path, code: pathlib.Path) -> None:
        self.port = _free_port()
        settings = work / "settings"
        for ext, text in (("notebook-extension/tracker", '{"windowingMode": "none"}'),
                          ("apputils-extension/notification", '{"fetchNews": "false", "checkForUpdates": false}')):
            p = settings / "@jupyterlab" / f"{ext}.jupyterlab-settings"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(work / "runtime"), PYTHONPATH=str(code),
                   JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(work / "workspaces"),
                   TCPLAB_FORBID_NAMESPACES="1")
        self.log = open(work / "lab.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
             f"--ServerApp.token={TOKEN}", "--allow-root", "--LabApp.expose_app_in_browser=True",
             f"--ServerApp.root_dir={work}"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/status?token={TOKEN}", timeout=5).read()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.3)
        self.close()
        raise RuntimeError(f"JupyterLab did not start: {(work / 'lab.log').read_text()[-1500:]}")

    def close(self) -> None:
        _end(self.proc)
        self.log.close()


def _summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Violations per rule: impact, nodes in the notebook's outputs and elsewhere (JupyterLab)."""
    rules = {}
    for v in results["violations"]:
        ours = sum(1 for n in v["nodes"] if n.get("in_output"))
        rules[v["id"]] = {"impact": v["impact"], "help": v["help"], "outputs": ours,
                          "jupyterlab": len(v["nodes"]) - ours,
                          "examples": [n["target"] for n in v["nodes"] if n.get("in_output")][:3],
                          "jupyterlab_examples": [n["target"] for n in v["nodes"] if not n.get("in_output")][:3]}
    return rules


def _keyboard(page: Any) -> dict[str, Any]:
    """The backlog slider by keyboard only: focus its handle, press the right arrow; what the handle
    announces, whether a focus ring shows, and whether the panel's figure (its label) follows."""
    handle = page.locator(".jp-OutputArea .widget-slider .noUi-handle").first
    label_js = "() => { const s = document.querySelector('.jp-OutputArea .js-plotly-plot svg.main-svg');" \
               " return s ? s.getAttribute('aria-label') : null; }"
    before = page.evaluate(label_js)
    handle.focus()
    page.keyboard.press("ArrowRight")
    ring = handle.evaluate("h => { const s = getComputedStyle(h); return s.outlineStyle + ' ' + s.outlineWidth; }")
    after = before
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and after == before:
        page.wait_for_timeout(250)
        after = page.evaluate(label_js)
    # the log-scale somaxconn slider (a SelectionSlider): End takes it to its last stop
    log = page.locator(".jp-OutputArea .widget-slider .noUi-handle").nth(1)
    log.focus()
    page.keyboard.press("End")
    page.wait_for_timeout(1000)
    readout = log.evaluate("h => { const r = h.closest('.widget-slider').querySelector('.widget-readout');"
                           " return r ? r.textContent.trim() : null; }")
    # the panel's Timeline toggle by keyboard: focus it, press Space; the timeline's figure appears, labelled
    toggle = page.locator(".jp-OutputArea .widget-toggle-button", has_text="Timeline").first
    count_js = "() => document.querySelectorAll('.jp-OutputArea .js-plotly-plot').length"
    figures = page.evaluate(count_js)
    toggle.focus()
    page.keyboard.press("Space")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and page.evaluate(count_js) <= figures:
        page.wait_for_timeout(250)
    page.wait_for_timeout(1000)     # the A11y script's pass over the new figure
    timeline_label = toggle.evaluate("""b => { const box = b.closest('.tcplab-panel');
        const gds = box ? box.querySelectorAll('.js-plotly-plot') : [];
        const svg = gds.length > 1 ? gds[gds.length - 1].querySelector('svg.main-svg') : null;
        return svg ? svg.getAttribute('aria-label') : null; }""")
    return {"timeline_pressed": toggle.get_attribute("aria-pressed"), "timeline_name": toggle.inner_text().strip(),
            "timeline_figures": page.evaluate(count_js) - figures, "timeline_label": timeline_label,
            "figure_label_before": before, "figure_label_after": after, "focus_ring": ring,
            "log_readout": readout, "log_valuetext": log.get_attribute("aria-valuetext"),
            "log_valuenow": log.get_attribute("aria-valuenow"),
            "handle_valuetext": handle.get_attribute("aria-valuetext"), "handle_label": handle.get_attribute("aria-label")}


def audit(code: pathlib.Path, axe: pathlib.Path, timeout_s: float = 240.0) -> dict[str, Any]:
    """Run the audit notebook with ``code``'s tcplab and return the report (see the module docstring)."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        raise RuntimeError(f"{CHROMIUM} is not installed")
    work = pathlib.Path(tempfile.mkdtemp(prefix="tcplab-a11y-"))
    lab = None
    try:
        _notebook(work / "a11y.ipynb")
        lab = _Lab(work, code)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, timeout=180_000)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(60_000)
                page.goto(f"http://127.0.0.1:{lab.port}/lab/tree/a11y.ipynb?reset&token={TOKEN}")
                page.wait_for_function("""() => { const nb = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                    const k = nb && nb.sessionContext && nb.sessionContext.session && nb.sessionContext.session.kernel;
                    return k && k.status === 'idle' && document.querySelector('.jp-Notebook .jp-Cell'); }""",
                                       timeout=timeout_s * 1000 / 2, polling=250)
                page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
                # the panel's sliders and the figure's SVG drawn, the kernel idle again
                page.wait_for_function("""() => document.querySelectorAll('.jp-OutputArea .widget-slider').length > 0
                    && document.querySelectorAll('.jp-OutputArea .js-plotly-plot').length >= 3
                    && document.querySelectorAll('.jp-OutputArea .widget-text').length >= 1
                    && !Array.from(document.querySelectorAll('.jp-InputPrompt')).some(p => p.innerText.includes('*'))""",
                                       timeout=timeout_s * 1000 / 2, polling=500)
                page.wait_for_timeout(1500)     # plotly's last relayout
                page.add_script_tag(path=str(axe))
                results = page.evaluate("""async () => {
                    const r = await axe.run(document, {resultTypes: ['violations']});
                    for (const v of r.violations) for (const n of v.nodes) {
                        const el = document.querySelector(n.target[0]);
                        n.in_output = !!(el && el.closest('.jp-OutputArea'));
                    }
                    return {violations: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                        nodes: v.nodes.map(n => ({target: n.target, in_output: n.in_output}))}))};
                }""")
                controls = page.evaluate(CONTROLS_JS)
                keyboard = _keyboard(page)
            finally:
                browser.close()
    finally:
        if lab is not None:
            lab.close()
        shutil.rmtree(work, ignore_errors=True)
    rules = _summarize(results)
    return {"axe": AXE_VERSION, "code": str(code), "rules": rules,
            "outputs_total": sum(r["outputs"] for r in rules.values()),
            "jupyterlab_total": sum(r["jupyterlab"] for r in rules.values()), "controls": controls,
            "keyboard": keyboard}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--code", default=str(ROOT), help="directory whose tcplab/ the kernel imports (default: this checkout)")
    ap.add_argument("--axe", default=None, help="path to axe.min.js (default: npm pack axe-core into ~/.cache/tcplab)")
    ap.add_argument("--json", default=None, help="write the full report here")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds for the whole notebook run (10..1800)")
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    if not 10 <= args.timeout <= 1800:
        print("error: --timeout must be between 10 and 1800 seconds", file=sys.stderr)
        return 2
    code = pathlib.Path(args.code)
    if not (code / "tcplab" / "__init__.py").is_file():
        print(f"error: --code {code}: no tcplab/ package there", file=sys.stderr)
        return 2
    try:
        report = audit(code, axe_script(args.axe), args.timeout)
    except RuntimeError as e:
        print(f"unavailable: {e}", file=sys.stderr)
        return 3
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=1))
    print(f"axe-core {report['axe']} on {report['code']}: {report['outputs_total']} violating nodes in the "
          f"notebook's outputs, {report['jupyterlab_total']} in JupyterLab's own page")
    for rid, r in sorted(report["rules"].items()):
        print(f"  {rid:28} {r['impact']:9} outputs {r['outputs']:3}  jupyterlab {r['jupyterlab']:3}  {r['help']}")
    c = report["controls"]
    for h in c["handles"][:3]:
        print(f"  slider handle: aria-label={h['label']!r} labelledby={h['labelledby_text']!r} "
              f"valuenow={h['valuenow']!r} valuetext={h['valuetext']!r}")
    for t in c["toggles"][:4]:
        print(f"  button {t['text']!r}: aria-pressed={t['pressed']!r} title={t['title']!r}")
    print(f"  figure captions: {len(c['captions'])}; figure SVG labels: "
          f"{[s['label'][:50] if s['label'] else None for s in c['svgs']]}")
    k = report["keyboard"]
    print(f"  keyboard: backlog handle → ArrowRight: announces {k['handle_label']!r} = {k['handle_valuetext']!r}, "
          f"focus ring {k['focus_ring']!r}; figure label {k['figure_label_before']!r:.40} → {k['figure_label_after']!r:.40}")
    print(f"  keyboard: somaxconn (log scale) → End: shows {k['log_readout']!r}, announces {k['log_valuetext']!r} "
          f"(aria-valuenow {k['log_valuenow']!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
