"""The run the Train screen follows: one of ours training in a worker, or one
started elsewhere whose metrics.jsonl it reads.

Every message about a run (its events, its Trainer, its configs, the system line)
carries the run's handle. The screen keeps one current handle and drops a message
whose handle is not that one (`message.handle is pane.handle`): it comes from a run
the screen has since stopped following.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from gptcore.training.stopsignals import StopRequest

if TYPE_CHECKING:  # the Trainer imports torch: the app starts without it
    from textual.worker import Worker

    from gptcore.training.trainer import Trainer


@dataclass(eq=False)  # compared by identity: two handles are two runs
class RunHandle:
    """One run the Train screen follows.

    A "live" run trains in this app: `cancel` is its Trainer's own stop event (so a
    stop counts even before the worker has built the Trainer), `ended` is set by its
    thread once the checkpoint and the closing event are written, `worker` runs it
    and `trainer` is set once built (pause and checkpoint requests go to it).
    A "watch" run is read-only: only `run_dir` and `catching_up` mean something.
    """

    kind: Literal["live", "watch"]
    # The run's folder: a watched run's from the start, a live run's once it reports it.
    run_dir: Path | None = None
    cancel: StopRequest = field(default_factory=StopRequest)
    ended: threading.Event = field(default_factory=threading.Event)
    worker: Worker | None = None
    trainer: Trainer | None = None
    # A watched run's first read is its past, not news: no bell, its health signals
    # in one notification.
    catching_up: bool = False

    @property
    def stop_requested(self) -> bool:
        """The user (or a stop signal) asked this live run to stop."""
        return self.cancel.is_set()

    def stop(self, signum: int | None = None) -> None:
        """Ask a live run to stop after its current step (thread-safe); `signum`: the
        stop signal that asked, which the run's closing event names."""
        if signum is None:
            self.cancel.set()
        else:
            self.cancel.set_for_signal(signum)
