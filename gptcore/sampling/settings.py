"""The one text-generation engine: epoch samples, the CLI and the TUI chat.

Sampling follows the book's `generate`: top-k sets every logit below the k-th
largest to -inf, then logits are divided by the temperature and a token is drawn
with `torch.multinomial`; temperature 0 is greedy argmax. Nucleus (top-p)
filtering is applied after temperature scaling.

The whole chain (`apply_chain`, each stage off by default): logit bias and bans
-> repetition penalty -> frequency/presence penalties -> no-repeat-ngram ->
top-k -> temperature -> min-p -> top-p -> draw. The history stages read the
tokens in the context window (prompt included); the penalties only its last
`repetition_window` tokens.

Decoding uses the model's KV cache, so each new token costs one position rather
than a full recompute. When the context window is full, the window slides: the
last `context_keep` tokens (default: the whole context, which reproduces the
book's recompute-every-step output exactly) are re-fed to rebuild the cache.

Text is decoded incrementally with a UTF-8 decoder that holds back incomplete
multibyte sequences, because GPT-2's byte-level BPE can split one character
across tokens; a stream never shows a replacement character that the final
text lacks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from gptcore.errors import FieldError, GenerationError
from gptcore.model.tokenizer import END_OF_TEXT_ID
from gptcore.settings.train import MAX_SAMPLE_TOKENS

# Generous, but stops a typo (an extra zero or three) from running for days; a
# run's per-epoch sample (train.sample_tokens) has the same cap, checked up front.
MAX_NEW_TOKENS_LIMIT = MAX_SAMPLE_TOKENS


MAX_NUM_SAMPLES = 64


MAX_SEED = 2**63 - 1


# Below this a non-zero temperature overflows float32 logits (|logit| up to ~3e8).
MIN_TEMPERATURE = 1e-30


# Sampler defaults and bounds. The window is llama.cpp's penalty_last_n default;
# the penalty and bias ranges are OpenAI's (frequency/presence in [-2, 2], bias in
# [-100, 100]); beyond them a penalty only ever bans or forces a token.
DEFAULT_REPETITION_WINDOW = 64


MAX_REPETITION_PENALTY = 100.0


MAX_NO_REPEAT_NGRAM = 64


MAX_LOGIT_BIAS = 100.0


@dataclass(frozen=True)
class GenerationSettings:
    """How to sample. Defaults: 50 greedy tokens, stopping at `<|endoftext|>`.

    `seed=None` draws from torch's global RNG (so `torch.manual_seed(123)` before
    a call reproduces the book); a given seed uses a private generator.
    `eos_id=None` turns the end-of-text stop off. `context_keep` is how many
    tokens survive a window slide (None = the whole context: exact book output).
    """

    max_new_tokens: int = 50
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    eos_id: int | None = END_OF_TEXT_ID
    stop: tuple[str, ...] = ()
    seed: int | None = None
    num_samples: int = 1
    context_keep: int | None = None
    # The sampler chain beyond the book (README "Samplers"); each is off by default.
    repetition_penalty: float | None = None
    repetition_window: int = DEFAULT_REPETITION_WINDOW
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    no_repeat_ngram: int | None = None
    min_p: float | None = None
    logit_bias: tuple[tuple[int, float], ...] = ()
    ban: tuple[int, ...] = ()

    def validated(self, vocab_size: int, context_length: int | None) -> GenerationSettings:
        """Check every field; returns a copy with `stop` normalised to a tuple.

        Raises GenerationError listing every bad field. `context_length=None`
        (not known yet) leaves `context_keep`'s upper bound unchecked.
        """
        errors = self.problems(vocab_size, context_length)
        if errors:
            raise GenerationError(*errors)
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        return replace(self, stop=stop)

    def problems(self, vocab_size: int, context_length: int | None) -> list[FieldError]:
        """The problem of each invalid field (empty when every field is valid)."""
        found: list[FieldError | None] = [
            int_problem("max_new_tokens", self.max_new_tokens, 0, MAX_NEW_TOKENS_LIMIT),
            int_problem("num_samples", self.num_samples, 1, MAX_NUM_SAMPLES),
            temperature_problem("temperature", self.temperature),
        ]
        if self.top_k is not None:
            found.append(int_problem("top_k", self.top_k, 1, vocab_size, model_limit=True))
        p = self.top_p
        if p is not None and (
            isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1
        ):
            found.append(FieldError("top_p", f"top_p must be in (0, 1], got {p!r}"))
        if self.eos_id is not None:
            found.append(int_problem("eos_id", self.eos_id, 0, vocab_size - 1, model_limit=True))
        if self.seed is not None:
            found.append(int_problem("seed", self.seed, 0, MAX_SEED))
        if self.context_keep is not None:
            found.append(
                int_problem("context_keep", self.context_keep, 1, context_length, model_limit=True)
            )
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        for s in stop:
            if not isinstance(s, str) or not s:
                found.append(FieldError("stop", f"stop strings must be non-empty text, got {s!r}"))
        found += sampler_problems(self, vocab_size)
        return [e for e in found if e is not None]


def number_problem(
    name: str, value: Any, low: float, high: float, low_open: bool = False
) -> FieldError | None:
    """A finite number in [low, high] (or (low, high] when `low_open`)."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    above = is_number and math.isfinite(value) and (value > low if low_open else value >= low)
    if above and value <= high:
        return None
    span = f"({low:g}, {high:g}]" if low_open else f"[{low:g}, {high:g}]"
    return FieldError(name, f"{name} must be a number in {span}, got {value!r}")


