"""The Chat screen, in parts: the pane that composes them (pane.py), the model menu
(models.py), the transcript and its log (transcript.py), the confidence view
(confidence.py), the controls panel with its validation (controls.py), the worker
bodies (generation.py) and the messages they post (messages.py)."""

from .controls import CONTROLS, SAMPLER_CONTROLS
from .pane import ChatPane

__all__ = ["CONTROLS", "SAMPLER_CONTROLS", "ChatPane"]
