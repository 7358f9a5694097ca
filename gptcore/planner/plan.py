"""A run's plan: its memory on a device, whether it fits, what would make it fit, and
how long it takes. The one function `gpt-tui plan` and the app's Train form call.

For this machine's device the time is measured (gptcore.planner.timing.probe); for a
GPU named from the table it is estimated from FLOPs and labelled so.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import torch

from gptcore.data.plan import BatchPlan, batch_plan
from gptcore.errors import ConfigError, GptTuiError
from gptcore.planner.autobatch import resolve_batch, with_effective_batch
from gptcore.planner.devices import DeviceSpec
from gptcore.planner.fit import FitOption, fit_options
from gptcore.planner.memory import MemoryEstimate, step_shape, training_memory
from gptcore.planner.timing import TimeEstimate, flops_timing, probe, run_time
from gptcore.settings.model import GPTConfig, describe_model
from gptcore.settings.train import TrainConfig
from gptcore.util.fmt import format_bytes


@dataclass(frozen=True)
class RunPlan:
    model: GPTConfig
    train: TrainConfig  # with the batch the run would take ("auto" resolved)
    device: DeviceSpec
    precision: str  # what "auto" means there, or the setting
    memory: MemoryEstimate
    fits: bool
    options: list[FitOption]
    time: TimeEstimate | None
    notes: list[str]  # the batch chosen for "auto", why there is no time, ...
    batch_plan: BatchPlan | None = None

    def to_json(self) -> dict[str, Any]:
        t = self.time
        return {
            "model": describe_model(self.model),
            "device": {
                "name": self.device.name,
                "kind": self.device.kind,
                "memory_bytes": self.device.memory,
                "usable_bytes": self.device.usable,
                "local": self.device.local,
            },
            "precision": self.precision,
            "batch_size": self.train.batch_size,
            "grad_accum": self.train.grad_accum,
            "context": self.memory.shape.context if self.memory.shape else None,
            "memory": {
                "peak_bytes": self.memory.peak,
                "phase": self.memory.phase,
                "parts": self.memory.parts,
                "summary": self.memory.summary(),
            },
            "fits": self.fits,
            "would_fit_with": [
                {"change": o.text, "settings": o.settings, "peak_bytes": o.peak}
                for o in self.options
            ],
            "time": None
            if t is None
            else {
                "seconds": round(t.mid, 1),
                "low_s": round(t.low, 1),
                "high_s": round(t.high, 1),
                "measured": t.measured,
                "how": t.how,
                "parts_s": {k: round(v, 1) for k, v in t.parts.items()},
            },
            "steps": self.batch_plan.total_steps if self.batch_plan else None,
            "notes": self.notes,
        }

    def memory_lines(self) -> list[str]:
        """The memory and fit part of `text`, short lines for a narrow pane."""
        m, d = self.memory, self.device
        lines = [f"peak {format_bytes(m.peak)}: {m.summary()}"]
        room = f"{format_bytes(d.usable)} usable of {format_bytes(d.memory)}"
        if self.fits:
            lines.append(f"fits {d.name} ({room} free)")
        else:
            lines.append(f"does NOT fit {d.name} ({room} free)")
            lines += [f"  fits with {o.text}" for o in self.options]
        return lines

    def text(self) -> str:
        m, d = self.memory, self.device
        free = "free" if d.local else "on the card"
        lines = [
            f"{describe_model(self.model)} on {d.name} ({self.precision}), batch "
            f"{self.train.batch_size} x grad_accum {self.train.grad_accum}, window "
            f"{m.shape.context if m.shape else '?'}",
            f"memory: peak {format_bytes(m.peak)} at the {m.phase}: {m.summary()}",
            "  " + ", ".join(f"{k} {format_bytes(v)}" for k, v in m.parts.items() if v),
        ]
        room = f"{format_bytes(d.usable)} usable of {format_bytes(d.memory)} {free}"
        if self.fits:
            lines.append(f"fits: yes ({room})")
        else:
            lines.append(f"fits: NO ({room})")
            if self.options:
                lines.append("would fit with any one of:")
                lines += [f"  {o.text}: peak {format_bytes(o.peak)}" for o in self.options]
            else:
                lines.append(
                    "no single change makes it fit: combine them (a smaller batch with "
                    "grad_accum, bf16, a shorter window, a smaller model)"
                )
        if self.time is not None:
            lines.append(f"time: {self.time.text()}")
            lines.append(f"  {self.time.how}")
            parts = ", ".join(f"{k} {v:,.0f}s" for k, v in self.time.parts.items() if v >= 0.5)
            if parts:
                lines.append(f"  {parts}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def plan_precision(train: TrainConfig, device: DeviceSpec) -> str:
    """The precision a run would use on `device` (as resolve_precision would there)."""
    if device.local:
        from gptcore.hardware.precision import resolve_precision

        return resolve_precision(train.precision, torch.device(device.torch_device or "cpu"))[0]
    if train.precision == "auto":
        return "bf16" if device.bf16 else "fp16"
    return train.precision


def _batch_plan(model: GPTConfig, train: TrainConfig) -> tuple[BatchPlan | None, str | None]:
    """The run's batch plan over its corpus (tokenized, cached), or why there is none."""
    from gptcore.data.runcorpus import run_corpus

    try:
        corpus = run_corpus(train)
        plan = batch_plan(len(corpus.train_tokens), len(corpus.val_tokens), model, train)
        return plan.check(), None
    except GptTuiError as exc:
        return None, f"no time: {exc}"


