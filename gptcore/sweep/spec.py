"""A sweep file (SWEEP.toml): a base run config, a search space over its settings, a
sampler, a pruner, seeds per configuration and a budget.

    name = "quick-lr"               # optional; default: the file's name
    base = "quick"                  # a run config file (beside this one) or a preset
    sampler = "tpe"                 # grid | random | tpe
    pruner = "median"               # successive-halving | hyperband | median | none
    seeds = 1                       # runs per configuration (train.seed, seed + 1, ...)

    [train]                         # optional: settings over the base config's
    max_steps = 200

    [space]                         # any setting of [train], or model.KEY
    lr = { low = 1e-4, high = 1e-2, log = true }
    warmup_steps = { low = 0, high = 40, step = 10 }
    batch_size = [4, 8]             # a list: these choices
    "model.drop_rate" = { choices = [0.0, 0.1] }

    [budget]                        # stop starting trials when one is spent
    trials = 12
    tokens = 2_000_000
    wall_time_s = 900

Everything is checked here, before any trial starts: every value a trial could get
is checked against the setting's declaration (gptcore.settings) and against the
base config's other settings. A problem is a ConfigError of one line naming the
file and the field.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptcore.errors import ConfigError
from gptcore.settings.declare import (
    check,
    coerce,
    declared,
    from_mapping,
    setting,
    value_problem,
)
from gptcore.settings.files import load_toml, resolve_config_path, run_config_from_dict
from gptcore.settings.model import GPTConfig, model_config_from
from gptcore.settings.train import TrainConfig, check_trainable

SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("successive-halving", "hyperband", "median", "none")
MAX_SEEDS = 100
MAX_GRID = 100_000  # a grid larger than this is a typo (a step of 1 over a wide range)
ENTRY_KEYS = ("choices", "low", "high", "log", "step")
TABLES = ("space", "budget", "model", "train")


@dataclass(frozen=True)
class SweepOptions:
    """The sweep file's top-level settings."""

    name: str | None = setting(None, label="name", help="the sweep's name (default: the file's)")
    base: str | None = setting(
        None, label="base", help="the base run config: a file (beside the sweep file) or a preset"
    )
    sampler: str = setting(
        "tpe", label="sampler", help="how trials pick their settings", choices=SAMPLERS
    )
    sampler_seed: int = setting(0, label="sampler seed", help="the sampler's own seed", low=0)
    pruner: str = setting(
        "median",
        label="pruner",
        help="stops unpromising trials at an evaluation, from their val loss",
        choices=PRUNERS,
    )
    prune_after: int | None = setting(
        None,
        label="prune after",
        help="training tokens before a trial may be pruned (median: its warmup; halving, "
        "hyperband: the first rung); off: the base config's tokens per eval_freq steps "
        "(successive halving: Optuna's auto)",
        low=0,
    )
    reduction_factor: int = setting(
        3, label="reduction", help="successive halving / hyperband keep 1 in N per rung", low=2
    )
    startup_trials: int = setting(
        4,
        label="startup trials",
        help="trials before TPE models the space and the median pruner prunes",
        low=0,
    )
    seeds: int = setting(
        1,
        label="seeds",
        help="runs per configuration (train.seed + 0, 1, ...)",
        low=1,
        cap=MAX_SEEDS,
    )
    storage: str | None = setting(
        None,
        label="storage",
        help="the study's database URL (sqlite:///..., postgresql://...); off: study.db in "
        "the sweep's folder",
    )

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class SweepBudget:
    """When the sweep stops starting trials (checked before each one; off = no limit)."""

    SETTINGS_PREFIX = "budget."

    trials: int | None = setting(None, label="trials", help="trials in the whole study", low=1)
    tokens: int | None = setting(
        None, label="tokens", help="training tokens over all trials", low=1
    )
    wall_time_s: float | None = setting(
        None,
        label="wall time",
        help="seconds of training over all trials",
        low=0,
        low_open=True,
    )

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class Param:
    """One entry of the search space."""

    name: str  # as the study and the run table name it: "lr", "model.drop_rate"
    table: str  # "train" or "model"
    key: str  # the setting's own name
    kind: str  # "choices", "int" or "float"
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None

    def grid_values(self) -> list[Any] | None:
        """Every value a grid visits; None for a continuous range."""
        if self.kind == "choices":
            return list(self.choices)
        if self.log or (self.kind == "float" and self.step is None):
            return None
        step = self.step or 1
        count = int(math.floor((self.high - self.low) / step + 1e-9)) + 1
        values = [self.low + i * step for i in range(count)]
        return [int(v) for v in values] if self.kind == "int" else [round(v, 12) for v in values]

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna trial picks (or already picked, when resumed)."""
        if self.kind == "choices":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            step = int(self.step or 1)
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=step, log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def describe(self) -> str:
        if self.kind == "choices":
            return ", ".join(str(v) for v in self.choices)
        scale = " log" if self.log else ""
        step = f" step {self.step:g}" if self.step else ""
        return f"[{self.low:g}, {self.high:g}]{scale}{step}"


@dataclass(frozen=True)
class SweepSpec:
    """A checked sweep: everything a runner needs to start trials."""

    name: str
    options: SweepOptions
    budget: SweepBudget
    space: tuple[Param, ...]
    base_model: dict[str, Any]  # GPTConfig.to_dict() of the base
    base_train: dict[str, Any]  # TrainConfig.to_dict() of the base
    source: str  # the file, for messages

    @property
    def grid_size(self) -> int | None:
        """Configurations in the grid (None when the space is not a grid)."""
        size = 1
        for param in self.space:
            values = param.grid_values()
            if values is None:
                return None
            size *= len(values)
        return size

    def grid(self) -> dict[str, list[Any]]:
        return {p.name: p.grid_values() or [] for p in self.space}

    def configs(
        self, params: Mapping[str, Any], seed_index: int = 0
    ) -> tuple[GPTConfig, TrainConfig]:
        """The configs of one trial's run: the base, its `params`, the seed's offset."""
        model, train = dict(self.base_model), dict(self.base_train)
        for param in self.space:
            if param.name in params:
                (model if param.table == "model" else train)[param.key] = params[param.name]
        train["seed"] = int(train["seed"]) + seed_index
        where = f"{self.source}: trial settings"
        return (
            model_config_from(model, f"{where} [model]"),
            from_mapping(TrainConfig, train, f"{where} [train]"),
        )


def shipped_sweeps() -> dict[str, Path]:
    """The example sweeps that ship with gpt-tui (configs/sweeps/), by name."""
    try:
        folder = Path(str(importlib.resources.files("gptcore.configs"))) / "sweeps"
    except ModuleNotFoundError:  # a checkout used without installing it
        folder = Path(__file__).resolve().parents[2] / "configs" / "sweeps"
    return {path.stem: path for path in sorted(folder.glob("*.toml"))}


def resolve_sweep_path(name_or_path: str | Path) -> Path:
    """The file a sweep argument means: an existing file, else a shipped example's name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_sweeps()
    name = path.name.removesuffix(".toml")
    if path.parent == Path(".") and name in shipped:
        return shipped[name]
    names = ", ".join(shipped) or "none found"
    raise ConfigError(f"sweep file not found: {name_or_path} (shipped sweeps: {names})")


