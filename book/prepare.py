"""Assemble the course site's source: executed notebooks, docs pages, config, table of contents.

``make site`` and ``make test-site`` run this between executing the course (nbval with
``book/nbcapture.py``: the notebooks with their outputs, in ``build/executed``) and
``jupyter-book build``. It lays out ``--out`` like the repository (``course/``, ``docs/``,
``workshop/README.md``), so the docs' relative links and the launch buttons' paths
(``course/NN_name.ipynb``) are the repository's own:

* each committed ``course/NN_*.ipynb`` is taken from ``--executed``; one that is missing there, or
  whose code differs from the committed notebook (stale), is an error, never a silent old page;
* a plotly figure (``application/vnd.plotly.v1+json``) becomes an interactive figure drawn by the
  site's own plotly.js, with a static PNG of it (kaleido, headless Chromium) linked under it and
  shown when scripts do not run;
* a widget view (a panel: sliders that re-run an experiment) cannot run without a kernel: it
  becomes what the panel showed when the notebook had run (its header with the REAL/SIMULATED
  badge, its figures, its table: nbcapture asked the kernel after the last cell), and a note that
  the controls (their values listed) need a kernel, with the launch buttons' hint;
* a note at the top of each notebook page says when and where it was executed (host kernel,
  user, cells run, cells that failed);
* ``_config.yml`` gets the launch buttons' Binder and JupyterHub URLs and the repository;
  ``_toc.yml`` lists every notebook and every docs page (new ones are picked up by glob).

    python book/prepare.py --executed build/executed --out build/book \\
        --hub-url https://hub.example.edu

Exit 2 on bad arguments, 1 when a notebook is missing or stale (the message says which, and that
``make site`` executes them).
"""

from __future__ import annotations

import argparse
import html
import json
import pathlib
import re
import shutil
import sys
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
#: where the pages of docs/ go in the menu, in this order; docs not named here follow, by name
DOCS_ORDER = ["api", "experiments", "layers", "fidelity", "agreement", "kernel-facts", "kernels",
              "data-transfer", "reliability", "timeline", "watch", "accessibility", "instructors",
              "site", "contributing"]


class StaleNotebook(Exception):
    """An executed notebook is missing or no longer matches the committed one."""


def _code_sources(nb: Any) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def _alt(fig: dict[str, Any]) -> str:
    meta = (fig.get("layout") or {}).get("meta")
    if isinstance(meta, dict) and meta.get("description"):
        return str(meta["description"])
    title = (fig.get("layout") or {}).get("title")
    text = title.get("text") if isinstance(title, dict) else title
    return re.sub(r"<[^>]+>", " ", str(text or "figure")).strip()


def figure_html(fig: dict[str, Any], div_id: str, png: str | None) -> str:
    """An interactive plotly figure drawn by the site's plotly.js (loaded in every page's head),
    with its static image: linked under it, and shown instead when scripts do not run.

    >>> h = figure_html({"data": [{"type": "bar", "y": [1]}], "layout": {"title": {"text": "q"}}},
    ...                 "f1", "../_static/figures/f1.png")
    >>> 'class="tcplab-figure"' in h and 'Plotly.newPlot' in h and 'f1.png' in h
    True
    """
    import plotly.io as pio

    fig = dict(fig)
    fig.pop("config", None)
    # a panel's figure has a fixed width for JupyterLab; on a page it follows the column's width
    fig["layout"] = {k: v for k, v in (fig.get("layout") or {}).items() if k != "width"} | {"autosize": True}
    plot = pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id, validate=False,
                       default_width="100%", default_height=fig.get("layout", {}).get("height") or 450,
                       config={"responsive": True, "displaylogo": False})
    alt = html.escape(_alt(fig), quote=True)
    static = ""
    if png:
        static = (f'<noscript><img class="tcplab-static" src="{png}" alt="{alt}"></noscript>'
                  f'<div class="tcplab-static-link"><a href="{png}">static image (PNG)</a></div>')
    return f'<div class="tcplab-figure" data-alt="{alt}">{plot}{static}</div>'


