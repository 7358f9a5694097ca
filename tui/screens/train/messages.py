"""What the Train screen's workers tell it about a run. Each message carries the
handle of the run it is about (tui.runhandle); the screen drops those of a run it
no longer follows. Training events themselves arrive as tui.pump.TrainEvents."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

from gptcore.runs.events import Event
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig

from ...runhandle import RunHandle

if TYPE_CHECKING:  # the Trainer imports torch: the app starts without it
    from gptcore.training.trainer import Trainer


class TrainerReady(Message):
    """The worker built the live run's Trainer: pause and checkpoint requests go to it."""

    def __init__(self, handle: RunHandle, trainer: Trainer) -> None:
        super().__init__()
        self.handle, self.trainer = handle, trainer


class RunConfigRead(Message):
    """A watched or resumed run's own configs under `label` (or why they cannot be read)."""

    def __init__(
        self,
        handle: RunHandle,
        label: str,
        configs: tuple[GPTConfig, TrainConfig] | None,
        problem: str | None = None,
    ) -> None:
        super().__init__()
        self.handle, self.label, self.configs, self.problem = handle, label, configs, problem


class WatchedRunRead(Message):
    """What one read of a watched run found: the events appended since the last read,
    whether a process held the run's lock just before or after (gptcore.runs.lock),
    and what of its metrics.jsonl could not be read (a damaged line, a FIFO), if any."""

    def __init__(
        self, handle: RunHandle, events: list[Event], held: bool, problem: str | None = None
    ) -> None:
        super().__init__()
        self.handle, self.events, self.held, self.problem = handle, events, held, problem


class SystemRead(Message):
    """The system line of the live run's process, read off the UI thread."""

    def __init__(self, handle: RunHandle, text: str) -> None:
        super().__init__()
        self.handle, self.text = handle, text
