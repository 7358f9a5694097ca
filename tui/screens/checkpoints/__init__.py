"""The Checkpoints screen: the pane (pane.py), its table (table.py) and the
comparison of two checkpoints (compare.py)."""

from .pane import CheckpointsPane

__all__ = ["CheckpointsPane"]
