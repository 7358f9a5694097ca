"""Comparing two checkpoints on the app's corpus: each one is evaluated by the
engine's evaluate_checkpoint (what `gpt-tui eval --checkpoint` runs) on the split
its own run trained with, and the text says which split that was."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gptcore.runs.rundir import checkpoint_label
from gptcore.util.fmt import format_duration
from gptcore.util.throttle import Throttle

if TYPE_CHECKING:
    from gptcore.training.evaluate import Evaluation

COMPARE_BATCHES = 20  # per split: enough for a fair comparison, quick on a CPU
PROGRESS_INTERVAL_S = 0.25  # progress lines posted at most four times a second


def progress_text(source: str, which: str, done: int, total: int, elapsed_s: float) -> str:
    """`comparing on corpus builtin: B 30/80 batches · 41s elapsed · ETA 1m05s` (done and
    total over both checkpoints; the ETA from the rate so far)."""
    eta = (total - done) * elapsed_s / done if done else None
    return (
        f"comparing on corpus {source}: {which} {done}/{total} batches · "
        f"{format_duration(elapsed_s)} elapsed · ETA {format_duration(eta)}"
    )


def compare_checkpoints(
    a: Path,
    b: Path,
    source: str,
    max_batches: int,
    on_progress: Callable[[str], None] | None = None,
) -> str:
    """The comparison text of checkpoints `a` (marked) and `b` on corpus `source`,
    over the first `max_batches` batches per split. Slow (loads and runs both
    models): call it on a worker thread. `on_progress(text)` gets a progress line
    (progress_text) at most every PROGRESS_INTERVAL_S, and after the last batch."""
    from gptcore.training.evaluate import evaluate_checkpoint

    started = time.monotonic()
    shown = Throttle(PROGRESS_INTERVAL_S)
    results = []
    for index, (mark, path) in enumerate(zip("AB", (a, b), strict=True)):

        def on_batches(done: int, total: int, index: int = index, mark: str = mark) -> None:
            # B's batches are not counted yet while A runs: take them to be as many.
            if on_progress is not None and shown.ready(force=done == total):
                elapsed = time.monotonic() - started
                on_progress(progress_text(source, mark, index * total + done, 2 * total, elapsed))

        results.append(
            evaluate_checkpoint(path, source, max_batches=max_batches, on_batches=on_batches)
        )
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
