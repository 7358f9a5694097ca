"""Model summary: parameter counts per component and memory estimates, and the check
that refuses a model this machine cannot hold before it is allocated.

Counts come from the model's own tensors (tied weights counted once), so
they always agree with `numel`. Memory is reported in MB of 2**20 bytes, as
the book does (book-124m at context 1024: 163,009,536 parameters, 621.83 MB).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from gptcore.errors import ConfigError
from gptcore.hardware import sysinfo
from gptcore.model.gpt import GPTModel
from gptcore.settings.model import GPTConfig, describe_model

MB = 1024 * 1024
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1}
COMPONENTS = ("embeddings", "attention", "feed-forward", "norms", "output head")


def _component(name: str) -> str:
    if name.startswith(("tok_emb", "pos_emb")):
        return "embeddings"
    if ".att." in name:
        return "attention"
    if ".ff." in name:
        return "feed-forward"
    if "norm" in name:
        return "norms"
    if name.startswith("out_head"):
        return "output head"
    raise ValueError(f"parameter {name!r} belongs to no known component")


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes for one training step with AdamW (fp32 master weights)."""

    weights: int
    gradients: int
    optimizer: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations


@dataclass(frozen=True)
class ModelSummary:
    config: GPTConfig
    total: int
    by_component: dict[str, int]
    tied: bool

    def weights_mb(self, dtype: str) -> float:
        return self.total * DTYPE_BYTES[dtype] / MB


def summarize(model: GPTModel) -> ModelSummary:
    """Per-component parameter counts; `named_parameters` yields a tied tensor once."""
    counts = dict.fromkeys(COMPONENTS, 0)
    for name, param in model.named_parameters():
        counts[_component(name)] += param.numel()
    tied = model.out_head.weight is model.tok_emb.weight
    return ModelSummary(model.config, sum(counts.values()), counts, tied)


def summarize_config(config: GPTConfig) -> ModelSummary:
    """The summary of a config without allocating its weights (meta device)."""
    with torch.device("meta"):
        return summarize(GPTModel(config))


def parameter_count(config: GPTConfig) -> int:
    """The parameters of GPTModel(config), from its shape alone: no tensor is made, so an
    absurd shape costs nothing to count (summarize_config agrees, tested)."""
    d, vocab = config.emb_dim, config.padded_vocab_size
    qkv = 3 * d * d + (3 * d if config.qkv_bias else 0)
    per_block = qkv + (d * d + d) + (8 * d * d + 5 * d) + 4 * d  # out_proj, ff, 2 norms
    head = 0 if config.tie_embeddings else vocab * d
    return vocab * d + config.context_length * d + config.n_layers * per_block + 2 * d + head


def training_bytes(config: GPTConfig, batch_size: int, context: int | None = None) -> int:
    """About what one training step takes: training_memory's estimate, from the shape."""
    summary = ModelSummary(config, parameter_count(config), {}, config.tie_embeddings)
    return training_memory(summary, batch_size, context).total


def loading_bytes(config: GPTConfig) -> int:
    """About what loading a model to generate takes: its fp32 weights and the copy they
    are read into (a lower precision is cast after loading)."""
    return 2 * 4 * parameter_count(config)


# "0" skips the memory check before training and loading (an estimate can be wrong).
MEMORY_CHECK_ENV = "GPT_TUI_MEMORY_CHECK"


def check_memory(need: int, doing: str, config: GPTConfig, device: torch.device) -> None:
    """ConfigError (one line) when `need` bytes is more than `device` has available:
    "model gpt2-xl needs about 43.8 GB to train at batch 2, this machine has 21.3 GB
    available". Nothing is checked where the free memory is unknown (MPS, no /proc)."""

    if os.environ.get(MEMORY_CHECK_ENV, "").strip() == "0":
        return
    have = sysinfo.available_memory(device)
    if have is None or need <= have:
        return
    where = "this GPU has" if device.type == "cuda" else "this machine has"
    raise ConfigError(
        f"model {describe_model(config)} needs about {need / 1e9:.1f} GB {doing}, {where} "
        f"{have / 1e9:.1f} GB available (set {MEMORY_CHECK_ENV}=0 to try anyway)"
    )


def activation_bytes(
    config: GPTConfig, batch_size: int, context: int, bytes_per_value: int = 4
) -> int:
    """Rough size of the tensors autograd keeps for the backward pass.

    Per block: LayerNorm inputs (2), q/k/v (3), attention output (1), the
    out-projection input (1), the feed-forward input (1) and its 4x-wide
    hidden before and after GELU (8): 16 x batch x context x emb values, plus
    the attention matrix (heads x context^2) that the CPU's attention keeps,
    plus dropout masks when dropout is on. Then the logits and their softmax.
    It is an estimate for planning, not an exact account of the allocator.
    """
    btd = batch_size * context * config.emb_dim
    per_block = 16 * btd + batch_size * config.n_heads * context * context
    if config.drop_rate > 0:
        per_block += 3 * btd  # attention-output and two residual dropout masks
    logits = 2 * batch_size * context * config.padded_vocab_size
    return (config.n_layers * per_block + logits + 2 * btd) * bytes_per_value


def training_memory(
    summary: ModelSummary, batch_size: int, context: int | None = None
) -> TrainingMemory:
    """Weights + gradients + AdamW's two moments (all fp32) + activations."""
    context = context or summary.config.context_length
    weights = summary.total * 4
    return TrainingMemory(
        weights=weights,
        gradients=weights,
        optimizer=2 * weights,
        activations=activation_bytes(summary.config, batch_size, context),
    )


def format_summary(summary: ModelSummary, batch_size: int = 2, context: int | None = None) -> str:
    """The text `gpt-tui summary` prints and the Train screen shows."""
    c = summary.config
    padded = f" (padded to {c.padded_vocab_size:,})" if c.padded_vocab_size != c.vocab_size else ""
    lines = [
        f"model: {c.n_layers} layers, {c.n_heads} heads, emb {c.emb_dim}, context {c.context_length}, "
        f"vocab {c.vocab_size}{padded}, {'tied' if summary.tied else 'untied'} output head, "
        f"init {c.init}",
        f"parameters: {summary.total:,}",
    ]
    for name in COMPONENTS:
        count = summary.by_component[name]
        share = count / summary.total if summary.total else 0.0
        note = " (tied to the token embedding)" if name == "output head" and summary.tied else ""
        lines.append(f"  {name:<13} {count:>15,}  {share:6.1%}{note}")
    lines.append(
        "weights: " + ", ".join(f"{d} {summary.weights_mb(d):,.2f} MB" for d in DTYPE_BYTES)
    )
    mem = training_memory(summary, batch_size, context)
    ctx = context or c.context_length
    lines.append(
        f"training estimate (AdamW, fp32, batch {batch_size}, context {ctx}): {mem.total / MB:,.0f} MB = "
        f"weights {mem.weights / MB:,.0f} + gradients {mem.gradients / MB:,.0f} + "
        f"optimizer {mem.optimizer / MB:,.0f} + activations {mem.activations / MB:,.0f}"
    )
    return "\n".join(lines)
