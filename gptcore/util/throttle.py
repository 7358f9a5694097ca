"""At most one go per interval: the rate limit for progress messages and redraws.

A worker that produces updates faster than a screen can draw them asks
`ready()` before each one and sends only when it says yes; the updates in
between are dropped or coalesced by the caller. The last update of a job is sent
with `force=True`, so the final state is never lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Throttle:
    """Says yes at most once per `interval_s` seconds of `clock` (the first call
    always). Not locked: callers on several threads hold their own lock."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._last = float("-inf")

    def ready(self, now: float | None = None, force: bool = False) -> bool:
        """True when `interval_s` has passed since the last True, or when `force`d;
        a True starts the next interval at `now` (default: the clock's time)."""
        if now is None:
            now = self.clock()
        if not force and now - self._last < self.interval_s:
            return False
        self._last = now
        return True
