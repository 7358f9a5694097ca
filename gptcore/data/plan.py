"""The batch plan: how a corpus and a run config turn into windows, batches and steps.

One function computes it from token counts alone, so the Trainer (which then runs
exactly this plan) and the app's Corpus and Train screens (which show it before a
run starts) can never disagree. A plan that cannot train carries the error that
stops it, as a value: the screens show it, the Trainer raises it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gptcore.errors import ConfigError, CorpusError, GptTuiError
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import MAX_WINDOWS_PER_EPOCH, TrainConfig


def count_windows(n_tokens: int, max_length: int, stride: int) -> int:
    """Windows of the book's GPTDatasetV1: starts range(0, n_tokens - max_length, stride)."""
    return len(range(0, n_tokens - max_length, stride))


def count_batches(n_windows: int, batch_size: int, drop_last: bool) -> int:
    return n_windows // batch_size if drop_last else -(-n_windows // batch_size)


@dataclass(frozen=True)
class BatchPlan:
    """Windows, batches and optimizer steps of a run, per epoch and in all.

    `train_windows` are the windows one epoch draws (with the random sampler:
    `samples_per_epoch`, or one per `length` tokens); batches are global batches of
    `batch_size x processes` windows; a step takes `grad_accum` of them.
    """

    length: int
    stride: int
    sampler: str
    processes: int
    batch_size: int
    grad_accum: int
    train_windows: int
    val_windows: int
    train_batches: int
    val_batches: int
    steps_per_epoch: int
    total_steps: int
    problem: GptTuiError | None = None

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.processes

    def check(self) -> BatchPlan:
        """The plan itself, or its problem raised."""
        if self.problem is not None:
            raise self.problem
        return self

    def describe(self) -> str:
        """Lines for a screen: the window shape, windows, batches and steps."""
        procs = f" x {self.processes} processes" if self.processes > 1 else ""
        accum = f", grad_accum {self.grad_accum}" if self.grad_accum > 1 else ""
        sampler = ", random windows" if self.sampler == "random" else ""
        return (
            f"context {self.length}, stride {self.stride}, batch size "
            f"{self.batch_size}{procs}{accum}{sampler}\n"
            f"windows  train {self.train_windows:,}  val {self.val_windows:,}\n"
            f"batches  train {self.train_batches:,}  val {self.val_batches:,}\n"
            f"steps    {self.steps_per_epoch:,} per epoch, {self.total_steps:,} in all"
        )


def short_split_error(what: str, tokens: int, length: int) -> CorpusError:
    """A split too short for one window (the book's loader would yield no batch)."""
    return CorpusError(
        f"the {what} split has {tokens:,} tokens, but one window of context length "
        f"{length} needs at least {length + 1}; use a larger corpus, a smaller context "
        "length, or a different train_ratio"
    )


def batch_plan(
    train_tokens: int,
    val_tokens: int,
    model: GPTConfig,
    train: TrainConfig,
    processes: int = 1,
) -> BatchPlan:
    """The plan a run of `train` on `model` follows over a corpus split into
    `train_tokens` and `val_tokens` tokens, with `processes` DDP ranks."""
    if not isinstance(train.batch_size, int):
        # batch_size = "auto" is chosen as the run starts (gptcore.planner.autobatch,
        # from the device's free memory); until then the plan is the one at batch 1.
        train = dataclasses.replace(
            train,
            batch_size=1,
            grad_accum=train.effective_batch or train.grad_accum,
            effective_batch=None,
        )
    elif train.effective_batch:  # grad_accum keeps the effective batch (checked divisible)
        train = dataclasses.replace(train, grad_accum=train.effective_batch // train.batch_size)
    ctx = model.context_length
    length = train.max_length or ctx
    stride = train.stride or length
    if train.sampler == "random":
        train_windows = train.samples_per_epoch or max(1, train_tokens // length)
    else:
        train_windows = count_windows(train_tokens, length, stride)
    val_windows = count_windows(val_tokens, length, stride)
    global_batch = train.batch_size * processes
    train_batches = count_batches(train_windows, global_batch, train.drop_last)
    val_batches = count_batches(val_windows, global_batch, False)
    steps_per_epoch = train_batches // train.grad_accum
    total = train.epochs * steps_per_epoch
    total_steps = min(total, train.max_steps) if train.max_steps else total

    batch, left_over = train.batch_size, train_windows % global_batch
    problem: GptTuiError | None = None
    if length > ctx:
        problem = ConfigError(
            f"train.max_length ({length}) exceeds the model's context length ({ctx})"
        )
    elif train_tokens <= length:
        problem = short_split_error("training", train_tokens, length)
    elif val_tokens <= length:
        problem = short_split_error("validation", val_tokens, length)
    elif processes > 1 and not train.drop_last and 0 < left_over <= (processes - 1) * batch:
        problem = ConfigError(
            f"with drop_last = false the epoch's last batch has {left_over} window(s), which "
            f"leaves process {processes} of {processes} without any; set drop_last = true "
            "or change batch_size or samples_per_epoch"
        )
    elif train_windows > MAX_WINDOWS_PER_EPOCH:
        # Each epoch's order is a list of its windows: beyond this it exhausts memory.
        problem = ConfigError(
            f"one epoch would draw {train_windows:,} windows, more than "
            f'{MAX_WINDOWS_PER_EPOCH:,}; use a larger stride, or sampler = "random" '
            "with a smaller samples_per_epoch"
        )
    elif steps_per_epoch == 0:
        procs = f" x {processes} processes" if processes > 1 else ""
        problem = ConfigError(
            f"the corpus is too small for this configuration: the training split has "
            f"{train_windows:,} windows of {length} tokens, fewer than one step's "
            f"batch_size {train.batch_size} x grad_accum {train.grad_accum}{procs}; use a "
            "smaller batch_size, max_length or stride, or a larger corpus"
        )
    return BatchPlan(
        length=length,
        stride=stride,
        sampler=train.sampler,
        processes=processes,
        batch_size=train.batch_size,
        grad_accum=train.grad_accum,
        train_windows=train_windows,
        val_windows=val_windows,
        train_batches=train_batches,
        val_batches=val_batches,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        problem=problem,
    )
