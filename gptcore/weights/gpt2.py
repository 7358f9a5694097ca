"""GPT-2's sizes and files: the four released sizes (124M to 1558M) with their
presets, aliases and the files each download source serves, and the folder the
downloads go to. Plain data: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gptcore.errors import ConfigError
from gptcore.settings.model import GPTConfig, get_preset
from gptcore.util import paths

if TYPE_CHECKING:  # torch loads lazily, so `gpt-tui download` / `models` start instantly
    pass


@dataclass(frozen=True)
class GPT2Size:
    name: str  # OpenAI's directory name: "124M"
    preset: str  # our GPTConfig preset
    hf_repo: str  # Hugging Face repository id
    # Exact byte sizes of OpenAI's files where they are known; others are
    # checked against the server's Content-Length only.
    openai_bytes: dict[str, int]
    approx_bytes: int = 0  # roughly what one download weighs (the weights file dominates)


# The files of the two layouts that the loaders read by name.
OPENAI_HPARAMS = "hparams.json"
HF_CONFIG = "config.json"
HF_WEIGHTS = "model.safetensors"


OPENAI_DATA = "model.ckpt.data-00000-of-00001"  # the tensors


OPENAI_FILES = (
    "checkpoint",
    "encoder.json",
    OPENAI_HPARAMS,
    OPENAI_DATA,
    "model.ckpt.index",
    "model.ckpt.meta",
    "vocab.bpe",
)


HF_FILES = (HF_CONFIG, HF_WEIGHTS)


_SHARED_BYTES = {"checkpoint": 77, "encoder.json": 1_042_301, "vocab.bpe": 456_318}


SIZES: dict[str, GPT2Size] = {
    "124M": GPT2Size(
        "124M",
        "gpt2-small",
        "openai-community/gpt2",
        {
            **_SHARED_BYTES,
            OPENAI_HPARAMS: 90,
            "model.ckpt.data-00000-of-00001": 497_759_232,
            "model.ckpt.index": 5_215,
            "model.ckpt.meta": 471_155,
        },
        550_000_000,
    ),
    "355M": GPT2Size(
        "355M",
        "gpt2-medium",
        "openai-community/gpt2-medium",
        {
            **_SHARED_BYTES,
            OPENAI_HPARAMS: 91,
            "model.ckpt.data-00000-of-00001": 1_419_292_672,
            "model.ckpt.index": 10_399,
            "model.ckpt.meta": 926_519,
        },
        1_500_000_000,
    ),
    "774M": GPT2Size(
        "774M", "gpt2-large", "openai-community/gpt2-large", dict(_SHARED_BYTES), 3_250_000_000
    ),
    "1558M": GPT2Size(
        "1558M", "gpt2-xl", "openai-community/gpt2-xl", dict(_SHARED_BYTES), 6_400_000_000
    ),
}


_ALIASES = {
    "small": "124M",
    "gpt2": "124M",
    "gpt2-small": "124M",
    "medium": "355M",
    "gpt2-medium": "355M",
    "large": "774M",
    "gpt2-large": "774M",
    "xl": "1558M",
    "gpt2-xl": "1558M",
}


SOURCES = ("openai", "hf")  # download sources; "openai" is the download default


# Loading prefers Hugging Face's layout: it needs no TensorFlow.
PREFERRED_SOURCES = ("hf", "openai")


SOURCE_LABELS = {"hf": "Hugging Face", "openai": "OpenAI TF"}


def resolve_size(name: str) -> GPT2Size:
    """ "124M", "124m", "small", "gpt2-small" ... -> the size's record."""
    key = name.strip()
    for size in SIZES:
        if key.upper() == size:
            return SIZES[size]
    if key.lower() in _ALIASES:
        return SIZES[_ALIASES[key.lower()]]
    raise ConfigError(
        f"unknown GPT-2 size {name!r}; choose one of: {', '.join(SIZES)} "
        f"(or {', '.join(sorted(_ALIASES))})"
    )


def weights_dir() -> Path:
    """Root folder for downloaded weights (under the data dir; GPT_TUI_HOME overrides)."""
    return paths.data_dir() / "weights"


def gpt2_dir(size: str, source: str) -> Path:
    """Where `gpt-tui download gpt2 --size SIZE --source SOURCE` puts its files."""
    if source not in SOURCES:
        raise ConfigError(f"unknown source {source!r}; choose one of: {', '.join(SOURCES)}")
    return weights_dir() / "gpt2" / resolve_size(size).name / source


def preset_for(size: str) -> GPTConfig:
    """Our preset for an official GPT-2 size (the shapes its files must have)."""
    return get_preset(resolve_size(size).preset)