def load_sweep(path: str | Path, frozen_base: str | Path | None = None) -> SweepSpec:
    """Read and check a sweep file. `frozen_base` is a run config that replaces the
    file's base and [model] / [train] tables (a sweep folder's resolved base.toml)."""
    path = Path(path)
    data = load_toml(path)
    return sweep_from_dict(data, str(path), path.parent, frozen_base, path.stem)


def sweep_from_dict(
    data: dict[str, Any],
    where: str,
    folder: Path = Path("."),
    frozen_base: str | Path | None = None,
    default_name: str = "sweep",
) -> SweepSpec:
    """A checked SweepSpec from a sweep file's tables (see load_sweep)."""
    for table in TABLES:
        if table in data and not isinstance(data[table], dict):
            raise ConfigError(f"{where}: [{table}] must be a table, got {data[table]!r}")
    top = {k: v for k, v in data.items() if k not in TABLES}
    options = from_mapping(SweepOptions, top, where)
    budget = from_mapping(SweepBudget, data.get("budget", {}), f"{where}: [budget]")
    if frozen_base is not None:
        model_config, train_config = _base_configs(load_toml(frozen_base), str(frozen_base))
    else:
        model_config, train_config = _base_configs(_base_data(data, options, folder, where), where)
    base_model, base_train = model_config.to_dict(), train_config.to_dict()
    space_data = data.get("space", {})
    if not space_data:
        raise ConfigError(f"{where}: [space] is empty: name at least one setting to search")
    space = tuple(
        _param(name, entry, options, base_model, base_train, where)
        for name, entry in _flat_space(space_data).items()
    )
    spec = SweepSpec(
        name=options.name or default_name,
        options=options,
        budget=budget,
        space=space,
        base_model=base_model,
        base_train=base_train,
        source=where,
    )
    _check_name(spec.name, where)
    if options.sampler != "grid" and not any((budget.trials, budget.tokens, budget.wall_time_s)):
        raise ConfigError(
            f"{where}: give a [budget] (trials, tokens or wall_time_s): a {options.sampler} "
            "sweep has no end of its own"
        )
    size = spec.grid_size
    if options.sampler == "grid" and size is not None and size > MAX_GRID:
        raise ConfigError(
            f"{where}: sampler: the grid has {size:,} configurations (at most {MAX_GRID:,})"
        )
    return spec


