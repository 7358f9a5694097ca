"""Dropout and attention with dropout for training under CPU autocast.

PyTorch's fused CPU attention kernels have no dropout, so with dropout
`scaled_dot_product_attention` runs its math path, which under bf16 autocast
took 34 ms per book-124m layer (forward and backward, batch 2). Written out here
(`causal_attention_with_dropout`) it takes 22 ms and makes the same draws, so a
seeded run is unchanged; the model uses it under CPU autocast only (in fp32 the
two take the same time and SDPA stays).

The masks themselves: PyTorch's CPU dropout draws one Bernoulli sample per
element from a single Mersenne Twister (two 32-bit draws each, one after
another): 10-12% of a bf16 step (37 masks, 28.7M elements a step at batch 2).
Inside `fast_masks()` (`train.dropout_masks = "fast"`), one 64-bit draw gives
four 16-bit lanes instead, each kept when it is at or above p's 16-bit
threshold: about 10-15% faster steps at batch 2. Opt-in, because these are other
draws than torch's: still from torch's global generator (a seeded run repeats,
a resume continues the stream), but the book's small run follows its dice so
closely that other masks move its train loss far beyond the loss check's 3%
(as other seeds do). CUDA's fused dropout kernels are faster than anything here.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

LANE_VALUES = 1 << 16  # a 16-bit lane: p is kept to within 1/65536


_this_thread = threading.local()  # the app trains in a worker thread; chat is elsewhere


@contextlib.contextmanager
def fast_masks(enabled: bool = True) -> Iterator[None]:
    """Within it, this thread's training under CPU autocast uses lane masks."""
    previous = getattr(_this_thread, "fast", False)
    _this_thread.fast = enabled
    try:
        yield
    finally:
        _this_thread.fast = previous


def cpu_autocast_on(x: torch.Tensor) -> bool:
    """Whether `x` is computed under CPU autocast."""
    if x.device.type != "cpu":
        return False
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4 has no device argument
        return torch.is_autocast_cpu_enabled()


def lane_masks_apply(x: torch.Tensor) -> bool:
    """Whether dropout on `x` uses lane masks: inside `fast_masks()`, under CPU autocast."""
    # The device first: compiled CUDA models never look at the thread's state.
    return x.device.type == "cpu" and getattr(_this_thread, "fast", False) and cpu_autocast_on(x)


def dropped_lanes(p: float) -> int:
    """How many of a lane's 65,536 values mean "drop": round(p * 65536)."""
    return round(p * LANE_VALUES)


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device) -> torch.Tensor:
    """A bool mask of `shape`, each element kept with probability 1 - dropped_lanes(p)/65536."""
    count = math.prod(shape)
    # randint over the whole int64 range: 64 random bits per draw, read as 4 int16 lanes.
    words = torch.randint(
        -(2**63), 2**63 - 1, ((count + 3) // 4,), dtype=torch.int64, device=device
    )
    lanes = words.view(torch.int16)[:count].view(shape)
    return lanes >= dropped_lanes(p) - LANE_VALUES // 2


class _MaskedScale(torch.autograd.Function):
    """x * keep * scale in one pass each way; saves only the bool mask for backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.ops.aten.native_dropout_backward(x, keep, scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        (keep,) = ctx.saved_tensors
        return torch.ops.aten.native_dropout_backward(grad, keep, ctx.scale), None, None


def lane_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Training-mode dropout with a lane mask, scaled by the exact keep probability
    so that the output's expectation is x."""
    dropped = dropped_lanes(p)
    if not 0 < dropped < LANE_VALUES:  # p too close to 0 or 1 for a 16-bit lane
        return F.dropout(x, p, True)
    scale = LANE_VALUES / (LANE_VALUES - dropped)
    return _MaskedScale.apply(x, keep_mask(x.shape, p, x.device), scale)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """F.dropout, with lane masks where `lane_masks_apply`."""
    if training and p > 0 and lane_masks_apply(x):
        return lane_dropout(x, p)
    return F.dropout(x, p, training)


class Dropout(nn.Dropout):
    """nn.Dropout (same state dict, same repr) that uses lane masks where they apply."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


def causal_attention_with_dropout(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, p: float
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + causal mask), dropout, times v: what SDPA's math path
    computes on a CPU when it has dropout (its fused CPU kernels have none), drawing
    the same torch masks, or lane masks inside `fast_masks()`."""
    t = q.shape[-2]
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    future = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1)
    weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
    return dropout(weights, p, True) @ v
