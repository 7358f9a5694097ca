"""GPT-2 as a yardstick: its train/val loss on the corpus split a run uses, so a
learner sees how far from GPT-2 124M their model is.

The losses come from `evaluate_model`, the evaluation `gpt-tui eval` runs, over
windows of the run's context length (GPT-2's first positions: a fair comparison
with a model that only ever sees that many tokens). Evaluating GPT-2 takes a
while on a CPU, so each result is cached as JSON under the cache dir, keyed by
everything that changes it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import msgspec

from gptcore.data.tokens import prepare_corpus
from gptcore.errors import DamagedFile
from gptcore.util import paths
from gptcore.util.fsutil import atomic_write_text
from gptcore.util.typedfile import read_json
from gptcore.weights.downloads import downloaded_sizes
from gptcore.weights.gpt2 import resolve_size

DEFAULT_MAX_BATCHES = 20


def local_gpt2_sizes() -> list[str]:
    """The GPT-2 sizes whose weights are complete on disk, smallest first."""
    return downloaded_sizes()


def reference_dir() -> Path:
    return paths.cache_dir() / "reference"


def _corpus_path(source: str) -> str:
    """A train config's corpus as prepare_corpus reads it ("verdict": the data dir's copy)."""
    return str(paths.verdict_file()) if source == "verdict" else source


def reference_losses(
    size: str,
    corpus_source: str,
    train_ratio: float,
    context_length: int,
    batch_size: int,
    device: str = "auto",
    max_batches: int = DEFAULT_MAX_BATCHES,
    decode_errors: str = "strict",
) -> tuple[float, float] | None:
    """GPT-2 `size`'s mean (train, val) loss on the corpus split at `train_ratio`, in
    windows of `context_length` (at most GPT-2's 1024), over at most `max_batches`
    batches per split; None when that size is not downloaded.

    Slow the first time (loads and runs GPT-2): call it off the UI thread. Raises
    GptTuiError subclasses for a corpus too short for one batch.
    """
    name = resolve_size(size).name
    if name not in local_gpt2_sizes():
        return None
    corpus = prepare_corpus(_corpus_path(corpus_source), train_ratio, decode_errors)
    key = {
        "size": name,
        "source": str(corpus_source),
        "corpus": corpus.key,
        "train_ratio": train_ratio,
        "context_length": context_length,
        "batch_size": batch_size,
        "max_batches": max_batches,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    cached = _read_cached(reference_dir() / f"{digest}.json", key)
    if cached is not None:
        return cached
    # torch loads only here, for a result not cached yet: the app's Runs tab asks
    # about every run it shows.
    from gptcore.training.evaluate import eval_options, evaluate_model
    from gptcore.weights.modelspec import load_spec

    # eval_options: a device this machine lacks falls back to the best one here.
    _, dev = eval_options({"batch_size": batch_size, "device": device})
    loaded = load_spec(f"gpt2:{name}", dev)
    model = loaded.model
    # Windows of the run's length: the model reads only its first positions.
    length = min(context_length, model.config.context_length)
    model.config = dataclasses.replace(model.config, context_length=length)
    result = evaluate_model(
        model, corpus, batch_size=batch_size, max_batches=max_batches, device=dev
    )
    losses = (result.train_loss, result.val_loss)
    record = {"key": key, "train_loss": losses[0], "val_loss": losses[1]}
    atomic_write_text(reference_dir() / f"{digest}.json", json.dumps(record, indent=1))
    return losses


class CachedLosses(msgspec.Struct):
    """A reference cache file: what the losses were measured on, and the losses."""

    key: dict[str, Any]
    train_loss: Annotated[float, msgspec.Meta(ge=0.0, le=1e6)]  # finite: NaN is refused
    val_loss: Annotated[float, msgspec.Meta(ge=0.0, le=1e6)]


def _read_cached(path: Path, key: dict[str, object]) -> tuple[float, float] | None:
    """The cached losses for `key`, or None when absent, damaged (then measured again)
    or another key's."""
    try:
        record = read_json(path, CachedLosses)
    except (FileNotFoundError, DamagedFile):
        return None
    return (record.train_loss, record.val_loss) if record.key == key else None
