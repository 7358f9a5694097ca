"""What the screens share, as one typed object the app owns (`app.state`).

Screens read it freely; they change it only by posting the app-level messages in
tui.messages (CorpusChanged, RunConfigChanged, RunFolderChanged). The app updates
the state and tells the screens that show something derived from it, so no screen
watches another's widgets or the app's attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig

from .settings import Settings


@dataclass
class AppState:
    """The app's shared state; every field says who writes it."""

    # The saved settings (last corpus and config, theme, bell): the app writes them.
    settings: Settings
    # The corpus the Corpus screen loaded: "builtin", a path (its last loaded source).
    corpus_source: str = "builtin"
    # (train, val) token counts of that corpus, what batch plans are computed from;
    # None while a new corpus loads.
    corpus_tokens: tuple[int, int] | None = None
    # The configs the Train form last described validly (None before the first).
    run_config: tuple[GPTConfig, TrainConfig] | None = None
    # The Train screen's run folder, live or watched (Chat offers its checkpoints).
    run_dir: Path | None = None

    @property
    def train_ratio(self) -> float:
        """The split the Corpus screen counts tokens with: the form's, else the default."""
        return self.run_config[1].train_ratio if self.run_config else TrainConfig.train_ratio
