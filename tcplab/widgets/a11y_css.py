"""The CSS a panel carries for keyboard users, and the class that marks a panel (no imports:
``widgets.common`` uses it without loading anywidget).

>>> PANEL_CLASS in FOCUS_CSS
True
"""

__all__ = ["PANEL_CLASS", "FOCUS_CSS"]

#: the CSS class of a panel's outer box: what :class:`tcplab.widgets.a11y.A11y` fixes
PANEL_CLASS = "tcplab-panel"

#: a visible focus ring on a panel's controls (JupyterLab's own is faint on slider handles)
FOCUS_CSS = (f".{PANEL_CLASS} .noUi-handle:focus-visible, .{PANEL_CLASS} button:focus-visible, "
             f".{PANEL_CLASS} input:focus-visible, .{PANEL_CLASS} select:focus-visible, "
             f".{PANEL_CLASS} summary:focus-visible, .{PANEL_CLASS} [tabindex]:focus-visible "
             "{outline: 3px solid #0072B2 !important; outline-offset: 2px}")
