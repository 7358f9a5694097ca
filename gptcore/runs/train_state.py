"""A run's progress as one value: what a checkpoint saves and a resume restores.

Counting conventions (the same in every event and checkpoint):
- `step` counts optimizer steps completed. The book's `global_step` of the step
  being taken is `step` before it runs, so StepEnd/EvalEnd/Sample carry that
  0-based index while RunStarted/CheckpointSaved/Finished/Failed carry `step`.
- `epoch` is the 0-based index of the current epoch, i.e. epochs completed before
  it; `step_in_epoch` counts the steps done in it. After the last epoch, `epoch`
  equals the number of epochs and `step_in_epoch` is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gptcore.errors import CheckpointError


@dataclass
class TrainState:
    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    tokens_seen: int = 0
    order_seed: int | None = None  # the current epoch's shuffle seed; None: not drawn yet
    best_val_loss: float | None = None
    last_val_loss: float | None = None
    last_train_loss: float | None = None

    @property
    def mid_epoch(self) -> bool:
        """True when the current epoch has started: its order must be kept, not redrawn."""
        return self.step_in_epoch > 0

    def start_epoch(self, seed: int | None) -> None:
        self.order_seed, self.step_in_epoch = seed, 0

    def end_epoch(self) -> None:
        self.epoch += 1
        self.step_in_epoch, self.order_seed = 0, None

    def record_step(self, tokens: int) -> None:
        self.step += 1
        self.step_in_epoch += 1
        self.tokens_seen += tokens

    def record_eval(self, train_loss: float, val_loss: float) -> None:
        self.last_train_loss, self.last_val_loss = train_loss, val_loss
        if self.best_val_loss is None or val_loss < self.best_val_loss:
            self.best_val_loss = val_loss

    def checkpoint_fields(self) -> dict[str, Any]:
        """Keyword arguments of save_checkpoint that hold the state, and its `data` part."""
        return {
            "step": self.step,
            "epoch": self.epoch,
            "tokens_seen": self.tokens_seen,
            "best_val_loss": self.best_val_loss,
            "val_loss": self.last_val_loss,
            "train_loss": self.last_train_loss,
            "data": {"step_in_epoch": self.step_in_epoch, "order_seed": self.order_seed},
        }

    @classmethod
    def from_checkpoint(cls, ckpt: Any) -> TrainState:
        """The state a checkpoint (gptcore.runs.checkpoint.Checkpoint) saved."""
        # load_checkpoint checked it (runs/checkpoint_meta.py): a whole number or None.
        seed = ckpt.data.get("order_seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise CheckpointError(
                f"{ckpt.path}: field 'data.order_seed' must be a whole number or null, "
                f"got {type(seed).__name__}"
            )
        return cls(
            step=ckpt.step,
            epoch=ckpt.epoch,
            step_in_epoch=ckpt.step_in_epoch,
            tokens_seen=ckpt.tokens_seen,
            order_seed=seed,
            best_val_loss=ckpt.best_val_loss,
            last_val_loss=ckpt.val_loss,
            last_train_loss=ckpt.train_loss,
        )


def epoch_number(epoch: int, step_in_epoch: int) -> int:
    """The 1-based epoch a point of a run belongs to, for display: the epoch in
    progress, or the one just completed at an epoch boundary (so the end of a
    3-epoch run is epoch 3, not 4)."""
    return epoch + 1 if step_in_epoch > 0 or epoch == 0 else epoch
