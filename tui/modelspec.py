"""What the Chat screen can talk to, named by one spec string, and how to load it.

    ckpt:PATH        a checkpoint folder, a run folder (its latest) or RUN:best
    gpt2:SIZE        downloaded GPT-2 weights (pretrained.find_gpt2)
    weights:DIR      a folder of GPT-2 weights in either layout

Listing and loading call the engine only (gptcore.checkpoint / gptcore.pretrained),
and import torch lazily: they run in workers, never on the UI thread at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gptcore.errors import ConfigError

if TYPE_CHECKING:
    from gptcore.model import GPTModel


@dataclass(frozen=True)
class ModelChoice:
    spec: str
    label: str


def describe_spec(spec: str) -> str:
    """A short label for a spec (for the status line)."""
    kind, _, value = spec.partition(":")
    if kind == "ckpt":
        from pathlib import Path

        path = Path(value)
        if path.parent.name == "checkpoints":
            return f"{path.parent.parent.name}/{path.name}"
        return value
    if kind == "gpt2":
        return f"GPT-2 {value}"
    if kind == "weights":
        from pathlib import Path

        path = Path(value)
        if path.parent.parent.name == "gpt2":  # our download folder: gpt2/SIZE/SOURCE
            return f"GPT-2 {path.parent.name} ({path.name})"
        return f"weights {value}"
    return spec


def list_choices() -> list[ModelChoice]:
    """Every usable model on disk: each run's latest and best checkpoint, every
    checkpoint, then complete GPT-2 downloads. Damaged entries are left out here
    (the Checkpoints screen lists them with their reason)."""
    from gptcore.checkpoint import list_checkpoints
    from gptcore.pretrained import SIZES, local_status

    out: list[ModelChoice] = []
    infos = [i for i in list_checkpoints() if i.error is None]
    runs: dict[str, list] = {}
    for info in infos:
        runs.setdefault(info.run, []).append(info)
    for run, items in runs.items():
        latest = max(items, key=lambda i: (i.step or 0, i.created or 0))
        out.append(ModelChoice(f"ckpt:{latest.path}", f"{run} · latest ({latest.name})"))
        with_val = [i for i in items if i.val_loss is not None]
        if with_val:
            best = min(with_val, key=lambda i: (i.val_loss, -(i.step or 0)))
            if best.path != latest.path:
                out.append(ModelChoice(f"ckpt:{best.path}", f"{run} · best ({best.name})"))
    for info in infos:
        spec = f"ckpt:{info.path}"
        if all(c.spec != spec for c in out):
            out.append(ModelChoice(spec, f"{info.run} · {info.name}"))
    for size in SIZES:
        for source in ("hf", "openai"):
            if local_status(size, source).complete:
                out.append(ModelChoice(f"gpt2:{size}", f"GPT-2 {size}"))
                break
    return out


def load_spec(spec: str, device: str = "auto", precision: str = "fp32") -> GPTModel:
    """The model a spec names, on `device`, prepared for inference at `precision`.

    Raises GptTuiError subclasses (missing weights, corrupted checkpoint, a
    precision the device lacks) with messages meant for the user.
    """
    from gptcore.device import pick_device
    from gptcore.generate import check_precision, prepare_for_inference

    dev = pick_device(device)
    check_precision(precision, dev)  # before the (possibly long) load
    kind, sep, value = spec.partition(":")
    if not sep or not value:
        raise ConfigError(f"expected ckpt:PATH, gpt2:SIZE or weights:DIR, got {spec!r}")
    if kind == "ckpt":
        from gptcore.checkpoint import load_model

        model, _ = load_model(value, dev)
    elif kind in ("gpt2", "weights"):
        from gptcore.pretrained import model_from_spec

        model = model_from_spec(spec, dev)
    else:
        raise ConfigError(f"unknown model kind {kind!r} in {spec!r}")
    return prepare_for_inference(model, precision)


def precisions_for(device: str = "auto") -> list[str]:
    """The precisions `check_precision` accepts on this machine's device."""
    from gptcore.device import pick_device
    from gptcore.generate import PRECISIONS, GenerationError, check_precision

    dev = pick_device(device)
    out = []
    for p in PRECISIONS:
        try:
            check_precision(p, dev)
        except GenerationError:
            continue
        out.append(p)
    return out
