"""The random state a checkpoint saves and a resume restores, so that a resumed run
draws the same dropout masks and data orders as one that never stopped."""

from __future__ import annotations

from typing import Any

import torch

from gptcore.runs.checkpoint import decode_rng


def rng_state() -> dict[str, Any]:
    """torch's CPU generator state, and every CUDA device's once CUDA is in use."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(saved: Any, device: torch.device) -> None:
    """Put back a checkpoint's saved state (as its meta.json holds it). CUDA states
    go back to every device when the count matches, else the first to `device`."""
    rng = decode_rng(saved)
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if rng.get("cuda") and torch.cuda.is_available():
        states = rng["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
        elif device.type == "cuda":
            torch.cuda.set_rng_state(states[0], device)
