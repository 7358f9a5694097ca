"""A dependency-free progress line for the CLI (stderr, only on a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from gptcore.util.bars import bar
from gptcore.util.fmt import format_duration, format_si
from gptcore.util.throttle import Throttle

REDRAW_INTERVAL_S = 0.1  # a terminal line redrawn at most ten times a second


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
