"""One optimizer step of a run, and the book's evaluation, on the model the run trains.

The step is the book's: zero_grad -> loss -> backward -> optimizer step, spread
over `grad_accum` micro-batches, with what real runs add around it: the learning
rate schedule, autocast, a GradScaler for fp16, gradient clipping, stopping on a
non-finite loss before it is applied, and loss / gradient-norm spikes (optionally
left out of the update). Every rank runs the same code on the same synced numbers,
so all ranks stop, skip and clip alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from gptcore.hardware.precision import autocast
from gptcore.model.dropout import fast_masks
from gptcore.runs.train_state import TrainState
from gptcore.settings.train import TrainConfig
from gptcore.training.evaluate import calc_loss_batch
from gptcore.training.health import GRAD_NORM_SPIKE_RATIO, LOSS_SPIKE_RATIO, SpikeDetector
from gptcore.training.setup import RunParts

# (kind, value, z): "loss" or "grad_norm", the value that spiked, its z-score.
SpikeFound = tuple[str, float, float]


def lr_at(config: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup, then
    constant or cosine decay to min_lr at `total_steps`."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.lr_schedule == "constant":
        return config.lr
    span = max(1, total_steps - config.warmup_steps)
    progress = min(1.0, max(0.0, (step - config.warmup_steps) / span))
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * progress))


class LossNotFinite(Exception):
    """The step's loss was NaN or infinite; the weights were left as they were."""

    def __init__(self, loss: float) -> None:
        super().__init__(f"the loss became {loss}")
        self.loss = loss


@dataclass(frozen=True)
class StepResult:
    """What one optimizer step did."""

    loss: float  # the mean over micro-batches (and ranks)
    grad_norm: float | None  # None when not finite
    tokens: int  # trained on in this step, all ranks together
    stop: bool  # some rank asked to stop after this step
    spikes: list[SpikeFound] = field(default_factory=list)
    skipped: bool = False  # the update was left out (skip_spikes)
    # (micro-batch, grad_accum) when the device ran out of memory in this step and
    # the step was taken again with its micro-batches halved (CUDA only).
    halved_to: tuple[int, int] | None = None


