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

from gptcore.errors import FieldError, GenerationError
from gptcore.model.tokenizer import END_OF_TEXT_ID, VOCAB_SIZE, encode
from gptcore.sampling.settings import MAX_SEED, GenerationSettings, int_problem, temperature_problem

# Draws are one multinomial call each, as the chapter does: this bounds the wait.
MAX_DRAWS = 100_000
# What typed text means "none" for an optional field (README: "blank = off",
# seed "blank = random"); a required field (None below) refuses blank text.
OFF = ("", "off", "none")
RANDOM = (*OFF, "random")

# field -> (type, the words that leave it unset, or None: required)
FieldSpec = tuple[type, tuple[str, ...] | None]
# The samplers beyond the book (generate, inspect, Chat, the inspector): blank = off.
SAMPLER_FIELDS: dict[str, FieldSpec] = {
    "repetition_penalty": (float, OFF),
    "repetition_window": (int, None),
    "frequency_penalty": (float, OFF),
    "presence_penalty": (float, OFF),
    "no_repeat_ngram": (int, OFF),
    "min_p": (float, OFF),
}
GENERATION_FIELDS: dict[str, FieldSpec] = {
    "temperature": (float, None),
    "top_k": (int, OFF),
    "top_p": (float, OFF),
    "max_new_tokens": (int, None),
    "seed": (int, RANDOM),
    "num_samples": (int, None),
    "context_keep": (int, OFF),
    **SAMPLER_FIELDS,
}


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
    """Validated GenerationSettings from the text of the fields in GENERATION_FIELDS.

    A field left out of `text` keeps GenerationSettings' default. `stop_at_eos`
    (a checkbox, a flag) stops at `<|endoftext|>` when the vocabulary has it;
    `stop` are stop strings; `logit_bias` ("ID=VALUE") and `ban` (a token's text
    or id) as typed, see parse_token_lists. `context_length=None`: not known yet.
    Raises GenerationError naming every bad field.
    """
    values, errors = _parse(text, GENERATION_FIELDS)
    eos = END_OF_TEXT_ID if stop_at_eos and vocab_size > END_OF_TEXT_ID else None
    bias, ban, list_errors = parse_token_lists(logit_bias, ban)
    errors += list_errors
    settings = GenerationSettings(eos_id=eos, stop=tuple(stop), logit_bias=bias, ban=ban, **values)
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
    repetition_penalty: float | None = None
    repetition_window: int = GenerationSettings.repetition_window
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    no_repeat_ngram: int | None = None
    min_p: float | None = None
    logit_bias: tuple[tuple[int, float], ...] = ()
    ban: tuple[int, ...] = ()

    def sampling(self) -> GenerationSettings:
        """The sampler chain these controls set (for gptcore.nexttoken.chain_distributions)."""
        chain = {name: getattr(self, name) for name in (*SAMPLER_FIELDS, "logit_bias", "ban")}
        return GenerationSettings(
            temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, eos_id=None, **chain
        )


INSPECT_FIELDS: dict[str, FieldSpec] = {
    "temperature": (float, None),
    "top_k": (int, OFF),
    "top_p": (float, OFF),
    "draws": (int, None),
    "seed": (int, None),  # the lab's draws are always reproducible
    **SAMPLER_FIELDS,
}


def inspect_settings_from_text(
    text: Mapping[str, str],
    vocab_size: int,
    logit_bias: Sequence[str] = (),
    ban: Sequence[str] = (),
) -> InspectSettings:
    """Validated InspectSettings from the text of INSPECT_FIELDS plus "temperatures"
    (comma- or semicolon-separated); `logit_bias` and `ban` as in settings_from_text.
    A field left out keeps its default. Raises GenerationError naming every bad field."""
    values, errors = _parse({k: v for k, v in text.items() if k != "temperatures"}, INSPECT_FIELDS)
    bias, banned, list_errors = parse_token_lists(logit_bias, ban)
    errors += list_errors
    chain = {k: v for k, v in values.items() if k in SAMPLER_FIELDS}
    sampling = GenerationSettings(
        temperature=values.get("temperature", InspectSettings.temperature),
        top_k=values.get("top_k"),
        top_p=values.get("top_p"),
        eos_id=None,
        logit_bias=bias,
        ban=banned,
        **chain,
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
    return InspectSettings(**values, temperatures=temperatures, logit_bias=bias, ban=banned)


def parse_ban(item: str) -> int | FieldError:
    """A banned token: an id ("198"), or the text of exactly one token, with the
    escapes \\n and \\t understood ("\\n", "<|endoftext|>", " the")."""
    if item.strip().isdigit():
        return int(item.strip())
    text = item.replace("\\n", "\n").replace("\\t", "\t")
    ids = encode(text) if text else []
    if len(ids) == 1:
        return ids[0]
    if not ids:
        return FieldError("ban", "ban needs a token's text or id, got nothing")
    # Banning only the first piece of several would ban far more than was asked.
    return FieldError(
        "ban",
        f"ban {item!r} is {len(ids)} tokens {ids}; give one token's text or id",
    )


def parse_token_lists(
    logit_bias: Sequence[str], ban: Sequence[str]
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
        parsed = parse_ban(item)
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
