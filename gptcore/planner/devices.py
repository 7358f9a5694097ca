"""The device a plan is for: this machine's (its free memory, measured time) or a GPU
named from a small table (its memory and peak FLOP/s, estimated time).

A plan for a device that is not here ("H100 80GB" on a laptop) can only estimate:
its time comes from FLOPs over the card's peak and says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from gptcore.errors import ConfigError
from gptcore.hardware import sysinfo
from gptcore.hardware.perf import BF16_PEAKS
from gptcore.planner.gpus import GPUS

GIB = 2**30
# Memory a training process needs beyond its tensors (the CUDA context, torch's
# libraries and the Python heap of a fresh process), and the share of the rest a
# plan leaves free for the allocator's rounding and other processes.
RUNTIME_BYTES = GIB // 2
SAFETY_MARGIN = 0.10


@dataclass(frozen=True)
class DeviceSpec:
    """A device to plan for. `memory`: bytes free for a run (here: free now; a named
    GPU: all of it). `local`: this machine's device, whose time can be measured."""

    name: str
    kind: str  # "cpu", "cuda" or "mps"
    memory: int
    local: bool
    peak_flops: float | None = None  # bf16 dense; None: unknown (CPUs)
    bf16: bool = True
    torch_device: str | None = None  # for a local device: what torch.device takes

    @property
    def usable(self) -> int:
        """Bytes a run's tensors may take: the margin and the runtime left out."""
        return max(0, int(self.memory * (1 - SAFETY_MARGIN)) - RUNTIME_BYTES)


def gpu_peak(name: str) -> float | None:
    """bf16 peak FLOP/s of a GPU by name (perf.BF16_PEAKS), None when unknown."""
    for key, peak in BF16_PEAKS:
        if key.lower() in name.lower():
            return peak
    return None


def available_memory(device: torch.device) -> int:
    """Bytes free on `device` now (sysinfo.available_memory: the GPU's free memory, or
    the RAM available within the container's limit); where the kernel does not say,
    the physical memory, the best figure there is."""
    free = sysinfo.available_memory(device)
    if free is not None:
        return free
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def local_device(device: torch.device) -> DeviceSpec:
    """This machine's `device` (as pick_device resolved it)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return DeviceSpec(
            name=name,
            kind="cuda",
            memory=available_memory(device),
            local=True,
            peak_flops=gpu_peak(name),
            bf16=torch.cuda.is_bf16_supported(),
            torch_device=str(device),
        )
    return DeviceSpec(
        name=f"this {device.type.upper()}",
        kind=device.type,
        memory=available_memory(device),
        local=True,
        torch_device=str(device),
    )


def named_gpu(text: str) -> DeviceSpec | None:
    """A GPU of the table by (part of) its name, case and spaces ignored: "h100",
    "A100 40GB"; the first match in the table's order. None when nothing matches."""
    wanted = text.lower().replace(" ", "")
    for name, gib in GPUS:
        if wanted in name.lower().replace(" ", ""):
            return DeviceSpec(
                name=name,
                kind="cuda",
                memory=int(gib * GIB),
                local=False,
                peak_flops=gpu_peak(name),
                bf16=not name.startswith("V100"),
            )
    return None


def plan_device(text: str | None, setting: str = "auto") -> DeviceSpec:
    """The device a plan is for: `text` (cpu, cuda, cuda:N, mps or a GPU's name), or
    the run's own device setting when `text` is None."""
    from gptcore.hardware.device import pick_device

    text = (text or setting).strip()
    if text.lower() in ("auto", "cpu", "mps") or text.lower().startswith("cuda"):
        if text.lower().startswith("cuda") and not torch.cuda.is_available():
            known = ", ".join(name for name, _ in GPUS)
            raise ConfigError(
                f"--device {text}: CUDA is not available here; to plan for a GPU elsewhere, "
                f"name it (one of: {known})"
            )
        return local_device(pick_device(text.lower()))
    gpu = named_gpu(text)
    if gpu is None:
        known = ", ".join(name for name, _ in GPUS)
        raise ConfigError(f"--device {text!r}: unknown device; use cpu, cuda or one of: {known}")
    return gpu
