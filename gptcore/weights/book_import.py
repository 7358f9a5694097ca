"""Importing the book's `model_and_optimizer.pth` as a gpt-tui run that resumes.

The book saves {"model_state_dict", "optimizer_state_dict"} and nothing else: no
step count, epoch, data position or RNG state. The imported checkpoint keeps both
dicts (the weights, and the AdamW state in optimizer.pt) and continues as the
book's code does from the file (its exercise 5.4): a fresh epoch at step 0
(`global_step = -1`, `tokens_seen = 0`) with the RNG freshly seeded by the run's
seed (`torch.manual_seed(123)` before `train_model_simple`). AdamW keeps its own
count of updates for its bias correction, so the first update continues the
book's run exactly. The run records the train settings it was trained with, so
`gpt-tui train --resume RUN --config SAME` passes the data-position check.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

from gptcore.errors import CheckpointError
from gptcore.runs.checkpoint import save_checkpoint
from gptcore.runs.rundir import RunDir, new_run_dir, write_run_config
from gptcore.settings.files import load_run_config
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.util.progress import Progress, Stages
from gptcore.util.tomlwrite import toml_value
from gptcore.weights.book import import_book_pth

BOOK_CONFIG = "book"  # the shipped configs/book.toml: the book's chapter-5 run


def import_configs(
    config: str | Path | None = None, preset: str | None = None, overrides: Sequence[str] = ()
) -> tuple[GPTConfig, TrainConfig]:
    """The model and train settings an import records.

    `config` is the run config the file was trained with (a file or a shipped preset),
    `preset` replaces its model and `overrides` are `--set` strings. Without `config`
    it is the book's (configs/book.toml) with windows of the model's context length,
    as the book sets them (max_length = stride = context_length).
    """
    sets = [f"model={toml_value(preset)}"] if preset else []
    sets += list(overrides)
    model, train = load_run_config(config or BOOK_CONFIG, sets)
    if config is None:
        ctx = model.context_length
        windows = [f"max_length={ctx}", f"stride={ctx}"]
        model, train = load_run_config(BOOK_CONFIG, windows + sets)  # --set still wins
    return model, train


def import_book_run(
    pth_path: str | Path,
    model_config: GPTConfig,
    train_config: TrainConfig,
    name: str | None = "imported",
    progress: Progress | None = None,
) -> Path:
    """Make a new run holding one checkpoint (step 0) from a book .pth; its path.

    The file is read with torch.load(weights_only=True) and checked against the
    model (weights and optimizer state) before anything is written.
    `progress(done, total)` counts bytes: the file read, then the checkpoint written.
    """
    try:
        size = Path(pth_path).stat().st_size
    except OSError:
        size = 0  # import_book_pth says what is wrong with the path
    stages = Stages(2 * size, progress)  # read, then write about as much
    stages.start()
    model, opt_state = import_book_pth(pth_path, model_config)
    stages.done(size)
    optimizer = None
    if opt_state is not None:
        # load_state_dict takes the book's hyperparameters (lr, betas, ...) with the state.
        optimizer = torch.optim.AdamW(model.parameters())
        try:
            optimizer.load_state_dict(opt_state)
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise CheckpointError(
                f"the optimizer_state_dict in {pth_path} does not fit the model: {exc}"
            ) from None
    run = RunDir(new_run_dir(name))
    try:
        write_run_config(run.path, model_config, train_config)
        path = save_checkpoint(
            run.checkpoint(0),
            model,
            train_config=train_config.to_dict(),
            step=0,
            epoch=0,
            tokens_seen=0,
            optimizer=optimizer,
            # The book seeds right before training; the Trainer restores this state
            # after building its model, so the data order is the book's.
            rng={"torch": torch.Generator().manual_seed(train_config.seed).get_state()},
            reason="imported",
        )
        stages.finish()
        return path
    except BaseException:
        shutil.rmtree(run.path, ignore_errors=True)  # the folder this call just created
        raise