def _flat_space(space: dict[str, Any]) -> dict[str, Any]:
    """The space with TOML's dotted keys undone: `model.drop_rate = [...]` (unquoted)
    reads as a [space.model] table; it names the setting "model.drop_rate"."""
    flat: dict[str, Any] = {}
    for name, entry in space.items():
        nested = isinstance(entry, dict) and name in ("model", "train")
        if nested and not set(entry) & set(ENTRY_KEYS):
            flat.update({f"{name}.{key}": value for key, value in entry.items()})
        else:
            flat[name] = entry
    return flat


def _check_name(name: str, where: str) -> None:
    # The name becomes folder names (the sweep's, its trials' runs).
    if not name or name.startswith(".") or any(ch in name for ch in "/\\\0:") or len(name) > 80:
        raise ConfigError(f"{where}: name {name!r} cannot name a folder (no / \\ : or leading dot)")


def _base_data(
    data: dict[str, Any], options: SweepOptions, folder: Path, where: str
) -> dict[str, Any]:
    """The base run config's tables with the sweep file's own [model] / [train] over them."""
    base: dict[str, Any] = {}
    if options.base:
        beside = folder / options.base
        base = load_toml(beside if beside.is_file() else resolve_config_path(options.base))
    elif "model" not in data and "train" not in data:
        raise ConfigError(
            f"{where}: give a base run config (base = FILE or a preset) or [model] and [train] tables"
        )
    model = base.get("model", "book-124m")
    model = dict(model) if isinstance(model, dict) else {"preset": model}
    model.update(data.get("model", {}))
    train = base.get("train", {})
    train = dict(train) if isinstance(train, dict) else train
    if isinstance(train, dict):
        train.update(data.get("train", {}))
    return {"model": model, "train": train}


def _base_configs(data: dict[str, Any], where: str) -> tuple[GPTConfig, TrainConfig]:
    model, train = run_config_from_dict(data, where)
    check_trainable(model, train)
    return model, train


def _setting_of(name: str, where: str) -> tuple[str, str, Any]:
    """(table, key, declaration) of a space entry's setting name."""
    table, _, key = name.rpartition(".")
    table = table or "train"
    cls = {"train": TrainConfig, "model": GPTConfig}.get(table)
    decl = declared(cls).get(key) if cls is not None else None
    if decl is None:
        raise ConfigError(
            f"{where}: space.{name}: unknown setting (a [train] setting such as lr, "
            "or model.KEY such as model.drop_rate)"
        )
    if table == "train" and key == "seed":
        raise ConfigError(f"{where}: space.{name}: set seeds = N to repeat each configuration")
    return table, key, decl


