"""Sampling flags derived from the settings' declarations, and engine errors told in
the words of the command line (a setting's flag, not its field name)."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from gptcore.errors import ConfigError, FieldError, GenerationError
from gptcore.settings.declare import (
    add_flags,
    declared,
    field_message,
    flag_texts,
    flags_of,
    parse_text,
)
from gptcore.settings.sampling import GenerationSettings, sampler_names
from gptcore.settings.train import TrainConfig

T = TypeVar("T")


def name_flags(error: GenerationError, flags: Mapping[str, str]) -> GenerationError:
    """`error` with each field's message led by the flag that sets it
    (e.g. "--samples: draws must be ..."); the fields stay as they are."""

    def told(item: FieldError | str) -> FieldError | str:
        if isinstance(item, FieldError) and item.field in flags:
            return FieldError(item.field, f"{flags[item.field]}: {item.message}", item.unreachable)
        return item

    return GenerationError(*(told(item) for item in error.args))


def add_sampler_arguments(p: argparse.ArgumentParser) -> None:
    """The samplers beyond the book (generate and inspect), one flag each, as text:
    gptcore.sampling.from_text parses and checks them by their declarations."""
    g = p.add_argument_group(
        "samplers (each off by default; chain: bias/ban, repetition, frequency/presence, "
        "no-repeat-ngram, top-k, temperature, min-p, top-p)"
    )
    add_flags(g, GenerationSettings, sampler_names())


def scalar_names(cls: type, names: Iterable[str]) -> list[str]:
    """The settings among `names` that a flag gives as one value (not a list)."""
    decls = declared(cls)
    return [n for n in names if decls[n].base_type in (int, float)]


def sampler_text(args: argparse.Namespace) -> dict[str, str]:
    """The numeric sampler flags given, as typed, by setting name (absent: the default)."""
    return flag_texts(args, scalar_names(GenerationSettings, sampler_names()))


# The flag behind each sampler setting, for error messages.
SAMPLER_FLAGS = flags_of(GenerationSettings, sampler_names())


def settings_from_flags(
    cls: type[T], args: argparse.Namespace, names: list[str], base: Any = None
) -> T:
    """`base` (default: the class's defaults) with the named settings given as flags;
    a bad value is a ConfigError led by its flag ("--batch-size must be positive, got 0")."""
    flags = flags_of(cls, names)
    values, errors = parse_text(cls, flag_texts(args, names))
    try:
        if errors:
            raise ConfigError(errors[0].message, errors=tuple(errors))
        return dataclasses.replace(base if base is not None else cls(), **values)
    except ConfigError as exc:
        mine = [e for e in exc.errors if e.field in flags]
        if not mine:
            raise
        raise ConfigError(field_message(mine[0], flags[mine[0].field])) from None


def add_device_flag(p: argparse.ArgumentParser) -> None:
    """--device, as the training setting declares it (default: auto)."""
    add_flags(p, TrainConfig, ["device"])
    p.set_defaults(device=TrainConfig.device)


def add_set_flag(p: argparse.ArgumentParser, help: str) -> None:
    """--set KEY=VALUE (repeatable) into args.overrides: settings over a run config."""
    p.add_argument(
        "--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[], help=help
    )
