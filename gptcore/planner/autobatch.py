"""`batch_size = "auto"`: the largest micro-batch that fits the device's free memory.

The memory model proposes the largest batch whose predicted peak fits the device's
usable memory (free memory less a safety margin and the runtime's share, see
devices.DeviceSpec.usable); one real training step at that batch confirms it (its
measured peak: CUDA's max_memory_allocated, or the CPU's resident high-water mark),
halving until one does. `grad_accum` then keeps the effective batch: the setting
`effective_batch` when given (the batch is then a divisor of it), else the batch
that fits (at most AUTO_BATCH_CAP) times grad_accum.
"""

from __future__ import annotations

import dataclasses
import gc
from pathlib import Path

import torch

from gptcore.errors import ConfigError
from gptcore.planner.devices import DeviceSpec, local_device
from gptcore.planner.fit import fit_options, largest_batch
from gptcore.planner.memory import step_shape, training_memory
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.util.fmt import format_bytes

AUTO_BATCH_CAP = 64  # without effective_batch: more rarely helps a small run


def with_effective_batch(train: TrainConfig) -> TrainConfig:
    """A fixed batch with effective_batch set: grad_accum made effective / batch."""
    if isinstance(train.batch_size, int) and train.effective_batch:
        return dataclasses.replace(train, grad_accum=train.effective_batch // train.batch_size)
    return train


def _status_bytes(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def trial_peak(model: GPTConfig, train: TrainConfig, device: torch.device) -> int | None:
    """The measured peak of one real training step at train's batch (bytes above what
    was in use before); None when this platform cannot measure it. A CUDA
    out-of-memory error is returned as a peak above any memory (it did not fit)."""
    from gptcore.planner.timing import time_model

    cuda = device.type == "cuda"
    # A warm-up on a small model first: code pages, thread pools and kernel caches that
    # any first step loads belong to the process, not to this batch.
    small = dataclasses.replace(model, n_layers=1, emb_dim=32, n_heads=1, context_length=16)
    time_model(small, dataclasses.replace(train, batch_size=1, max_length=16), device, 1)
    gc.collect()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
    else:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to VmRSS
        except OSError:
            return None
        start = _status_bytes("VmRSS")
        if start is None:
            return None
    try:
        time_model(model, train, device, 1)
    except torch.cuda.OutOfMemoryError:
        return 2**62
    finally:
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    if cuda:
        return torch.cuda.max_memory_allocated(device) - start
    end = _status_bytes("VmHWM")
    return None if end is None else end - start


def resolve_batch(
    model: GPTConfig,
    train: TrainConfig,
    device: torch.device,
    precision: str,
    *,
    world: int = 1,
    trial: bool = True,
    spec: DeviceSpec | None = None,
) -> tuple[TrainConfig, str | None]:
    """`train` with a batch the run can take, and a sentence about the choice (None
    when the batch was given). ConfigError when not even one window fits."""
    if isinstance(train.batch_size, int):
        return with_effective_batch(train), None
    spec = spec or local_device(device)
    shape = step_shape(model, dataclasses.replace(train, grad_accum=1), spec.kind, precision, world)
    wanted = train.effective_batch
    most = wanted or AUTO_BATCH_CAP
    batch = largest_batch(shape, spec.usable, most)
    if batch == 0:
        options = "; ".join(o.text for o in fit_options(shape, spec.usable, spec.bf16))
        peak = training_memory(shape).peak
        raise ConfigError(
            f'train.batch_size = "auto": not even one window fits {spec.name} '
            f"({format_bytes(spec.usable)} usable of {format_bytes(spec.memory)} free; one window "
            f"needs {format_bytes(peak)})" + (f"; it would fit with {options}" if options else "")
        )

    def kept(most: int) -> int:
        """The largest batch <= most that keeps the effective batch exact."""
        return max(b for b in range(1, most + 1) if wanted % b == 0) if wanted else most

    batch = kept(batch)
    measured = None
    while trial:
        one_step = dataclasses.replace(train, batch_size=batch, grad_accum=1, effective_batch=None)
        measured = trial_peak(model, one_step, device)
        if measured is None or measured <= spec.usable or batch == 1:
            break
        batch = kept(batch // 2)
    accum = wanted // batch if wanted else train.grad_accum
    predicted = training_memory(dataclasses.replace(shape, batch=batch)).peak
    trial_text = f", a trial step measured {format_bytes(measured)}" if measured is not None else ""
    note = (
        f"batch_size auto: {batch} x grad_accum {accum} ({batch * accum} windows a step); "
        f"predicted peak {format_bytes(predicted)}{trial_text}, "
        f"{format_bytes(spec.usable)} usable on {spec.name}"
    )
    resolved = dataclasses.replace(train, batch_size=batch, grad_accum=accum, effective_batch=None)
    return resolved, note


def resolve_run_batch(
    model: GPTConfig, train: TrainConfig, world: int = 1, rank: int = 0
) -> tuple[TrainConfig, str | None]:
    """resolve_batch on the device and precision the run will use (the Trainer's
    first act; a no-op but for effective_batch when the batch is a number)."""
    if isinstance(train.batch_size, int):
        return with_effective_batch(train), None
    import os

    from gptcore.hardware.device import pick_device
    from gptcore.hardware.precision import resolve_precision

    device = pick_device(train.device)
    if world > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    precision, _ = resolve_precision(train.precision, device)
    return resolve_batch(model, train, device, precision, world=world)
