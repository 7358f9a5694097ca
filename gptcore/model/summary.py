"""Model summary: parameter counts per component and weight sizes per dtype, and the
check that refuses a model this machine cannot hold before it is loaded (a training
run's memory is gptcore.planner.memory's).

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
from gptcore.model.counts import parameter_count
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


def loading_bytes(config: GPTConfig) -> int:
    """About what loading a model to generate takes: its fp32 weights and the copy they
    are read into (a lower precision is cast after loading)."""
    return 2 * 4 * parameter_count(config)


# "0" skips the memory checks before loading and training (an estimate can be wrong).
MEMORY_CHECK_ENV = "GPT_TUI_MEMORY_CHECK"


def check_memory(need: int, doing: str, config: GPTConfig, device: torch.device) -> None:
    """ConfigError (one line) when `need` bytes is more than `device` has available:
    "model gpt2-xl needs about 12.5 GB to load, this machine has 1.0 GB available".
    Nothing is checked where the free memory is unknown (MPS, no /proc). A training
    run is checked by gptcore.planner.plan.check_fits."""

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


def format_summary(summary: ModelSummary) -> str:
    """The counts and weight sizes `gpt-tui summary` prints."""
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
    return "\n".join(lines)
