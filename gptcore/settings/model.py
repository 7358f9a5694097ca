"""Model configuration, named presets and validated loading from dicts / TOML.

`dataclass_from_dict` is the one place that turns untrusted key/value data (a
TOML file, `--set key=value` overrides, a checkpoint's JSON) into a config
dataclass: unknown keys, wrong types and out-of-range values raise ConfigError
naming the key and where it came from.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any

from gptcore.errors import ConfigError
from gptcore.settings.declare import dataclass_from_dict

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - exercised on Python 3.10 only
    pass


# "book": PyTorch's default initialisation in the book's parameter order (its seeded
# numbers reproduce). "gpt2": GPT-2's recipe (nanoGPT, llm.c): normal(0, 0.02) weights,
# residual output projections scaled by 1/sqrt(2 * n_layers), zero biases.
INIT_SCHEMES = ("book", "gpt2")


@dataclass(frozen=True)
class GPTConfig:
    """GPT-2 architecture hyperparameters (the book's GPT_CONFIG_124M keys)."""

    vocab_size: int = 50257
    context_length: int = 256
    emb_dim: int = 768
    n_heads: int = 12
    n_layers: int = 12
    drop_rate: float = 0.1
    qkv_bias: bool = False
    tie_embeddings: bool = False
    # Weight initialisation (see INIT_SCHEMES); "book" keeps the book's seeded numbers.
    init: str = "book"
    # The embedding and output head get vocab_size rounded up to a multiple of this
    # (64: 50,304 rows), which GPU matmul kernels run faster; the padding rows never
    # reach the logits (GPTModel.forward slices them off). 1 = no padding, the book's.
    vocab_multiple: int = 1

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"model.{name} must be a positive integer, got {value!r}")
        multiple = self.vocab_multiple
        if isinstance(multiple, bool) or not isinstance(multiple, int) or not 1 <= multiple <= 4096:
            raise ConfigError(f"model.vocab_multiple must be between 1 and 4096, got {multiple!r}")
        if self.emb_dim % self.n_heads != 0:
            raise ConfigError(
                f"model.emb_dim ({self.emb_dim}) must be divisible by model.n_heads ({self.n_heads})"
            )
        rate = self.drop_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ConfigError(f"model.drop_rate must be in [0, 1), got {rate!r}")
        if self.init not in INIT_SCHEMES:
            raise ConfigError(
                f"model.init must be one of {', '.join(map(repr, INIT_SCHEMES))}, got {self.init!r}"
            )

    @property
    def head_dim(self) -> int:
        return self.emb_dim // self.n_heads

    @property
    def padded_vocab_size(self) -> int:
        """Rows of the token embedding and output head: vocab_size rounded up to a
        multiple of vocab_multiple (50,257 -> 50,304 with 64)."""
        return -(-self.vocab_size // self.vocab_multiple) * self.vocab_multiple

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, GPTConfig] = {
    # The book's GPT_CONFIG_124M: short context, dropout, no qkv bias, untied head.
    "book-124m": GPTConfig(),
    "gpt2-small": GPTConfig(
        context_length=1024, drop_rate=0.0, qkv_bias=True, tie_embeddings=True, init="gpt2"
    ),
    "gpt2-medium": GPTConfig(
        context_length=1024,
        emb_dim=1024,
        n_layers=24,
        n_heads=16,
        drop_rate=0.0,
        qkv_bias=True,
        tie_embeddings=True,
        init="gpt2",
    ),
    "gpt2-large": GPTConfig(
        context_length=1024,
        emb_dim=1280,
        n_layers=36,
        n_heads=20,
        drop_rate=0.0,
        qkv_bias=True,
        tie_embeddings=True,
        init="gpt2",
    ),
    "gpt2-xl": GPTConfig(
        context_length=1024,
        emb_dim=1600,
        n_layers=48,
        n_heads=25,
        drop_rate=0.0,
        qkv_bias=True,
        tie_embeddings=True,
        init="gpt2",
    ),
    # Small enough to train for a few epochs in under a minute on 2 CPU cores.
    "tiny": GPTConfig(
        context_length=64, emb_dim=64, n_heads=4, n_layers=2, drop_rate=0.0, init="gpt2"
    ),
}


def describe_model(config: GPTConfig) -> str:
    """A model's preset name when it matches one, else its shape ("4x128 ctx128").

    The init scheme is ignored: it names how training started, not the model's shape
    (and checkpoints written before the setting existed read back as "book").
    A padded vocabulary is named after the shape: "gpt2-small (padded to 50,304)".
    """
    padded = ""
    if config.padded_vocab_size != config.vocab_size:
        padded = f" (padded to {config.padded_vocab_size:,})"
    for name, preset in PRESETS.items():
        same = dataclasses.replace(preset, init=config.init, vocab_multiple=config.vocab_multiple)
        if same == config:
            return name + padded
    return f"{config.n_layers}x{config.emb_dim} ctx{config.context_length}{padded}"


def get_preset(name: str) -> GPTConfig:
    known = ", ".join(PRESETS)
    if not isinstance(name, str) or name not in PRESETS:  # a TOML list or table is no name
        raise ConfigError(f"unknown model preset {name!r}; choose one of: {known}")
    return PRESETS[name]


def model_config_from(value: str | dict[str, Any], where: str = "model") -> GPTConfig:
    """A model config from a preset name or a table (optionally `preset` + overrides)."""
    if not isinstance(value, dict):
        return get_preset(value)  # type: ignore[arg-type]
    value = dict(value)
    base = get_preset(value.pop("preset")) if "preset" in value else GPTConfig()
    merged = {**base.to_dict(), **value}
    return dataclass_from_dict(GPTConfig, merged, where)
