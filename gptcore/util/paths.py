"""Where gpt-tui keeps settings, data (runs, weights) and caches.

Everything lives under platformdirs' per-user directories unless GPT_TUI_HOME
is set (the CLI's --home flag sets it), in which case config/, data/ and cache/
live under that one folder: tests and users with their own layout use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "gpt-tui"
HOME_ENV = "GPT_TUI_HOME"


def _home() -> Path | None:
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser() if value else None


def home_problem() -> str | None:
    """Why the home folder set by --home / GPT_TUI_HOME cannot hold gpt-tui's files
    (a file, or under a file or a read-only folder), or None when it can."""
    home = _home()
    if home is None:
        return None
    if home.exists():
        return None if home.is_dir() else f"home {home} is not a folder"
    parent = home.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"home {home} cannot be created: {parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"home {home} cannot be created: {parent} is not writable"
    return None


def config_dir() -> Path:
    home = _home()
    return home / "config" if home else Path(platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    home = _home()
    return home / "data" if home else Path(platformdirs.user_data_dir(APP_NAME))


def cache_dir() -> Path:
    home = _home()
    return home / "cache" if home else Path(platformdirs.user_cache_dir(APP_NAME))


def runs_dir() -> Path:
    return data_dir() / "runs"


def transcripts_dir() -> Path:
    """Where the Chat screen saves transcripts (DATA/transcripts/)."""
    return data_dir() / "transcripts"


def token_cache_dir() -> Path:
    return cache_dir() / "tokens"


def corpora_dir() -> Path:
    return data_dir() / "corpora"


def verdict_file() -> Path:
    """Where `gpt-tui download verdict` puts the book's corpus (corpus = "verdict")."""
    return corpora_dir() / "the-verdict.txt"


def weights_dir() -> Path:
    """Downloaded GPT-2 weights (DATA/weights/gpt2/SIZE/SOURCE)."""
    return data_dir() / "weights"


def speedlab_dir() -> Path:
    """The Speed Lab's saved results (DATA/speedlab/)."""
    return data_dir() / "speedlab"


def sweeps_dir() -> Path:
    """Sweeps' folders (DATA/sweeps/NAME: the study database and the frozen spec)."""
    return data_dir() / "sweeps"


def logs_dir() -> Path:
    """The app's crash logs (DATA/logs/crash-<time>-<pid>.log, tui/crashlog.py)."""
    return data_dir() / "logs"


@dataclass(frozen=True)
class Place:
    """A folder gpt-tui writes: its name in `gpt-tui info`, where it is, what it holds."""

    name: str
    path: Path
    what: str


def places() -> list[Place]:
    """Every folder gpt-tui writes, the roots first."""
    return [
        Place("config", config_dir(), "settings and saved Train-form configs"),
        Place("data", data_dir(), "runs, weights, corpora, transcripts, Speed Lab results"),
        Place("runs", runs_dir(), "one folder per run: config, metrics.jsonl, checkpoints"),
        Place("weights", weights_dir(), "downloaded GPT-2 weights"),
        Place("corpora", corpora_dir(), "the-verdict.txt once downloaded"),
        Place("transcripts", transcripts_dir(), "saved Chat transcripts"),
        Place("speedlab", speedlab_dir(), "saved Speed Lab results"),
        Place("logs", logs_dir(), "crash logs: the app's traceback when it fails"),
        Place("cache", cache_dir(), "token caches (safe to delete: rebuilt on use)"),
    ]


def folder_size(path: Path) -> int | None:
    """Bytes of the regular files under `path` (symlinks not followed); None when
    it does not exist. Unreadable parts are left out, not an error."""
    if not path.is_dir():
        return None
    total = 0
    stack = [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total