def kernel_note(what: str) -> str:
    """A note under a panel: ``what`` is HTML (escaped by the caller)."""
    return ('<div class="tcplab-kernel-note" role="note"><strong>Needs a running kernel:</strong> '
            f"{what} Launch this notebook (the rocket button at the top of the page: Binder "
            "or your course's JupyterHub) to move it; each move re-runs the experiment.</div>")


def panel_parts(tree: dict[str, Any], model_id: str, seen: set[str] | None = None) -> list[tuple[str, Any]]:
    """What widget ``model_id`` shows, in order, from nbcapture's dump (``tcplab_widgets``):
    ``("html", text)`` for HTML widgets (not the ones that only carry a style or a script),
    ``("figure", fig_dict)`` for FigureWidgets and figures in Output widgets, ``("control", (name,
    value))`` for sliders, toggles, dropdowns, text fields.

    >>> tree = {"b": {"type": "VBox", "children": ["s", "h", "f"]},
    ...         "s": {"type": "IntSlider", "control": {"description": "backlog", "value": 3}},
    ...         "h": {"type": "HTML", "html": "<b>REAL</b>"},
    ...         "f": {"type": "FigureWidget", "figure": {"data": [], "layout": {}}}}
    >>> [k for k, _ in panel_parts(tree, "b")]
    ['control', 'html', 'figure']
    """
    seen = set() if seen is None else seen
    if model_id in seen or model_id not in tree:
        return []
    seen.add(model_id)
    e = tree[model_id]
    if "figure" in e:
        return [("figure", e["figure"])]
    if "html" in e:
        text = str(e["html"])
        if not text.strip() or "<script" in text or text.lstrip().startswith("<style"):
            return []
        return [("html", text)]
    if "control" in e:
        if e.get("type", "").endswith("Progress"):      # a run's progress bar: no setting of the panel's
            return []
        c = e["control"]
        return [("control", (c.get("description") or "", c.get("value")))]
    parts: list[tuple[str, Any]] = []
    for out in e.get("outputs") or []:
        data = out.get("data") or {}
        if PLOTLY_MIME in data:
            parts.append(("figure", data[PLOTLY_MIME]))
        elif WIDGET_MIME in data:
            parts += panel_parts(tree, data[WIDGET_MIME].get("model_id", ""), seen)
        elif "text/html" in data:
            parts.append(("html", "".join(data["text/html"]) if isinstance(data["text/html"], list) else data["text/html"]))
        elif out.get("output_type") == "stream":
            parts.append(("html", f"<pre>{html.escape(str(out.get('text', '')))}</pre>"))
    for child in e.get("children") or []:
        if child:
            parts += panel_parts(tree, child, seen)
    return parts


def _executed_note(meta: dict[str, Any]) -> str:
    failed = meta.get("failed_cells") or []
    ran = f"{meta.get('cells_run', '?')} of {meta.get('code_cells', '?')} code cells ran"
    who = "as root" if meta.get("uid") == 0 else f"as uid {meta.get('uid')}"
    fail = (f"; **cells that failed: {', '.join(map(str, failed))}**" if failed else "; none failed")
    return (f"*Executed {meta.get('at', '?')} by {meta.get('by', '?')} on Linux {meta.get('host_kernel', '?')}, "
            f"{who}: {ran}{fail}. Each result below says whether it ran on the REAL kernel or was "
            "SIMULATED, and why.*")


