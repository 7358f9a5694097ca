"""The Train screen, in parts: the pane (pane.py) holds the form (form.py) beside the
dashboard (dashboard.py), and follows one run at a time: one of ours (live.py) or
one started elsewhere (watch.py). messages.py holds what their workers post."""

from .pane import TrainPane

__all__ = ["TrainPane"]
