"""The app's crash log: the traceback of an exception nothing handled, kept in the
data folder (DATA/logs/crash-<time>-<pid>.log), so it survives the terminal it was
printed in (a closed tmux window, an SSH session gone)."""

from __future__ import annotations

import os
import platform
import sys
import time
import traceback
from pathlib import Path

from gptcore import __version__
from gptcore.util.fsutil import atomic_write_text
from gptcore.util.paths import logs_dir


def crash_log_dir() -> Path:
    return logs_dir()  # listed by `gpt-tui info` (gptcore.util.paths.places)


def crash_report(error: BaseException, when: float) -> str:
    """What a crash log holds: when, which versions, and the full traceback."""
    import textual

    stamp = time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(when))
    head = (
        f"gpt-tui {__version__} stopped on an unexpected error at {stamp}\n"
        f"python {platform.python_version()} · textual {textual.__version__} · {sys.platform}\n"
        f"command: {' '.join(sys.argv)}\n\n"
    )
    return head + "".join(traceback.format_exception(error))


def write_crash_log(error: BaseException, when: float | None = None) -> Path:
    """Write `error`'s crash report to a new file in crash_log_dir(); returns its
    path. Raises OSError when it cannot be written (a full disk, a read-only home)."""
    when = time.time() if when is None else when
    name = f"crash-{time.strftime('%Y%m%d-%H%M%S', time.localtime(when))}-{os.getpid()}.log"
    path = crash_log_dir() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, crash_report(error, when))
    return path
