"""Preparing a run: its configs from a file, a front end's form, overrides or a
checkpoint, and resuming.

`prepare_run` is the one place that turns what a user gave (`--config`, `--set`,
`--corpus`, `--init`, `--resume`, `--run-dir`; or the app's Train form, or a
checkpoint picked in the app) into a PreparedRun: the configs a Trainer runs,
checked as the Trainer will check them, with a resumed checkpoint loaded and
verified once. `trainer.trainer_for` builds the Trainer from it; `gpt-tui train`
and the app both go this way. Resuming a run (or RUN:latest) whose latest
checkpoint is damaged falls back to its newest healthy one, with a `notice` the
front ends show. `check_resume` says why a checkpoint cannot continue under a config.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from gptcore.errors import CheckpointError, ConfigError, RunBusyError
from gptcore.hardware.precision import resume_precision_notice
from gptcore.runs.checkpoint import Checkpoint, load_checkpoint
from gptcore.runs.checkpoints import find_run, newest_healthy
from gptcore.runs.lock import lock_holder
from gptcore.runs.rundir import RunDir
from gptcore.settings.files import load_run_config, run_config_from_dict
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig, check_trainable
from gptcore.training.continuation import check_more_to_train
from gptcore.util.tomlwrite import toml_value
from gptcore.weights.modelspec import checkpoint_path
from gptcore.weights.spec import CHECKPOINT, CHECKPOINT_KINDS, LATEST, parse_spec

# Settings that fix what a data position means: changing them on resume is refused.
DATA_KEYS = (
    "train_ratio",
    "decode_errors",
    "batch_size",
    "max_length",
    "stride",
    "shuffle",
    "drop_last",
    "sampler",
    "samples_per_epoch",
    "grad_accum",
)


@dataclass(frozen=True)
class PreparedRun:
    """A run ready to train: gptcore.training.trainer.trainer_for builds its Trainer."""

    model_config: GPTConfig
    train_config: TrainConfig
    checkpoint: Checkpoint | None = None  # loaded and verified, when resuming
    notice: str | None = None  # e.g. "the latest checkpoint is damaged: resuming from ..."
    run_dir: Path | None = None  # where to write the run (None: a new run folder)


def prepare_run(
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    configs: tuple[GPTConfig, TrainConfig] | None = None,
    corpus: str | None = None,
    init: str | None = None,
    resume: str | Path | None = None,
    run_dir: str | Path | None = None,
    refuse_finished: bool = False,
) -> PreparedRun:
    """The configs (and resumed checkpoint) of a run; ConfigError (one line) when
    they cannot train.

    The settings come from one source: `config`, a run config file or a shipped
    preset's name; `configs`, a front end's own (model, train) configs (the app's
    Train form); or, with neither, the settings a resumed checkpoint stored.
    `overrides` are `--set` strings applied on top; `corpus` and `init` are
    shorthands for two of them. Every source is decoded and checked the same way
    (the declared settings, then the rules across model and train).
    `refuse_finished`: a resumed run with nothing left to train (all epochs done,
    max_steps reached) is a ConfigError saying how to give it more, instead of a
    resume that only saves its final checkpoint again (off by default: a sweep's
    restart still closes a run killed right after its final save).
    """
    if config and configs is not None:
        raise ConfigError("give a run config file or the configs themselves, not both")
    overrides = list(overrides)
    if corpus:
        # toml_value, not json.dumps: JSON escapes 😀 as a surrogate pair TOML rejects
        overrides.append(f"corpus={toml_value(corpus)}")
    if init:
        if resume:
            raise ConfigError("--init starts from pretrained weights; it cannot go with --resume")
        overrides.append(f"init={toml_value(init)}")
    ckpt, notice = open_resume(resume) if resume else (None, None)
    if config:
        model_config, train_config = load_run_config(config, overrides)
    elif configs is not None:
        data = {"model": configs[0].to_dict(), "train": configs[1].to_dict()}
        model_config, train_config = run_config_from_dict(data, "the run's settings", overrides)
    elif ckpt is not None:
        data = {"model": ckpt.model_config.to_dict(), "train": ckpt.train_config}
        model_config, train_config = run_config_from_dict(
            data, f"checkpoint {ckpt.path}", overrides
        )
    else:
        raise ConfigError("give a run config with --config FILE (or --resume RUN_OR_CHECKPOINT)")
    check_trainable(model_config, train_config)  # what the Trainer checks before it writes
    if ckpt is not None and refuse_finished:
        check_more_to_train(ckpt, train_config)
    if ckpt is not None:
        said = resume_precision_notice(train_config.precision, ckpt.precision)
        fresh = None
        if not ckpt.has_optimizer:  # an older checkpoint keeps weights only
            fresh = (
                f"{ckpt.path.name} holds weights only (no optimizer state): AdamW starts "
                "afresh, so this is not an exact continuation"
            )
        notice = "; ".join(n for n in (notice, said, fresh) if n) or None
    folder = Path(run_dir) if run_dir else None
    return PreparedRun(model_config, train_config, ckpt, notice, folder)


def open_resume(spec: str | Path) -> tuple[Checkpoint, str | None]:
    """The checkpoint a resume spec names (a checkpoint folder, a run or run name = its
    latest, RUN:latest, RUN:best), loaded with every file's sha256 verified, and a notice
    when the run's latest checkpoint was damaged and its newest healthy one is used.

    A checkpoint folder or RUN:best named explicitly never falls back: it is that one or
    an error.
    """
    parsed = parse_spec(spec, CHECKPOINT_KINDS)
    path = checkpoint_path(parsed)
    run = RunDir.of_checkpoint(path)
    # Before reading anything: a run still training there rewrites its checkpoints
    # (older ones lose their optimizer state) while a resume would read them.
    held = lock_holder(run.path) if run is not None else None
    if held is not None:
        raise RunBusyError(f"run {run.path} is in use: {held}")
    names_latest = parsed.kind == LATEST or (
        parsed.kind == CHECKPOINT and find_run(parsed.target) != path
    )
    if run is None or not names_latest:
        return load_checkpoint(path), None
    ckpt, passed = newest_healthy(run.path)
    if not passed:
        return ckpt, None
    damaged = "; ".join(f"{p.name}: {why}" for p, why in passed)
    return ckpt, (
        f"run {run.name}: skipping damaged checkpoint(s) ({damaged}); "
        f"resuming from {ckpt.path.name} (step {ckpt.step})"
    )


def open_checkpoint(spec: str | Path) -> Checkpoint:
    """The checkpoint `open_resume` picks for a resume spec (without its notice)."""
    return open_resume(spec)[0]


def _config_diff(a: GPTConfig, b: GPTConfig) -> str:
    da, db = a.to_dict(), b.to_dict()
    return ", ".join(f"{k} {da[k]!r} vs {db[k]!r}" for k in da if da[k] != db[k])


def check_resume(
    ckpt: Checkpoint, model: GPTConfig, train: TrainConfig, processes: int = 1
) -> None:
    """Raise CheckpointError when `ckpt` cannot continue as this run."""
    # The init scheme only chose the starting weights; the checkpoint's replace them.
    same_init = replace(model, init=ckpt.model_config.init)
    if not train.init and ckpt.model_config != same_init:
        raise CheckpointError(
            f"checkpoint {ckpt.path} does not match the model configuration "
            f"(checkpoint vs config: {_config_diff(ckpt.model_config, model)})"
        )
    theirs, mine = ckpt.train_config, train.to_dict()
    changed = [k for k in DATA_KEYS if k in theirs and theirs[k] != mine[k]]
    if changed:
        k = changed[0]
        raise CheckpointError(
            f"cannot resume {ckpt.path} with a different train.{k} "
            f"({theirs[k]!r} in the checkpoint, {mine[k]!r} now): the data position "
            "would not mean the same thing"
        )
    world = ckpt.data.get("world_size", 1)
    if world != processes:
        raise CheckpointError(
            f"checkpoint {ckpt.path} was trained with {world} process(es); "
            f"resume it with the same number (now {processes})"
        )


def check_schedule(ckpt: Checkpoint, train: TrainConfig, steps_per_epoch: int) -> None:
    """Raise CheckpointError when resuming would bend a cosine schedule: its curve is
    drawn over the run's total steps, so changing them (max_steps, epochs) changes the
    learning rate the finished steps were meant to have and the rest follows another."""
    theirs = ckpt.train_config
    if train.lr_schedule != "cosine" or theirs.get("lr_schedule") != "cosine":
        return

    def total(epochs: int, max_steps: int | None) -> int:
        steps = epochs * steps_per_epoch
        return min(steps, max_steps) if max_steps else steps

    before = total(theirs.get("epochs", train.epochs), theirs.get("max_steps", train.max_steps))
    now = total(train.epochs, train.max_steps)
    if before != now:
        raise CheckpointError(
            f"cannot resume {ckpt.path} with a different train.max_steps or train.epochs "
            f"under the cosine lr_schedule: the schedule spans {before:,} steps in the "
            f"checkpoint and would span {now:,} now (max_steps {theirs.get('max_steps')!r} "
            f'then, {train.max_steps!r} now); keep them, or use lr_schedule = "constant"'
        )
