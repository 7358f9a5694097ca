"""App-level messages: how one pane asks for something another pane does.

Panes never query each other. A pane posts one of these; it bubbles up to the
app, which routes it to the pane that acts on it and switches tabs
(tui.app.PaneRouter).
"""

from __future__ import annotations

from pathlib import Path

from textual.message import Message

from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig


class OpenInChat(Message):
    """Load the model `spec` names (gptcore.weights.spec) in Chat and show Chat."""

    def __init__(self, spec: str) -> None:
        super().__init__()
        self.spec = spec


class ResumeRun(Message):
    """Continue training the run that `checkpoint` belongs to, on the Train screen;
    `overrides` are `--set` strings on its settings (more epochs for a finished run)."""

    def __init__(self, checkpoint: Path, overrides: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.checkpoint = checkpoint
        self.overrides = overrides


class CheckpointsChanged(Message):
    """Checkpoints or downloaded weights appeared, moved or went: re-list the models."""


class RunFolderChanged(Message):
    """The Train screen's run (live or watched) now lives in `run_dir` (None: no run)."""

    def __init__(self, run_dir: Path | None) -> None:
        super().__init__()
        self.run_dir = run_dir


class CorpusChanged(Message):
    """The Corpus screen loaded `source` (or lost its counts while loading a new one):
    `tokens` are its (train, val) token counts, None until known."""

    def __init__(self, source: str | None, tokens: tuple[int, int] | None) -> None:
        super().__init__()
        self.source, self.tokens = source, tokens


class RunConfigChanged(Message):
    """The Train form now describes `config` (None: the form is invalid)."""

    def __init__(self, config: tuple[GPTConfig, TrainConfig] | None) -> None:
        super().__init__()
        self.config = config
