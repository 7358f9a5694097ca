"""The Sweeps view: a sweep's leaderboard, budget, per-parameter view and importance."""

from .pane import SweepsPane
from .screen import SweepsScreen

__all__ = ["SweepsPane", "SweepsScreen"]
