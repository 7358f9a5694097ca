"""Training shares the CPU with the app: its thread runs below the keys' priority,
the collector leaves long-lived objects alone, and full collections wait for a
pause in the keys.

On a machine with few cores, a run in the app's worker thread (and the OpenMP
threads torch starts from it) would otherwise compete as equals with the thread
that handles keys and draws the screen, and keys waited up to half a second
while book-124m trained on 2 cores. Niceness 10 lets the app's thread win the CPU
whenever it has work; training takes everything else, so on an idle machine it
loses only what the app uses. Headless `gpt-tui train` is not affected.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections.abc import Callable

TRAIN_NICENESS = 10


def lower_thread_priority(niceness: int = TRAIN_NICENESS) -> bool:
    """Lower the calling thread's CPU priority to `niceness` (never raise it).

    Linux only: there a thread id names one thread, and threads it starts later
    (torch's OpenMP team) inherit the value. Elsewhere the call would lower the
    whole app, keys included, so it does nothing. Returns whether it took effect.
    """
    if not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, max(current, niceness))
    except OSError:  # a sandbox that forbids it: train at the usual priority
        return False
    return True


def freeze_long_lived_objects() -> None:
    """Move every object alive now out of the cyclic collector's reach (gc.freeze).

    The app's process holds torch, a model and Textual's widgets: hundreds of
    thousands of objects that live until exit. Each full collection walked them all,
    measured at 250-365 ms every few seconds while book-124m trained, with every
    thread stopped (the collector holds the GIL): the slowest keys waited on it. Frozen
    objects are skipped, so later full passes scan only what came after. Call it once
    the long-lived objects exist (the screens mounted; the model built).
    """
    gc.freeze()


class IdleCollector:
    """Full collections of the app's cyclic garbage, moved to when no key is coming.

    Even with the long-lived objects frozen, the app makes tens of thousands of
    short cycles a second while keys arrive (screens switching, strips cached and
    dropped), and CPython then starts a full pass about once a second: measured at
    95-280 ms each while book-124m trained on 2 cores, with every thread stopped.
    Here the automatic full passes are pushed far off (young generations are still
    collected as usual, 1-7 ms each) and `tick`, called a few times a second, runs
    one once input has been quiet for `quiet_s`, or after `max_defer_s` of steady
    typing so garbage never piles up for long.
    """

    FULL_PASS_THRESHOLD = 1_000_000  # young passes before CPython would run a full one

    def __init__(
        self,
        quiet_s: float = 1.5,
        max_defer_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.quiet_s = quiet_s
        self.max_defer_s = max_defer_s
        self._clock = clock
        self._last_input = self._last_full = clock()
        self._thresholds: tuple[int, int, int] | None = None

    def start(self) -> None:
        if self._thresholds is None:
            self._thresholds = gc.get_threshold()
            young, middle, _full = self._thresholds
            gc.set_threshold(young, middle, self.FULL_PASS_THRESHOLD)

    def stop(self) -> None:
        """CPython's own schedule again (an app run in tests leaves the process as it was)."""
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None

    def input_seen(self) -> None:
        self._last_input = self._clock()

    def tick(self) -> bool:
        """Run a full pass if one is due and the moment is right; True if it ran."""
        if self._thresholds is None:
            return False
        now = self._clock()
        # Due as CPython would have it: enough middle-generation passes since the last.
        pending = gc.get_count()[2]
        due = pending >= self._thresholds[2] and now - self._last_input >= self.quiet_s
        overdue = pending > 0 and now - self._last_full >= self.max_defer_s
        if not (due or overdue):
            return False
        gc.collect()
        self._last_full = self._clock()
        return True
