"""Reading the overlaid runs for the Runs screen: which runs' metrics.jsonl the next
read needs (a running run each time, a finished one once), and GPT-2's reference
losses on a run's own split. The reads themselves run in the pane's workers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from gptcore.errors import GptTuiError
from gptcore.runs.table import RunRow, SeriesFollower

# A reference key: (corpus, train_ratio, window, batch_size) of the run it is for.
ReferenceKey = tuple[str, float, int, int]


class Followers:
    """One SeriesFollower per overlaid run, kept across reads so each read only
    takes the lines appended since the last one."""

    def __init__(self) -> None:
        self._followers: dict[Path, SeriesFollower] = {}
        self._read_once: set[Path] = set()

    def due(
        self, selected: Sequence[Path], row_of: Callable[[Path], RunRow | None]
    ) -> list[SeriesFollower]:
        """The followers of the `selected` runs to read now: running ones (or runs no
        longer listed) every time, the others until they have been read once."""
        jobs = []
        for path in selected:
            row = row_of(path)
            if path in self._read_once and row is not None and row.state != "running":
                continue
            if path not in self._followers:
                self._followers[path] = SeriesFollower(path)
            jobs.append(self._followers[path])
            if row is not None and row.state != "running":
                self._read_once.add(path)
            else:
                self._read_once.discard(path)
        return jobs


def reference_key(row: RunRow) -> ReferenceKey | None:
    """What GPT-2's reference losses for `row` depend on: its corpus and its own split
    and windows (max_length, else the context length); None without a corpus."""
    if not row.corpus:
        return None
    c = row.config
    key = (
        row.corpus,
        c.get("train_ratio", 0.9),
        c.get("max_length") or c.get("model.context_length", 1024),
        c.get("batch_size", 2),
    )
    # A hand-edited config the settings refused keeps its own values: no reference then.
    ratio, window, batch = key[1:]
    if not (isinstance(ratio, float) and 0 < ratio <= 1):
        return None
    if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in (window, batch)):
        return None
    return key


def reference_lines(key: ReferenceKey) -> list[tuple[str, float]]:
    """GPT-2's train and val loss on the split `key` names, for each size on disk
    (gptcore.training.reference, cached). Slow the first time: call it on a worker."""
    from gptcore.training.reference import local_gpt2_sizes, reference_losses

    lines: list[tuple[str, float]] = []
    for size in local_gpt2_sizes():
        try:
            losses = reference_losses(size, *key)
        except (GptTuiError, OSError, ValueError):
            continue  # a corpus too short for one batch: no line, not an error
        if losses is not None:
            lines.append((f"GPT-2 {size} train", losses[0]))
            lines.append((f"GPT-2 {size} val", losses[1]))
    return lines
