"""Losses: the book's calc_loss_batch / calc_loss_loader, perplexity, and the two
"loss of this model on this corpus" tasks:

- `evaluate_model`: a loaded model on a corpus split as the caller says
  (`gpt-tui eval --preset/--gpt2/--weights`, the GPT-2 reference lines);
- `evaluate_checkpoint`: a checkpoint on a corpus split as its own run split it
  (train_ratio, decode_errors, windows, batch size from its meta.json), so its
  "val" is its own validation split (`gpt-tui eval --checkpoint` and the
  Checkpoints screen's compare).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gptcore.data.runcorpus import corpus_source, run_corpus
from gptcore.data.tokens import ProgressFn, TokenizedCorpus, prepare_corpus
from gptcore.data.windows import make_loader, require_windows
from gptcore.errors import ConfigError, CorpusError
from gptcore.hardware.device import pick_device
from gptcore.runs.checkpoint import Checkpoint
from gptcore.settings.declare import from_mapping
from gptcore.settings.train import TrainConfig
from gptcore.util.progress import Stages
from gptcore.weights.modelspec import load_spec
from gptcore.weights.spec import CHECKPOINT_KINDS, ModelSpec, parse_spec

# The settings of a run that decide what its "train" and "val" are: the split, the
# windows and the batches (a checkpoint records them in its train_config).
SPLIT_SETTINGS = (
    "train_ratio",
    "decode_errors",
    "text_field",
    "split",
    "split_seed",
    "val_corpus",
    "sampler",  # a mixture is drawn from at random
    "max_length",
    "stride",
    "batch_size",
)


def calc_loss_batch(
    input_batch: torch.Tensor,
    target_batch: torch.Tensor,
    model: nn.Module,
    device: torch.device | str,
) -> torch.Tensor:
    """Mean cross-entropy of the model's next-token logits over one batch."""
    input_batch = input_batch.to(device, non_blocking=True)
    target_batch = target_batch.to(device, non_blocking=True)
    logits = model(input_batch)
    return F.cross_entropy(logits.flatten(0, 1).float(), target_batch.flatten())


def calc_loss_loader(
    loader: Iterable,
    model: nn.Module,
    device: torch.device | str,
    num_batches: int | None = None,
    on_batch: Callable[[], None] | None = None,
) -> float:
    """Mean batch loss over the first `num_batches` batches (all by default);
    `on_batch()` is called after each one.

    The book returns NaN for an empty loader; that hides a corpus too small for
    the context length, so it is an error here.
    """
    total_batches = len(loader) if isinstance(loader, Sized) else None
    if total_batches == 0:
        raise CorpusError("no batches to evaluate: the data is too short for one batch")
    if num_batches is not None and num_batches <= 0:
        raise ValueError(f"num_batches must be positive, got {num_batches}")
    if total_batches is not None:
        num_batches = total_batches if num_batches is None else min(num_batches, total_batches)
    total, count = 0.0, 0
    with torch.no_grad():
        for i, (inputs, targets) in enumerate(loader):
            if num_batches is not None and i >= num_batches:
                break
            total += calc_loss_batch(inputs, targets, model, device).item()
            count += 1
            if on_batch is not None:
                on_batch()
    if count == 0:
        raise CorpusError("no batches to evaluate: the data is too short for one batch")
    return total / count


def perplexity(loss: float) -> float:
    """exp(loss); inf rather than an OverflowError for huge losses."""
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


@dataclass(frozen=True)
class Evaluation:
    """Mean train/val loss of a model on a corpus, and how it was measured."""

    train_loss: float
    val_loss: float
    train_batches: int  # batches evaluated per split
    val_batches: int
    batch_size: int
    device: str
    # The split and windows the losses are over.
    corpus: str  # the corpus's name
    train_ratio: float
    train_tokens: int
    val_tokens: int
    window: int  # tokens per window
    stride: int

    @property
    def train_perplexity(self) -> float:
        return perplexity(self.train_loss)

    @property
    def val_perplexity(self) -> float:
        return perplexity(self.val_loss)

    def to_dict(self) -> dict[str, float | int]:
        """What `gpt-tui eval --json` prints: the losses and the split they are over."""
        return {
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "train_perplexity": self.train_perplexity,
            "val_perplexity": self.val_perplexity,
            "train_ratio": self.train_ratio,
            "train_tokens": self.train_tokens,
            "val_tokens": self.val_tokens,
            "window": self.window,
            "stride": self.stride,
            "batch_size": self.batch_size,
            "train_batches": self.train_batches,
            "val_batches": self.val_batches,
        }


