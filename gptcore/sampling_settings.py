"""Sampling settings from what a user typed: the one parser behind `gpt-tui
generate`, `gpt-tui inspect`, the Chat controls and the next-token inspector.

Each front end hands over its fields as text (field name -> the string as
typed) and gets back a frozen settings value, or a GenerationError whose
`errors` name every bad field as data (FieldError: field, message,
unreachable). Parsing is done here; the range rules are the engine's own
(`GenerationSettings.problems`), so what a screen accepts is what generation
accepts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .generate import (
    MAX_SEED,
    FieldError,
    GenerationError,
    GenerationSettings,
    int_problem,
    temperature_problem,
)
from .tokenizer import END_OF_TEXT_ID, VOCAB_SIZE

# Draws are one multinomial call each, as the chapter does: this bounds the wait.
MAX_DRAWS = 100_000
# What typed text means "none" for an optional field (README: "blank = off",
# seed "blank = random"); a required field (None below) refuses blank text.
OFF = ("", "off", "none")
RANDOM = (*OFF, "random")

# field -> (type, the words that leave it unset, or None: required)
FieldSpec = tuple[type, tuple[str, ...] | None]
GENERATION_FIELDS: dict[str, FieldSpec] = {
    "temperature": (float, None),
    "top_k": (int, OFF),
    "top_p": (float, OFF),
    "max_new_tokens": (int, None),
    "seed": (int, RANDOM),
    "num_samples": (int, None),
    "context_keep": (int, OFF),
}


def settings_from_text(
    text: Mapping[str, str],
    *,
    stop_at_eos: bool = True,
    stop: Sequence[str] = (),
    vocab_size: int = VOCAB_SIZE,
    context_length: int | None = None,
) -> GenerationSettings:
    """Validated GenerationSettings from the text of the fields in GENERATION_FIELDS.

    A field left out of `text` keeps GenerationSettings' default. `stop_at_eos`
    (a checkbox, a flag) stops at `<|endoftext|>` when the vocabulary has it;
    `stop` are stop strings. `context_length=None`: not known yet (no model).
    Raises GenerationError naming every bad field.
    """
    values, errors = _parse(text, GENERATION_FIELDS)
    eos = END_OF_TEXT_ID if stop_at_eos and vocab_size > END_OF_TEXT_ID else None
    settings = GenerationSettings(eos_id=eos, stop=tuple(stop), **values)
    errors += settings.problems(vocab_size, context_length)
    if errors:
        raise GenerationError(*errors)
    return settings


@dataclass(frozen=True)
class InspectSettings:
    """The next-token inspector's controls: the sampling filter (the same rules as
    generation), the temperatures compared, and the sampling lab's draws and seed
    (0 draws: no lab)."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    temperatures: tuple[float, ...] = (1.0, 0.1, 5.0)
    draws: int = 1000
    seed: int = 123


INSPECT_FIELDS: dict[str, FieldSpec] = {
    "temperature": (float, None),
    "top_k": (int, OFF),
    "top_p": (float, OFF),
    "draws": (int, None),
    "seed": (int, None),  # the lab's draws are always reproducible
}


def inspect_settings_from_text(text: Mapping[str, str], vocab_size: int) -> InspectSettings:
    """Validated InspectSettings from the text of INSPECT_FIELDS plus "temperatures"
    (comma- or semicolon-separated). A field left out keeps its default.
    Raises GenerationError naming every bad field."""
    values, errors = _parse({k: v for k, v in text.items() if k != "temperatures"}, INSPECT_FIELDS)
    sampling = GenerationSettings(
        temperature=values.get("temperature", InspectSettings.temperature),
        top_k=values.get("top_k"),
        top_p=values.get("top_p"),
        eos_id=None,
    )
    temperatures, temperatures_problem = InspectSettings.temperatures, None
    if "temperatures" in text:
        temperatures, temperatures_problem = _temperature_list(text["temperatures"])
    found = [
        *sampling.problems(vocab_size, None),
        int_problem("draws", values["draws"], 0, MAX_DRAWS) if "draws" in values else None,
        int_problem("seed", values["seed"], 0, MAX_SEED) if "seed" in values else None,
        temperatures_problem,
    ]
    errors += [e for e in found if e is not None]
    if errors:
        raise GenerationError(*errors)
    return InspectSettings(**values, temperatures=temperatures)


def messages_by_label(error: GenerationError, labels: Mapping[str, str]) -> dict[str, str]:
    """Field -> its first message, in the words of a screen: each message opens with
    its field's name (the rule's one wording), which becomes the label the screen
    shows for it ("top-k must be an integer in [1, 50257], got 0")."""
    out: dict[str, str] = {}
    for item in error.errors:
        message, label = item.message, labels.get(item.field)
        if label is not None and message.startswith(item.field + " "):
            message = label + message[len(item.field) :]
        out.setdefault(item.field, message)
    return out


def _parse(
    text: Mapping[str, str], fields: Mapping[str, FieldSpec]
) -> tuple[dict[str, int | float | None], list[FieldError]]:
    """Typed values of the fields present in `text`, and the fields that do not parse."""
    values: dict[str, int | float | None] = {}
    errors = [FieldError(name, f"unknown setting {name!r}") for name in text if name not in fields]
    for name, (kind, unset_words) in fields.items():
        if name not in text:
            continue
        raw = text[name].strip()
        if unset_words is not None and raw.lower() in unset_words:
            values[name] = None
            continue
        if not raw:
            errors.append(FieldError(name, f"{name} is required"))
            continue
        try:
            values[name] = kind(raw)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            errors.append(FieldError(name, f"{name} must be {what}, got {raw!r}"))
    return values, errors


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
