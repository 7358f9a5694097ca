"""The precision a run trains in: the setting resolved for the device, and the
autocast that every forward pass of the run (training and evaluation) runs under."""

from __future__ import annotations

import contextlib

import torch

from gptcore.errors import ConfigError
from gptcore.hardware.perf import default_precision


def resolve_precision(name: str, device: torch.device) -> tuple[str, torch.dtype | None]:
    """("bf16" | "fp16" | "fp32", autocast dtype or None) for a precision setting."""
    if name == "auto":
        name = default_precision(device)
    if name == "fp32":
        return "fp32", None
    if name == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError('this GPU does not support bf16; use precision = "fp16" or "fp32"')
        if device.type not in ("cuda", "cpu"):
            raise ConfigError(f"precision bf16 is not supported on {device.type}; use fp32")
        return "bf16", torch.bfloat16
    if name == "fp16":
        if device.type != "cuda":
            raise ConfigError(
                f"precision fp16 needs a CUDA GPU (the device is {device.type}); use bf16 or fp32"
            )
        return "fp16", torch.float16
    raise ConfigError(f"unknown precision {name!r}")


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed precision in `dtype` on `device`; nothing for fp32 (dtype None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
