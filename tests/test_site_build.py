"""The course site's assembly (book/prepare.py, book/nbcapture.py) on small notebooks: pure, fast.

The built site itself is checked in a browser by tests/test_site.py (``make test-site``)."""

from __future__ import annotations

import importlib.util
import pathlib

import nbformat
import pytest

ROOT = pathlib.Path(__file__).parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"tcplab_book_{name}", ROOT / "book" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


prepare = _load("prepare")
nbcapture = _load("nbcapture")

FIG = {"data": [{"type": "bar", "x": ["a"], "y": [3]}],
       "layout": {"title": {"text": "q<br><b>SIMULATED (linux-6.18)</b>"}, "width": 640,
                  "meta": {"description": "3 of 5. SIMULATED (linux-6.18)."}}}


def _notebook(tmp: pathlib.Path, code: list[str]) -> pathlib.Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t")]
                                  + [nbformat.v4.new_code_cell(c) for c in code])
    path = tmp / "00_t.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_capture_writes_the_outputs_nbval_saw_and_what_failed(tmp_path):
    src = _notebook(tmp_path, ["print(1)", "1/0", "x = 1"])
    runs = {0: [{"output_type": "stream", "name": "stdout", "text": "1\n"}],
            1: [{"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero",
                 "traceback": ["Traceback..."]}]}
    out = nbcapture.write_executed(src, runs, [1], tmp_path / "x", {"m1": {"type": "HTML", "html": "<b>REAL</b>"}})
    nb = nbformat.read(str(out), 4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].outputs[0].text == "1\n" and code[1].outputs[0].output_type == "error"
    assert code[2].outputs == [] and code[2].execution_count is None       # never ran: nothing invented
    meta = nb.metadata["tcplab_executed"]
    assert meta["failed_cells"] == [1] and meta["cells_run"] == 2 and meta["code_cells"] == 3
    assert nb.metadata["tcplab_widgets"]["m1"]["html"] == "<b>REAL</b>"


def test_a_figure_becomes_interactive_with_its_png_and_a_panel_its_figure_and_a_note(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("fig"), nbformat.v4.new_code_cell("panel")])
    nb.cells[0].outputs = [nbformat.v4.new_output("display_data", data={prepare.PLOTLY_MIME: FIG, "text/plain": "F"})]
    nb.cells[1].outputs = [nbformat.v4.new_output("display_data", data={
        prepare.WIDGET_MIME: {"model_id": "box", "version_major": 2, "version_minor": 0}, "text/plain": "VBox"})]
    nb.metadata["tcplab_widgets"] = {
        "box": {"type": "VBox", "children": ["s", "h", "f", "style", "bar"]},
        "bar": {"type": "IntProgress", "control": {"description": "running", "value": 100}},
        "s": {"type": "IntSlider", "control": {"description": "backlog", "value": 3}},
        "h": {"type": "HTML", "html": "<span class='tcplab-badge'>SIMULATED</span>"},
        "f": {"type": "FigureWidget", "figure": FIG},
        "style": {"type": "HTML", "html": "<style>.x{}</style>"}}
    figures = prepare.Figures(tmp_path / "png")
    counts = prepare.convert_notebook(nb, "00_t", figures)
    assert counts == {"figures": 1, "panels": 1, "panel_figures": 1, "errors": 0}
    fig_html = nb.cells[0].outputs[0].data["text/html"]
    assert "Plotly.newPlot" in fig_html and "../_static/figures/00_t-001.png" in fig_html
    assert '"width": 640' not in fig_html              # the page's column decides the width
    assert prepare.PLOTLY_MIME not in nb.cells[0].outputs[0].data
    panel = [o.data["text/html"] for o in nb.cells[1].outputs]
    assert "tcplab-badge" in panel[0] and "Plotly.newPlot" in panel[1]
    assert "Needs a running kernel" in panel[2] and "(its controls: backlog = 3)" in panel[2]
    assert not any("<style>" in p for p in panel)
    assert [p.name for _f, p in figures.jobs] == ["00_t-001.png", "00_t-002.png"]


def test_a_stale_or_missing_executed_notebook_is_an_error_not_an_old_page(tmp_path):
    src = _notebook(tmp_path, ["print(1)"])
    executed = tmp_path / "executed"
    with pytest.raises(prepare.StaleNotebook, match="not executed"):
        prepare.prepare(executed, tmp_path / "out", notebooks=[src], png=False)
    nbcapture.write_executed(src, {0: []}, [], executed)
    _notebook(tmp_path, ["print(2)"])                   # the committed notebook changed since
    with pytest.raises(prepare.StaleNotebook, match="changed since it was executed"):
        prepare.prepare(executed, tmp_path / "out", notebooks=[src], png=False)


def test_prepare_lays_out_the_repository_and_configures_the_launch_buttons(tmp_path):
    src = _notebook(tmp_path, ["print(1)"])
    executed = tmp_path / "executed"
    nbcapture.write_executed(src, {0: [{"output_type": "stream", "name": "stdout", "text": "1\n"}]}, [], executed)
    out = tmp_path / "out"
    report = prepare.prepare(executed, out, hub_url="https://hub.example.edu", binder_url="https://mybinder.org",
                             repo_url="https://github.com/tcplab/tcplab", notebooks=[src], png=False)
    assert report["notebooks"]["00_t.ipynb"]["failed_cells"] == []
    config = (out / "_config.yml").read_text()
    assert 'jupyterhub_url: "https://hub.example.edu"' in config and "@" not in config.split("launch_buttons")[1][:200]
    toc = (out / "_toc.yml").read_text()
    assert "course/00_t" in toc and "docs/api" in toc and "docs/site" in toc
    assert (out / "docs" / "api.md").is_file() and (out / "workshop" / "README.md").is_file()
    assert (out / "_static" / "plotly.min.js").stat().st_size > 1_000_000
    page = nbformat.read(str(out / "course" / "00_t.ipynb"), 4)
    assert page.cells[0].source == "# t" and "Executed" in page.cells[1].source   # the note under the title


@pytest.mark.parametrize("argv", [["--executed", "x", "--out", "y", "--hub-url", "javascript:alert(1)"],
                                  ["--executed", "x", "--out", "y", "--branch", "main; rm -rf /"],
                                  ["--into", "d"], ["--out", "y"]])
def test_bad_arguments_exit_2(argv, capsys):
    assert prepare.main(argv) == 2
    assert "error:" in capsys.readouterr().err
