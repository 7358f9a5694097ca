"""Sampling settings from what a user typed: the one parser behind `gpt-tui
generate`, `gpt-tui inspect`, `gpt-tui timeline`, the Chat controls, the sample
timeline screen and the next-token inspector.

Each front end hands over its fields as text (setting name -> the string as
typed) and gets back a frozen settings value, or a GenerationError whose
`errors` name every bad field as data (FieldError: field, message,
unreachable). Types, bounds and what blank means come from the declarations in
gptcore.settings.sampling, so what a screen accepts is what generation accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from gptcore.errors import FieldError, GenerationError
from gptcore.model.tokenizer import END_OF_TEXT_ID, VOCAB_SIZE, encode
from gptcore.settings.declare import declared, field_message, parse_text, problems
from gptcore.settings.sampling import (
    GenerationSettings,
    InspectSettings,
    sampler_names,
    temperature_problem,
)

# The settings a person types as one value each (the lists have their own syntax).
SCALAR_TYPES = (int, float)
# Text -> token ids: how a banned token given as text is found (GPT-2's tokenizer,
# or the inspector's toy vocabulary).
Encoder = Callable[[str], list[int]]


def typed_names(cls: type) -> list[str]:
    """The settings of `cls` typed as one number each (a form field, a flag)."""
    return [n for n, d in declared(cls).items() if d.base_type in SCALAR_TYPES]


def settings_from_text(
    text: Mapping[str, str],
    *,
    stop_at_eos: bool = True,
    stop: Sequence[str] = (),
    logit_bias: Sequence[str] = (),
    ban: Sequence[str] = (),
    vocab_size: int = VOCAB_SIZE,
    context_length: int | None = None,
) -> GenerationSettings:
    """Validated GenerationSettings from the text of its numeric settings.

    A setting left out of `text` keeps its default. `stop_at_eos` (a checkbox, a
    flag) stops at `<|endoftext|>` when the vocabulary has it; `stop` are stop
    strings; `logit_bias` ("ID=VALUE") and `ban` (a token's text or id) as typed,
    see parse_token_lists. `context_length=None`: not known yet. Raises
    GenerationError naming every bad field.
    """
    names = set(typed_names(GenerationSettings)) - {"eos_id"}
    values, errors = parse_text(GenerationSettings, _known(text, names))
    errors += _unknown(text, names)
    eos = END_OF_TEXT_ID if stop_at_eos and vocab_size > END_OF_TEXT_ID else None
    bias, banned, list_errors = parse_token_lists(logit_bias, ban)
    errors += list_errors
    settings = GenerationSettings(eos_id=eos, stop=tuple(stop), logit_bias=bias, ban=banned)
    settings = _with(settings, values)
    typed = {e.field for e in errors}
    errors += [e for e in settings.problems(vocab_size, context_length) if e.field not in typed]
    if errors:
        raise GenerationError(*errors)
    return settings


def inspect_settings_from_text(
    text: Mapping[str, str],
    vocab_size: int,
    logit_bias: Sequence[str] = (),
    ban: Sequence[str] = (),
    *,
    samplers: GenerationSettings | None = None,
    encode_text: Encoder = encode,
) -> InspectSettings:
    """Validated InspectSettings from the text of the filter's settings (temperature,
    top_k, top_p and the samplers), the lab's "draws" and "seed", and "temperatures"
    (comma- or semicolon-separated); `logit_bias` and `ban` as in settings_from_text,
    a banned token's text looked up with `encode_text` (the vocabulary inspected).

    `samplers` (the Chat screen's settings) gives the samplers beyond the book,
    its biases and bans included, before any typed here; its other settings
    (temperature, top-k, top-p, length, seed, stops) are not the inspector's.
    A setting left out keeps its default. Raises GenerationError naming every bad field."""
    filter_names = {"temperature", "top_k", "top_p", *sampler_names()} & set(
        typed_names(GenerationSettings)
    )
    lab_names = set(typed_names(InspectSettings))
    given = {k: v for k, v in text.items() if k != "temperatures"}
    sampling_values, errors = parse_text(GenerationSettings, _known(given, filter_names))
    lab_values, lab_errors = parse_text(InspectSettings, _known(given, lab_names))
    errors += lab_errors + _unknown(given, filter_names | lab_names)
    bias, banned, list_errors = parse_token_lists(logit_bias, ban, encode_text)
    errors += list_errors
    sampling = InspectSettings().sampling
    if samplers is not None:
        sampling = _with(sampling, {name: getattr(samplers, name) for name in sampler_names()})
    sampling = _with(sampling, {**sampling_values})
    if bias or banned:
        sampling = _with(sampling, {"logit_bias": bias, "ban": banned})
    temperatures, temperatures_problem = InspectSettings.temperatures, None
    if "temperatures" in text:
        temperatures, temperatures_problem = _temperature_list(text["temperatures"])
    controls = InspectSettings(sampling=sampling, temperatures=temperatures)
    controls = _with(controls, lab_values)
    typed = {e.field for e in errors}
    found = [
        *sampling.problems(vocab_size, None),
        *problems(controls),
        temperatures_problem,
    ]
    errors += [e for e in found if e is not None and e.field not in typed]
    if errors:
        raise GenerationError(*errors)
    return controls


def _known(text: Mapping[str, str], names: set[str]) -> dict[str, str]:
    return {k: v for k, v in text.items() if k in names}


def _unknown(text: Mapping[str, str], names: set[str]) -> list[FieldError]:
    return [FieldError(k, f"unknown setting {k!r}") for k in text if k not in names]


def _with(obj: Any, values: Mapping[str, Any]) -> Any:
    """A frozen settings value with some settings replaced."""
    return replace(obj, **values) if values else obj


def parse_ban(item: str, encode_text: Encoder = encode) -> int | FieldError:
    """A banned token: an id ("198"), or the text of exactly one token, with the
    escapes \\n and \\t understood ("\\n", "<|endoftext|>", " the"); the text is
    looked up with `encode_text` (default: GPT-2's tokenizer)."""
    if item.strip().isdigit():
        return int(item.strip())
    text = item.replace("\\n", "\n").replace("\\t", "\t")
    ids = encode_text(text) if text else []
    if len(ids) == 1:
        return ids[0]
    if not text:
        return FieldError("ban", "ban needs a token's text or id, got nothing")
    if not ids:  # only a toy vocabulary lacks a text
        return FieldError("ban", f"ban {item!r} is not a token of this vocabulary")
    # Banning only the first piece of several would ban far more than was asked.
    return FieldError(
        "ban",
        f"ban {item!r} is {len(ids)} tokens {ids}; give one token's text or id",
    )


def parse_token_lists(
    logit_bias: Sequence[str], ban: Sequence[str], encode_text: Encoder = encode
) -> tuple[tuple[tuple[int, float], ...], tuple[int, ...], list[FieldError]]:
    """Logit biases ("ID=VALUE", e.g. "198=-5") and banned tokens (parse_ban) as typed."""
    errors: list[FieldError] = []
    bias: list[tuple[int, float]] = []
    for item in logit_bias:
        token, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            bias.append((int(token.strip()), float(value.strip())))
        except ValueError:
            errors.append(
                FieldError("logit_bias", f"logit_bias must be ID=VALUE (e.g. 198=-5), got {item!r}")
            )
    banned: list[int] = []
    for item in ban:
        parsed = parse_ban(item, encode_text)
        if isinstance(parsed, FieldError):
            errors.append(parsed)
        else:
            banned.append(parsed)
    return tuple(bias), tuple(banned), errors


def split_ban_list(text: str) -> list[str]:
    """A screen's one-line ban list: comma-separated items, each stripped (blank:
    none); a comma, or a token that starts with a space, is banned by its id."""
    return [part.strip() for part in text.split(",") if part.strip()]


def messages_by_label(error: GenerationError, labels: Mapping[str, str]) -> dict[str, str]:
    """Field -> its first message, in the words of a screen: the field's label in
    place of its name ("top-k must be an integer in [1, 50257], got 0")."""
    out: dict[str, str] = {}
    for item in error.errors:
        label = labels.get(item.field)
        out.setdefault(item.field, field_message(item, label) if label else item.message)
    return out


def _temperature_list(raw: str) -> tuple[tuple[float, ...], FieldError | None]:
    """The temperatures to compare, each by generation's temperature rule."""
    temps: list[float] = []
    for part in raw.replace(";", ",").split(","):
        if not part.strip():
            continue
        try:
            t = float(part)
        except ValueError:
            message = f"temperatures must be numbers separated by commas, got {part.strip()!r}"
            return (), FieldError("temperatures", message)
        problem = temperature_problem("temperatures", t)
        if problem is not None:
            return (), problem
        temps.append(t)
    if not temps:
        return (), FieldError("temperatures", "give at least one temperature, e.g. 1, 0.1, 5")
    return tuple(temps), None
