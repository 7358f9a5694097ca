"""Run configs for the Train screen: where they come from and how the form is validated.

Choices are the TOML presets that ship with gpt-tui (configs/), the configs the
user saved (config dir, configs/), and each model preset with the default
training settings. Each field is a declared setting (gptcore.settings); the form accepts
exactly what a config file would.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text

from gptcore.errors import ConfigError
from gptcore.runs.rundir import config_toml
from gptcore.settings.declare import declared, field_message, parse_text, text_of
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
    """One setting the form edits: "model.context_length" or a TrainConfig name."""

    key: str

    @property
    def is_model(self) -> bool:
        return self.key.startswith("model.")

    @property
    def name(self) -> str:
        return self.key.removeprefix("model.")

    @property
    def settings_class(self) -> type:
        return GPTConfig if self.is_model else TrainConfig

    @property
    def label(self) -> str:
        """The declared label (gptcore.settings): the form shows it beside the input."""
        return declared(self.settings_class)[self.name].setting.label


# The hyperparameters the form edits; everything else comes from the chosen config.
# Their types, bounds, labels and help are the settings' own declarations.
FIELDS = tuple(
    Field(key)
    for key in (
        "model.context_length",
        "epochs",
        "max_steps",
        "batch_size",
        "lr",
        "weight_decay",
        "stride",
        "eval_freq",
        "eval_iter",
        "sample_tokens",
        "start_context",
        "seed",
        "device",
    )
)
FIELD_KEYS = [f.key for f in FIELDS]


def field_text(field: Field, model: GPTConfig, train: TrainConfig) -> str:
    return text_of(getattr(model if field.is_model else train, field.name))


def parse_field(field: Field, text: str) -> object:
    """The typed value of one input (blank: unset, for a setting that may be unset);
    ConfigError in the form's words when it does not parse."""
    values, errors = parse_text(field.settings_class, {field.name: text})
    if errors:
        raise ConfigError(field_message(errors[0], field.label), errors=tuple(errors))
    return values[field.name]


def build_configs(
    model: GPTConfig, train: TrainConfig, values: dict[str, object], corpus: str | None = None
) -> tuple[GPTConfig, TrainConfig]:
    """Apply typed form values on top of a base config; ConfigError if invalid."""
    model_values = {
        k.removeprefix("model."): v for k, v in values.items() if k.startswith("model.")
    }
    train_values = {k: v for k, v in values.items() if not k.startswith("model.")}
    if corpus is not None:
        train_values["corpus"] = corpus
    new_model = dataclasses.replace(model, **model_values)
    new_train = dataclasses.replace(train, **train_values)
    check_trainable(new_model, new_train)  # the Trainer's own rules across the two
    return new_model, new_train


def validate_field(field: Field, text: str, model: GPTConfig, train: TrainConfig) -> str | None:
    """The reason this input is invalid on top of the base config, or None; it names
    the field by the label the form shows ("context must be positive, got 0")."""
    try:
        value = parse_field(field, text)
        base = model if field.is_model else train  # only its own class needs checking
        dataclasses.replace(base, **{field.name: value})
    except ConfigError as exc:
        mine = [e for e in exc.errors if e.field == field.name]
        return field_message(mine[0], field.label) if mine else str(exc)
    return None