class Figures:
    """Collects the figures of every page; ``render`` writes their PNGs in one kaleido session."""

    def __init__(self, static_dir: pathlib.Path) -> None:
        self.static_dir = static_dir
        self.jobs: list[tuple[dict[str, Any], pathlib.Path]] = []

    def add(self, fig: dict[str, Any], name: str) -> pathlib.Path:
        path = self.static_dir / f"{name}.png"
        self.jobs.append((fig, path))
        return path

    def save(self, path: pathlib.Path) -> None:
        """Write the jobs (figure and PNG name) to ``path``, for :func:`render_saved` to render later
        (``make site-build`` renders them while Jupyter Book builds: two processes on two cores)."""
        path.write_text(json.dumps([{"fig": f, "name": p.name} for f, p in self.jobs]))

    def render(self) -> float:
        """Write every PNG (kaleido drives Debian's Chromium); returns the seconds it took."""
        import os
        import time

        import kaleido

        if not self.jobs:
            return 0.0
        if os.path.exists("/usr/bin/chromium"):
            os.environ.setdefault("BROWSER_PATH", "/usr/bin/chromium")
        self.static_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        # two tabs: the figures render two at a time (79 PNGs: 28 s with one tab, 23 s with two, load 4-5)
        kaleido.write_fig_from_object_sync(kopts={"n": 2}, fig_dicts=[
            {"fig": f, "path": str(p), "opts": {"format": "png", "width": (f.get("layout") or {}).get("width") or 900,
                                               "height": (f.get("layout") or {}).get("height") or 450}}
            for f, p in self.jobs])
        missing = [str(p) for _f, p in self.jobs if not p.is_file()]
        if missing:
            raise RuntimeError(f"kaleido wrote no PNG for {len(missing)} figures, e.g. {missing[:3]}")
        return time.monotonic() - t0


def render_saved(jobs: pathlib.Path, into: pathlib.Path) -> tuple[int, float]:
    """Render the PNGs :meth:`Figures.save` wrote to ``jobs`` into directory ``into``; returns
    (how many, seconds)."""
    figures = Figures(into)
    for job in json.loads(jobs.read_text()):
        figures.add(job["fig"], job["name"].removesuffix(".png"))
    return len(figures.jobs), figures.render()


def convert_notebook(nb: Any, stem: str, figures: Figures | None) -> dict[str, int]:
    """Rewrite ``nb``'s outputs for the static site, in place (see the module docstring). Returns
    counts: figures, panels, panel_figures, errors (error outputs left as they are: the site test
    fails on them)."""
    import nbformat

    counts = {"figures": 0, "panels": 0, "panel_figures": 0, "errors": 0}
    tree = nb.metadata.get("tcplab_widgets") or {}
    n = 0

    def fig_output(fig: dict[str, Any]) -> Any:
        nonlocal n
        n += 1
        name = f"{stem}-{n:03d}"
        png = None
        if figures is not None:
            figures.add(fig, name)
            png = f"../_static/figures/{name}.png"
        return nbformat.v4.new_output("display_data", data={"text/html": figure_html(fig, f"fig-{name}", png)})

    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        new = []
        for out in cell.get("outputs", []):
            data = out.get("data") or {}
            if out.get("output_type") == "error":
                counts["errors"] += 1
            if PLOTLY_MIME in data:
                new.append(fig_output(data[PLOTLY_MIME]))
                counts["figures"] += 1
            elif WIDGET_MIME in data:
                counts["panels"] += 1
                parts = panel_parts(tree, data[WIDGET_MIME].get("model_id", ""))
                controls = [v for k, v in parts if k == "control"]
                for kind, value in parts:
                    if kind == "figure":
                        new.append(fig_output(value))
                        counts["panel_figures"] += 1
                    elif kind == "html":
                        new.append(nbformat.v4.new_output("display_data", data={"text/html": value}))
                shown = "; ".join(f"{html.escape(str(d))} = {html.escape(str(v))}" for d, v in controls if d)
                what = ("This panel is shown as its kernel left it"
                        + (f" (its controls: {shown})" if shown else "") + ". Its controls"
                        if parts else "This cell shows an interactive control; it")
                new.append(nbformat.v4.new_output("display_data", data={"text/html": kernel_note(
                    what + " run experiments in a kernel, which a static page does not have.")}))
            else:
                new.append(out)
        cell.outputs = new
    nb.metadata.pop("widgets", None)
    nb.metadata.pop("tcplab_widgets", None)     # drawn above; the page needs no more of it
    return counts


