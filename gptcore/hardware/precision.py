"""The precision a run trains in: the setting resolved for the device, and the
autocast that every forward pass of the run (training and evaluation) runs under.

"auto" is decided from what the device supports (hardware.perf.default_precision's
table), and a resumed run keeps the precision its checkpoint recorded, so a resume
trains bit for bit as the run would have gone on (even on another machine, where
the table may answer differently). A setting other than "auto" always wins; when it
differs from the checkpoint's, `resume_precision_notice` says so in one line.
"""

from __future__ import annotations

import contextlib

import torch

from gptcore.errors import ConfigError
from gptcore.hardware.perf import default_precision
from gptcore.settings.model import WEIGHT_PRECISIONS


def resolve_precision(
    name: str, device: torch.device, recorded: str | None = None
) -> tuple[str, torch.dtype | None]:
    """("bf16" | "fp16" | "fp32", autocast dtype or None) for a precision setting.

    `recorded` is the precision a resumed checkpoint trained in: "auto" keeps it where
    the device can run it, else takes the device's default.
    """
    if name == "auto":
        name = default_precision(device)
        if recorded in WEIGHT_PRECISIONS and _runs_on(recorded, device):
            name = recorded
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


def _runs_on(name: str, device: torch.device) -> bool:
    try:
        resolve_precision(name, device)
    except ConfigError:
        return False
    return True


def resume_precision_notice(setting: str, recorded: str | None) -> str | None:
    """One line when a resume trains in another precision than its checkpoint recorded
    because the user set one (None when "auto" keeps the recorded one, or they agree)."""
    if setting == "auto" or recorded not in WEIGHT_PRECISIONS or setting == recorded:
        return None
    return (
        f"training in {setting} as set (the checkpoint trained in {recorded}; "
        'precision = "auto" would keep that)'
    )
