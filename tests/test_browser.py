"""A real browser: JupyterLab on localhost, the course in headless Debian Chromium.

* 03_accept_queue: run all cells, move the backlog slider, and check that the chart and the table
  follow (established = min(backlog, somaxconn) + 1); time slider-release-to-figure-update.
* every notebook, as a learner: run all; no cell shows an error, every widget renders (no "Error
  displaying widget"), every plotly figure has data; then move every slider of every panel to a
  random legal value (seeded: TCPLAB_BROWSER_SEED, printed on failure), run everything below the
  first panel again, and check that no assert fails. One screenshot per notebook in tests/screenshots/.

The server runs with TCPLAB_FORBID_NAMESPACES=1: experiments needing a sysctl run in the simulator
(fast; the point here is the UI; the notebooks run on the real kernel under nbval)."""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.browser

ROOT = pathlib.Path(__file__).parents[1]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = ROOT / "tests" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed (make test installs it where it can)")
    pytest.importorskip("playwright")
    port = _free_port()
    work = tmp_path_factory.mktemp("lab")
    for nb in (ROOT / "course").glob("*.ipynb"):
        shutil.copy(nb, work)                      # never touch the committed notebooks
    # JupyterLab 4 renders only the cells in view ("windowing"); a test that reads a panel
    # above the fold needs every cell in the DOM. No news pop-up over the screenshot either.
    settings = work / "settings"
    (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        '{"windowingMode": "none"}')
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}')
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(work / "runtime"), PYTHONPATH=str(ROOT),
               JUPYTERLAB_SETTINGS_DIR=str(settings), TCPLAB_FORBID_NAMESPACES="1")
    log = open(work / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--ServerApp.token=tcplab-test", "--allow-root", "--LabApp.expose_app_in_browser=True",
         f"--ServerApp.root_dir={work}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("JupyterLab did not start: " + (work / "lab.log").read_text()[-2000:])
        yield f"http://127.0.0.1:{port}/lab/tree/{{}}?token=tcplab-test"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


PANEL_JS = """() => {
  const cell = Array.from(document.querySelectorAll('.jp-CodeCell'))
      .find(c => c.innerText.includes('AcceptQueuePanel(backlog=5'));
  if (!cell) return null;
  const plot = cell.querySelector('.js-plotly-plot');
  const table = cell.querySelector('table');
  if (!plot || !plot.data || !table) return null;
  const heads = Array.from(table.querySelectorAll('thead th')).map(th => th.innerText.trim());
  const col = heads.indexOf('state');
  const states = Array.from(table.querySelectorAll('tbody tr')).map(
      tr => (tr.children[col] || {innerText: ''}).innerText.trim());
  return {bars: plot.data[0].y, established_rows: states.filter(s => s === 'ESTABLISHED').length,
          header: cell.innerText.includes('REAL') ? 'REAL' : (cell.innerText.includes('SIMULATED') ? 'SIM' : '')};
}"""


def _wait_for(page, predicate, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = page.evaluate(PANEL_JS)
        if value and predicate(value):
            return value
        time.sleep(0.5)
    raise AssertionError(f"panel did not reach the expected state in {timeout_s} s; last seen {value}")


def test_backlog_slider_moves_chart_and_table(lab):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(lab.format("03_accept_queue.ipynb"))
            page.wait_for_function("window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')",
                                   timeout=60_000)
            page.wait_for_function("document.querySelector('.jp-Notebook-ExecutionIndicator, .jp-Toolbar')",
                                   timeout=30_000)
            time.sleep(2)  # the kernel connects
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            before = _wait_for(page, lambda v: v["bars"][0] == 6, 120)  # backlog 5 -> 6 established
            assert before["established_rows"] == 6 and before["header"] in ("REAL", "SIM")
            cell = page.locator(".jp-CodeCell", has_text="AcceptQueuePanel(backlog=5").first
            cell.scroll_into_view_if_needed()
            readout = cell.locator(".widget-slider", has_text="listen() backlog").locator(".widget-readout")
            readout.click()
            page.keyboard.press("Control+A")
            page.keyboard.type("10")
            page.keyboard.press("Enter")
            after = _wait_for(page, lambda v: v["bars"][0] == 11, 60)  # backlog 10 -> 11 established
            assert after["established_rows"] == 11
            assert after["bars"][1] == 20 - 11  # the rest stay SYN_SENT
            cell.screenshot(path=str(SHOTS / "03_accept_queue_backlog10.png"))
        finally:
            browser.close()


NOTEBOOKS = sorted(p.name for p in (ROOT / "course").glob("[0-9][0-9]_*.ipynb"))
SEED = int(os.environ.get("TCPLAB_BROWSER_SEED", "0") or 0) or int(time.time()) % 100000

STATUS_JS = """() => {
  const nb = window.jupyterapp.shell.currentWidget;
  const k = nb && nb.sessionContext && nb.sessionContext.session && nb.sessionContext.session.kernel;
  const prompts = Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')).map(p => p.innerText);
  return {kernel: k ? k.status : 'none', busy: prompts.filter(p => p.includes('*')).length,
          ran: prompts.filter(p => /\\[\\d+\\]/.test(p)).length, cells: prompts.length,
          running: Array.from(document.querySelectorAll('.jp-OutputArea')).filter(
              o => o.innerText.includes('running…')).length};
}"""

PROBLEMS_JS = """() => {
  const out = [];
  document.querySelectorAll('.jp-OutputArea-output').forEach(o => {
    const t = o.innerText || '';
    if (t.includes('Traceback') || t.includes('Error displaying widget')
        || o.getAttribute('data-mime-type') === 'application/vnd.jupyter.error')
      out.push(t.slice(0, 600));
  });
  const figs = Array.from(document.querySelectorAll('.js-plotly-plot'));
  const empty = figs.filter(f => !f.data || f.data.length === 0 || !f.data.some(
      t => (t.x && t.x.length) || (t.y && t.y.length) || (t.values && t.values.length)
           || (t.z && t.z.length) || (t.cells))).length;
  return {errors: out, figures: figs.length, empty_figures: empty};
}"""

SLIDERS_JS = """() => Array.from(document.querySelectorAll('.widget-slider')).map((s, i) => {
  const h = s.querySelector('.noUi-handle');
  const label = (s.querySelector('.widget-label') || {innerText: ''}).innerText.trim();
  return {i, label, min: h ? +h.getAttribute('aria-valuemin') : null, max: h ? +h.getAttribute('aria-valuemax') : null,
          now: h ? +h.getAttribute('aria-valuenow') : null, float: s.classList.contains('widget-hslider')
          && /\\./.test((s.querySelector('.widget-readout') || {innerText: ''}).innerText)};
})"""


def _settle(page, timeout_s: float, what: str) -> dict:
    """Wait until the kernel is idle, no cell is queued and no panel says running…"""
    deadline = time.monotonic() + timeout_s
    st: dict = {}
    quiet = 0
    while time.monotonic() < deadline:
        st = page.evaluate(STATUS_JS)
        if st["kernel"] == "idle" and st["busy"] == 0 and st["running"] == 0:
            quiet += 1
            if quiet >= 3:          # three looks 0.5 s apart: a background run has not just started
                return st
        else:
            quiet = 0
        time.sleep(0.5)
    raise AssertionError(f"{what}: not settled in {timeout_s} s: {st}")


def _open(page, lab, name: str) -> None:
    page.goto(lab.format(name))
    page.wait_for_function("window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')", timeout=60_000)
    page.wait_for_function("""() => { const nb = window.jupyterapp.shell.currentWidget;
        const k = nb && nb.sessionContext && nb.sessionContext.session && nb.sessionContext.session.kernel;
        return k && k.status === 'idle'; }""", timeout=60_000)


def _move(page, index: int, value) -> None:
    readout = page.locator(".widget-slider").nth(index).locator(".widget-readout")
    readout.scroll_into_view_if_needed()
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(str(value))
    page.keyboard.press("Enter")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_notebook_as_a_learner(lab, name):
    import random

    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    rng = random.Random(f"{SEED}/{name}")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            _open(page, lab, name)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            time.sleep(1)
            st = _settle(page, 600, f"{name} run all")
            assert st["ran"] == st["cells"], st
            found = page.evaluate(PROBLEMS_JS)
            assert not found["errors"], f"{name}: {found['errors']}"
            assert found["empty_figures"] == 0, f"{name}: {found}"
            sliders = page.evaluate(SLIDERS_JS)
            moved = []
            for s in sliders:
                if s["min"] is None or s["max"] is None or s["max"] <= s["min"]:
                    continue
                if s["float"]:
                    v = round(rng.uniform(s["min"], s["max"]) * 2) / 2        # our float sliders step 0.5 or 1
                else:
                    v = rng.randint(int(s["min"]), int(s["max"]))
                _move(page, s["i"], v)
                moved.append((s["label"], v))
            _settle(page, 300, f"{name} after moving sliders {moved} (seed {SEED})")
            if sliders:
                # run everything below the first panel again: every assert must still hold
                first = page.locator(".jp-CodeCell").filter(has=page.locator(".widget-slider")).first
                first.locator(".jp-InputArea-editor").click()
                page.keyboard.press("Escape")
                page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-below')")
                time.sleep(1)
                _settle(page, 600, f"{name} rerun below (seed {SEED}, moved {moved})")
                found = page.evaluate(PROBLEMS_JS)
                assert not found["errors"], f"{name}, seed {SEED}, sliders moved to {moved}: {found['errors']}"
                assert found["empty_figures"] == 0, f"{name}, seed {SEED}: {found}"
            page.screenshot(path=str(SHOTS / f"{name[:-6]}.png"), full_page=True)
        finally:
            browser.close()


def test_slider_release_to_figure_update_in_sim_mode(lab, record_property):
    """Time from a slider release (Enter in its readout) to plotly's redraw, sim mode, 8 moves."""
    import statistics

    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            _open(page, lab, "00_welcome.ipynb")
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            _settle(page, 300, "00 run all")
            cell = page.locator(".jp-CodeCell", has_text="AcceptQueuePanel(backlog=3").first
            cell.locator(".widget-toggle-button", has_text="sim").first.click()
            _settle(page, 60, "switch to sim")
            idx = page.evaluate("""() => Array.from(document.querySelectorAll('.widget-slider')).findIndex(
                s => s.innerText.includes('clients'))""")
            times = []
            for v in (11, 12, 13, 14, 15, 16, 17, 18):
                page.evaluate("""() => { const cell = Array.from(document.querySelectorAll('.jp-CodeCell'))
                    .find(c => c.innerText.includes('AcceptQueuePanel(backlog=3'));
                  const plot = cell.querySelector('.js-plotly-plot'); window.__t1 = null;
                  plot.on('plotly_afterplot', () => { if (window.__t1 === null) window.__t1 = performance.now(); }); }""")
                readout = page.locator(".widget-slider").nth(idx).locator(".widget-readout")
                readout.click()
                page.keyboard.press("Control+A")
                page.keyboard.type(str(v))
                t0 = page.evaluate("() => performance.now()")
                page.keyboard.press("Enter")
                page.wait_for_function("() => window.__t1 !== null", timeout=30_000)
                times.append(page.evaluate("() => window.__t1") - t0)
            med = statistics.median(times)
            print(f"slider release -> figure update, sim mode: median {med:.0f} ms, "
                  f"min {min(times):.0f}, max {max(times):.0f} ms over {len(times)} moves")
            record_property("release_to_figure_ms", med)
            assert all(t > 0 for t in times)
        finally:
            browser.close()
