"""The app's settings (last corpus, last config, theme) as TOML in the config dir.

Also the small TOML writer the app uses for settings and saved run configs:
flat str/int/float/bool values, optionally grouped in one level of tables,
which is all either file needs (so no extra dependency).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib

from gptcore.paths import config_dir

SETTINGS_FILE = "settings.toml"


@dataclass
class Settings:
    corpus: str = "builtin"
    config: str = "preset:tiny"  # a configs/*.toml path, a saved one, or preset:NAME
    theme: str = "textual-dark"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write non-finite number {value!r} as TOML")
        return repr(value)
    if isinstance(value, str):
        # Basic strings with escapes: quotes, backslashes and control characters.
        out = []
        for ch in value:
            if ch in '"\\':
                out.append("\\" + ch)
            elif ord(ch) < 0x20 or ord(ch) == 0x7F:
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(ch)
        return '"' + "".join(out) + '"'
    raise TypeError(f"cannot write {type(value).__name__} as a TOML value")


def dumps_toml(data: dict[str, Any]) -> str:
    """TOML for flat values and one level of tables; None values are left out."""
    lines = [
        f"{k} = {_value(v)}" for k, v in data.items() if v is not None and not isinstance(v, dict)
    ]
    for name, table in data.items():
        if isinstance(table, dict):
            if lines:
                lines.append("")
            lines.append(f"[{name}]")
            lines.extend(f"{k} = {_value(v)}" for k, v in table.items() if v is not None)
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write text to path via a temp file, fsync and rename: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def settings_path() -> Path:
    return config_dir() / SETTINGS_FILE


def load_settings() -> Settings:
    """The saved settings; defaults for a missing, unreadable or foreign file."""
    try:
        data = tomllib.loads(settings_path().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return Settings()
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in data.items() if k in known and isinstance(v, str)})


def save_settings(settings: Settings) -> None:
    write_atomic(settings_path(), dumps_toml(asdict(settings)))
