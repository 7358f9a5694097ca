"""How a setting is declared once, and everything derived from that declaration.

A settings class is a frozen dataclass whose fields are made with `setting(...)`:
the field's annotation is its type, its default is the default, and the `Setting`
in its metadata holds the label a form shows, one line of help, the bounds or
choices, what blank text means and the CLI flag. From that one declaration come:

- the checks (`problems`): type, finiteness, choices and bounds, as FieldErrors;
- reading untrusted key/value data (`from_mapping`: TOML tables, `--set`, JSON);
- reading what a person typed (`parse_text`: a form field, a CLI flag's text);
- CLI flags (`add_flags` / `flag_texts`) and the docs tables (`settings_table`).

Rules that tie two settings together (emb_dim divisible by n_heads, min_lr <= lr)
stay in the class's own `__post_init__`, after the declared checks.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from gptcore.errors import ConfigError, FieldError
from gptcore.util.tomlwrite import toml_value

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

T = TypeVar("T")

# How the docs and help name a bound known only later (a model's size).
LIMIT_WORDS = {
    "vocab_size": "the vocabulary",
    "last_token": "the vocabulary's last id",
    "context_length": "the context",
}
# What typed text means "not set" for an optional setting ("blank = off").
OFF = ("", "off", "none")
RANDOM = (*OFF, "random")


@dataclass(frozen=True)
class Setting:
    """Everything about one setting except its name, type and default.

    Bounds: `low` / `high` make a range, told as "an integer in [1, 64]"; a string
    `high` names a limit known only later (the model's "vocab_size") and is checked
    when `problems` is given it. `cap` is a sanity limit above a lower bound, told
    as "must be at most 100,000" (for text, on its length). `unset` are the words
    that leave an optional setting unset when typed (None: it must be given).
    """

    label: str
    help: str
    low: float | None = None
    low_open: bool = False
    high: float | str | None = None
    high_open: bool = False
    cap: float | None = None
    choices: tuple[str, ...] = ()
    unset: tuple[str, ...] | None = OFF
    flag: str | None = None
    metavar: str | None = None
    group: str = ""  # a family front ends show together ("sampler")
    words: tuple[str, ...] = ()  # words a number setting also takes ("auto"); type `int | str`
    repeat: bool = True  # a list setting's flag repeats (False: one comma-separated text)


def setting(default: Any = dataclasses.MISSING, **declaration: Any) -> Any:
    """A dataclass field declared as a setting (see `Setting` for the keywords)."""
    return dataclasses.field(default=default, metadata={"setting": Setting(**declaration)})


@dataclass(frozen=True)
class Declared:
    """One declared setting of a class: its name, type, default and declaration."""

    name: str
    type: Any
    default: Any
    setting: Setting
    optional: bool  # None is a valid value

    @property
    def base_type(self) -> Any:
        """The type without `| None`: int, float, bool, str or a tuple type."""
        args = [a for a in typing.get_args(self.type) if a is not type(None)]
        if self.setting.words:  # `int | str`: the str is only for the declared words
            args = [a for a in args if a is not str]
        if typing.get_origin(self.type) in (typing.Union, types.UnionType) and len(args) == 1:
            return args[0]
        return self.type

    @property
    def flag(self) -> str:
        return self.setting.flag or "--" + self.name.replace("_", "-")


@functools.cache
def declared(cls: type) -> dict[str, Declared]:
    """The declared settings of a settings class, in declaration order (cached:
    resolving string annotations is slow)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        decl = f.metadata.get("setting")
        if decl is None:
            continue
        tp = hints[f.name]
        optional = type(None) in typing.get_args(tp)
        out[f.name] = Declared(f.name, tp, f.default, decl, optional)
    return out


def prefix_of(cls: type) -> str:
    """How messages name a class's settings: "train.lr", "model.n_heads", "top_k"."""
    return getattr(cls, "SETTINGS_PREFIX", "")


# ---------------------------------------------------------------- checks


def _fmt(value: float) -> str:
    """A bound as people write it: 100,000 (not 100000.0), 0.5, 1e-30."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return f"{value:,}" if isinstance(value, int) and abs(value) >= 10_000 else f"{value:g}"


def _plain(value: float) -> str:
    """A range's end as code writes it: 50257, 0.5, 1e-30."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return str(value) if isinstance(value, int) else f"{value:g}"


def _span(decl: Declared, high: float) -> str:
    s = decl.setting
    low = "(" if s.low_open else "["
    top = ")" if s.high_open else "]"
    what = "an integer" if decl.base_type is int else "a number"
    return f"{what} in {low}{_plain(s.low)}, {_plain(high)}{top}"


def value_problem(
    decl: Declared, value: Any, name: str, limits: Mapping[str, float] | None = None
) -> FieldError | None:
    """Why `value` is not valid for the declared setting (None when it is). `name`
    is how the message names it; `limits` give string `high` bounds their values."""
    s, tp = decl.setting, decl.base_type
    if value is None:
        return None if decl.optional else FieldError(decl.name, f"{name} must be given")
    if s.words and isinstance(value, str) and value in s.words:
        return None
    type_problem = _type_problem(tp, value)
    if type_problem and s.words:
        type_problem += " or " + " or ".join(s.words)
    if type_problem:
        return FieldError(decl.name, f"{name} {type_problem}, got {value!r}")
    if s.choices and value not in s.choices:
        return FieldError(decl.name, f"{name} must be one of {', '.join(s.choices)}, got {value!r}")
    if tp is str:
        if s.cap is not None and len(value) > s.cap:
            return FieldError(
                decl.name, f"{name} must be at most {_fmt(s.cap)} characters, got {len(value):,}"
            )
        return None
    if tp not in (int, float):
        return None
    high = s.high
    unreachable = False
    if isinstance(high, str):
        high = (limits or {}).get(high)
        unreachable = True  # above a limit of the model: well formed, out of its reach
    if high is not None and s.low is not None:  # a range
        below = value <= s.low if s.low_open else value < s.low
        above = value >= high if s.high_open else value > high
        if below or above:
            return FieldError(
                decl.name,
                f"{name} must be {_span(decl, high)}, got {value!r}",
                unreachable=unreachable and above and not below,
            )
        return None
    if s.low is not None and (value <= s.low if s.low_open else value < s.low):
        if s.low == 0 and s.low_open or s.low == 1 and tp is int:
            rule = "must be positive"
        elif s.low == 0:
            rule = "must be >= 0"
        else:
            rule = f"must be at least {_fmt(s.low)}"
        return FieldError(decl.name, f"{name} {rule}, got {value!r}")
    if s.cap is not None and value > s.cap:
        return FieldError(decl.name, f"{name} must be at most {_fmt(s.cap)}, got {_fmt(value)}")
    return None


def _type_problem(tp: Any, value: Any) -> str | None:
    if tp is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if tp is int:
        return (
            None
            if isinstance(value, int) and not isinstance(value, bool)
            else ("must be an integer")
        )
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        return None if math.isfinite(value) else "must be finite"
    if tp is str:
        return None if isinstance(value, str) else "must be a string"
    return None


def problems(obj: Any, limits: Mapping[str, float] | None = None) -> list[FieldError]:
    """Every declared setting of `obj` that breaks its declaration."""
    prefix = prefix_of(type(obj))
    found = []
    for name, decl in declared(type(obj)).items():
        problem = value_problem(decl, getattr(obj, name), prefix + name, limits)
        if problem is not None:
            found.append(problem)
    return found


def check(obj: Any, limits: Mapping[str, float] | None = None) -> None:
    """Raise ConfigError (its message: the first problem; `errors`: all) when a
    declared setting of `obj` is invalid. Settings classes call it in __post_init__."""
    found = problems(obj, limits)
    if found:
        raise ConfigError(found[0].message, errors=tuple(found))


def refuse(obj: Any, name: str, rule: str) -> NoReturn:
    """Raise ConfigError for a rule a class checks itself (across settings, or beyond
    what a declaration says): "train.min_lr must be at most train.lr, ...", with the
    FieldError a form marks its field by."""
    message = f"{prefix_of(type(obj))}{name} {rule}"
    raise ConfigError(message, errors=(FieldError(name, message),))


# ---------------------------------------------------------------- untrusted key/value data


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp` (ints are accepted for floats; lists
    for tuples); a wrong type raises ConfigError naming `where`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, where)
            except ConfigError:
                continue
        names = " or ".join(_type_name(a) for a in args)
        raise ConfigError(f"{where} must be {names}, got {value!r}")
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        items = [coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    problem = _type_problem(tp, value)
    if problem:
        raise ConfigError(f"{where} {problem}, got {value!r}")
    return float(value) if tp is float else value


def from_mapping(cls: type[T], data: Any, where: str = "") -> T:
    """Build `cls` from untrusted key/value data (a TOML table, `--set` overrides,
    a checkpoint's JSON), rejecting unknown keys and wrong types; the class then
    checks the values. `where` prefixes messages ("configs/x.toml: [train]")."""
    prefix = f"{where}: " if where else ""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}expected a table of settings, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known, key=str)
    if unknown:
        raise ConfigError(
            f"{prefix}unknown key {unknown[0]!r} (known keys: {', '.join(sorted(known))})"
        )
    decls = declared(cls)
    values = {
        k: _coerce_setting(decls.get(k), v, hints[k], f"{prefix}{k}") for k, v in data.items()
    }
    try:
        return cls(**values)
    except ConfigError as exc:
        if not prefix:
            raise
        raise ConfigError(f"{prefix}{exc}", errors=exc.errors) from None


def _coerce_setting(decl: Declared | None, value: Any, hint: Any, where: str) -> Any:
    """coerce, where a number setting that also takes words ("auto") is checked as the
    number it is (a text is left to the declared check, which names the words)."""
    if decl is None or not decl.setting.words:
        return coerce(value, hint, where)
    if isinstance(value, str):
        return value
    return coerce(value, decl.base_type | None if decl.optional else decl.base_type, where)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one `--set key=value` override; the value is read as TOML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # bare words are strings: --set corpus=builtin
    except RecursionError:  # tomllib recurses on nested arrays
        raise ConfigError(f"--set {key}: the value is nested too deeply") from None
    return key, value


# ---------------------------------------------------------------- what a person typed


def parse_text(
    cls: type, texts: Mapping[str, str], prefix: str = ""
) -> tuple[dict[str, Any], list[FieldError]]:
    """Typed values of the settings of `cls` present in `texts` (name -> the text as
    typed), and a FieldError for each text that does not parse or names no setting.
    Bounds are not checked here: `problems` does that on the built object."""
    decls = declared(cls)
    values: dict[str, Any] = {}
    errors = [FieldError(n, f"unknown setting {n!r}") for n in texts if n not in decls]
    for name, raw_text in texts.items():
        decl = decls.get(name)
        if decl is None:
            continue
        raw = raw_text.strip()
        tp = decl.base_type
        unset = decl.setting.unset if decl.optional else None
        if tp is str:
            values[name] = None if decl.optional and raw.lower() in (unset or ()) else raw
            continue
        if unset is not None and raw.lower() in unset:
            values[name] = None
            continue
        if not raw:
            errors.append(FieldError(name, f"{prefix}{name} is required"))
            continue
        if raw.lower() in decl.setting.words:
            values[name] = raw.lower()
            continue
        try:
            values[name] = _from_text(tp, raw)
        except ValueError:
            what = {int: "an integer", float: "a number", bool: "true or false"}.get(tp, "valid")
            what += "".join(f" or {word}" for word in decl.setting.words)
            errors.append(FieldError(name, f"{prefix}{name} must be {what}, got {raw!r}"))
    return values, errors


def _from_text(tp: Any, raw: str) -> Any:
    if tp is int:
        return int(raw)
    if tp is float:
        return float(raw)
    if tp is bool:
        words = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
        if raw.lower() not in words:
            raise ValueError(raw)
        return words[raw.lower()]
    raise ValueError(raw)


def text_of(value: Any) -> str:
    """How a value shows in a form field: blank for None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"  # 1, 0.1, 0.0004: as people type them
    return str(value)


def field_message(error: FieldError, name: str) -> str:
    """The error in another front end's words: `name` (a label, a flag) in place of
    the setting's own name at the start of the message."""
    head, sep, rest = error.message.partition(" ")
    if sep and head.rsplit(".", 1)[-1] == error.field:
        return f"{name} {rest}"
    return error.message


# ---------------------------------------------------------------- CLI flags and docs


def bounds_text(decl: Declared) -> str:
    """The valid values in a few words ("1-64", "(0, 1]", "one of a, b"), or ""."""
    s = decl.setting
    if s.choices:
        return "one of " + ", ".join(s.choices)
    if s.words:
        plain = bounds_text(
            Declared(
                decl.name, decl.type, decl.default, dataclasses.replace(s, words=()), decl.optional
            )
        )
        return f"{plain} or {' or '.join(s.words)}".strip()
    high = s.high
    if isinstance(high, str):
        high_text = LIMIT_WORDS.get(high, high)
    else:
        high_text = _fmt(high) if high is not None else None
    if s.low is not None and high_text is not None:
        return (
            f"{'(' if s.low_open else '['}{_fmt(s.low)}, {high_text}{')' if s.high_open else ']'}"
        )
    parts = []
    if s.low is not None:
        parts.append(f"{'>' if s.low_open else '>='} {_fmt(s.low)}")
    if s.cap is not None:
        parts.append(f"<= {_fmt(s.cap)}" + (" characters" if decl.base_type is str else ""))
    return ", ".join(parts)


def flag_help(decl: Declared, default: Any = dataclasses.MISSING) -> str:
    """A flag's help: the declared help, the valid values, the default."""
    default = decl.default if default is dataclasses.MISSING else default
    parts = [decl.setting.help]
    bounds = bounds_text(decl)
    if bounds:
        parts.append(bounds)
    if default is None and not decl.optional:
        pass  # a command whose default is another source's value (a config's corpus)
    elif decl.optional and decl.setting.unset:
        blank = "random" if "random" in decl.setting.unset else "off"
        parts.append(f"default: {blank}" if default is None else f"default: {default}")
    elif isinstance(default, tuple):
        parts.append(f"default: {', '.join(_fmt(v) for v in default)}")
    elif default is not None and default is not dataclasses.MISSING:
        parts.append(f"default: {default}")
    # argparse formats help with %: a literal percent must be doubled.
    return "; ".join(parts).replace("%", "%%")


def add_flags(
    group: argparse._ActionsContainer,
    cls: type,
    names: Iterable[str],
    defaults: Mapping[str, Any] | None = None,
    aliases: Mapping[str, Iterable[str]] | None = None,
) -> None:
    """Add the named settings of `cls` as flags whose values stay text (parse_text
    reads them, so a flag and a form field accept exactly the same words). `defaults`
    are a command's own defaults for the help; `aliases` extra spellings of a flag."""
    decls = declared(cls)
    for name in names:
        decl = decls[name]
        default = (defaults or {}).get(name, dataclasses.MISSING)
        metavar = decl.setting.metavar or name.split("_")[-1].upper()[:1]
        spellings = [decl.flag, *(aliases or {}).get(name, ())]
        if typing.get_origin(decl.base_type) is tuple and decl.setting.repeat:
            help_text = f"{decl.setting.help} (repeatable)".replace("%", "%%")
            group.add_argument(
                *spellings, dest=name, action="append", default=[], metavar=metavar, help=help_text
            )
            continue
        group.add_argument(*spellings, dest=name, metavar=metavar, help=flag_help(decl, default))


def flag_texts(args: argparse.Namespace, names: Iterable[str]) -> dict[str, str]:
    """The flags given on the command line, as typed, by setting name."""
    return {n: getattr(args, n) for n in names if isinstance(getattr(args, n, None), str)}


def flags_of(cls: type, names: Iterable[str] | None = None) -> dict[str, str]:
    """Setting name -> its CLI flag (for messages in the command line's words)."""
    decls = declared(cls)
    return {n: decls[n].flag for n in (names if names is not None else decls)}


def settings_table(cls: type, names: Iterable[str] | None = None) -> str:
    """A Markdown table of the settings of `cls`: key, default, valid values, help."""
    decls = declared(cls)
    prefix = prefix_of(cls)
    rows = ["| key | default | valid values | what it does |", "|---|---|---|---|"]
    for name in names if names is not None else decls:
        d = decls[name]
        default = "off" if d.default is None else toml_value(d.default).replace("|", "\\|")
        rows.append(
            f"| `{prefix}{name}` | `{default}` | {bounds_text(d).replace('|', '/')} | "
            f"{d.setting.help.replace('|', '/')} |"
        )
    return "\n".join(rows) + "\n"
