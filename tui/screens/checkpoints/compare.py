"""Comparing two checkpoints on the app's corpus: each one is evaluated by the
engine's evaluate_checkpoint (what `gpt-tui eval --checkpoint` runs) on the split
its own run trained with, and the text says which split that was."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gptcore.runs.rundir import checkpoint_label

if TYPE_CHECKING:
    from gptcore.training.evaluate import Evaluation

COMPARE_BATCHES = 20  # per split: enough for a fair comparison, quick on a CPU


def compare_checkpoints(a: Path, b: Path, source: str, max_batches: int) -> str:
    """The comparison text of checkpoints `a` (marked) and `b` on corpus `source`,
    over the first `max_batches` batches per split. Slow (loads and runs both
    models): call it on a worker thread."""
    from gptcore.training.evaluate import evaluate_checkpoint

    results = [evaluate_checkpoint(path, source, max_batches=max_batches) for path in (a, b)]
    return compare_text((a, b), [r.evaluation for r in results], max_batches)


def split_text(result: Evaluation) -> str:
    """The split and windows a result is over: `train 0.9: 40,960 / 4,512, window 64,
    batch 3` (the train ratio, then the train and val tokens)."""
    windows = f"window {result.window}"
    if result.stride != result.window:
        windows += f" stride {result.stride}"
    return (
        f"train {result.train_ratio:g}: {result.train_tokens:,} / {result.val_tokens:,}, "
        f"{windows}, batch {result.batch_size}"
    )


def compare_text(paths: Sequence[Path], results: Sequence[Evaluation], max_batches: int) -> str:
    """A heading, one line of losses per checkpoint (A, B), then the split each was
    evaluated on: once when both runs split alike, else one line each."""
    same_run = paths[0].parent == paths[1].parent  # then the run is named once: rows fit 60
    labels = [path.name if same_run else checkpoint_label(path) for path in paths]
    where = f" of {checkpoint_label(paths[0]).rsplit('/', 1)[0]}" if same_run else ""
    devices = ", ".join(sorted({r.device for r in results}))
    lines = [f"losses{where} on {results[0].corpus} ({max_batches} batches per split, {devices}):"]
    width = max(len(label) for label in labels)
    for mark, label, r in zip("AB", labels, results, strict=True):
        lines.append(f"{mark} {label:<{width}}  train {r.train_loss:.3f} · val {r.val_loss:.3f}")
    lines.append("each on its run's split (train / val tokens):")
    splits = [split_text(r) for r in results]
    if splits[0] == splits[1]:
        lines.append(f"both {splits[0]}")
    else:
        lines += [f"{mark} {text}" for mark, text in zip("AB", splits, strict=True)]
    return "\n".join(lines)
