"""Model specs: one string names a model (parsing only; gptcore.weights.modelspec loads it).

    PATH           a checkpoint folder, or a run folder or run name (its latest checkpoint)
    RUN:latest     the run's checkpoint with the most steps
    RUN:best       the run's checkpoint with the lowest validation loss
    gpt2:SIZE      downloaded GPT-2 weights (124M, 355M, 774M, 1558M or an alias)
    weights:DIR    a folder of GPT-2 weights in either layout
    preset:NAME    a freshly initialised model of a preset (seeded)
    ckpt:SPEC      the first three with an explicit prefix (older app specs)

`parse_spec` only reads the text: no file, no torch, so the app and the CLI parser
import this module at start-up.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from gptcore.errors import ConfigError, ModelSpecError
from gptcore.runs.rundir import BEST, CHECKPOINT, CHECKPOINT_KINDS, LATEST, checkpoint_label
from gptcore.settings.model import PRESETS
from gptcore.weights.gpt2 import resolve_size

GPT2, WEIGHTS, PRESET = "gpt2", "weights", "preset"
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
        try:
            return ModelSpec(GPT2, resolve_size(value).name)
        except ConfigError as exc:
            raise ModelSpecError(f"model spec {raw!r}: {exc}") from None
    if kind == PRESET and value not in PRESETS:
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
