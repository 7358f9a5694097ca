"""Model specs: one string names a model, one function loads it.

    PATH           a checkpoint folder, or a run folder or run name (its latest checkpoint)
    RUN:latest     the run's checkpoint with the most steps
    RUN:best       the run's checkpoint with the lowest validation loss
    gpt2:SIZE      downloaded GPT-2 weights (124M, 355M, 774M, 1558M or an alias)
    weights:DIR    a folder of GPT-2 weights in either layout
    preset:NAME    a freshly initialised model of a preset (seeded)
    ckpt:SPEC      the first three with an explicit prefix (older app specs)

`parse_spec` only reads the text; `load_spec` touches the disk. The CLI's model
flags, eval, the Chat picker and the checkpoint views all go through these two,
so they accept and load the same things. torch is imported only when loading:
the app imports this module at start-up.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, ModelSpecError

if TYPE_CHECKING:
    import torch

    from .checkpoint import Checkpoint
    from .model import GPTModel

CHECKPOINT, LATEST, BEST = "checkpoint", "latest", "best"
GPT2, WEIGHTS, PRESET = "gpt2", "weights", "preset"
CHECKPOINT_KINDS = (CHECKPOINT, LATEST, BEST)
KINDS = (*CHECKPOINT_KINDS, GPT2, WEIGHTS, PRESET)
FORMS = {
    CHECKPOINT: "a checkpoint folder, a run folder or run name",
    LATEST: "RUN:latest",
    BEST: "RUN:best",
    GPT2: "gpt2:SIZE",
    WEIGHTS: "weights:DIR",
    PRESET: "preset:NAME",
}
_CHECKPOINT_PREFIXES = ("ckpt", "checkpoint")


@dataclass(frozen=True)
class ModelSpec:
    """What a spec names: `kind` (one of KINDS) and its `target` (a path, run, size or preset)."""

    kind: str
    target: str

    def __str__(self) -> str:
        """The spec as text; parse_spec(str(spec)) == spec."""
        if self.kind == CHECKPOINT:
            return self.target
        if self.kind in (LATEST, BEST):
            return f"{self.target}:{self.kind}"
        return f"{self.kind}:{self.target}"

    @property
    def label(self) -> str:
        """A short name for status lines: `RUN/step-20`, `GPT-2 124M`, `tiny (untrained)`."""
        if self.kind == CHECKPOINT:
            from .runs import checkpoint_label

            return checkpoint_label(self.target)
        if self.kind in (LATEST, BEST):
            return f"{Path(self.target).name} ({self.kind})"
        if self.kind == GPT2:
            return f"GPT-2 {self.target}"
        if self.kind == WEIGHTS:
            path = Path(self.target)
            if path.parent.parent.name == "gpt2":  # the download folder: gpt2/SIZE/SOURCE
                return f"GPT-2 {path.parent.name} ({path.name})"
            return f"weights {self.target}"
        return f"{self.target} (untrained)"


def _forms(kinds: Collection[str]) -> str:
    return ", ".join(FORMS[k] for k in kinds)


def _checkpoint_spec(text: str, raw: str) -> ModelSpec:
    base, sep, which = text.rpartition(":")
    if sep and which in (LATEST, BEST):
        if not base:
            raise ModelSpecError(f"model spec {raw!r} names no run before ':{which}'")
        return ModelSpec(which, base)
    if not text:
        raise ModelSpecError(f"model spec {raw!r} names no checkpoint or run")
    return ModelSpec(CHECKPOINT, text)


def _prefixed(kind: str, value: str, raw: str) -> ModelSpec:
    if not value:
        raise ModelSpecError(f"model spec {raw!r} is missing its value: expected {FORMS[kind]}")
    if kind == GPT2:
        from .pretrained import resolve_size

        try:
            return ModelSpec(GPT2, resolve_size(value).name)
        except ConfigError as exc:
            raise ModelSpecError(f"model spec {raw!r}: {exc}") from None
    if kind == PRESET:
        from .config import PRESETS

        if value not in PRESETS:
            raise ModelSpecError(
                f"model spec {raw!r}: unknown preset {value!r}; choose one of: {', '.join(PRESETS)}"
            )
    return ModelSpec(kind, value)


def parse_spec(spec: str | Path | ModelSpec, kinds: Collection[str] | None = None) -> ModelSpec:
    """The ModelSpec a string names (see the module docstring); reads no file.

    `kinds` restricts what is accepted (e.g. CHECKPOINT_KINDS for `--checkpoint`).
    A bad spec raises ModelSpecError quoting it.
    """
    if isinstance(spec, ModelSpec):
        parsed = spec
    else:
        raw = str(spec)
        text = raw.strip()
        if not text:
            raise ModelSpecError(f"empty model spec; expected one of: {_forms(KINDS)}")
        prefix, sep, rest = text.partition(":")
        key = prefix.strip().lower()
        if sep and key in _CHECKPOINT_PREFIXES:
            parsed = _checkpoint_spec(rest.strip(), raw)
        elif sep and key in (GPT2, WEIGHTS, PRESET):
            parsed = _prefixed(key, rest.strip(), raw)
        else:
            parsed = _checkpoint_spec(text, raw)
    if kinds is not None and parsed.kind not in kinds:
        raise ModelSpecError(f"model spec {str(spec)!r} is not one of: {_forms(kinds)}")
    return parsed


def describe_spec(spec: str | ModelSpec) -> str:
    """The spec's short label, or the text itself when it does not parse."""
    try:
        return parse_spec(spec).label
    except ModelSpecError:
        return str(spec)


