"""Generation and next-token-inspector settings, each declared once.

`GenerationSettings` is how `gpt-tui generate`, the Chat screen, the sample
timeline and the Trainer's epoch samples draw text; `InspectSettings` is the
next-token inspector's (`gpt-tui inspect` and the inspector screen). The CLI
flags, the screens' fields, their validation messages and docs/settings.md all
come from these declarations (gptcore.settings.declare). A new sampler is one
`setting(...)` here, in group "sampler", plus its stage in gptcore.sampling.chain.

No torch and no tokenizer here: the CLI parser and the app import this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from gptcore.errors import FieldError, GenerationError
from gptcore.settings.declare import RANDOM, declared, problems, setting
from gptcore.settings.model import GPT2_END_OF_TEXT_ID
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
# The inspector's sampling lab: draws are one multinomial call each, as the chapter does.
MAX_DRAWS = 100_000
SAMPLER = "sampler"  # the group of the samplers beyond the book


@dataclass(frozen=True)
class GenerationSettings:
    """How to sample. Defaults: 50 greedy tokens, stopping at `<|endoftext|>`.

    `seed=None` draws from torch's global RNG (so `torch.manual_seed(123)` before
    a call reproduces the book); a given seed uses a private generator.
    `eos_id=None` turns the end-of-text stop off. `context_keep` is how many
    tokens survive a window slide (None = the whole context: exact book output).
    """

    max_new_tokens: int = setting(
        50,
        label="max new",
        help="tokens to generate",
        low=0,
        high=MAX_NEW_TOKENS_LIMIT,
        unset=None,
        metavar="N",
    )
    temperature: float = setting(
        0.0,
        label="temp",
        help="divide the logits by T before drawing; 0 = greedy",
        low=0,
        unset=None,
    )
    top_k: int | None = setting(
        None, label="top-k", help="keep the K most likely tokens", low=1, high="vocab_size"
    )
    top_p: float | None = setting(
        None,
        label="top-p",
        help="nucleus sampling: keep the most likely tokens up to P",
        low=0,
        low_open=True,
        high=1,
    )
    eos_id: int | None = setting(
        GPT2_END_OF_TEXT_ID,
        label="end-of-text id",
        help="stop at this token (off: never)",
        low=0,
        high="last_token",
    )
    stop: tuple[str, ...] = setting(
        (),
        label="stop",
        help="stop when one of these texts appears; it is left out",
        metavar="TEXT",
    )
    seed: int | None = setting(
        None,
        label="seed",
        help="the same seed reproduces the same text (blank: random)",
        low=0,
        high=MAX_SEED,
        unset=RANDOM,
        flag="--sample-seed",
    )
    num_samples: int = setting(
        1,
        label="samples",
        help="samples drawn as one batch",
        low=1,
        high=MAX_NUM_SAMPLES,
        unset=None,
        metavar="N",
    )
    context_keep: int | None = setting(
        None,
        label="ctx keep",
        help="tokens kept when the context window slides (off: all, the book's exact output)",
        low=1,
        high="context_length",
        metavar="N",
    )
    # The sampler chain beyond the book; each is off by default.
    repetition_penalty: float | None = setting(
        None,
        label="rep pen",
        help="divide positive / multiply negative logits of tokens seen in the window",
        low=0,
        low_open=True,
        high=MAX_REPETITION_PENALTY,
        group=SAMPLER,
        metavar="R",
    )
    repetition_window: int = setting(
        DEFAULT_REPETITION_WINDOW,
        label="rep win",
        help="the last N tokens, prompt included, the penalties look at",
        low=1,
        high=MAX_NEW_TOKENS_LIMIT,
        unset=None,
        group=SAMPLER,
        metavar="N",
    )
    frequency_penalty: float | None = setting(
        None,
        label="freq pen",
        help="logit -= F x count in the window",
        low=-2,
        high=2,
        group=SAMPLER,
        metavar="F",
    )
    presence_penalty: float | None = setting(
        None,
        label="pres pen",
        help="logit -= P if seen in the window",
        low=-2,
        high=2,
        group=SAMPLER,
    )
    no_repeat_ngram: int | None = setting(
        None,
        label="no-rep n",
        help="never repeat an N-gram of the context",
        low=1,
        high=MAX_NO_REPEAT_NGRAM,
        group=SAMPLER,
    )
    min_p: float | None = setting(
        None,
        label="min-p",
        help="keep tokens with probability >= P x the top one's",
        low=0,
        high=1,
        group=SAMPLER,
    )
    logit_bias: tuple[tuple[int, float], ...] = setting(
        (),
        label="logit bias",
        help="add VALUE ([-100, 100]) to token ID's logit",
        group=SAMPLER,
        flag="--logit-bias",
        metavar="ID=VALUE",
    )
    ban: tuple[int, ...] = setting(
        (),
        label="ban",
        help="never generate these tokens (ids, or one token's text)",
        group=SAMPLER,
        metavar="TEXT_OR_ID",
    )

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
        limits = {"vocab_size": vocab_size, "last_token": vocab_size - 1}
        if context_length is not None:
            limits["context_length"] = context_length
        found = [p for p in problems(self, limits) if p.field not in ("stop", "temperature")]
        extra = [
            temperature_problem("temperature", self.temperature),
            *_list_problems(self, vocab_size),
        ]
        found += [p for p in extra if p is not None]
        if len(set(self.ban)) >= vocab_size:
            found.append(FieldError("ban", "ban leaves no token to generate"))
        order = list(declared(GenerationSettings))
        return sorted(found, key=lambda p: order.index(p.field) if p.field in order else 0)


def _list_problems(s: GenerationSettings, vocab_size: int) -> list[FieldError | None]:
    """The rules of the list settings: stop strings, logit biases, bans (token ids
    inside the vocabulary: an id past it would index past the logits)."""
    found: list[FieldError | None] = []
    stop = (s.stop,) if isinstance(s.stop, str) else tuple(s.stop)
    for text in stop:
        if not isinstance(text, str) or not text:
            found.append(FieldError("stop", f"stop strings must be non-empty text, got {text!r}"))
    for pair in s.logit_bias:
        token, bias = pair if isinstance(pair, tuple) and len(pair) == 2 else (pair, 0.0)
        if not _is_int(token) or not 0 <= token < vocab_size:
            found.append(
                FieldError(
                    "logit_bias",
                    f"logit_bias token id must be an integer in [0, {vocab_size - 1}], "
                    f"got {token!r}",
                )
            )
        elif not _is_number(bias) or not -MAX_LOGIT_BIAS <= bias <= MAX_LOGIT_BIAS:
            found.append(
                FieldError(
                    "logit_bias",
                    f"logit_bias must be a number in [-{MAX_LOGIT_BIAS:g}, {MAX_LOGIT_BIAS:g}], "
                    f"got {bias!r}",
                )
            )
    for token in s.ban:
        if not _is_int(token) or not 0 <= token < vocab_size:
            message = f"ban must be a token id in [0, {vocab_size - 1}], got {token!r}"
            found.append(FieldError("ban", message))
    return found


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def temperature_problem(name: str, value: Any) -> FieldError | None:
    """The temperature rule (0 = greedy), shared with the inspector's temperature list."""
    if not _is_number(value) or value < 0:
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


def sampler_names() -> list[str]:
    """The samplers beyond the book, in chain order of declaration (generate,
    inspect, Chat and the inspector all offer exactly these)."""
    return [n for n, d in declared(GenerationSettings).items() if d.setting.group == SAMPLER]


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


@dataclass(frozen=True)
class InspectSettings:
    """The next-token inspector's controls: the sampling filter and sampler chain
    (`sampling`, generation's own settings and rules), the temperatures compared,
    and the sampling lab's draws and seed (0 draws: no lab)."""

    sampling: GenerationSettings = GenerationSettings(temperature=1.0, eos_id=None)
    temperatures: tuple[float, ...] = setting(
        (1.0, 0.1, 5.0),
        label="temps",
        help="temperatures compared side by side, comma-separated",
        repeat=False,
        metavar="T1,T2,...",
    )
    draws: int = setting(
        1000,
        label="draws",
        help="the sampling lab's draws (0: no lab)",
        low=0,
        high=MAX_DRAWS,
        unset=None,
        flag="--samples",
        metavar="N",
    )
    seed: int = setting(
        123,
        label="seed",
        help="seed of the sampling lab's draws (always reproducible)",
        low=0,
        high=MAX_SEED,
        unset=None,
        flag="--sample-seed",
    )
