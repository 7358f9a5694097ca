"""What would make a run fit a device's memory, computed from the memory model.

Each option changes one thing and keeps the rest: a smaller micro-batch with more
accumulation (the same effective batch, so the same training), bf16 autocast, a
shorter window, or a smaller preset. All sizes are training_memory's peaks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gptcore.planner.memory import StepShape, parameter_count, training_memory
from gptcore.settings.model import PRESETS

MAX_AUTO_BATCH = 1024


@dataclass(frozen=True)
class FitOption:
    """One change that makes the run fit: words for people, settings for `--set`."""

    text: str
    settings: dict[str, Any]
    peak: int


def largest_batch(shape: StepShape, usable: int, most: int = MAX_AUTO_BATCH) -> int:
    """The largest micro-batch (<= most) whose peak fits `usable` bytes; 0 if none.
    The peak grows with the batch, so a binary search finds it."""

    def fits(batch: int) -> bool:
        return training_memory(dataclasses.replace(shape, batch=batch)).peak <= usable

    if not fits(1):
        return 0
    low, high = 1, max(1, most)
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def _first_fit(
    candidates: list[Any], shape_of: Callable[[Any], StepShape], usable: int
) -> tuple[Any, int] | None:
    for candidate in candidates:
        peak = training_memory(shape_of(candidate)).peak
        if peak <= usable:
            return candidate, peak
    return None


def fit_options(shape: StepShape, usable: int, bf16_ok: bool = True) -> list[FitOption]:
    """Ways to bring `shape` under `usable` bytes (empty when it fits already or
    nothing single does)."""
    if training_memory(shape).peak <= usable:
        return []
    options = []
    effective = shape.batch * shape.grad_accum
    batch = largest_batch(shape, usable, shape.batch - 1)
    if batch:
        # A divisor of the effective batch keeps it exact.
        batch = max(b for b in range(1, batch + 1) if effective % b == 0)
        accum = effective // batch
        peak = training_memory(dataclasses.replace(shape, batch=batch, grad_accum=accum)).peak
        options.append(
            FitOption(
                f"batch_size {batch} with grad_accum {accum} (the same {effective} sequences a step)",
                {"batch_size": batch, "grad_accum": accum},
                peak,
            )
        )
    if shape.precision == "fp32" and bf16_ok:
        peak = training_memory(dataclasses.replace(shape, precision="bf16")).peak
        if peak <= usable:
            options.append(FitOption("precision bf16 (autocast)", {"precision": "bf16"}, peak))
    contexts = []
    length = shape.context // 2
    while length >= 16:
        contexts.append(length)
        length //= 2
    found = _first_fit(contexts, lambda n: dataclasses.replace(shape, context=n), usable)
    if found:
        options.append(
            FitOption(
                f"a window of {found[0]} tokens (max_length)", {"max_length": found[0]}, found[1]
            )
        )
    size = parameter_count(shape.model)
    smaller = sorted(
        (name for name, cfg in PRESETS.items() if parameter_count(cfg) < size),
        key=lambda name: -parameter_count(PRESETS[name]),
    )

    def with_preset(name: str) -> StepShape:
        cfg = PRESETS[name]
        return dataclasses.replace(shape, model=cfg, context=min(shape.context, cfg.context_length))

    found = _first_fit(smaller, with_preset, usable)
    if found:
        options.append(FitOption(f"the smaller model {found[0]}", {"model": found[0]}, found[1]))
    return options
