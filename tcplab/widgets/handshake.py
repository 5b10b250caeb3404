"""Notebook 02: step through a captured handshake packet by packet.

>>> from tcplab.experiments import handshake
>>> s = HandshakeStepper(handshake(mode="sim")); s.slider.value = 2
>>> len(s.fig.data[0].text), "SYN,ACK" in s.info.value
(2, True)
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from tcplab.viz.common import alt_text, caption_html
from tcplab.widgets.common import PANEL_FIG_WIDTH, accessible, int_slider, sync_figure

if TYPE_CHECKING:
    from tcplab.experiments.result import Result

__all__ = ["HandshakeStepper", "explain_packet"]


def explain_packet(row: dict[str, Any]) -> str:
    """One sentence on what a packet (a :func:`~tcplab.viz.handshake.packet_rows` row) does to the
    sequence numbers: the next seq of its sender is seq + payload, + 1 for a SYN or a FIN.

    >>> explain_packet({"flags": "S", "rel_seq": 0, "len": 0, "to_server": True})
    'client -> server, seq=0: the SYN consumes one sequence number, so the next seq of the client is 1.'
    """
    who = "client" if row["to_server"] else "server"
    peer = "server" if row["to_server"] else "client"
    seq = row.get("rel_seq")
    seq = 0 if seq is None or seq != seq else int(seq)
    plus = int(row.get("len") or 0)
    why = []
    if plus:
        why.append(f"{plus} bytes of data")
    for flag, name in (("S", "SYN"), ("F", "FIN")):
        if flag in row["flags"]:
            plus += 1
            why.append(f"the {name} consumes one sequence number")
    head = f"{who} -> {peer}, seq={seq}"
    if not why:
        return f"{head}: a pure ACK carries no data and consumes no sequence number (next seq stays {seq})."
    return f"{head}: {' and '.join(why)}, so the next seq of the {who} is {seq + plus}."


class HandshakeStepper:
    """A slider over the packets of a handshake Result: the diagram grows one arrow at a time
    and the line below says what the newest packet does to the sequence numbers."""

    def __init__(self, result: Result) -> None:
        import plotly.graph_objects as go

        from tcplab.viz.handshake import packet_rows

        self.result = result
        self.rows = packet_rows(result)
        n = max(1, min(len(self.rows), 12))
        self.slider = int_slider("packet", n, 1, n, description="packets shown", continuous_update=True)
        self.fig = go.FigureWidget(layout={"width": PANEL_FIG_WIDTH, "template": "plotly_white"})
        self.info = W.HTML("")
        self.slider.observe(lambda _c: self.update(), names="value")
        self.alt = W.HTML("")     # the run in words, opened on request
        self.widget = accessible(W.VBox([self.slider, self.info, self.fig, self.alt]))
        self.update()

    def update(self) -> None:
        from tcplab.viz.handshake import sequence_diagram

        k = self.slider.value
        fig = sequence_diagram(self.result, max_packets=k)
        sync_figure(self.fig, fig)
        self.alt.value = caption_html(alt_text(fig))
        if self.rows:
            row = self.rows[k - 1]
            self.info.value = (f"<b>#{k} {html.escape(row['label'])}</b>: "
                               f"{html.escape(explain_packet(row))}")

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget)
