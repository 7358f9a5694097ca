"""The Models screen: the pane (pane.py) and what it says about each GPT-2 size
and source (status.py)."""

from .pane import ModelsPane

__all__ = ["ModelsPane"]
