"""Which device to run on: CUDA, then Apple MPS, then the CPU (overridable)."""

from __future__ import annotations

import torch

from gptcore.errors import ConfigError


def pick_device(name: str = "auto") -> torch.device:
    """Resolve "auto", "cpu", "cuda", "cuda:1" or "mps" to an available device."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but CUDA is not available here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' was requested but MPS is not available here")
    return device
