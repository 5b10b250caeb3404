"""The course as a website: every page of the built site, opened in headless Debian Chromium.

``make test-site`` builds the site (book/prepare.py + Jupyter Book, from the notebooks
``make test-course`` executed) and runs this module on it; ``TCPLAB_SITE_DIR`` names the built
HTML (default: build/site/_build/html). The site is served from 127.0.0.1 by a thread of this
module and every page is visited once; then each check reads what the visit recorded:

* every course notebook and every docs page has its page, and every page opens;
* no broken internal link: each link to the site names a file that exists and, with a
  ``#fragment``, an element with that id on the target page;
* every figure present: each image on a page loaded; each plotly figure drew its SVG with
  data in it; each figure's static PNG is a PNG with a width and a height;
* no error output: no traceback, error or stderr output in any cell;
* each result labelled: every Result and panel header shows a REAL or SIMULATED badge that
  agrees with the mode the run recorded, and every figure drawn from a Result (its text
  alternative ends with the Result's mode) names that mode in its title;
* nothing is fetched from outside the machine (the site works offline);
* the notebook pages have their Binder launch link (and the hub's nbgitpuller link when the site
  was built with a hub URL).

The axe-core audit of two pages (``test_axe_audit_of_two_pages``) reports the violations it
finds (printed, and written to build/site-a11y.json) and fails only when axe cannot run on them.

Marked ``site`` (``make test`` runs it through ``make test-site``, after the course has run) and
``browser`` (the fast suite skips it). Chromium: /usr/bin/chromium, never ``playwright install``.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import pathlib
import re
import socketserver
import struct
import threading
import time
import urllib.parse

import pytest

pytestmark = [pytest.mark.site, pytest.mark.browser]

ROOT = pathlib.Path(__file__).parents[1]
SITE = pathlib.Path(os.environ.get("TCPLAB_SITE_DIR") or ROOT / "build" / "site" / "_build" / "html")
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "course").glob("[0-9][0-9]_*.ipynb"))
DOCS = sorted(p.stem for p in (ROOT / "docs").glob("*.md"))
BADGES = {"real": {"REAL", "REAL, host busy"}, "sim": {"SIMULATED"}}
#: per page: how long its load and its figures may take (a loaded 2-core host draws slowly)
PAGE_S = 90

#: what a page shows, read once after it loaded and its figures drew
PAGE_JS = r"""() => {
  const links = Array.from(document.querySelectorAll('a[href]')).map(a => a.href);
  const ids = Array.from(document.querySelectorAll('[id]')).map(e => e.id);
  const images = Array.from(document.images).map(i => ({src: i.currentSrc || i.src,
      ok: i.complete && i.naturalWidth > 0}));
  const figures = Array.from(document.querySelectorAll('.tcplab-figure')).map(f => {
    const gd = f.querySelector('.js-plotly-plot');
    const title = gd && gd.layout && gd.layout.title ? (gd.layout.title.text || gd.layout.title) : '';
    const meta = gd && gd.layout && gd.layout.meta;
    const described = meta && meta.description ? String(meta.description) : '';
    return {drawn: !!(gd && gd._fullLayout && gd.querySelector('svg.main-svg')),
            traces: gd && gd.data ? gd.data.length : 0,
            title: String(title || ''), description: described,
            png: (f.querySelector('.tcplab-static-link a') || {}).href || null};
  });
  const plots = document.querySelectorAll('.js-plotly-plot').length;
  const bad = Array.from(document.querySelectorAll(
      '.cell_output .output.traceback, .cell_output .output.error, .cell_output .output.stderr'))
      .map(e => e.className + ': ' + (e.innerText || '').slice(0, 300));
  Array.from(document.querySelectorAll('.cell_output')).forEach(o => {
    if ((o.innerText || '').includes('Traceback (most recent call last)'))
      bad.push('traceback text: ' + o.innerText.slice(0, 300));
  });
  const results = Array.from(document.querySelectorAll('.tcplab-result')).map(r => ({
      mode: r.getAttribute('data-mode'),
      badge: ((r.querySelector('.tcplab-badge') || {}).innerText || '').trim()}));
  const launch = Array.from(document.querySelectorAll('a[href]')).map(a => a.href)
      .filter(h => h.includes('/v2/') || h.includes('git-pull'));
  return {title: document.title, links, ids, images, figures, plots, bad, results, launch,
          kernel_notes: document.querySelectorAll('.tcplab-kernel-note').length};
}"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:      # one line per file would drown the report
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def _pages() -> list[str]:
    return sorted(str(p.relative_to(SITE)) for p in SITE.rglob("*.html") if "_static" not in p.parts
                  and "_sources" not in p.parts)