def evaluate_model(
    model: nn.Module,
    corpus: TokenizedCorpus | str | Path,
    *,
    batch_size: int = 2,
    max_batches: int | None = None,
    device: str | torch.device | None = None,
    train_ratio: float = 0.9,
    decode_errors: str = "strict",
    max_length: int | None = None,
    stride: int | None = None,
    progress: ProgressFn | None = None,
) -> Evaluation:
    """The book's loss check: windows of `max_length` tokens (default: the model's
    context length) every `stride` tokens (default: the window length) over each
    split, mean loss over the batches (the first `max_batches` per split when given;
    the training split drops its last partial batch, as the book's loader does).

    `corpus` is a prepared corpus or a source for `prepare_corpus` (split by
    characters at `train_ratio`; pass a prepared corpus's own ratio with it, as
    the result reports it). The model is moved to `device` (pick_device's choice
    when None) and put in eval mode. `progress(done, total)` follows the batches of
    both splits together, from (0, total) before the first.
    """
    if batch_size <= 0:
        raise ConfigError(f"the batch size must be positive, got {batch_size}")
    if max_batches is not None and max_batches <= 0:
        raise ConfigError(f"the number of batches must be positive, got {max_batches}")
    context = model.config.context_length
    length = max_length or context
    stride = stride or length
    if length > context:
        raise ConfigError(f"windows of {length} tokens exceed the model's context length {context}")
    if not isinstance(corpus, TokenizedCorpus):
        corpus = prepare_corpus(corpus, train_ratio, decode_errors)
    dev = device if isinstance(device, torch.device) else pick_device(device or "auto")
    model.to(dev).eval()
    require_windows(corpus.train_tokens, length, "training")
    require_windows(corpus.val_tokens, length, "validation")
    train_loader = make_loader(corpus.train_tokens, batch_size, length, stride, False, True)
    val_loader = make_loader(corpus.val_tokens, batch_size, length, stride, False, False)
    if len(train_loader) == 0:
        raise ConfigError(
            f"the training split has {len(train_loader.dataset)} windows, fewer than one batch "
            f"of {batch_size}; use a smaller batch size or a larger corpus"
        )

    def used(loader: Sized) -> int:
        return len(loader) if max_batches is None else min(len(loader), max_batches)

    batches = Stages(used(train_loader) + used(val_loader), progress)
    batches.start()

    def one_more() -> None:
        batches.done(1)

    return Evaluation(
        train_loss=calc_loss_loader(train_loader, model, dev, max_batches, one_more),
        val_loss=calc_loss_loader(val_loader, model, dev, max_batches, one_more),
        train_batches=used(train_loader),
        val_batches=used(val_loader),
        batch_size=batch_size,
        device=str(dev),
        corpus=corpus.name,
        train_ratio=train_ratio,
        train_tokens=len(corpus.train_tokens),
        val_tokens=len(corpus.val_tokens),
        window=length,
        stride=stride,
    )


def eval_options(train_config: Mapping[str, Any]) -> tuple[int, torch.device]:
    """The batch size and device a checkpoint's run trained with, to evaluate it the same
    way here; a device this machine lacks (a run trained elsewhere) falls back to
    pick_device's choice."""
    batch_size = int(train_config.get("batch_size") or TrainConfig.batch_size)
    try:
        device = pick_device(str(train_config.get("device") or "auto"))
    except ConfigError:
        device = pick_device("auto")
    return batch_size, device


@dataclass(frozen=True)
class CheckpointEvaluation:
    """A checkpoint's losses on a corpus, over the split its own run trained with."""

    label: str  # "checkpoint PATH (step N)"
    parameters: int
    corpus_chars: int
    corpus_tokens: int
    evaluation: Evaluation


def checkpoint_split(ckpt: Checkpoint) -> TrainConfig:
    """The corpus and split settings the checkpoint's run trained with, read from its
    train_config by their declarations; a setting it does not record (an older or
    imported checkpoint) is the default. A wrong value is a ConfigError naming it."""
    saved = {
        name: ckpt.train_config[name]
        for name in ("corpus", *SPLIT_SETTINGS)
        if ckpt.train_config.get(name) is not None
    }
    return from_mapping(TrainConfig, saved, f"checkpoint {ckpt.path}: train_config")


def evaluate_checkpoint(
    spec: str | Path | ModelSpec,
    corpus: str | Path | None = None,
    *,
    max_batches: int | None = None,
    device: str | torch.device | None = None,
    progress: ProgressFn | None = None,
    on_batches: ProgressFn | None = None,
) -> CheckpointEvaluation:
    """The losses of the checkpoint `spec` names (a checkpoint folder, a run = its
    latest, RUN:latest, RUN:best) on `corpus` (default: the corpus its run trained
    on), split and cut into windows and batches as its run did (checkpoint_split),
    over the first `max_batches` batches per split when given.

    `device` defaults to the one its run trained on, or pick_device's choice where
    this machine lacks it. `progress(done, total)` follows the tokenizing and
    `on_batches(done, total)` the evaluated batches (see evaluate_model).
    """
    if max_batches is not None and max_batches <= 0:
        raise ConfigError(f"the number of batches must be positive, got {max_batches}")
    dev = pick_device(device) if isinstance(device, str) else device  # errors before the load
    loaded = load_spec(parse_spec(spec, CHECKPOINT_KINDS), "cpu")  # evaluate_model moves it
    ckpt = loaded.checkpoint
    assert ckpt is not None  # a checkpoint spec loads a checkpoint
    split = checkpoint_split(ckpt)
    if dev is None:
        dev = eval_options(ckpt.train_config)[1]
    source = corpus_source(str(corpus) if corpus is not None else split.corpus)
    prepared = run_corpus(dataclasses.replace(split, corpus=source), progress)
    result = evaluate_model(
        loaded.model,
        prepared,
        batch_size=split.batch_size,
        max_batches=max_batches,
        device=dev,
        train_ratio=split.train_ratio,
        max_length=split.max_length,
        stride=split.stride,
        progress=on_batches,
    )
    return CheckpointEvaluation(
        label=loaded.label,
        parameters=loaded.model.num_parameters(),
        corpus_chars=prepared.n_chars,
        corpus_tokens=prepared.n_tokens,
        evaluation=result,
    )
