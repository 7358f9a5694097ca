"""What this machine is doing: CPU and resident memory of this process, and the
GPU's name, memory and utilisation when this process uses CUDA.

Every metric is optional: one this platform cannot measure is None and
`describe` leaves it out; nothing is estimated or faked.

- cpu_percent: this process's CPU time (user + system, from os.times) over the
  wall time since the previous call, in percent of one core (several busy threads
  read above 100%, as `top` shows them). The first call measures since import.
- rss_bytes: this process's current resident memory, from /proc/self/statm
  (Linux only: resource's ru_maxrss is the peak, not the current size).
- GPU fields: through torch.cuda, only once this process has initialised CUDA,
  so that watching never creates a CUDA context (and takes GPU memory) of its own.
  Memory is the whole device's (mem_get_info: what nvidia-smi shows, other
  processes included); utilisation needs pynvml and is None without it.
- available_memory: what a new model could take (MemAvailable on Linux, the GPU's
  free memory on CUDA), for the check that refuses a model before it is allocated.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from gptcore.util.fmt import format_bytes


@dataclass(frozen=True)
class SystemStats:
    cpu_percent: float | None = None
    rss_bytes: int | None = None
    gpu_name: str | None = None
    gpu_mem_used: int | None = None  # bytes, the whole device
    gpu_mem_total: int | None = None
    gpu_util: float | None = None  # percent


class CpuMeter:
    """This process's CPU use between two calls of `percent` (percent of one core).
    Each reader keeps its own meter, so one reader's calls do not shorten another's
    interval (the app's 1 s timer and the Trainer's samples run in one process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the UI's timer and a worker may both ask
        self._last = (time.monotonic(), sum(os.times()[:2]))

    def percent(self) -> float | None:
        now, cpu = time.monotonic(), sum(os.times()[:2])
        with self._lock:
            then, cpu_then = self._last
            self._last = (now, cpu)
        elapsed = now - then
        if elapsed <= 0:
            return None
        return max(0.0, 100.0 * (cpu - cpu_then) / elapsed)


_meter = CpuMeter()  # since import, for callers without a meter of their own


def cpu_percent() -> float | None:
    """This process's CPU use since the previous call (percent of one core)."""
    return _meter.percent()


def rss_bytes() -> int | None:
    """This process's current resident set size, where /proc tells it."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def meminfo_available() -> int | None:
    """The kernel's estimate of memory available to new work (MemAvailable in
    /proc/meminfo, Linux), in bytes; None where it is not told."""
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key == "MemAvailable":
                    number, _, unit = value.strip().partition(" ")
                    return int(number) * (1024 if unit.strip().lower() == "kb" else 1)
    except (OSError, ValueError):
        return None
    return None


def cgroup_room() -> int | None:
    """What the cgroup (a container's memory limit) still allows, where one is set."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(0, int(limit) - used)


def available_memory(device: object) -> int | None:
    """Bytes a new model could take on `device` (a torch.device or its name): the GPU's
    free memory (mem_get_info) for CUDA, MemAvailable for the CPU; None where unknown."""
    kind = str(getattr(device, "type", device)).partition(":")[0]
    if kind == "cpu":
        room = [m for m in (meminfo_available(), cgroup_room()) if m is not None]
        return min(room) if room else None
    if kind != "cuda":
        return None
    import torch

    try:
        return int(torch.cuda.mem_get_info(device)[0])
    except (RuntimeError, AssertionError, ValueError):
        return None


def _cuda_index(device: str | None) -> int | None:
    """The CUDA device to report on, or None when there is none to report."""
    torch = sys.modules.get("torch")  # never imported here: the app loads it lazily
    if torch is None or (device is not None and not str(device).startswith("cuda")):
        return None
    try:
        if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
            return None
        _, _, index = str(device or "").partition(":")
        return int(index) if index else torch.cuda.current_device()
    except (RuntimeError, ValueError, AssertionError):
        return None


def _gpu_stats(device: str | None) -> dict[str, object]:
    index = _cuda_index(device)
    if index is None:
        return {}
    import torch

    out: dict[str, object] = {}
    with contextlib.suppress(RuntimeError, AssertionError):
        out["gpu_name"] = torch.cuda.get_device_name(index)
        free, total = torch.cuda.mem_get_info(index)
        out["gpu_mem_used"], out["gpu_mem_total"] = total - free, total
    if importlib.util.find_spec("pynvml") is not None:
        # torch maps the CUDA index to NVML's (CUDA_VISIBLE_DEVICES); NVML's errors
        # vary by driver, and the metric is optional.
        with contextlib.suppress(Exception):
            out["gpu_util"] = float(torch.cuda.utilization(index))
    return out


def system_stats(device: str | None = None, meter: CpuMeter | None = None) -> SystemStats:
    """This process's CPU (since `meter`'s previous reading; the shared one by default)
    and memory, and the GPU of `device` ("cuda:1"; None: the current CUDA device, if
    any; "cpu" / "mps": no GPU fields)."""
    cpu = (meter or _meter).percent()
    return SystemStats(cpu, rss_bytes(), **_gpu_stats(device))  # type: ignore[arg-type]


def describe(stats: SystemStats) -> str:
    """One short line of the metrics present: "cpu 187% · rss 1.1 GB · H200 12.0 GB/150 GB · util 87%"."""
    parts = []
    if stats.cpu_percent is not None:
        parts.append(f"cpu {stats.cpu_percent:.0f}%")
    if stats.rss_bytes is not None:
        parts.append(f"rss {format_bytes(stats.rss_bytes)}")
    if stats.gpu_name is not None or stats.gpu_mem_total is not None:
        gpu = (stats.gpu_name or "gpu").removeprefix("NVIDIA ")
        if stats.gpu_mem_total is not None:
            gpu += f" {format_bytes(stats.gpu_mem_used)}/{format_bytes(stats.gpu_mem_total)}"
        parts.append(gpu)
    if stats.gpu_util is not None:
        parts.append(f"util {stats.gpu_util:.0f}%")
    return " · ".join(parts)