def _param(
    name: str,
    entry: Any,
    options: SweepOptions,
    base_model: dict[str, Any],
    base_train: dict[str, Any],
    where: str,
) -> Param:
    table, key, decl = _setting_of(name, where)
    field = f"{where}: space.{name}"
    canonical = key if table == "train" else f"model.{key}"
    if isinstance(entry, list):
        entry = {"choices": entry}
    if not isinstance(entry, dict):
        raise ConfigError(f"{field}: give a list of choices or a table (low, high, log, step)")
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown:
        raise ConfigError(f"{field}: unknown key {unknown[0]!r} (known: {', '.join(ENTRY_KEYS)})")
    if "choices" in entry:
        if set(entry) - {"choices"}:
            raise ConfigError(f"{field}: give choices or a range (low, high), not both")
        choices = entry["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{field}: choices must be a non-empty list, got {choices!r}")
        values = tuple(coerce(v, decl.type, f"{field}: choice") for v in choices)
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"{field}: choices repeat a value")
        param = Param(canonical, table, key, "choices", choices=values)
        for value in values:
            _check_value(param, decl, value, "choice", base_model, base_train, field)
    else:
        param = _range(canonical, table, key, decl, entry, field)
        for value in (param.low, param.high):
            _check_value(param, decl, value, "range end", base_model, base_train, field)
    if options.sampler == "grid" and param.grid_values() is None:
        raise ConfigError(
            f"{field}: the grid sampler needs choices or a range with a step (not a log range)"
        )
    return param


def _range(name: str, table: str, key: str, decl: Any, entry: dict[str, Any], field: str) -> Param:
    tp = decl.base_type
    if tp not in (int, float):
        raise ConfigError(f"{field}: a range needs a number setting; give choices")
    if "low" not in entry or "high" not in entry:
        raise ConfigError(f"{field}: a range needs low and high (or give choices)")
    low = coerce(entry["low"], tp, f"{field}: low")
    high = coerce(entry["high"], tp, f"{field}: high")
    log = coerce(entry.get("log", False), bool, f"{field}: log")
    step = entry.get("step")
    if high <= low:
        raise ConfigError(f"{field}: empty range: high ({high:g}) must be above low ({low:g})")
    if log and low <= 0:
        raise ConfigError(f"{field}: a log range must stay above zero, got low = {low:g}")
    if step is not None:
        step = coerce(step, tp, f"{field}: step")
        if step <= 0:
            raise ConfigError(f"{field}: step must be positive, got {step:g}")
        if log:
            raise ConfigError(f"{field}: a log range takes no step")
    return Param(
        name, table, key, "int" if tp is int else "float", low=low, high=high, log=log, step=step
    )


def _check_value(
    param: Param,
    decl: Any,
    value: Any,
    what: str,
    base_model: dict[str, Any],
    base_train: dict[str, Any],
    field: str,
) -> None:
    """Refuse a value the setting's declaration, or the base config's other settings,
    would refuse (so a trial never fails on its settings)."""
    problem = value_problem(decl, value, f"{param.table}.{param.key}")
    if problem is not None:
        raise ConfigError(f"{field}: {what} {value!r} is refused: {problem.message}")
    model, train = dict(base_model), dict(base_train)
    (model if param.table == "model" else train)[param.key] = value
    try:
        GPTConfig(**model)
        TrainConfig(**train)
    except ConfigError as exc:
        raise ConfigError(f"{field}: {what} {value!r} is refused: {exc}") from None


def replace_options(spec: SweepSpec, **changes: Any) -> SweepSpec:
    """The spec with some options changed (a command line's --storage)."""
    return dataclasses.replace(spec, options=dataclasses.replace(spec.options, **changes))