def sampler_problems(settings: GenerationSettings, vocab_size: int) -> list[FieldError | None]:
    """The rules of the samplers beyond the book (repetition penalty ... ban)."""
    s = settings
    found: list[FieldError | None] = [
        int_problem("repetition_window", s.repetition_window, 1, MAX_NEW_TOKENS_LIMIT)
    ]
    if s.repetition_penalty is not None:
        found.append(
            number_problem(
                "repetition_penalty", s.repetition_penalty, 0, MAX_REPETITION_PENALTY, True
            )
        )
    for name in ("frequency_penalty", "presence_penalty"):
        if getattr(s, name) is not None:
            found.append(number_problem(name, getattr(s, name), -2, 2))
    if s.no_repeat_ngram is not None:
        found.append(int_problem("no_repeat_ngram", s.no_repeat_ngram, 1, MAX_NO_REPEAT_NGRAM))
    if s.min_p is not None:
        found.append(number_problem("min_p", s.min_p, 0, 1))
    for pair in s.logit_bias:
        token, bias = pair if isinstance(pair, tuple) and len(pair) == 2 else (pair, 0.0)
        problem = int_problem("logit_bias", token, 0, vocab_size - 1, model_limit=True)
        if problem is not None:
            found.append(
                replace(
                    problem, message=problem.message.replace("logit_bias", "logit_bias token id", 1)
                )
            )
        else:
            found.append(number_problem("logit_bias", bias, -MAX_LOGIT_BIAS, MAX_LOGIT_BIAS))
    for token in s.ban:
        found.append(int_problem("ban", token, 0, vocab_size - 1, model_limit=True))
    if len(set(s.ban)) >= vocab_size:
        found.append(FieldError("ban", "ban leaves no token to generate"))
    return found


def int_problem(
    name: str, value: Any, low: int, high: int | None, model_limit: bool = False
) -> FieldError | None:
    """An integer in [low, high] (high None: unbounded). Above a `model_limit`
    bound the value is well formed but out of this model's reach."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if is_int and value >= low and (high is None or value <= high):
        return None
    span = f"in [{low}, {high}]" if high is not None else f">= {low}"
    return FieldError(
        name,
        f"{name} must be an integer {span}, got {value!r}",
        unreachable=model_limit and is_int and high is not None and value > high,
    )


def temperature_problem(name: str, value: Any) -> FieldError | None:
    """The temperature rule (0 = greedy), shared with the inspector's temperature list."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        return FieldError(name, f"{name} must be a finite number >= 0, got {value!r}")
    if 0 < value < MIN_TEMPERATURE:
        # Dividing float32 logits by it gives inf, and softmax then has no distribution.
        return FieldError(
            name,
            f"{name} {value!r} is too close to 0: the scaled logits overflow "
            f"(use 0 for greedy, or at least {MIN_TEMPERATURE:g})",
            unreachable=True,
        )
    return None


def make_settings(
    settings: GenerationSettings | None = None, **overrides: Any
) -> GenerationSettings:
    """Settings from an optional base plus keyword overrides (unknown keys are errors)."""
    base = settings if settings is not None else GenerationSettings()
    known = set(GenerationSettings.__dataclass_fields__)
    unknown = sorted(set(overrides) - known)
    if unknown:
        known_list = ", ".join(sorted(known))
        raise GenerationError(
            *(
                FieldError(k, f"unknown generation setting {k}; known: {known_list}")
                for k in unknown
            )
        )
    return replace(base, **overrides)
