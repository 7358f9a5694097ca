"""Progress of long work: the callback type the engine reports through, a counter of
weighted stages for work that is a few big pieces (read, convert, write), the
"elapsed · ETA" words the app shows, and a dependency-free progress line for the CLI
(stderr, only on a terminal)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from gptcore.util.bars import bar
from gptcore.util.fmt import format_duration, format_si
from gptcore.util.throttle import Throttle

REDRAW_INTERVAL_S = 0.1  # a terminal line redrawn at most ten times a second

# progress(done, total): called as work is done; `done` only grows, up to `total`.
Progress = Callable[[int, int], None]


class Stages:
    """Reports a long action made of a few big pieces as `progress(done, total)`, each
    piece weighted by its size (bytes read or written), so the ETA follows the work:
    `start()` reports 0, then `done(weight)` after each piece."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = max(1, int(total))
        self.progress = progress
        self.count = 0

    def start(self) -> None:
        if self.progress is not None:
            self.progress(0, self.total)

    def done(self, weight: int) -> None:
        self.count = min(self.total, self.count + max(0, int(weight)))
        if self.progress is not None:
            self.progress(self.count, self.total)

    def finish(self) -> None:
        """The last piece: whatever is left of the total."""
        self.done(self.total - self.count)


def elapsed_eta_text(done: float, total: float, elapsed_s: float) -> str:
    """`41s elapsed · ETA 1m05s` (the ETA from the rate so far; `–` before any)."""
    eta = (total - done) * elapsed_s / done if done > 0 else None
    return f"{format_duration(elapsed_s)} elapsed · ETA {format_duration(eta)}"


class ProgressLine:
    """Redraws one line like `tokenizing  42% [████▎     ] 12.3 MB/s ETA 1m05s`.

    Silent when the stream is not a terminal, so logs and pipes stay clean.
    """

    def __init__(self, label: str, unit: str = "", stream: TextIO | None = None, width: int = 30):
        self.label, self.unit, self.width = label, unit, width
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.start = time.perf_counter()
        self._redraw = Throttle(REDRAW_INTERVAL_S, time.perf_counter)

    def update(self, done: float, total: float) -> None:
        """Redraw for `done` of `total`; the last update (done >= total) always draws."""
        now = time.perf_counter()
        if not self.enabled or not self._redraw.ready(now, force=done >= total):
            return
        frac = min(1.0, done / total) if total else 1.0
        rate = done / max(now - self.start, 1e-9)
        eta = (total - done) / rate if rate > 0 else None
        self.stream.write(
            f"\r{self.label} {frac:4.0%} [{bar(frac, self.width)}] {format_si(rate, self.unit)}/s "
            f"ETA {format_duration(eta)}\033[K"  # erase what a longer line left
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
