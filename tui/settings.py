"""The app's settings (last corpus, last config, theme, bell) as TOML in the config dir."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from gptcore.errors import DamagedFile
from gptcore.util.fsutil import atomic_write_text
from gptcore.util.paths import config_dir
from gptcore.util.tomlwrite import dumps_toml
from gptcore.util.typedfile import SMALL_LIMIT, parse_toml, read_bytes

SETTINGS_FILE = "settings.toml"


@dataclass
class Settings:
    corpus: str = "builtin"
    config: str = ""  # a configs/*.toml path, a saved one, preset:NAME; "": the first run
    theme: str = "textual-dark"
    bell: bool = True  # ring the terminal bell when a run (live or watched) ends


def settings_path() -> Path:
    return config_dir() / SETTINGS_FILE


def load_settings() -> Settings:
    """The saved settings; defaults for a missing, unreadable or foreign file (the
    typed reader: a FIFO in its place or a too deep nesting never hangs or crashes)."""
    path = settings_path()
    try:
        raw = read_bytes(path, SMALL_LIMIT)
        raw.decode("utf-8")  # not UTF-8: foreign (parse_toml would keep the bytes)
        data = parse_toml(raw, path)
    except (FileNotFoundError, DamagedFile, UnicodeDecodeError):
        return Settings()
    # A value of the wrong type (hand-edited) keeps its default.
    defaults = asdict(Settings())
    return Settings(
        **{k: v for k, v in data.items() if k in defaults and type(v) is type(defaults[k])}
    )


def save_settings(settings: Settings) -> None:
    atomic_write_text(settings_path(), dumps_toml(asdict(settings)))
