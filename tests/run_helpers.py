"""A tiny headless-run config (model + train TOML) shared by the CLI and DDP tests."""

from __future__ import annotations

from pathlib import Path

from gptcore.data import builtin_text

_TINY_RUN = """
[model]
context_length = 16
emb_dim = 16
n_heads = 2
n_layers = 1
drop_rate = 0.0

[train]
corpus = "{corpus}"
batch_size = {batch_size}
max_length = 16
epochs = 2
eval_freq = 3
eval_iter = 2
sample_tokens = {sample_tokens}
precision = "fp32"  # runs are compared number for number: not the CPU's bf16
"""


def tiny_corpus(folder: Path) -> Path:
    """1,600 characters of the built-in corpus in folder/corpus.txt."""
    corpus = folder / "corpus.txt"
    if not corpus.exists():
        corpus.write_text(builtin_text()[:1600], encoding="utf-8")
    return corpus


def write_tiny_run_config(path: Path, batch_size: int = 2, sample_tokens: int = 3) -> Path:
    """Write a 2-epoch tiny run config at `path` training on tiny_corpus(path.parent)."""
    corpus = tiny_corpus(path.parent)
    path.write_text(
        _TINY_RUN.format(corpus=corpus, batch_size=batch_size, sample_tokens=sample_tokens)
    )
    return path
