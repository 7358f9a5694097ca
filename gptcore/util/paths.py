"""Where gpt-tui keeps settings, data (runs, weights) and caches.

Everything lives under platformdirs' per-user directories unless GPT_TUI_HOME
is set (the CLI's --home flag sets it), in which case config/, data/ and cache/
live under that one folder: tests and users with their own layout use it.
"""

from __future__ import annotations

import os
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
