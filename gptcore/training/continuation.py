"""Continuing a finished run: whether a checkpoint has anything left to train, what
to offer instead (more epochs or steps), and what that does to the learning rate.

A run is finished when its checkpoint has done all `train.epochs` epochs or reached
`train.max_steps`: resuming it unchanged would train nothing and only save its final
checkpoint again, so front ends ask for more epochs or steps (`continue_offer`,
`continue_overrides`) and `gpt-tui train --resume` refuses with one line
(`check_more_to_train`, called by `prepare_run`).

The learning-rate rule is resume's (`resume.check_schedule`): a cosine schedule is
drawn over the run's total steps, so raising them on resume is refused; continuing a
finished cosine run switches it to the constant schedule, at `train.lr`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gptcore.errors import ConfigError, FieldError
from gptcore.runs.rundir import checkpoint_label
from gptcore.settings.declare import declared, parse_text, value_problem
from gptcore.settings.train import MAX_EPOCHS, TrainConfig
from gptcore.util.tomlwrite import toml_value

if TYPE_CHECKING:  # loading checkpoints imports torch; the app's dialog must not
    from gptcore.runs.checkpoint import Checkpoint

CONSTANT = "constant"
COSINE = "cosine"


@dataclass(frozen=True)
class ContinueOffer:
    """What continuing a checkpoint's run would train, for a dialog to show."""

    label: str  # RUN/NAME
    step: int  # steps done
    epochs_done: int  # epochs completed
    epochs: int  # the run's train.epochs
    max_steps: int | None  # the run's train.max_steps
    lr_schedule: str
    lr: float
    min_lr: float
    finished: bool  # nothing left to train under the run's own settings
    suggested_epochs: int  # what a dialog prefills: twice as many epochs
    suggested_max_steps: int | None  # None when the run had no step limit

    @property
    def cosine(self) -> bool:
        return self.lr_schedule == COSINE

    def lr_rule(self) -> str:
        """One or two lines on the learning rate of the extra steps (resume's rule)."""
        if self.cosine:
            return (
                f"lr: the cosine ran down to min_lr {self.min_lr:g}; resume can't stretch it, "
                f"so the extra steps train at a constant lr {self.lr:g} (train.lr)."
            )
        return f"lr: the extra steps train at the same constant lr {self.lr:g} (train.lr)."


def _setting(train: dict[str, Any], name: str) -> Any:
    """A train setting as the checkpoint stored it, else its declared default."""
    return train.get(name, declared(TrainConfig)[name].default)


def is_finished(ckpt: Checkpoint, epochs: int, max_steps: int | None) -> bool:
    """True when resuming `ckpt` with these limits would train no step."""
    return ckpt.epoch >= epochs or (max_steps is not None and ckpt.step >= max_steps)


def continue_offer(ckpt: Checkpoint) -> ContinueOffer:
    """What continuing `ckpt` under its run's own settings means, with what to prefill."""
    train = ckpt.train_config
    epochs, max_steps = _setting(train, "epochs"), _setting(train, "max_steps")
    done = ckpt.epoch
    suggested_epochs = min(MAX_EPOCHS, max(epochs, done) + max(1, done))
    suggested_steps = None if max_steps is None else max(max_steps, ckpt.step) + max(1, ckpt.step)
    return ContinueOffer(
        label=checkpoint_label(ckpt.path),
        step=ckpt.step,
        epochs_done=done,
        epochs=epochs,
        max_steps=max_steps,
        lr_schedule=_setting(train, "lr_schedule"),
        lr=_setting(train, "lr"),
        min_lr=_setting(train, "min_lr"),
        finished=is_finished(ckpt, epochs, max_steps),
        suggested_epochs=suggested_epochs,
        suggested_max_steps=suggested_steps,
    )


def continue_overrides(offer: ContinueOffer, epochs_text: str, max_steps_text: str) -> list[str]:
    """The `--set` overrides that continue `offer`'s run to the typed epochs and max
    steps (blank: none, for a run without a step limit), checked against the settings' declarations and
    against the run's progress. ConfigError (one FieldError per bad field) otherwise."""
    texts = {"epochs": epochs_text, "max_steps": max_steps_text}
    values, errors = parse_text(TrainConfig, texts, "train.")
    decls = declared(TrainConfig)
    for name, value in values.items():
        problem = value_problem(decls[name], value, f"train.{name}")
        if problem is not None:
            errors.append(problem)
    if not errors:
        epochs, max_steps = values["epochs"], values["max_steps"]
        if epochs <= offer.epochs_done:
            errors.append(
                FieldError(
                    "epochs",
                    f"train.epochs must be more than the {offer.epochs_done} epochs done",
                )
            )
        if max_steps is None and offer.max_steps is not None:
            # `--set` has no null: a limit the run has can be raised, not removed
            errors.append(
                FieldError("max_steps", "train.max_steps is this run's step limit: raise it")
            )
        elif max_steps is not None and max_steps <= offer.step:
            errors.append(
                FieldError(
                    "max_steps",
                    f"train.max_steps must be more than the {offer.step:,} steps done",
                )
            )
    if errors:
        raise ConfigError(errors[0].message, errors=tuple(errors))
    overrides = [f"train.epochs={values['epochs']}"]
    if values["max_steps"] is not None:
        overrides.append(f"train.max_steps={values['max_steps']}")
    if offer.cosine:  # resume refuses to stretch a cosine (check_schedule)
        overrides.append(f"train.lr_schedule={toml_value(CONSTANT)}")
    return overrides


def check_more_to_train(ckpt: Checkpoint, train: TrainConfig) -> None:
    """Raise ConfigError (one line) when resuming `ckpt` under `train` would train no
    step: the run is finished; say how to give it more."""
    if not is_finished(ckpt, train.epochs, train.max_steps):
        return
    offer = continue_offer(ckpt)
    if train.max_steps is not None and ckpt.step >= train.max_steps:
        what = f"reached train.max_steps = {train.max_steps:,}"
        more = f"--set train.max_steps={max(train.max_steps, ckpt.step) + max(1, ckpt.step)}"
    else:
        what = f"all {train.epochs} epochs done"
        more = f"--set train.epochs={offer.suggested_epochs}"
    cosine = (
        ' and --set train.lr_schedule="constant" (a cosine schedule cannot be stretched)'
        if train.lr_schedule == COSINE
        else ""
    )
    raise ConfigError(
        f"{offer.label} is finished ({what}, step {ckpt.step:,}): nothing to train; "
        f"continue it with more, e.g. {more}{cosine}"
    )
