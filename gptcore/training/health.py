"""Training health signals: overfitting and loss / gradient-norm spikes.

Plain detectors fed one number at a time, so the Trainer (which turns what they
find into Overfitting and Spike events) and tests on constructed streams use the
same code. A non-finite loss is not a signal here: the Trainer stops the run.
"""

from __future__ import annotations

import math
import statistics
from collections import deque

from gptcore.runs.events import Overfitting, Spike
from gptcore.settings.train import MIN_SPIKE_WINDOW

# No spike is judged against fewer past values than this: the first steps of a run
# have too little history for a z-score to mean anything.
MIN_SPIKE_POINTS = MIN_SPIKE_WINDOW
# How far above the window's median a value must also be to count as a spike. A
# z-score alone flags ordinary outlier batches: measured on the shipped configs
# (tiny seeds 1, 2, 3, 123 in bf16 and fp32; quick seeds 1, 2, 123;
# benchmarks/spike_check.py), one batch's loss reached 1.24x the window's median and
# its gradient norm 159x, with z-scores up to 636, and the runs went on learning. A loss twice its median, or a
# gradient norm a thousand times its median, is no ordinary batch.
LOSS_SPIKE_RATIO = 2.0
GRAD_NORM_SPIKE_RATIO = 1000.0


def z_score(history: deque[float] | list[float], value: float) -> float | None:
    """How many (population) standard deviations `value` lies above the mean of
    `history`; None when the history is too short or does not vary."""
    n = len(history)
    if n < MIN_SPIKE_POINTS:
        return None
    mean = sum(history) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in history) / n)
    if std == 0.0:
        return None  # a flat history: any change would be an infinite z
    return (value - mean) / std


class SpikeDetector:
    """Flags a value whose z-score over the previous `window` values exceeds `z` and
    that is at least `min_ratio` times the window's median.

    Only upward spikes count (a loss that drops suddenly is good news). Every value
    joins the window, spikes too, so a lasting jump stops being a spike once the
    window has taken it in (a run is never skipped forever).
    """

    def __init__(self, window: int, z: float, min_ratio: float = 1.0) -> None:
        self.z = z
        self.min_ratio = min_ratio
        self.history: deque[float] = deque(maxlen=window)

    def check(self, value: float) -> float | None:
        """The z-score of `value` when it is a spike, else None; then remember it."""
        score = z_score(self.history, value) if self.z > 0 else None
        if score is not None and score > self.z and self.min_ratio > 1.0:
            median = statistics.median(self.history)
            if median > 0 and value < self.min_ratio * median:
                score = None  # far out for this window, but an ordinary outlier batch
        if math.isfinite(value):
            self.history.append(value)
        return score if score is not None and score > self.z else None


class OverfitDetector:
    """Counts consecutive evaluations where val loss rose while train loss fell
    (each compared with the evaluation before); `update` is True once, at the
    evaluation that makes the count reach `evals` (0 = off). A break in the
    streak re-arms it."""

    def __init__(self, evals: int) -> None:
        self.evals = evals
        self.streak = 0
        self.best_val: float | None = None
        self.best_step: int | None = None
        self._last: tuple[float, float] | None = None

    def update(self, step: int, train_loss: float, val_loss: float) -> bool:
        last, self._last = self._last, (train_loss, val_loss)
        if self.best_val is None or val_loss < self.best_val:
            self.best_val, self.best_step = val_loss, step
        if last is None:
            return False
        diverging = val_loss > last[1] and train_loss < last[0]
        self.streak = self.streak + 1 if diverging else 0
        return self.evals > 0 and self.streak == self.evals


def health_text(event: Overfitting | Spike) -> str:
    """One line saying what a health event means: what the CLI prints and the app
    notifies."""
    if isinstance(event, Overfitting):
        where = event.best_checkpoint or "no checkpoint holds it"
        return (
            f"overfitting at step {event.step} (epoch {event.epoch + 1}): val loss rose while "
            f"train loss fell for {event.evals} evals; best val {event.best_val:.3f} at step "
            f"{event.best_step} ({where})"
        )
    what = "loss" if event.kind == "loss" else "gradient norm"
    then = "update skipped" if event.skipped else "update applied"
    return (
        f"{what} spike at step {event.step} (epoch {event.epoch + 1}): "
        f"{event.value:.4g}, z {event.z:.1f}; {then}"
    )