def plan_run(
    model: GPTConfig,
    train: TrainConfig,
    device: DeviceSpec,
    *,
    measure: bool = True,
    steps: BatchPlan | None = None,
    memory_only: bool = False,
) -> RunPlan:
    """The plan of a run on `device`. `measure`: time it with a probe when the device
    is this machine's and the run fits; `steps`: the batch plan when the caller has
    it (else the corpus is tokenized, or read from the cache, to count steps);
    `memory_only`: no steps and no time (instant: the app's summary)."""
    precision = plan_precision(train, device)
    notes: list[str] = []
    train = with_effective_batch(train)
    if not isinstance(train.batch_size, int):
        try:
            train, note = resolve_batch(
                model,
                train,
                torch.device(device.torch_device or "cpu"),
                precision,
                trial=False,
                spec=device,
            )
            notes.append(f"{note} (predicted; the run confirms it with a trial step)")
        except ConfigError as exc:
            notes.append(str(exc))
            train = dataclasses.replace(train, batch_size=1, effective_batch=None)
    shape = step_shape(model, train, device.kind, precision)
    memory = training_memory(shape)
    fits = memory.peak <= device.usable
    options = fit_options(shape, device.usable, device.bf16)
    if memory_only:
        return RunPlan(model, train, device, precision, memory, fits, options, None, notes)
    if steps is None:
        steps, why = _batch_plan(model, train)
        if why:
            notes.append(why)
    time = None
    if steps is not None:
        if device.local and measure and fits:
            timing = probe(model, train, torch.device(device.torch_device or "cpu"))
            time = run_time(model, train, steps, timing)
        elif not device.local:
            timing = flops_timing(model, train, device.peak_flops, precision, device.name)
            time = run_time(model, train, steps, timing) if timing else None
        elif not fits:
            notes.append("no time: the run does not fit, so it was not measured")
    return RunPlan(model, train, device, precision, memory, fits, options, time, notes, steps)


def check_fits(
    model: GPTConfig, train: TrainConfig, device: torch.device, precision: str, world: int = 1
) -> None:
    """Raise ConfigError (one line: the peak, its largest part, the free memory and what
    would fit) when a run's step cannot fit `device`'s free memory: the check before
    training, on the same memory model as the plan. Batch "auto" is not refused (it
    picks a batch that fits); GPT_TUI_MEMORY_CHECK=0 skips the check. On a CPU the
    processes of one machine (torchrun's LOCAL_WORLD_SIZE) share its memory."""
    from gptcore.model.summary import MEMORY_CHECK_ENV
    from gptcore.planner.devices import local_device

    if os.environ.get(MEMORY_CHECK_ENV, "").strip() == "0" or not isinstance(train.batch_size, int):
        return
    spec = local_device(device)
    train = with_effective_batch(train)
    shape = step_shape(model, train, spec.kind, precision, world)
    memory = training_memory(shape)
    sharing = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if spec.kind == "cpu" else 1
    usable = spec.usable // max(1, sharing)
    if memory.peak <= usable:
        return
    options = fit_options(shape, usable, spec.bf16)
    would = "; it would fit with " + ", or ".join(o.text for o in options) if options else ""
    processes = f" for each of {sharing} processes" if sharing > 1 else ""
    raise ConfigError(
        f"model {describe_model(model)} needs about {format_bytes(memory.peak)} to train at "
        f"batch {train.batch_size} x grad_accum {train.grad_accum} in {precision}: "
        f"{memory.summary()}; {spec.name} has {format_bytes(spec.memory)} free "
        f"({format_bytes(usable)} usable{processes}){would} "
        f"(set {MEMORY_CHECK_ENV}=0 to try anyway)"
    )
