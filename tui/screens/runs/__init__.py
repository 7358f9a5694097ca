"""The Runs screen: the pane (pane.py), its table (table.py), its chart view
(chart.py) and the reading of the overlaid runs (follow.py)."""

from .pane import RunsPane

__all__ = ["RunsPane"]
