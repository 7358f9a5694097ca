"""The pruner's check at each evaluation of a trial's run, and why it pruned.

`PruneCheck.on_eval` reports the evaluation's val loss to the trial and asks the
study's pruner whether to stop. The pruner's resource is training tokens seen (the
"step" Optuna is told), so trials with other batch sizes or windows compare at the
same amount of training; `listener_for(trainer)` does it on the Trainer's
EvalEnd events, and on a prune sends a Pruned event (so metrics.jsonl says at
which step and why) and stops the run with Finished(reason="pruned").
"""

from __future__ import annotations

import math
import statistics
import warnings
from typing import TYPE_CHECKING, Any

from gptcore.runs.events import EvalEnd, Event, Pruned

if TYPE_CHECKING:
    from gptcore.training.trainer import Trainer


class PruneCheck:
    """Reports one run's evaluations to its Optuna trial; `pruned` once it is pruned."""

    def __init__(self, trial: Any, pruner: str, sweep: str, reduction_factor: int = 3) -> None:
        self.trial = trial
        self.pruner = pruner
        self.sweep = sweep
        self.reduction_factor = reduction_factor
        self.pruned: Pruned | None = None

    def on_eval(self, step: int, epoch: int, val_loss: float, tokens: int) -> Pruned | None:
        """Report `val_loss` after `tokens` training tokens (the evaluation of global
        step `step`); the Pruned event when the pruner stops the trial."""
        if self.pruned is not None or not math.isfinite(val_loss):
            return None  # a NaN ends the run by itself (Failed)
        with warnings.catch_warnings():
            # A resumed run reports its checkpoint's evaluation again: Optuna keeps the first.
            warnings.simplefilter("ignore")
            self.trial.report(val_loss, tokens)
        if not self.trial.should_prune():
            return None
        self.pruned = Pruned(
            step=step,
            epoch=epoch,
            val_loss=val_loss,
            pruner=self.pruner,
            reason=self.why(step, tokens, val_loss),
            sweep=self.sweep,
            trial=self.trial.number,
        )
        return self.pruned

    def why(self, step: int, tokens: int, val_loss: float) -> str:
        """The prune in words: this trial's val loss against the others' after as many
        training tokens."""
        others = _values_at(self.trial, tokens, self.pruner)
        head = (
            f"pruned at step {step} ({tokens:,} tokens) by the {self.pruner} pruner: "
            f"val loss {val_loss:.3f}"
        )
        if not others:
            return head
        best, median = min(others), statistics.median(others)
        if self.pruner == "median":
            return (
                f"{head} is above the median {median:.3f} of {len(others)} complete "
                "trial(s) at as many tokens"
            )
        return (
            f"{head} is not in the best 1/{self.reduction_factor} of the trials at this rung "
            f"({len(others)} other(s); best {best:.3f}, median {median:.3f})"
        )

    def listener_for(self, trainer: Trainer) -> Any:
        """A Trainer listener: the check on each EvalEnd; a prune stops the run."""

        def on_event(event: Event) -> None:
            if not isinstance(event, EvalEnd):
                return
            pruned = self.on_eval(event.step, event.epoch, event.val_loss, event.tokens_seen)
            if pruned is not None:
                trainer.emit(pruned)
                trainer.stop("pruned")

        return on_event


def _values_at(trial: Any, tokens: int, pruner: str) -> list[float]:
    """The val loss at `tokens` (or the last report before) of the trials the pruner
    compares with: complete ones for the median pruner, every one that reported for
    successive halving and Hyperband (as Optuna's pruners do)."""
    import optuna

    kind = optuna.trial.TrialState
    if pruner == "median":
        states: tuple[Any, ...] = (kind.COMPLETE,)
    else:
        states = (kind.COMPLETE, kind.PRUNED, kind.RUNNING)
    values = []
    for other in trial.study.get_trials(deepcopy=False, states=states):
        if other.number == trial.number:
            continue
        reported = [s for s in other.intermediate_values if s <= tokens]
        if reported:
            value = other.intermediate_values[max(reported)]
            if math.isfinite(value):
                values.append(value)
    return values
