"""When a run saves a checkpoint, and which of its checkpoints it keeps.

Saved: after every epoch, every `checkpoint_every` steps, when asked (a key in
the app), and when the run ends (`final`, or `interrupt` when stopped). A save at
a step already saved reuses that checkpoint (a manual save reuses only a manual
one, so it is never folded into an automatic checkpoint that retention deletes).

Retention (`prune_checkpoints`, after each save) deletes only automatic
checkpoints (`prunable`: saved for a reason in AUTOMATIC and still under their
`step-N` name) beyond the newest `keep_last`; the best and the newest are kept.
Manual saves, renamed and imported checkpoints are never deleted.

Optimizer state (`keep_optimizer`, "latest" by default) is only kept where a resume
needs it: after each save, the other prunable checkpoints lose their optimizer.pt
(`drop_older_optimizer_states`) except the run's latest, the one `--resume RUN`
continues from. AdamW's two moments are twice the weights, so this keeps each older
checkpoint at a third of its size; "all" keeps every checkpoint resumable.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from gptcore.errors import CheckpointError
from gptcore.runs.checkpoint import AUTO_NAME, Checkpoint, drop_optimizer_state, load_checkpoint
from gptcore.runs.checkpoints import best_checkpoint, delete_checkpoint, latest_of
from gptcore.runs.rundir import RunDir

AUTOMATIC = ("epoch", "periodic", "final", "interrupt")  # the saves a run makes on its own


def prunable(ckpt: Checkpoint) -> bool:
    """Whether retention may delete `ckpt`: an automatic save still under its step-N name."""
    return ckpt.reason in AUTOMATIC and AUTO_NAME.match(ckpt.path.name) is not None


def prune_checkpoints(run: Path, keep_last: int, protect: Path | None = None) -> list[Path]:
    """Delete the prunable checkpoints of `run` beyond the newest `keep_last`; the
    best one and `protect` are kept. Returns the deleted paths."""
    auto = []
    for path in RunDir(run).checkpoint_dirs():
        with contextlib.suppress(CheckpointError):
            ckpt = load_checkpoint(path, verify=False)
            if prunable(ckpt):
                auto.append(ckpt)
    auto.sort(key=lambda c: (c.step, c.created), reverse=True)
    keep = {c.path for c in auto[:keep_last]}
    if protect is not None:
        keep.add(Path(protect))
    with contextlib.suppress(CheckpointError):
        keep.add(best_checkpoint(run))
    removed = []
    for c in auto:
        if c.path not in keep:
            try:
                delete_checkpoint(c.path)
            except (CheckpointError, OSError):
                continue  # not ours to delete (a symlink, a foreign folder): leave it
            removed.append(c.path)
    return removed


def drop_older_optimizer_states(run: Path, keep: Path) -> list[Path]:
    """Remove the optimizer state of the prunable checkpoints of `run` other than
    `keep` (the one just saved) and the run's latest; returns the checkpoints changed."""
    auto = []
    for path in RunDir(run).checkpoint_dirs():
        with contextlib.suppress(CheckpointError):
            ckpt = load_checkpoint(path, verify=False)
            if prunable(ckpt) and ckpt.has_optimizer:
                auto.append(ckpt)
    latest = latest_of(auto)
    changed = []
    for c in auto:
        if c.path == Path(keep) or (latest is not None and c.path == latest.path):
            continue
        try:
            if drop_optimizer_state(c.path):
                changed.append(c.path)
        except (CheckpointError, OSError):
            continue  # unreadable or not ours: leave it whole
    return changed


class CheckpointPolicy:
    def __init__(self, every: int | None, keep_last: int, keep_optimizer: str = "latest") -> None:
        self.every = every
        self.keep_last = keep_last
        self.keep_optimizer = keep_optimizer
        self._requested = threading.Event()
        self.last_path: Path | None = None
        self.last_step: int | None = None
        self.last_reason = ""

    def request(self) -> None:
        """Ask for a checkpoint after the current step (any thread)."""
        self._requested.set()

    def take_request(self) -> bool:
        """True (once) when a checkpoint was asked for since the last call."""
        if self._requested.is_set():
            self._requested.clear()
            return True
        return False

    def due_after_step(self, step: int) -> list[str]:
        """The reasons to save after `step` steps are done (the second of two saves
        at one step reuses the first's checkpoint)."""
        reasons = ["manual"] if self.take_request() else []
        if self.every and step % self.every == 0:
            reasons.append("periodic")
        return reasons

    def reusable(self, step: int, reason: str) -> Path | None:
        """The checkpoint already saved at `step`, if it is still there and may stand
        for a save for `reason` (a manual one must be kept by retention)."""
        path = self.last_path
        if self.last_step != step or path is None or not path.exists():
            return None
        if reason not in AUTOMATIC and self.last_reason in AUTOMATIC:
            return None
        return path

    def resumed_from(self, ckpt: Checkpoint) -> None:
        """A resumed run starts from `ckpt`: it is the last checkpoint saved."""
        self.last_path, self.last_step, self.last_reason = ckpt.path, ckpt.step, ckpt.reason

    def saved(self, run_dir: Path, path: Path, step: int, reason: str) -> None:
        """Record a new checkpoint, prune the older automatic ones and, unless
        keep_optimizer is "all", drop their optimizer state."""
        self.last_path, self.last_step, self.last_reason = path, step, reason
        prune_checkpoints(run_dir, self.keep_last, protect=path)
        if self.keep_optimizer != "all":
            drop_older_optimizer_states(run_dir, keep=path)
