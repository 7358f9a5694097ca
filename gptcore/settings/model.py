"""The model's settings (GPTConfig), its named presets and how a config names a model.

Each setting is declared once (gptcore.settings.declare): type, default, bounds,
label and help. The caps are far above any real GPT-2 shape; they stop a typo or a
hostile checkpoint from asking for terabytes before anything is allocated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from gptcore.errors import ConfigError
from gptcore.settings.declare import check, from_mapping, refuse, setting

# "book": PyTorch's default initialisation in the book's parameter order (its seeded
# numbers reproduce). "gpt2": GPT-2's recipe (nanoGPT, llm.c): normal(0, 0.02) weights,
# residual output projections scaled by 1/sqrt(2 * n_layers), zero biases.
INIT_SCHEMES = ("book", "gpt2")
# GPT-2's BPE vocabulary, the tokenizer's (gptcore.model.tokenizer checks its files give it).
GPT2_VOCAB_SIZE = 50257
GPT2_END_OF_TEXT_ID = 50256  # <|endoftext|>, the vocabulary's last token


@dataclass(frozen=True)
class GPTConfig:
    """GPT-2 architecture hyperparameters (the book's GPT_CONFIG_124M keys)."""

    SETTINGS_PREFIX = "model."

    vocab_size: int = setting(
        GPT2_VOCAB_SIZE,
        label="vocab",
        help="token ids the model knows (GPT-2's: 50,257)",
        low=1,
        cap=2_000_000,
    )
    context_length: int = setting(
        256, label="context", help="the longest input, in tokens", low=1, cap=1_048_576
    )
    emb_dim: int = setting(768, label="width", help="embedding size", low=1, cap=65_536)
    n_heads: int = setting(12, label="heads", help="attention heads per layer", low=1, cap=1024)
    n_layers: int = setting(12, label="layers", help="transformer blocks", low=1, cap=1024)
    drop_rate: float = setting(
        0.1, label="dropout", help="dropout rate while training", low=0, high=1, high_open=True
    )
    qkv_bias: bool = setting(False, label="qkv bias", help="bias in the query/key/value layers")
    tie_embeddings: bool = setting(
        False, label="tied head", help="the output head shares the token embedding (GPT-2)"
    )
    init: str = setting(
        "book",
        label="init",
        help="starting weights: book (PyTorch defaults in the book's order; its seeded "
        "numbers reproduce) or gpt2 (normal(0, 0.02), scaled residual projections)",
        choices=INIT_SCHEMES,
    )
    # The padding rows never reach the logits (GPTModel.forward slices them off).
    vocab_multiple: int = setting(
        1,
        label="vocab pad",
        help="round the embedding and head rows up to a multiple of this (64: 50,304 "
        "rows, faster GPU matmuls); 1 = no padding, the book's",
        low=1,
        high=4096,
    )

    def __post_init__(self) -> None:
        check(self)
        if self.emb_dim % self.n_heads != 0:
            refuse(
                self,
                "emb_dim",
                f"({self.emb_dim}) must be divisible by model.n_heads ({self.n_heads})",
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
    return from_mapping(GPTConfig, merged, where)


# Precisions: what weights can be stored and computed in; generation may also quantize.
WEIGHT_PRECISIONS = ("fp32", "bf16", "fp16")
INFERENCE_PRECISIONS = (*WEIGHT_PRECISIONS, "int8")


@dataclass(frozen=True)
class InferenceSettings:
    """How a model is loaded to generate from (generate, Chat, the timeline)."""

    precision: str = setting(
        "fp32",
        label="dtype",
        help="the weights' precision: fp32, bf16, fp16 (CUDA/MPS) or int8 (CPU dynamic "
        "quantization)",
        choices=INFERENCE_PRECISIONS,
        metavar="DTYPE",
    )

    def __post_init__(self) -> None:
        check(self)
