"""The interactive state diagram (notebook 01): show/hide RST-abort arrows, highlight a path."""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from tcplab.viz.common import alt_text, caption_html
from tcplab.widgets.common import PANEL_FIG_WIDTH, accessible, sync_figure

__all__ = ["StateDiagramPanel", "PATHS"]

#: paths a learner can highlight (ordered states of one endpoint)
PATHS: dict[str, tuple[str, ...]] = {
    "none": (),
    "client: connect, then close first": ("CLOSE", "SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2",
                                          "TIME_WAIT"),
    "server: listen, accept, peer closes first": ("LISTEN", "SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK"),
    "simultaneous close": ("ESTABLISHED", "FIN_WAIT1", "CLOSING", "TIME_WAIT"),
}


class StateDiagramPanel:
    """The diagram from ``tcplab.model.states.TRANSITIONS`` with two controls.

    >>> p = StateDiagramPanel(); n = len(p.fig.layout.annotations)
    >>> p.show_aborts.value = True; len(p.fig.layout.annotations) > n
    True
    """

    def __init__(self) -> None:
        import plotly.graph_objects as go

        self.show_aborts = W.Checkbox(value=False, description="show RST / abort / timeout arrows", indent=False,
                                      layout=W.Layout(width="auto"))
        self.path = W.Dropdown(options=list(PATHS), value="none", description="highlight",
                               style={"description_width": "initial"}, layout=W.Layout(width="420px"))
        self.fig = go.FigureWidget(layout={"width": PANEL_FIG_WIDTH, "template": "plotly_white"})
        self.alt = W.HTML("")     # the diagram in words, opened on request
        self.widget = accessible(W.VBox([W.HBox([self.path, self.show_aborts]), self.fig, self.alt]))
        for c in (self.show_aborts, self.path):
            c.observe(self._on_change, names="value")
        self.update()

    def _on_change(self, change: Any) -> None:
        self.update()

    def update(self) -> None:
        from tcplab.viz.states import state_diagram
        fig = state_diagram(show_aborts=self.show_aborts.value, highlight=PATHS[self.path.value])
        sync_figure(self.fig, fig)
        self.alt.value = caption_html(alt_text(fig))

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget)
