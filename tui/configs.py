"""Run configs for the Train screen: where they come from and how the form is validated.

Choices are the TOML presets that ship with gpt-tui (configs/), the configs the
user saved (config dir, configs/), and each model preset with the default
training settings. Validation goes through gptcore.config so the form accepts
exactly what a config file would.
"""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text

from gptcore.errors import ConfigError
from gptcore.runs.rundir import config_toml
from gptcore.settings.declare import dataclass_from_dict
from gptcore.settings.files import load_run_config, shipped_configs
from gptcore.settings.model import PRESETS, GPTConfig, model_config_from
from gptcore.settings.train import TrainConfig, check_trainable
from gptcore.util.fsutil import atomic_write_text
from gptcore.util.paths import config_dir

PRESET_PREFIX = "preset:"


def saved_configs_dir() -> Path:
    return config_dir() / "configs"


# The shipped config a first start opens on: it trains in minutes and visibly learns.
FIRST_RUN = "quick"


def first_run_config() -> str:
    """The key of the Train form's first choice (configs/quick.toml)."""
    path = shipped_configs().get(FIRST_RUN)
    return str(path) if path is not None else PRESET_PREFIX + "tiny"


def list_configs() -> list[tuple[Text, str]]:
    """(label, key) pairs: the first-run config, the other shipped configs, saved
    configs, then the model presets. Labels are Text so a saved name such as
    `run [v2]` shows verbatim in a Select."""
    shipped = sorted(shipped_configs().items(), key=lambda item: item[0] != FIRST_RUN)
    choices = [(Text(f"{name} (configs)"), str(path)) for name, path in shipped]
    for path in sorted(saved_configs_dir().glob("*.toml")):
        choices.append((Text(f"{path.stem} (saved)"), str(path)))
    choices.extend((Text(f"{name} (preset)"), PRESET_PREFIX + name) for name in PRESETS)
    return choices


def load_config(key: str) -> tuple[GPTConfig, TrainConfig]:
    """The configs a choice stands for; ConfigError names a bad file."""
    if key.startswith(PRESET_PREFIX):
        return model_config_from(key.removeprefix(PRESET_PREFIX)), TrainConfig()
    return load_run_config(key)


def save_config(name: str, model: GPTConfig, train: TrainConfig) -> Path:
    """Save the form's configs as config dir/configs/NAME.toml (atomic)."""
    name = name.strip()
    if not name or any(ch in name for ch in '/\\:*?"<>|') or name.startswith("."):
        raise ConfigError(f"config name {name!r} is not a valid file name")
    path = saved_configs_dir() / f"{name}.toml"
    atomic_write_text(path, config_toml(model, train, comment="saved by gpt-tui's Train screen"))
    return path


@dataclass(frozen=True)
class Field:
    key: str  # "model.context_length" or a TrainConfig field name
    label: str

    @property
    def is_model(self) -> bool:
        return self.key.startswith("model.")

    @property
    def name(self) -> str:
        return self.key.removeprefix("model.")


# The hyperparameters the form edits; everything else comes from the chosen config.
FIELDS = (
    Field("model.context_length", "context"),
    Field("epochs", "epochs"),
    Field("max_steps", "max steps"),
    Field("batch_size", "batch size"),
    Field("lr", "learn rate"),
    Field("weight_decay", "wt decay"),
    Field("stride", "stride"),
    Field("eval_freq", "eval every"),
    Field("eval_iter", "eval iters"),
    Field("sample_tokens", "sample len"),
    Field("start_context", "prompt"),
    Field("seed", "seed"),
    Field("device", "device"),
)
FIELD_KEYS = [f.key for f in FIELDS]
DEVICE_KINDS = ("auto", "cpu", "cuda", "mps")


@functools.cache
def _hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)  # slow (evaluates string annotations): once per class


def _annotation(field: Field) -> object:
    return _hints(GPTConfig if field.is_model else TrainConfig)[field.name]


def field_text(field: Field, model: GPTConfig, train: TrainConfig) -> str:
    value = getattr(model if field.is_model else train, field.name)
    return "" if value is None else str(value)


def parse_field(field: Field, text: str) -> object:
    """The typed value of one input; empty means "unset" for optional fields."""
    tp = _annotation(field)
    optional = type(None) in typing.get_args(tp)
    text = text.strip()
    if tp is str or str in typing.get_args(tp):
        return text
    if not text:
        if optional:
            return None
        raise ConfigError(f"{field.label} is required")
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{field.label} must be a number, got {text!r}") from None


def build_configs(
    model: GPTConfig, train: TrainConfig, values: dict[str, object], corpus: str | None = None
) -> tuple[GPTConfig, TrainConfig]:
    """Apply typed form values on top of a base config; ConfigError if invalid."""
    model_data = model.to_dict()
    train_data = train.to_dict()
    for key, value in values.items():
        if key.startswith("model."):
            model_data[key.removeprefix("model.")] = value
        else:
            train_data[key] = value
    if corpus is not None:
        train_data["corpus"] = corpus
    new_model = dataclass_from_dict(GPTConfig, model_data)
    new_train = dataclass_from_dict(TrainConfig, train_data)
    check_trainable(new_model, new_train)  # the Trainer's own rules across the two
    return new_model, new_train


def validate_field(field: Field, text: str, model: GPTConfig, train: TrainConfig) -> str | None:
    """The reason this input is invalid on top of the base config, or None; it names
    the field by the label the form shows ("context must be a positive integer …")."""
    try:
        value = parse_field(field, text)
        if field.is_model:  # only the dataclass the field belongs to needs checking
            dataclass_from_dict(GPTConfig, {**model.to_dict(), field.name: value})
        else:
            dataclass_from_dict(TrainConfig, {**train.to_dict(), field.name: value})
    except ConfigError as exc:
        # The config's rules name the setting as a config file does (model.context_length,
        # train.lr, or lr for a type): the form names it by its label.
        message = str(exc)
        for name in (field.key if field.is_model else f"train.{field.name}", field.name):
            if message.startswith(name + " "):
                return field.label + message[len(name) :]
        return message
    if field.key == "device" and text.strip().split(":")[0] not in DEVICE_KINDS:
        # Availability needs torch; the trainer's pick_device checks it at start.
        return f"device must be one of {', '.join(DEVICE_KINDS)}, got {text.strip()!r}"
    return None