def prepare(executed: pathlib.Path, out: pathlib.Path, *, hub_url: str = "", binder_url: str = "",
            repo_url: str = "", branch: str = "main", png: bool = True,
            notebooks: list[pathlib.Path] | None = None, png_jobs: pathlib.Path | None = None) -> dict[str, Any]:
    """Lay out the site's source in ``out`` (emptied first). Returns what it did, per notebook.
    ``notebooks``: the committed notebooks to take (default: every ``course/NN_*.ipynb``).
    ``png_jobs``: write the PNG jobs there instead of rendering them (:func:`render_saved`)."""
    import nbformat

    if notebooks is None:
        notebooks = sorted((ROOT / "course").glob("[0-9][0-9]_*.ipynb"))
    problems = []
    loaded = {}
    for src in notebooks:
        done = executed / src.name
        if not done.is_file():
            problems.append(f"{src.name}: not executed (no {done})")
            continue
        nb = nbformat.read(str(done), as_version=4)
        if _code_sources(nb) != _code_sources(nbformat.read(str(src), as_version=4)):
            problems.append(f"{src.name}: its code changed since it was executed ({done})")
            continue
        loaded[src] = nb
    if problems:
        raise StaleNotebook("; ".join(problems) + ". `make site` executes the course again "
                            "(`make test-course` does too).")

    if out.exists():
        shutil.rmtree(out)
    (out / "course").mkdir(parents=True)
    static = out / "_static"
    shutil.copytree(BOOK / "_static", static)
    import plotly

    shutil.copy(pathlib.Path(plotly.__file__).parent / "package_data" / "plotly.min.js", static / "plotly.min.js")
    figures = Figures(static / "figures") if png else None

    report: dict[str, Any] = {"notebooks": {}}
    for src, nb in loaded.items():
        counts = convert_notebook(nb, src.stem, figures)
        meta = nb.metadata.get("tcplab_executed", {})
        note = nbformat.v4.new_markdown_cell(_executed_note(meta))
        # after the title cell: the page keeps its heading as its first line
        nb.cells.insert(1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0, note)
        nbformat.write(nb, str(out / "course" / src.name))
        report["notebooks"][src.name] = counts | {"failed_cells": meta.get("failed_cells", [])}

    # the docs pages, their images and subpages, and what they link to outside docs/
    shutil.copytree(ROOT / "docs", out / "docs", ignore=shutil.ignore_patterns("*.json", "*.xml"))
    (out / "workshop").mkdir()
    shutil.copy(ROOT / "workshop" / "README.md", out / "workshop" / "README.md")
    shutil.copy(BOOK / "intro.md", out / "intro.md")

    config = (BOOK / "_config.yml").read_text()
    for key, value in (("HUB_URL", hub_url), ("BINDER_URL", binder_url), ("REPO_URL", repo_url),
                       ("BRANCH", branch)):
        config = config.replace(f"@{key}@", value)
    (out / "_config.yml").write_text(config)
    (out / "_toc.yml").write_text(toc(out))

    report["figures"] = len(figures.jobs) if figures is not None else None
    if figures is not None and png_jobs is not None:
        figures.save(png_jobs)
        report["png_s"] = None
    else:
        report["png_s"] = round(figures.render(), 1) if figures is not None else None
    # what the site was built with, for its test (launch buttons) and for a reader of the build
    (static / "tcplab-site.json").write_text(json.dumps(
        {"hub_url": hub_url, "binder_url": binder_url, "repo_url": repo_url, "branch": branch,
         "executed": {k: {"failed_cells": v["failed_cells"]} for k, v in report["notebooks"].items()}}, indent=1))
    return report


