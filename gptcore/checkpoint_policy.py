"""When a run saves a checkpoint, and which of its checkpoints it keeps.

Saved: after every epoch, every `checkpoint_every` steps, when asked (a key in
the app), and when the run ends (`final`, or `interrupt` when stopped). A save at
a step already saved reuses that checkpoint. After each save the automatic ones
beyond the newest `keep_last` are pruned (the best and the newest are kept).
"""

from __future__ import annotations

import threading
from pathlib import Path

from .checkpoint import prune_checkpoints


class CheckpointPolicy:
    def __init__(self, every: int | None, keep_last: int) -> None:
        self.every = every
        self.keep_last = keep_last
        self._requested = threading.Event()
        self.last_path: Path | None = None
        self.last_step: int | None = None

    def request(self) -> None:
        """Ask for a checkpoint after the current step (any thread)."""
        self._requested.set()

    def due_after_step(self, step: int) -> list[str]:
        """The reasons to save after `step` steps are done (the second of two saves
        at one step reuses the first's checkpoint)."""
        reasons = []
        if self._requested.is_set():
            self._requested.clear()
            reasons.append("manual")
        if self.every and step % self.every == 0:
            reasons.append("periodic")
        return reasons

    def reusable(self, step: int) -> Path | None:
        """The checkpoint already saved at `step`, if it is still there."""
        path = self.last_path
        if self.last_step == step and path is not None and path.exists():
            return path
        return None

    def saved(self, run_dir: Path, path: Path, step: int) -> None:
        """Record a new checkpoint and prune the older automatic ones."""
        self.last_path, self.last_step = path, step
        prune_checkpoints(run_dir, self.keep_last, protect=path)
