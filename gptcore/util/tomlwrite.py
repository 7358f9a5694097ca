"""The one TOML writer: run configs (config.toml), saved app configs and settings.

It covers what those files hold: str / int / float / bool values and lists of
them, at the top level or in one level of tables. That is all they need, so no
extra dependency; tomllib reads the result back to equal values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def toml_value(value: Any) -> str:
    """One value as TOML; TypeError for anything these files never hold."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # "0.0004", "1e-05": both valid TOML floats
    if isinstance(value, str):
        return _basic_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a TOML value")


def _basic_string(text: str) -> str:
    # Escape quotes, backslashes and control characters; everything else is
    # written as is (TOML files are UTF-8).
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def dumps_toml(data: Mapping[str, Any], comment: str | None = None) -> str:
    """TOML text for flat values and one level of tables; None values are left out.

    `comment` becomes a `# ...` header line.
    """
    lines = [f"# {line}" for line in comment.splitlines()] + [""] if comment else []
    lines += [
        f"{_key(k)} = {toml_value(v)}"
        for k, v in data.items()
        if v is not None and not isinstance(v, Mapping)
    ]
    for name, table in data.items():
        if isinstance(table, Mapping):
            if lines and lines[-1] != "":
                lines.append("")
            lines.append(f"[{_key(name)}]")
            lines += [f"{_key(k)} = {toml_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    # Bare keys where TOML allows them (every key these files use), else quoted.
    if key and all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in key):
        return key
    return _basic_string(key)
