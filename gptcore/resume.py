"""Preparing a run: its configs from a file, overrides or a checkpoint, and resuming.

`prepare_run` is the one place that turns what a user gave (`--config`, `--set`,
`--corpus`, `--init`, `--resume`; or the app's form, or a checkpoint picked in the
app) into the configs a Trainer runs, loading and verifying a resumed checkpoint
once. `check_resume` says why a checkpoint cannot continue under a config.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import Checkpoint, load_checkpoint, resolve_checkpoint
from .config import GPTConfig, TrainConfig, load_run_config, run_config_from_dict
from .errors import CheckpointError, ConfigError

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
    model_config: GPTConfig
    train_config: TrainConfig
    checkpoint: Checkpoint | None = None  # loaded and verified, when resuming


def prepare_run(
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    corpus: str | None = None,
    init: str | None = None,
    resume: str | Path | None = None,
) -> PreparedRun:
    """The configs (and resumed checkpoint) of a run.

    `config` is a run config file or a shipped preset's name; without it, a resumed
    run reuses the settings stored in its checkpoint. `overrides` are `--set`
    strings; `corpus` and `init` are shorthands for two of them.
    """
    overrides = list(overrides)
    if corpus:
        overrides.append(f"corpus={json.dumps(corpus)}")  # a JSON string is a TOML string
    if init:
        if resume:
            raise ConfigError("--init starts from pretrained weights; it cannot go with --resume")
        overrides.append(f"init={json.dumps(init)}")
    ckpt = open_checkpoint(resume) if resume else None
    if config:
        model_config, train_config = load_run_config(config, overrides)
    elif ckpt is not None:
        data = {"model": ckpt.model_config.to_dict(), "train": ckpt.train_config}
        model_config, train_config = run_config_from_dict(
            data, f"checkpoint {ckpt.path}", overrides
        )
    else:
        raise ConfigError("give a run config with --config FILE (or --resume RUN_OR_CHECKPOINT)")
    return PreparedRun(model_config, train_config, ckpt)


def open_checkpoint(spec: str | Path) -> Checkpoint:
    """The checkpoint a resume spec names (a checkpoint folder, a run or run name = its
    latest, RUN:latest, RUN:best), loaded with every file's sha256 verified."""
    return load_checkpoint(resolve_checkpoint(spec))


def _config_diff(a: GPTConfig, b: GPTConfig) -> str:
    da, db = a.to_dict(), b.to_dict()
    return ", ".join(f"{k} {da[k]!r} vs {db[k]!r}" for k in da if da[k] != db[k])


def check_resume(
    ckpt: Checkpoint, model: GPTConfig, train: TrainConfig, processes: int = 1
) -> None:
    """Raise CheckpointError when `ckpt` cannot continue as this run."""
    if not train.init and ckpt.model_config != model:
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