def checkpoint_path(spec: str | Path | ModelSpec) -> Path:
    """The checkpoint folder a checkpoint spec names (a run's latest or best resolved now)."""
    from .checkpoint import best_checkpoint, checkpoint_in, find_run, latest_checkpoint

    parsed = parse_spec(spec, CHECKPOINT_KINDS)
    if parsed.kind == LATEST:
        return latest_checkpoint(find_run(parsed.target))
    if parsed.kind == BEST:
        return best_checkpoint(find_run(parsed.target))
    return checkpoint_in(find_run(parsed.target))


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
    import torch

    from .device import pick_device
    from .generate import check_precision, prepare_for_inference

    parsed = parse_spec(spec)
    dev = device if isinstance(device, torch.device) else pick_device(device)
    check_precision(precision, dev)
    ckpt = None
    if parsed.kind in CHECKPOINT_KINDS:
        from .checkpoint import load_model

        model, ckpt = load_model(checkpoint_path(parsed), dev)
    elif parsed.kind in (GPT2, WEIGHTS):
        from .pretrained import find_gpt2, load_weights

        folder = find_gpt2(parsed.target) if parsed.kind == GPT2 else Path(parsed.target)
        model = load_weights(folder, dev)
    else:
        from .config import get_preset
        from .model import GPTModel

        torch.manual_seed(seed)
        model = GPTModel(get_preset(parsed.target)).to(dev)
    model = prepare_for_inference(model, precision)
    return LoadedModel(model, parsed, dev, precision, ckpt, seed if parsed.kind == PRESET else None)


def available_precisions(device: str | torch.device = "auto") -> list[str]:
    """The precisions `load_spec` accepts on this machine's device (the Chat dtype menu)."""
    import torch

    from .device import pick_device
    from .generate import PRECISIONS, GenerationError, check_precision

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


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model picker: what to show and the spec that loads it."""

    label: str
    spec: str
    kind: str  # LATEST / BEST for a run's picks, CHECKPOINT for any other, GPT2


def choice_for(spec: str) -> ModelChoice:
    """A picker entry for any spec (e.g. one opened from another screen)."""
    try:
        parsed = parse_spec(spec)
    except ModelSpecError:
        return ModelChoice(spec, spec, "")
    return ModelChoice(parsed.label, spec, parsed.kind)


def list_choices(root: str | Path | None = None) -> list[ModelChoice]:
    """Every usable model on disk: each run's latest and best checkpoint, every other
    checkpoint, then the downloaded GPT-2 sizes. Damaged checkpoints are left out
    (the checkpoint views list them with their reason)."""
    from .checkpoint import list_checkpoints, run_picks
    from .pretrained import downloaded_sizes

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
