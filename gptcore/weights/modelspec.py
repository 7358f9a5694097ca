"""Loading what a model spec names (gptcore.weights.spec parses it): a checkpoint,
downloaded GPT-2 weights, a weights folder or a fresh preset, on a device at a
precision. The CLI's model flags, eval, the Chat picker and the checkpoint views
all load through `load_spec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from gptcore.errors import GenerationError
from gptcore.hardware.device import pick_device
from gptcore.model.gpt import GPTModel
from gptcore.model.inference import PRECISIONS, check_precision, prepare_for_inference
from gptcore.model.summary import check_memory, loading_bytes
from gptcore.runs.checkpoint import Checkpoint
from gptcore.runs.checkpoints import (
    checkpoint_for,
    list_checkpoints,
    load_model,
    run_picks,
)
from gptcore.settings.model import get_preset
from gptcore.weights.downloads import downloaded_sizes, find_gpt2
from gptcore.weights.loaders import load_weights
from gptcore.weights.spec import (
    BEST,
    CHECKPOINT,
    CHECKPOINT_KINDS,
    GPT2,
    LATEST,
    PRESET,
    WEIGHTS,
    ModelChoice,
    ModelSpec,
    parse_spec,
)


def checkpoint_path(spec: str | Path | ModelSpec) -> Path:
    """The checkpoint folder a checkpoint spec names (a run's latest or best resolved now)."""
    parsed = parse_spec(spec, CHECKPOINT_KINDS)
    return checkpoint_for(parsed.kind, parsed.target)


# ---------------------------------------------------------------- loading


@dataclass
class LoadedModel:
    """A loaded model with what callers show or need about it."""

    model: GPTModel
    spec: ModelSpec
    device: torch.device
    precision: str
    checkpoint: Checkpoint | None = None  # checkpoint specs: step, losses, train config
    seed: int | None = None  # preset specs: the seed the weights were drawn with

    @property
    def label(self) -> str:
        """`checkpoint PATH (step N)`, `tiny (untrained, seed 123)`, `GPT-2 124M`, ..."""
        if self.checkpoint is not None:
            return f"checkpoint {self.checkpoint.path} (step {self.checkpoint.step})"
        if self.spec.kind == PRESET:
            return f"{self.spec.target} (untrained, seed {self.seed})"
        return self.spec.label


def load_spec(
    spec: str | Path | ModelSpec,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    seed: int = 123,
) -> LoadedModel:
    """The model a spec names, in eval mode on `device` at `precision`.

    A preset model is drawn after torch.manual_seed(seed) on the CPU, so its weights
    do not depend on the device. Raises GptTuiError subclasses with user-facing
    messages: a bad spec, missing or damaged weights, a precision the device lacks
    (checked before the possibly long load).
    """
    parsed = parse_spec(spec)
    dev = device if isinstance(device, torch.device) else pick_device(device)
    check_precision(precision, dev)
    ckpt = None
    if parsed.kind in CHECKPOINT_KINDS:
        model, ckpt = load_model(checkpoint_path(parsed), dev)
    elif parsed.kind in (GPT2, WEIGHTS):
        folder = find_gpt2(parsed.target) if parsed.kind == GPT2 else Path(parsed.target)
        model = load_weights(folder, dev)
    else:
        config = get_preset(parsed.target)
        check_memory(loading_bytes(config), "to load", config, dev)
        torch.manual_seed(seed)
        model = GPTModel(config).to(dev)
    model = prepare_for_inference(model, precision)
    return LoadedModel(model, parsed, dev, precision, ckpt, seed if parsed.kind == PRESET else None)


def available_precisions(device: str | torch.device = "auto") -> list[str]:
    """The precisions `load_spec` accepts on this machine's device (the Chat dtype menu)."""
    dev = device if isinstance(device, torch.device) else pick_device(device)
    out = []
    for precision in PRECISIONS:
        try:
            check_precision(precision, dev)
        except GenerationError:
            continue
        out.append(precision)
    return out


# ---------------------------------------------------------------- the Chat picker


def list_choices(root: str | Path | None = None) -> list[ModelChoice]:
    """Every usable model on disk: each run's latest and best checkpoint, every other
    checkpoint, then the downloaded GPT-2 sizes. Damaged checkpoints are left out
    (the checkpoint views list them with their reason)."""
    infos = [i for i in list_checkpoints(root) if i.error is None]
    out: list[ModelChoice] = []
    listed: set[Path] = set()
    for run, picks in run_picks(infos).items():
        for kind, info in ((LATEST, picks.latest), (BEST, picks.best)):
            if info is not None and info.path not in listed:
                out.append(ModelChoice(f"{run} · {kind} ({info.name})", str(info.path), kind))
                listed.add(info.path)
    for info in infos:
        if info.path not in listed:
            out.append(ModelChoice(f"{info.run} · {info.name}", str(info.path), CHECKPOINT))
    for size in downloaded_sizes():
        out.append(ModelChoice(f"GPT-2 {size}", f"{GPT2}:{size}", GPT2))
    return out


def model_from_spec(spec: str, device: str | torch.device = "cpu") -> GPTModel:
    """A model from "gpt2:124M" (downloaded weights, also "gpt2:gpt2-small") or "weights:DIR"."""
    return load_spec(parse_spec(spec, kinds=(GPT2, WEIGHTS)), device).model
