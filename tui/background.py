"""Training shares the CPU with the app: its thread runs below the keys' priority,
and the collector leaves long-lived objects alone.

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
