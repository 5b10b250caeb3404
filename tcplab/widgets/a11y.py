"""What a panel's controls and figure say to assistive technology, fixed in the page.

ipywidgets 8 and plotly.js leave gaps a screen reader falls into (measured in JupyterLab 4.6 with
``scripts/a11y_audit.py``, axe-core 4.14): a slider's handle (noUiSlider, ``role="slider"``) has
no accessible name, its ``aria-valuetext`` is the handle's *position* (a log-scale
SelectionSlider at "4096" announces "12"), ToggleButtons expose no pressed state, plotly's SVG has
no label, and a scrolling table cannot be reached by keyboard. None of these attributes can be
set from Python, so :class:`A11y` is an invisible widget (an anywidget, as plotly's FigureWidget)
whose script sets them inside its panel and keeps them current as values change:

* each slider handle: ``aria-label`` = the control's description ("backlog"), ``aria-valuetext``
  = the value the readout shows, with the unit of the description ("4096 bytes", "default");
* each toggle button: ``aria-pressed`` true/false (and its group ``role="group"`` named by its
  description);
* each plotly figure: ``role="img"`` and ``aria-label`` = its text alternative
  (``layout.meta.description``, :func:`tcplab.viz.common.alt_text`); once a panel is on the page,
  every plotly figure of the page, the ones outside panels too;
* each scrolling output (a panel's table): ``tabindex="0"``, ``role="region"`` and a name;
* a visible focus ring on the panel's controls.

>>> from tcplab.widgets.a11y import A11y
>>> A11y().scope
'.tcplab-panel'
"""

from __future__ import annotations

import anywidget
import traitlets

from tcplab.widgets.a11y_css import FOCUS_CSS, PANEL_CLASS

__all__ = ["A11y", "PANEL_CLASS", "FOCUS_CSS"]

_ESM = r"""
function unitOf(label) {            // "rcvbuf (bytes)" -> "bytes"
  const m = /\(([^()]+)\)\s*$/.exec(label || "");
  return m ? m[1] : "";
}
function set(el, name, value) {     // only when it differs: no mutation loop
  if (value === null || value === undefined) return;
  if (el.getAttribute(name) !== String(value)) el.setAttribute(name, String(value));
}
function fix(root) {
  root.querySelectorAll(".widget-slider").forEach(w => {
    const label = (w.querySelector(".widget-label") || {}).textContent || "";
    const ro = w.querySelector(".widget-readout");
    const shown = ro ? (ro.value !== undefined && ro.tagName === "INPUT" ? ro.value : ro.textContent).trim() : "";
    const unit = unitOf(label);
    const name = label.replace(/\s*\([^()]*\)\s*$/, "").trim() || label.trim();
    w.querySelectorAll(".noUi-handle").forEach(h => {
      set(h, "aria-label", name || "value");
      if (shown) set(h, "aria-valuetext", /^-?[\d.]+$/.test(shown) && unit ? `${shown} ${unit}` : shown);
    });
    if (ro && ro.tagName === "INPUT") set(ro, "aria-label", `${name || "value"}, typed`);
  });
  root.querySelectorAll(".widget-toggle-buttons").forEach(g => {
    const label = (g.querySelector(".widget-label") || {}).textContent || "";
    const group = g.querySelector(".widget-toggle-button") ? g.querySelector(".widget-toggle-button").parentElement : g;
    set(group, "role", "group");
    if (label.trim()) set(group, "aria-label", label.trim());
    g.querySelectorAll(".widget-toggle-button").forEach(b => set(b, "aria-pressed", b.classList.contains("mod-active")));
  });
  root.querySelectorAll(".widget-toggle-button").forEach(b => set(b, "aria-pressed", b.classList.contains("mod-active")));
  labelFigures(root);
  root.querySelectorAll(".widget-html-content > div").forEach(d => {
    const s = getComputedStyle(d);
    if (/(auto|scroll)/.test(s.overflow + s.overflowY) && d.querySelector("table")) {
      set(d, "tabindex", "0"); set(d, "role", "region"); set(d, "aria-label", "table of the run");
    }
  });
}
function labelFigures(root) {
  root.querySelectorAll(".js-plotly-plot").forEach(gd => {
    const meta = (gd.layout && gd.layout.meta) || (gd._fullLayout && gd._fullLayout.meta) || {};
    const title = (gd._fullLayout && gd._fullLayout.title && gd._fullLayout.title.text) || "";
    const text = meta.description || title.replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").trim() || "figure";
    const svg = gd.querySelector("svg.main-svg");
    if (svg) { set(svg, "role", "img"); set(svg, "aria-label", text); }
  });
}
function watchPage() {      // once per page: every plotly figure of the notebook, in a panel or not
  if (window.__tcplabA11y) return;
  window.__tcplabA11y = true;
  let t = null;
  labelFigures(document);
  new MutationObserver(() => { if (t === null) t = setTimeout(() => { t = null; labelFigures(document); }, 200); })
    .observe(document.body, { subtree: true, childList: true });
}
function render({ model, el }) {
  el.style.display = "none";
  watchPage();
  let root = null, timer = null, observer = null;
  const schedule = () => { if (timer === null) timer = setTimeout(() => { timer = null; if (root) fix(root); }, 50); };
  // the widget's element is attached to the page after render(): look for the panel until found
  let tries = 0;
  const find = () => {
    root = el.closest(model.get("scope"));
    if (!root && tries++ < 100) { setTimeout(find, 100); return; }
    if (!root) return;
    fix(root);
    observer = new MutationObserver(schedule);
    observer.observe(root, { subtree: true, childList: true, characterData: true, attributes: true,
                             attributeFilter: ["class", "aria-valuetext", "value"] });
  };
  find();
  return () => { if (observer) observer.disconnect(); if (timer !== null) clearTimeout(timer); };
}
export default { render };
"""


class A11y(anywidget.AnyWidget):
    """Invisible: sets the ARIA names, values and pressed states of the panel it sits in (the
    nearest ancestor matching ``scope``) and labels its plotly figures (module docstring)."""

    _esm = _ESM
    scope = traitlets.Unicode(f".{PANEL_CLASS}").tag(sync=True)
