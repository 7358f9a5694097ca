"""Losses: the book's calc_loss_batch / calc_loss_loader, perplexity, and
`evaluate_model`, the one "loss of this model on this corpus" task that
`gpt-tui eval` and the Checkpoints screen's compare both run."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gptcore.data.tokens import TokenizedCorpus, prepare_corpus
from gptcore.data.windows import make_loader, require_windows
from gptcore.errors import ConfigError, CorpusError
from gptcore.hardware.device import pick_device
from gptcore.settings.train import TrainConfig


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
    loader: Iterable, model: nn.Module, device: torch.device | str, num_batches: int | None = None
) -> float:
    """Mean batch loss over the first `num_batches` batches (all by default).

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

    @property
    def train_perplexity(self) -> float:
        return perplexity(self.train_loss)

    @property
    def val_perplexity(self) -> float:
        return perplexity(self.val_loss)

    def to_dict(self) -> dict[str, float]:
        """What `gpt-tui eval --json` prints."""
        return {
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "train_perplexity": self.train_perplexity,
            "val_perplexity": self.val_perplexity,
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
) -> Evaluation:
    """The book's loss check: windows of the model's context length with stride =
    context length over each split, mean loss over the batches (the first
    `max_batches` per split when given; the training split drops its last partial
    batch, as the book's loader does).

    `corpus` is a prepared corpus or a source for `prepare_corpus` (split by
    characters at `train_ratio`). The model is moved to `device` (pick_device's
    choice when None) and put in eval mode.
    """
    if batch_size <= 0:
        raise ConfigError(f"the batch size must be positive, got {batch_size}")
    if max_batches is not None and max_batches <= 0:
        raise ConfigError(f"the number of batches must be positive, got {max_batches}")
    if not isinstance(corpus, TokenizedCorpus):
        corpus = prepare_corpus(corpus, train_ratio, decode_errors)
    dev = device if isinstance(device, torch.device) else pick_device(device or "auto")
    model.to(dev).eval()
    length = model.config.context_length
    require_windows(corpus.train_tokens, length, "training")
    require_windows(corpus.val_tokens, length, "validation")
    train_loader = make_loader(corpus.train_tokens, batch_size, length, length, False, True)
    val_loader = make_loader(corpus.val_tokens, batch_size, length, length, False, False)
    if len(train_loader) == 0:
        raise ConfigError(
            f"the training split has {len(train_loader.dataset)} windows, fewer than one batch "
            f"of {batch_size}; use a smaller batch size or a larger corpus"
        )

    def used(loader: Sized) -> int:
        return len(loader) if max_batches is None else min(len(loader), max_batches)

    return Evaluation(
        train_loss=calc_loss_loader(train_loader, model, dev, max_batches),
        val_loss=calc_loss_loader(val_loader, model, dev, max_batches),
        train_batches=used(train_loader),
        val_batches=used(val_loader),
        batch_size=batch_size,
        device=str(dev),
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
