"""Run config files: reading TOML, the `[model]` / `[train]` tables with `--set`
overrides, and the presets that ship in configs/. Untrusted values go through
gptcore.settings.declare.from_mapping: unknown keys, wrong types and out-of-range
values raise ConfigError naming the key and the file.
"""

from __future__ import annotations

import importlib.resources
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gptcore.errors import ConfigError, DamagedFile
from gptcore.settings.declare import from_mapping, parse_override
from gptcore.settings.model import GPTConfig, model_config_from
from gptcore.settings.train import MIXTURE_PREFIX, TrainConfig
from gptcore.util.typedfile import SMALL_LIMIT, read_bytes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


def mixture_text(tables: Sequence[object], where: str = "train.corpus") -> str:
    """The one-text form of `[[train.corpus]]` tables (source, weight)."""
    entries = []
    for i, table in enumerate(tables):
        at = f"{where}[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{at} must be a table with source and weight, got {table!r}")
        unknown = sorted(set(table) - {"source", "weight"})
        if unknown:
            raise ConfigError(f"{at}: unknown key {unknown[0]!r} (known: source, weight)")
        source, weight = table.get("source"), table.get("weight", 1.0)
        if not isinstance(source, str) or not source.strip() or ";" in source:
            raise ConfigError(f"{at}.source must be a path or name without ';', got {source!r}")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            raise ConfigError(f"{at}.weight must be a positive number, got {weight!r}")
        if not math.isfinite(weight):
            raise ConfigError(f"{at}.weight must be finite, got {weight!r}")
        entries.append(f"{weight:g}*{source}")
    if not entries:
        raise ConfigError(f"{where}: the mixture lists no sources")
    return MIXTURE_PREFIX + ";".join(entries)


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file through the typed reader (gptcore.util.typedfile: a FIFO or
    device in its place, no permission, too large or too deeply nested is refused),
    with ConfigErrors that name the file. Its tables are checked by
    run_config_from_dict and the settings' own declarations."""
    path = Path(path)
    try:
        data = read_bytes(path, SMALL_LIMIT)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except DamagedFile as exc:
        raise ConfigError(str(exc)) from None
    try:
        # surrogateescape: config.toml holds a non-UTF-8 path as its bytes on disk
        return tomllib.loads(data.decode("utf-8", errors="surrogateescape"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in {path}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path} is damaged: nested too deeply") from None


def run_config_from_dict(
    data: dict[str, Any], where: str = "config", overrides: list[str] | None = None
) -> tuple[GPTConfig, TrainConfig]:
    """(model, train) configs from a {"model": ..., "train": ...} mapping.

    `overrides` are `--set` strings: `key=value` for train keys, or
    `model.key=value` for model keys (`model=NAME` picks a preset).
    """
    unknown = sorted(set(data) - {"model", "train"})
    if unknown:
        raise ConfigError(f"{where}: unknown table [{unknown[0]}] (known: [model], [train])")
    model_data: Any = data.get("model", "book-124m")
    model_data = dict(model_data) if isinstance(model_data, dict) else {"preset": model_data}
    train_data = data.get("train", {})
    if not isinstance(train_data, dict):
        raise ConfigError(f"{where}: [train] must be a table of settings, got {train_data!r}")
    train_data = dict(train_data)
    if isinstance(train_data.get("corpus"), list):  # [[train.corpus]]: a mixture of sources
        train_data["corpus"] = mixture_text(train_data["corpus"], f"{where}: train.corpus")
    for text in overrides or []:
        key, value = parse_override(text)
        if key == "model":  # a preset name, or a whole table (`model={preset="tiny"}`)
            model_data = dict(value) if isinstance(value, dict) else {"preset": value}
        elif key.startswith("model."):
            model_data[key.removeprefix("model.")] = value
        else:
            train_data[key.removeprefix("train.")] = value
    model = model_config_from(model_data, f"{where}: [model]")
    train = from_mapping(TrainConfig, train_data, f"{where}: [train]")
    return model, train


def shipped_configs() -> dict[str, Path]:
    """The run presets that ship with gpt-tui (the repository's configs/), by name.

    They are package data (gptcore.configs), so a wheel install has them too.
    """
    try:
        folder = Path(str(importlib.resources.files("gptcore.configs")))
    except ModuleNotFoundError:
        # A checkout used without (re)installing it: the folder next to gptcore/.
        folder = Path(__file__).resolve().parents[2] / "configs"
    return {path.stem: path for path in sorted(folder.glob("*.toml"))}


def resolve_config_path(name_or_path: str | Path) -> Path:
    """The file a `--config` value means: an existing file, else a shipped preset.

    A preset is named bare, with or without its suffix ("tiny" or "tiny.toml");
    anything else that is not a file is a ConfigError listing the presets.
    """
    path = Path(name_or_path)
    if path.is_file() or (os.path.lexists(path) and not path.is_dir()):
        return path  # a FIFO or device too: load_toml says what it is, without opening it
    shipped = shipped_configs()
    name = path.name.removesuffix(".toml")
    if path.parent == Path(".") and name in shipped:
        return shipped[name]
    names = ", ".join(shipped) or "none found"
    raise ConfigError(f"config file not found: {name_or_path} (shipped presets: {names})")


def load_run_config(
    name_or_path: str | Path, overrides: list[str] | None = None
) -> tuple[GPTConfig, TrainConfig]:
    """Read a run config TOML (tables [model] and [train]) with `--set` overrides.

    `name_or_path` is a file or a shipped preset's name (see resolve_config_path).
    """
    path = resolve_config_path(name_or_path)
    return run_config_from_dict(load_toml(path), str(path), overrides)