class TrainStep:
    """Runs optimizer steps and evaluations on a run's parts (see RunParts).

    The steps call `parts.train_model`; the evaluation, the clipping and the
    update use the plain `parts.model`. `should_stop` is asked once per step,
    after the backward passes: a cancel or the time limit.
    """

    def __init__(
        self, config: TrainConfig, parts: RunParts, world: int, should_stop: Callable[[], bool]
    ) -> None:
        self.config = config
        self.parts = parts
        self.world = world
        self.should_stop = should_stop
        window, z = config.spike_window, config.spike_z
        self.loss_spikes = SpikeDetector(window, z, LOSS_SPIKE_RATIO)
        # Each data micro-batch is cut into this many pieces after an out-of-memory:
        # the same windows in each step (the data position and effective batch stay).
        self.splits = 1
        self.grad_spikes = SpikeDetector(window, z, GRAD_NORM_SPIKE_RATIO)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The book's calc_loss_batch under the run's autocast and dropout masks."""
        device = self.parts.device
        with (
            autocast(device, self.parts.amp_dtype),
            fast_masks(self.config.dropout_masks == "fast"),
        ):
            return calc_loss_batch(x, y, model, device)

    def run(self, order: Sequence[int], state: TrainState) -> StepResult:
        """zero_grad, loss and backward over grad_accum micro-batches, optimizer step,
        for the step `state` is at; raises LossNotFinite before a bad update.

        A CUDA out-of-memory error in the forward or backward halves the micro-batch
        (doubling the accumulation) and takes the step again: nothing was applied yet.
        """
        halved = None
        while True:
            try:
                done = self._run(order, state)
            except torch.cuda.OutOfMemoryError:
                if not self._halve():
                    raise
                halved = self.micro_batch()
                continue
            return dataclasses.replace(done, halved_to=halved) if halved else done

    def micro_batch(self) -> tuple[int, int]:
        """(windows per forward pass, forward passes per step) as the step runs now."""
        batch = int(self.config.batch_size)
        return -(-batch // self.splits), self.config.grad_accum * self.splits

    def _halve(self) -> bool:
        """Cut micro-batches in half after an out-of-memory; False at one window."""
        if self.micro_batch()[0] <= 1:
            return False
        self.splits *= 2
        self.parts.optimizer.zero_grad()  # the failed attempt's partial gradients
        gc.collect()
        if self.parts.device.type == "cuda":
            torch.cuda.empty_cache()
        return True

    def _run(self, order: Sequence[int], state: TrainState) -> StepResult:
        cfg, parts = self.config, self.parts
        accum = cfg.grad_accum
        lr = lr_at(cfg, state.step, parts.plan.total_steps)
        for group in parts.optimizer.param_groups:
            group["lr"] = lr
        parts.optimizer.zero_grad()
        total = torch.zeros((), device=parts.device)
        tokens = 0
        for micro in range(accum):
            x, y = parts.data.step_batch(order, state.step_in_epoch, micro)
            tokens += x.numel() * self.world
            pieces = list(zip(x.chunk(self.splits), y.chunk(self.splits), strict=True))
            for i, (xp, yp) in enumerate(pieces):
                last = micro == accum - 1 and i == len(pieces) - 1
                sync = last or self.world == 1
                share = xp.shape[0] / x.shape[0]  # a piece's part of the batch's mean loss
                ctx = contextlib.nullcontext() if sync else parts.train_model.no_sync()
                with ctx:
                    loss = self.loss(parts.train_model, xp, yp)
                    scaled = loss / accum if accum > 1 else loss
                    if share != 1:
                        scaled = scaled * share
                    if parts.scaler is not None:
                        parts.scaler.scale(scaled).backward()
                    else:
                        scaled.backward()
                total += loss.detach() if share == 1 else loss.detach() * share
        mean = total / accum
        stop = 1.0 if self.should_stop() else 0.0
        if self.world > 1:  # every rank stops at the same step
            packed = torch.stack([mean, torch.tensor(stop, device=parts.device)])
            torch.distributed.all_reduce(packed)
            mean, stop = packed[0] / self.world, float(packed[1].item())
        loss_value = float(mean.item())
        if not math.isfinite(loss_value):
            raise LossNotFinite(loss_value)
        norm = self._unscaled_grad_norm()
        # A spike is judged before the update, so that it can be left out. A skipped
        # step still counts as a step (its batch is used, the schedule moves on), so
        # the data position and the learning rate stay what a resume expects.
        spikes = self._spikes(loss_value, norm) if cfg.spike_z > 0 else []
        skipped = bool(spikes) and cfg.skip_spikes
        self._update(skipped)
        grad_norm = float(norm.item())
        return StepResult(
            loss=loss_value,
            grad_norm=grad_norm if math.isfinite(grad_norm) else None,
            tokens=tokens,
            stop=stop > 0,
            spikes=spikes,
            skipped=skipped,
        )

    def evaluate(self, eval_iter: int) -> tuple[float, float]:
        """The book's evaluate_model (see DataOrder.eval_batches): mean train and val
        loss; each rank computes the same numbers, so no rank waits for another."""
        model = self.parts.model
        model.eval()
        try:
            with torch.no_grad():
                train, val = self.parts.data.eval_batches(eval_iter)
                train_losses = [self.loss(model, x, y).item() for x, y in train]
                val_losses = [self.loss(model, x, y).item() for x, y in val]
        finally:
            model.train()
        return float(np.mean(train_losses)), float(np.mean(val_losses))

    def _unscaled_grad_norm(self) -> torch.Tensor:
        """The gradients' total norm, clipped to grad_clip when that is set."""
        scaler, optimizer = self.parts.scaler, self.parts.optimizer
        if scaler is not None:
            scaler.unscale_(optimizer)
        params = self.parts.model.parameters()
        if self.config.grad_clip is not None:
            return torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        return torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])

    def _update(self, skipped: bool) -> None:
        """The optimizer step, or for a skipped step none: weights and optimizer
        state stay as they were."""
        scaler, optimizer = self.parts.scaler, self.parts.optimizer
        if skipped:
            optimizer.zero_grad()
            if scaler is not None:
                scaler.update()  # ends the unscale_ above, as a scaler step would
        elif scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()

    def _spikes(self, loss: float, norm: torch.Tensor) -> list[SpikeFound]:
        """This step's loss and gradient norm, where they spike."""
        found = []
        grad_norm = float(norm.item())
        for kind, value, detector in (
            ("loss", loss, self.loss_spikes),
            ("grad_norm", grad_norm, self.grad_spikes),
        ):
            if math.isfinite(value) and (z := detector.check(value)) is not None:
                found.append((kind, value, z))
        return found