def toc(out: pathlib.Path) -> str:
    """The table of contents (sphinx-external-toc's jb-book format): the notebooks, then docs/."""
    lines = ["# written by book/prepare.py", "format: jb-book", "root: intro", "parts:",
             "  - caption: The course", "    chapters:"]
    lines += [f"      - file: course/{p.stem}" for p in sorted((out / "course").glob("*.ipynb"))]
    docs = {p.stem: p for p in (out / "docs").glob("*.md")}
    order = [d for d in DOCS_ORDER if d in docs] + sorted(set(docs) - set(DOCS_ORDER))
    lines += ["  - caption: Reference", "    chapters:"]
    for name in order:
        lines.append(f"      - file: docs/{name}")
        if name == "kernels":
            subs = sorted((out / "docs" / "kernels").glob("*.md"))
            if subs:
                lines.append("        sections:")
                lines += [f"          - file: docs/kernels/{p.stem}" for p in subs]
        if name == "instructors":
            lines += ["        sections:", "          - file: workshop/README"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--executed", help="directory of executed notebooks (book/nbcapture.py)")
    ap.add_argument("--out", help="the site's source directory to write (emptied first)")
    ap.add_argument("--png-jobs", default=None, help="with --executed/--out: write the PNG jobs to this file "
                    "instead of rendering them; alone with --into: render them")
    ap.add_argument("--into", default=None, help="with --png-jobs alone: the directory the PNGs go to")
    ap.add_argument("--hub-url", default="", help="JupyterHub for the launch button (nbgitpuller link); empty: none")
    ap.add_argument("--binder-url", default="https://mybinder.org", help="BinderHub for the launch button; empty: none")
    ap.add_argument("--repo-url", default="https://github.com/tcplab/tcplab", help="the course's git repository")
    ap.add_argument("--branch", default="main", help="the branch the launch buttons open")
    ap.add_argument("--no-png", action="store_true", help="no static PNGs of the figures (faster)")
    ap.add_argument("--json", default=None, help="write what was done here")
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    if args.into is not None:
        if args.png_jobs is None or args.executed or args.out:
            print("error: --into goes with --png-jobs alone", file=sys.stderr)
            return 2
        n, seconds = render_saved(pathlib.Path(args.png_jobs), pathlib.Path(args.into))
        print(f"{n} PNGs in {seconds:.1f} s into {args.into}")
        return 0
    if not args.executed or not args.out:
        print("error: --executed and --out are required (or --png-jobs FILE --into DIR)", file=sys.stderr)
        return 2
    for name in ("hub_url", "binder_url", "repo_url"):
        v = getattr(args, name)
        if v and not re.match(r"^https?://[^\s\"'<>]+$", v):
            print(f"error: --{name.replace('_', '-')} must be an http(s) URL, got {v!r}", file=sys.stderr)
            return 2
    if not re.match(r"^[\w./-]+$", args.branch):
        print(f"error: --branch must be a git branch name, got {args.branch!r}", file=sys.stderr)
        return 2
    executed = pathlib.Path(args.executed)
    if not executed.is_dir():
        print(f"error: --executed {executed}: no such directory (make test-course or make site executes "
              "the course into it)", file=sys.stderr)
        return 1
    try:
        report = prepare(executed, pathlib.Path(args.out), hub_url=args.hub_url.rstrip("/"),
                         binder_url=args.binder_url.rstrip("/"), repo_url=args.repo_url, branch=args.branch,
                         png=not args.no_png, png_jobs=pathlib.Path(args.png_jobs) if args.png_jobs else None)
    except StaleNotebook as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=1))
    nbs = report["notebooks"]
    print(f"site source in {args.out}: {len(nbs)} notebooks, "
          f"{sum(c['figures'] for c in nbs.values())} figures, {sum(c['panels'] for c in nbs.values())} panels "
          f"({sum(c['panel_figures'] for c in nbs.values())} of their figures), "
          f"{sum(c['errors'] for c in nbs.values())} error outputs; PNGs: "
          + (f"{report['figures']} in {report['png_s']} s" if report["png_s"] is not None
             else f"{report['figures']} to render ({args.png_jobs})" if report["figures"] else "off"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
