"""Form fields made from the settings' declarations (gptcore.settings): a screen
names which settings it edits; the label, the help and the starting text come from
the one declaration, so a screen, a CLI flag and the docs never disagree."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gptcore.settings.declare import declared, flag_help, text_of


@dataclass(frozen=True)
class SettingField:
    """One input of a form: the setting it edits and what the form shows."""

    name: str
    label: str
    help: str  # the tooltip: the declared help, the valid values, the default
    initial: str  # the text the input starts with


def setting_fields(
    cls: type, names: Iterable[str], start: Mapping[str, Any] | None = None
) -> tuple[SettingField, ...]:
    """Fields for the named settings of `cls`; `start` overrides where a screen's
    inputs begin (Chat starts sampling at temperature 1, top-k 40)."""
    decls = declared(cls)
    out = []
    for name in names:
        decl = decls[name]
        value = (start or {}).get(name, decl.default)
        initial = ", ".join(map(text_of, value)) if isinstance(value, tuple) else text_of(value)
        out.append(SettingField(name, decl.setting.label, flag_help(decl, value), initial))
    return tuple(out)
