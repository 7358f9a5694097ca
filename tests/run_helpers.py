"""A tiny headless-run config (model + train TOML) shared by the CLI and DDP tests."""

from __future__ import annotations

from pathlib import Path

import torch

from gptcore.data.corpus import raw_topics_text
from gptcore.data.tokens import prepare_corpus
from gptcore.data.windows import make_loader
from gptcore.training.evaluate import calc_loss_batch, calc_loss_loader

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
        corpus.write_text(raw_topics_text()[:1600], encoding="utf-8")
    return corpus


def write_tiny_run_config(path: Path, batch_size: int = 2, sample_tokens: int = 3) -> Path:
    """Write a 2-epoch tiny run config at `path` training on tiny_corpus(path.parent)."""
    corpus = tiny_corpus(path.parent)
    path.write_text(
        _TINY_RUN.format(corpus=corpus, batch_size=batch_size, sample_tokens=sample_tokens)
    )
    return path


def book_train_model_simple(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    corpus_file: Path,
    epochs: int,
    eval_freq: int,
    eval_iter: int,
    max_steps: int | None = None,
    batch_size: int = 2,
    length: int = 16,
) -> list[tuple[int, float, float]]:
    """The book's train_model_simple, step for step, on windows of `length` with
    stride `length`: the (global_step, train loss, val loss) of each evaluation.
    `max_steps` stops after that many optimizer steps."""
    corpus = prepare_corpus(corpus_file)
    train_loader = make_loader(corpus.train_tokens, batch_size, length, length, True, True)
    val_loader = make_loader(corpus.val_tokens, batch_size, length, length, False, False)
    global_step, evals = -1, []
    for _epoch in range(epochs):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = calc_loss_batch(x, y, model, "cpu")
            loss.backward()
            optimizer.step()
            global_step += 1
            if max_steps is not None and global_step + 1 == max_steps:
                return evals
            if global_step % eval_freq == 0:
                model.eval()
                with torch.no_grad():
                    train_loss = calc_loss_loader(train_loader, model, "cpu", eval_iter)
                    val_loss = calc_loss_loader(val_loader, model, "cpu", eval_iter)
                model.train()
                evals.append((global_step, train_loss, val_loss))
    return evals
