"""A real browser: JupyterLab on localhost, 03_accept_queue in headless Debian Chromium.
Run all cells, move the backlog slider, and check that the chart and the table follow
(established = min(backlog, somaxconn) + 1). Saves a screenshot for people to look at."""

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
    shutil.copy(ROOT / "course" / "03_accept_queue.ipynb", work)  # never touch the committed notebook
    work = work
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
               JUPYTERLAB_SETTINGS_DIR=str(settings))
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
        yield f"http://127.0.0.1:{port}/lab/tree/03_accept_queue.ipynb?token=tcplab-test"
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
            page.goto(lab)
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