def _png_size(path: pathlib.Path) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR, or None when ``path`` is not a PNG."""
    head = path.read_bytes()[:24]
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def server():
    if not (SITE / "index.html").is_file():
        if os.environ.get("TCPLAB_SITE_DIR"):
            pytest.fail(f"TCPLAB_SITE_DIR={SITE} holds no built site (index.html)")
        pytest.skip(f"no built site in {SITE}: `make test-site` builds it and runs this test")
    httpd = _Server(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(SITE)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def browser(server):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed (make test installs it where it can)")
    sync_api = pytest.importorskip("playwright.sync_api")
    pw = sync_api.sync_playwright().start()
    b = None
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, timeout=180_000)
        yield b
    finally:
        if b is not None:
            b.close()
        pw.stop()


@pytest.fixture(scope="module")
def walk(server, browser):
    """Visit every page once; returns {page: what PAGE_JS read, plus requests that left the machine,
    failed requests and script errors}."""
    origin = server.rstrip("/")
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    outside: list[str] = []

    def route(r):
        if r.request.url.startswith(origin) or r.request.url.startswith("data:"):
            r.continue_()
        else:               # the site must work offline: record, and do not let it out
            outside.append(r.request.url)
            r.abort()

    ctx.route("**/*", route)
    seen: dict[str, dict] = {}
    try:
        page = ctx.new_page()
        page.set_default_timeout(PAGE_S * 1000)
        for rel in _pages():
            failed: list[str] = []
            errors: list[str] = []
            outside.clear()
            on_fail = lambda r: failed.append(r.url)           # noqa: E731
            on_error = lambda e: errors.append(str(e)[:300])   # noqa: E731
            page.on("requestfailed", on_fail)
            page.on("pageerror", on_error)
            t0 = time.monotonic()
            resp = page.goto(server + rel, wait_until="load")
            # the figures: plotly draws each one's SVG synchronously on load, wait for all anyway
            page.wait_for_function("() => Array.from(document.querySelectorAll('.tcplab-figure'))"
                                   ".every(f => f.querySelector('svg.main-svg'))", timeout=PAGE_S * 1000)
            info = page.evaluate(PAGE_JS)
            info.update(status=resp.status if resp else None, failed=[u for u in failed if u not in outside],
                        outside=list(outside), script_errors=errors, seconds=round(time.monotonic() - t0, 2))
            seen[rel] = info
            page.remove_listener("requestfailed", on_fail)
            page.remove_listener("pageerror", on_error)
    finally:
        ctx.close()
    return {"origin": origin, "pages": seen}


def test_every_course_notebook_and_docs_page_has_a_page_that_opens(walk):
    pages = walk["pages"]
    missing = [f"course/{n}.html" for n in NOTEBOOKS if f"course/{n}.html" not in pages]
    missing += [f"docs/{d}.html" for d in DOCS if f"docs/{d}.html" not in pages]
    assert not missing, f"pages missing from the site: {missing}"
    broken = {p: (i["status"], i["script_errors"]) for p, i in pages.items()
              if i["status"] != 200 or i["script_errors"]}
    assert not broken, f"pages that did not open cleanly (status, script errors): {broken}"
    slow = sorted(pages.items(), key=lambda kv: -kv[1]["seconds"])[:3]
    print(f"\n{len(pages)} pages, {len(NOTEBOOKS)} of them notebooks; opened in "
          f"{sum(i['seconds'] for i in pages.values()):.1f} s, slowest: "
          + ", ".join(f"{p} {i['seconds']} s" for p, i in slow))


def test_no_broken_internal_links(walk):
    origin, pages = walk["origin"], walk["pages"]
    ids = {p: set(i["ids"]) for p, i in pages.items()}
    broken = []
    checked = 0
    for page, info in pages.items():
        for href in info["links"]:
            if not href.startswith(origin + "/"):
                continue                                    # external: not this site's to check
            url = urllib.parse.urlsplit(href)
            rel = urllib.parse.unquote(url.path).lstrip("/") or "index.html"
            target = SITE / rel
            if target.is_dir():
                target, rel = target / "index.html", rel.rstrip("/") + "/index.html"
            checked += 1
            if not target.is_file():
                broken.append(f"{page} -> {href} (no file {rel})")
            elif url.fragment and rel in ids and urllib.parse.unquote(url.fragment) not in ids[rel]:
                broken.append(f"{page} -> {href} (no #{url.fragment} on {rel})")
    assert checked > 0
    assert not broken, f"{len(broken)} broken internal links, e.g.: " + "\n".join(broken[:25])


def test_every_figure_present(walk):
    pages = walk["pages"]
    problems = []
    figures = pngs = 0
    for page, info in pages.items():
        problems += [f"{page}: image did not load: {i['src']}" for i in info["images"] if not i["ok"]]
        problems += [f"{page}: request failed: {u}" for u in info["failed"]]
        for k, f in enumerate(info["figures"]):
            figures += 1
            if not f["drawn"] or f["traces"] == 0:
                problems.append(f"{page}: figure {k} ({f['title'][:60]!r}) not drawn or without data")
            if f["png"] is None:
                problems.append(f"{page}: figure {k} has no static image")
                continue
            rel = urllib.parse.unquote(urllib.parse.urlsplit(f["png"]).path).lstrip("/")
            size = _png_size(SITE / rel) if (SITE / rel).is_file() else None
            if not size or min(size) == 0:
                problems.append(f"{page}: figure {k}'s static image {rel} is missing or not a PNG")
            else:
                pngs += 1
    course_figs = sum(len(pages[f"course/{n}.html"]["figures"]) for n in NOTEBOOKS if f"course/{n}.html" in pages)
    assert course_figs > 0, "the course pages show no figure at all"
    assert not problems, f"{len(problems)} figure problems, e.g.: " + "\n".join(problems[:25])
    print(f"\n{figures} interactive figures drawn, {pngs} static PNGs")


def test_no_error_outputs(walk):
    bad = {p: i["bad"] for p, i in walk["pages"].items() if i["bad"]}
    assert not bad, "error outputs on the site: " + json.dumps(bad, indent=1)[:4000]


def test_every_result_is_labelled_real_or_simulated(walk):
    pages = walk["pages"]
    problems = []
    counts = {"real": 0, "sim": 0}
    for page, info in pages.items():
        for r in info["results"]:
            if r["mode"] not in BADGES or r["badge"] not in BADGES[r["mode"]]:
                problems.append(f"{page}: a {r['mode']!r} result shows the badge {r['badge']!r}")
            else:
                counts[r["mode"]] += 1
        for f in info["figures"]:
            # a Result's text alternative (tcplab.experiments.result.Result.alt_text) ends with its
            # mode: a figure drawn from one must say that mode in its title too
            modes = set(re.findall(r"\b(REAL|SIMULATED)\b", f["description"]))
            if modes and not modes <= set(re.findall(r"\b(REAL|SIMULATED)\b", f["title"])):
                problems.append(f"{page}: figure {f['title'][:80]!r} is drawn from a {modes} Result "
                                "but its title does not say so")
    with_results = [n for n in NOTEBOOKS if pages.get(f"course/{n}.html", {}).get("results")]
    assert len(with_results) >= len(NOTEBOOKS) // 2, f"results found on only {with_results}"
    assert not problems, f"{len(problems)} unlabelled results, e.g.: " + "\n".join(problems[:25])
    print(f"\nresults: {counts['real']} REAL, {counts['sim']} SIMULATED on {len(with_results)} notebook pages")


def test_nothing_is_fetched_from_outside_the_machine(walk):
    outside = {p: i["outside"] for p, i in walk["pages"].items() if i["outside"]}
    assert not outside, f"pages that fetch from the network (the site must work offline): {outside}"


def test_notebook_pages_have_launch_links(walk):
    # what book/prepare.py configured: the hub's link is checked when the site was built with one
    built = json.loads((SITE / "_static" / "tcplab-site.json").read_text())
    hub, binder = built.get("hub_url") or "", built.get("binder_url") or ""
    missing = []
    for n in NOTEBOOKS:
        launch = [urllib.parse.unquote(h) for h in walk["pages"][f"course/{n}.html"]["launch"]]
        if binder and not any(h.startswith(binder + "/v2/") and f"course/{n}.ipynb" in h for h in launch):
            missing.append(f"{n}: no Binder link")
        if hub and not any(h.startswith(hub + "/hub/user-redirect/git-pull?") and f"course/{n}.ipynb" in h
                           for h in launch):
            missing.append(f"{n}: no hub (nbgitpuller) link")
    assert binder or hub, "the site was built without any launch button"
    assert not missing, missing


def test_axe_audit_of_two_pages(server, browser):
    """axe-core (scripts/a11y_audit.py fetches it) on a notebook page and a docs page: the
    violations are reported, not asserted (docs/site.md lists them); the audit itself must run."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("a11y_audit", ROOT / "scripts" / "a11y_audit.py")
    audit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(audit)
    try:
        axe = audit.axe_script(None)
    except RuntimeError as e:
        pytest.skip(f"axe-core unavailable: {e}")
    report = {}
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    try:
        page = ctx.new_page()
        page.set_default_timeout(PAGE_S * 1000)
        for rel in ("course/03_accept_queue.html", "docs/experiments.html"):
            page.goto(server + rel, wait_until="load")
            page.add_script_tag(path=str(axe))
            v = page.evaluate("""async () => {
                const r = await axe.run(document, {resultTypes: ['violations']});
                return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length,
                    in_content: v.nodes.filter(n => { const e = document.querySelector(n.target[0]);
                        return !!(e && e.closest('article, .bd-article')); }).length,
                    examples: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
            }""")
            report[rel] = v
    finally:
        ctx.close()
    out = ROOT / "build" / "site-a11y.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"axe": audit.AXE_VERSION, "pages": report}, indent=1))
    for rel, v in report.items():
        print(f"\naxe {audit.AXE_VERSION} on {rel}: {sum(x['nodes'] for x in v)} violating nodes "
              f"({sum(x['in_content'] for x in v)} in the page's content)")
        for x in v:
            print(f"  {x['impact']:>8} {x['id']}: {x['nodes']} nodes ({x['in_content']} in content) - {x['help']}")
    assert set(report) == {"course/03_accept_queue.html", "docs/experiments.html"}
