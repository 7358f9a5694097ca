"""Losses: the book's calc_loss_batch / calc_loss_loader, and perplexity."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sized

import torch
import torch.nn.functional as F
from torch import nn

from .errors import CorpusError


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
