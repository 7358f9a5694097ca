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

import codecs
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from .config import MAX_SAMPLE_TOKENS
from .errors import GptTuiError
from .model import GPTModel, KVCache
from .tokenizer import END_OF_TEXT_ID, encode, get_tokenizer

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

FINISH_LENGTH = "length"
FINISH_EOS = "eos"
FINISH_STOP = "stop"
FINISH_CANCELLED = "cancelled"


@dataclass(frozen=True)
class FieldError:
    """One problem with one setting, as data: a front end marks `field` (the
    setting's name, e.g. "top_k") and shows `message`. `unreachable` says the
    value is well formed but cannot work with this model or device (top-k beyond
    its vocabulary, a temperature so close to 0 that the logits overflow)."""

    field: str
    message: str
    unreachable: bool = False


class GenerationError(GptTuiError):
    """Invalid generation settings or prompt. `errors` holds one FieldError per
    problem, so callers read the field from data, never from the message; a plain
    string is accepted for a problem that belongs to no setting."""

    def __init__(self, *errors: FieldError | str) -> None:
        super().__init__(*errors)  # kept in args, so the error pickles
        self.errors = tuple(e for e in errors if isinstance(e, FieldError))

    def __str__(self) -> str:
        return "; ".join(e.message if isinstance(e, FieldError) else str(e) for e in self.args)

    def by_field(self) -> dict[str, str]:
        """Field name -> its (first) message."""
        out: dict[str, str] = {}
        for e in self.errors:
            out.setdefault(e.field, e.message)
        return out


CancelCheck = threading.Event | Callable[[], bool] | None
# Called with a step's raw logits [batch, vocab] and the tokens so far [batch, n].
StepHook = Callable[[torch.Tensor, torch.Tensor], None]


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


# ---------------------------------------------------------------- sampling


def filter_logits(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
) -> torch.Tensor:
    """Book order: top-k mask, then divide by temperature (> 0), then min-p and
    top-p masks.

    Returns float32 logits [batch, vocab] whose softmax is the sampling
    distribution. Min-p keeps tokens whose probability (after temperature) is at
    least min_p times the most likely one's. Top-p keeps the smallest set of most
    likely tokens whose probability reaches p (always at least one token); p = 1
    keeps everything.
    """
    stages = _book_stages(logits.float(), temperature, top_k, top_p, min_p)
    return stages[-1][1]


def _book_stages(
    logits: torch.Tensor,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    min_p: float | None,
) -> list[tuple[str, torch.Tensor]]:
    """(stage, logits after it) for top-k, temperature, min-p, top-p (active ones only;
    temperature always, so the list is never empty)."""
    out = []
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
        out.append(("top-k", logits))
    logits = logits / temperature
    out.append(("temperature", logits))
    if min_p is not None and min_p > 0:
        probs = torch.softmax(logits, dim=-1)
        floor = min_p * probs.max(dim=-1, keepdim=True).values
        logits = logits.masked_fill(probs < floor, float("-inf"))
        out.append(("min-p", logits))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs
        sorted_logits = sorted_logits.masked_fill(mass_before >= top_p, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
        out.append(("top-p", logits))
    return out


def _banned_by_ngram(row: list[int], n: int) -> list[int]:
    """Tokens that would complete an n-gram already in `row` (Hugging Face's
    no_repeat_ngram_size): those that followed an earlier copy of the last n-1 tokens."""
    if len(row) < n - 1:
        return []
    prefix = row[len(row) - n + 1 :] if n > 1 else []
    return [row[i + n - 1] for i in range(len(row) - n + 1) if row[i : i + n - 1] == prefix]


def _history_stages(
    logits: torch.Tensor, history: torch.Tensor | None, settings: GenerationSettings
) -> list[tuple[str, torch.Tensor]]:
    """(stage, logits after it) for the stages before the book's: logit bias and
    bans, repetition penalty, frequency/presence penalties, no-repeat-ngram.
    `history` [batch, seq] holds the tokens so far (prompt included)."""
    s = settings
    out = []
    if s.logit_bias or s.ban:
        logits = logits.clone()
        for token, bias in s.logit_bias:
            logits[:, token] += bias
        if s.ban:
            logits[:, list(s.ban)] = float("-inf")
        out.append(("bias/ban", logits))
    if history is None or history.shape[-1] == 0:
        return out
    recent = history[:, -s.repetition_window :].to(logits.device)
    if s.repetition_penalty is not None and s.repetition_penalty != 1:
        seen = logits.gather(-1, recent)
        seen = torch.where(seen < 0, seen * s.repetition_penalty, seen / s.repetition_penalty)
        logits = logits.scatter(-1, recent, seen)
        out.append(("repetition", logits))
    if s.frequency_penalty or s.presence_penalty:
        counts = torch.zeros_like(logits).scatter_add(
            -1, recent, torch.ones_like(recent, dtype=logits.dtype)
        )
        logits = logits - (s.frequency_penalty or 0.0) * counts
        logits = logits - (s.presence_penalty or 0.0) * (counts > 0).to(logits.dtype)
        out.append(("frequency/presence", logits))
    if s.no_repeat_ngram is not None:
        logits = logits.clone()
        for b, row in enumerate(history.tolist()):
            banned = _banned_by_ngram(row, s.no_repeat_ngram)
            if banned:
                logits[b, banned] = float("-inf")
        out.append(("no-repeat-ngram", logits))
    return out


def chain_stages(
    logits: torch.Tensor, history: torch.Tensor | None, settings: GenerationSettings
) -> list[tuple[str, torch.Tensor]]:
    """The logits [batch, vocab] after each active stage of the sampler chain, in order:

    bias/ban -> repetition -> frequency/presence -> no-repeat-ngram -> top-k ->
    temperature -> min-p -> top-p (then sampling). The first entry is ("logits", the
    raw float32 logits). Temperature 0 (greedy) stops before temperature: argmax
    of the last stage is the token. `history` [batch, seq] is the tokens so far.
    """
    out = [("logits", logits.float())]
    out += _history_stages(out[-1][1], history, settings)
    s = settings
    if s.temperature == 0:
        return out
    return out + _book_stages(out[-1][1], s.temperature, s.top_k, s.top_p, s.min_p)


def apply_chain(
    logits: torch.Tensor, history: torch.Tensor | None, settings: GenerationSettings
) -> torch.Tensor:
    """Logits [batch, vocab] after the whole chain (see chain_stages): their
    softmax is the sampling distribution (temperature 0: their argmax is the token)."""
    return chain_stages(logits, history, settings)[-1][1]


def sampling_distribution(
    logits: torch.Tensor, settings: GenerationSettings, history: torch.Tensor | None = None
) -> torch.Tensor:
    """Probabilities [batch, vocab] the next token is drawn from under `settings`
    (temperature 0: all the mass on the chain's argmax)."""
    chained = apply_chain(logits, history, settings)
    if settings.temperature == 0:
        return torch.zeros_like(chained).scatter(-1, chained.argmax(-1, keepdim=True), 1.0)
    return torch.softmax(chained, dim=-1)


def token_probabilities(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """The distribution the sampler draws from (for inspection and tests)."""
    return torch.softmax(filter_logits(logits, temperature, top_k, top_p), dim=-1)


def select_next(
    logits: torch.Tensor,
    settings: GenerationSettings,
    generator: torch.Generator | None = None,
    history: torch.Tensor | None = None,
) -> torch.Tensor:
    """Next token ids [batch] from last-position logits [batch, vocab] and the
    tokens so far `history` [batch, seq] (the penalties and no-repeat-ngram read it)."""
    if settings.temperature == 0:
        return torch.argmax(apply_chain(logits, history, settings), dim=-1)
    probs = torch.softmax(apply_chain(logits, history, settings), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


# ---------------------------------------------------------------- token loop


def _is_cancelled(cancel: CancelCheck) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def _model_device(model: GPTModel) -> torch.device:
    return model.tok_emb.weight.device


def generate_token_ids(
    model: GPTModel,
    prompt_ids: list[int],
    settings: GenerationSettings,
    cancel: CancelCheck = None,
    on_step: StepHook | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the next token ids [num_samples] (on the model's device), one step each.

    `on_step(logits, history)` (opt-in: token-confidence records) sees each
    step's raw last-position logits and the tokens so far, before the draw.

    Stops after `max_new_tokens` steps or when `cancel` fires (checked before
    every step). Stopping on eos/stop strings is the caller's business, since
    it is per sample. Settings must already be validated.
    """
    config = model.config
    ctx = config.context_length
    keep = settings.context_keep or ctx
    device = _model_device(model)
    generator = None
    if settings.seed is not None:
        generator = torch.Generator(device=device).manual_seed(settings.seed)
    # Built here rather than with model.new_cache(): a quantized head has no
    # .weight tensor, and the embeddings' dtype is the activations' dtype.
    cache = KVCache(config, settings.num_samples, device, model.tok_emb.weight.dtype)
    window = torch.tensor(prompt_ids[-ctx:], dtype=torch.long, device=device)
    window = window.unsqueeze(0).expand(settings.num_samples, -1)

    def forward(ids: torch.Tensor) -> torch.Tensor:
        # Grad mode and train/eval are set per call, never across a yield: the
        # consumer's code runs between tokens, and may abandon the stream.
        was_training = model.training
        if was_training:
            model.eval()
        try:
            with torch.inference_mode():
                return model(ids, cache, last_only=True)[:, -1, :]
        finally:
            if was_training:
                model.train()

    if settings.max_new_tokens == 0 or _is_cancelled(cancel):
        return
    logits = forward(window)
    for step in range(settings.max_new_tokens):
        if on_step is not None:
            on_step(logits, window)
        next_ids = select_next(logits, settings, generator, window)
        yield next_ids
        if step + 1 == settings.max_new_tokens or _is_cancelled(cancel):
            return
        new = next_ids.unsqueeze(1)
        window = torch.cat([window, new], dim=1)[:, -ctx:]
        if cache.length < ctx:
            logits = forward(new)
        else:
            # Window full: positions are absolute, so every cached key is
            # stale once the window moves; rebuild the cache from the tail.
            cache.reset()
            logits = forward(window[:, -keep:])


# ---------------------------------------------------------------- precision

PRECISIONS = ("fp32", "bf16", "fp16", "int8")


def check_precision(precision: str, device: torch.device) -> None:
    """Raise GenerationError (field "precision") unless `precision` can run on `device`."""
    if precision not in PRECISIONS:
        choices = ", ".join(PRECISIONS)
        raise GenerationError(
            FieldError("precision", f"unknown precision {precision!r}; choose one of: {choices}")
        )
    if precision == "fp16" and device.type not in ("cuda", "mps"):
        problem = f"fp16 inference needs a CUDA or MPS device, not {device.type}"
    elif precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        problem = "this CUDA device does not support bf16; use fp16 or fp32"
    elif precision == "int8" and device.type != "cpu":
        problem = f"int8 dynamic quantization runs on the CPU only, not {device.type}"
    else:
        return
    raise GenerationError(FieldError("precision", problem, unreachable=True))


def prepare_for_inference(model: GPTModel, precision: str = "fp32") -> GPTModel:
    """The model in eval mode at `precision`, for generation only.

    fp32/bf16/fp16 convert the model in place. int8 returns a copy whose Linear
    layers are dynamically quantized (int8 weights, activations quantized per
    call) with torch.ao.quantization.quantize_dynamic, which PyTorch has marked
    deprecated in favour of torchao; its warnings are silenced here.
    """
    device = _model_device(model)
    check_precision(precision, device)
    model.eval()
    if precision == "fp32":
        return model.float()
    if precision == "bf16":
        return model.to(torch.bfloat16)
    if precision == "fp16":
        return model.half()
    import warnings

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(model.float(), {torch.nn.Linear}, dtype=torch.qint8, inplace=False)


# ---------------------------------------------------------------- text layer


@dataclass(frozen=True)
class TextDelta:
    """A piece of newly generated text for sample `sample` (what a stream yields)."""

    sample: int
    text: str


MAX_LOGPROBS = 20  # alternatives per token a record may keep (OpenAI's limit)


@dataclass(frozen=True)
class TokenChoice:
    """One candidate at a position: its probability under the raw model
    distribution (softmax of the logits, temperature 1) and under the
    distribution actually sampled from (after the settings; 0 if filtered out)."""

    id: int
    text: str
    raw_prob: float
    prob: float


@dataclass(frozen=True)
class TokenRecord:
    """A generated token's confidence: the drawn token as a TokenChoice, the
    `top` alternatives at its position (most likely first under the raw
    distribution) and `end`, the character offset in the sample's text where
    this token's text ends (a token can end mid-character; a stop string cuts)."""

    token: TokenChoice
    top: tuple[TokenChoice, ...]
    end: int

    @property
    def id(self) -> int:
        return self.token.id


def token_label(token_id: int) -> str:
    """A token's text; bytes that are not whole UTF-8 characters show as \\xNN."""
    raw = get_tokenizer().decode_single_token_bytes(token_id)
    return raw.decode("utf-8", errors="backslashreplace")


def _log(p: float) -> float | None:
    return math.log(p) if p > 0 else None  # None: impossible (JSON has no -inf)


def _choice_dict(c: TokenChoice) -> dict[str, Any]:
    return {"id": c.id, "text": c.text, "logprob": _log(c.prob), "raw_logprob": _log(c.raw_prob)}


@dataclass
class Sample:
    """One finished sample: the continuation text (without the prompt), the
    generated token ids (eos excluded; the tokens of a stop string included)
    and why it ended: "length", "eos", "stop" or "cancelled". `tokens` holds
    one TokenRecord per token id when confidence was asked for (else None)."""

    text: str
    token_ids: list[int]
    finish_reason: str
    tokens: list[TokenRecord] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "text": self.text,
            "token_ids": self.token_ids,
            "finish_reason": self.finish_reason,
        }
        if self.tokens is not None:
            out["tokens"] = [
                {**_choice_dict(r.token), "top": [_choice_dict(c) for c in r.top]}
                for r in self.tokens
            ]
        return out


@dataclass
class GenerationResult:
    prompt: str
    prompt_ids: list[int]
    samples: list[Sample]
    # Prompt tokens left out of the conditioning window (0 when it fit).
    prompt_tokens_dropped: int = 0
    elapsed_s: float = 0.0
    settings: GenerationSettings = field(default_factory=GenerationSettings)

    @property
    def new_tokens(self) -> int:
        return sum(len(s.token_ids) for s in self.samples)

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def notice(self) -> str | None:
        """A line to show the user about the prompt, if any."""
        if not self.prompt_tokens_dropped:
            return None
        return (
            f"the prompt has {len(self.prompt_ids)} tokens; only its last "
            f"{len(self.prompt_ids) - self.prompt_tokens_dropped} fit the context "
            f"window, so the first {self.prompt_tokens_dropped} were dropped"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "samples": [s.to_dict() for s in self.samples],
        }


class _SampleText:
    """Incremental, UTF-8-safe text of one sample, with stop-string hold-back."""

    def __init__(self, stop: tuple[str, ...]) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = stop
        self._longest_stop = max((len(s) for s in stop), default=0)
        self.text = ""  # everything decoded so far
        self.emitted = 0  # characters of `text` already handed out
        self.token_ids: list[int] = []
        self.records: list[TokenRecord] = []
        self.finish_reason: str | None = None

    def push(self, token_id: int, token_bytes: bytes) -> str:
        """Add one token; return the text that is now safe to show."""
        self.token_ids.append(token_id)
        before = len(self.text)
        self.text += self._decoder.decode(token_bytes)
        if self._stop:
            # Only a match overlapping the new characters can be new.
            start = max(0, before - self._longest_stop + 1)
            hits = [i for i in (self.text.find(s, start) for s in self._stop) if i >= 0]
            if hits:
                self.text = self.text[: min(hits)]
                self.finish_reason = FINISH_STOP
                return self._flush_all()
        return self._take(len(self.text) - self._held_back())

    def finish(self, reason: str) -> str:
        """End the sample; return any text still held back."""
        if self.finish_reason is None:
            self.finish_reason = reason
            # A trailing incomplete character becomes U+FFFD, as in decode().
            self.text += self._decoder.decode(b"", final=True)
        return self._flush_all()

    def _held_back(self) -> int:
        """Length of the longest tail of text that could start a stop string."""
        for n in range(min(self._longest_stop - 1, len(self.text)), 0, -1):
            tail = self.text[-n:]
            if any(s.startswith(tail) for s in self._stop):
                return n
        return 0

    def _take(self, upto: int) -> str:
        if upto <= self.emitted:
            return ""
        out = self.text[self.emitted : upto]
        self.emitted = upto
        return out

    def _flush_all(self) -> str:
        return self._take(len(self.text))


def encode_prompt(prompt: str) -> list[int]:
    """Prompt token ids; an empty prompt starts from `<|endoftext|>` as GPT-2 does."""
    if not isinstance(prompt, str):
        raise GenerationError(
            FieldError("prompt", f"the prompt must be text, got {type(prompt).__name__}")
        )
    ids = encode(prompt)
    return ids if ids else [END_OF_TEXT_ID]


def _step_choices(
    raw: torch.Tensor, sampled: torch.Tensor, next_ids: torch.Tensor, k: int
) -> list[tuple[TokenChoice, tuple[TokenChoice, ...]]]:
    """Per sample: the drawn token and the top `k` by raw probability."""
    top_raw, top_ids = torch.topk(raw, k, dim=-1)
    top_sampled = sampled.gather(-1, top_ids)
    chosen = next_ids.unsqueeze(-1)
    chosen_raw, chosen_sampled = raw.gather(-1, chosen), sampled.gather(-1, chosen)
    out = []
    rows = zip(
        next_ids.tolist(),
        chosen_raw.squeeze(-1).tolist(),
        chosen_sampled.squeeze(-1).tolist(),
        top_ids.tolist(),
        top_raw.tolist(),
        top_sampled.tolist(),
        strict=True,
    )
    for token, p_raw, p, ids, raws, probs in rows:
        top = tuple(
            TokenChoice(i, token_label(i), r, q) for i, r, q in zip(ids, raws, probs, strict=True)
        )
        out.append((TokenChoice(token, token_label(token), p_raw, p), top))
    return out


class TextStream:
    """Iterate to get `TextDelta`s as tokens are produced; afterwards `.result`
    holds the finished samples. Safe to drive from a worker thread; `cancel`
    (a threading.Event or a callable returning True) is checked between tokens.

    `logprobs=K` (0..MAX_LOGPROBS; None, the default, is off and costs nothing)
    records each token's confidence and its K top alternatives in `Sample.tokens`.
    """

    def __init__(
        self,
        model: GPTModel,
        prompt: str,
        settings: GenerationSettings,
        cancel: CancelCheck = None,
        logprobs: int | None = None,
    ) -> None:
        config = model.config
        if logprobs is not None:
            problem = int_problem("logprobs", logprobs, 0, min(MAX_LOGPROBS, config.vocab_size))
            if problem:
                raise GenerationError(problem)
        self.logprobs = logprobs
        self.settings = settings.validated(config.vocab_size, config.context_length)
        self.model = model
        self.prompt = prompt
        self.prompt_ids = encode_prompt(prompt)
        self.cancel = cancel
        self.result: GenerationResult | None = None

    def __iter__(self) -> Iterator[TextDelta]:
        s = self.settings
        ctx = self.model.config.context_length
        token_bytes = get_tokenizer().decode_single_token_bytes
        samples = [_SampleText(s.stop) for _ in range(s.num_samples)]
        started = time.perf_counter()
        steps = 0
        step_probs: list[tuple[torch.Tensor, torch.Tensor]] = []

        def on_step(logits: torch.Tensor, history: torch.Tensor) -> None:
            raw = torch.softmax(logits.float(), dim=-1)
            # What select_next draws from (greedy: the chain before temperature,
            # whose argmax is the token; with no penalties, the raw softmax).
            sampled = torch.softmax(apply_chain(logits, history, s), dim=-1)
            step_probs[:] = [(raw, sampled)]

        hook = on_step if self.logprobs is not None else None
        for next_ids in generate_token_ids(self.model, self.prompt_ids, s, self.cancel, hook):
            steps += 1
            choices = None
            if self.logprobs is not None:
                choices = _step_choices(*step_probs[0], next_ids, self.logprobs)
            for i, token in enumerate(next_ids.tolist()):
                sample = samples[i]
                if sample.finish_reason is not None:
                    continue
                if token == s.eos_id:
                    piece = sample.finish(FINISH_EOS)
                else:
                    piece = sample.push(token, token_bytes(token))
                    if choices is not None:
                        drawn, top = choices[i]
                        sample.records.append(TokenRecord(drawn, top, len(sample.text)))
                if piece:
                    yield TextDelta(i, piece)
            if all(sample.finish_reason is not None for sample in samples):
                break
        cancelled = steps < s.max_new_tokens and _is_cancelled(self.cancel)
        for i, sample in enumerate(samples):
            piece = sample.finish(FINISH_CANCELLED if cancelled else FINISH_LENGTH)
            if piece:
                yield TextDelta(i, piece)
        self.result = GenerationResult(
            prompt=self.prompt,
            prompt_ids=self.prompt_ids,
            samples=[
                Sample(
                    x.text,
                    x.token_ids,
                    x.finish_reason or FINISH_LENGTH,
                    _clamped(x.records, len(x.text)) if self.logprobs is not None else None,
                )
                for x in samples
            ],
            prompt_tokens_dropped=max(0, len(self.prompt_ids) - ctx),
            elapsed_s=time.perf_counter() - started,
            settings=s,
        )


def _clamped(records: list[TokenRecord], length: int) -> list[TokenRecord]:
    """Records whose `end` lies past a stop string's cut end at the cut."""
    return [r if r.end <= length else replace(r, end=length) for r in records]


def stream(
    model: GPTModel,
    prompt: str,
    settings: GenerationSettings | None = None,
    *,
    cancel: CancelCheck = None,
    logprobs: int | None = None,
    **overrides: Any,
) -> TextStream:
    """Stream text increments for `prompt` (see TextStream; `logprobs` records confidence)."""
    return TextStream(model, prompt, make_settings(settings, **overrides), cancel, logprobs)


def generate(
    model: GPTModel,
    prompt: str,
    settings: GenerationSettings | None = None,
    *,
    cancel: CancelCheck = None,
    logprobs: int | None = None,
    **overrides: Any,
) -> GenerationResult:
    """Generate all samples at once."""
    text_stream = stream(model, prompt, settings, cancel=cancel, logprobs=logprobs, **overrides)
    for _ in text_stream:
        pass
    assert text_stream.result is not None
    return text_stream.result


def sample_text(model: GPTModel, prompt: str, max_new_tokens: int = 50, **settings: Any) -> str:
    """Prompt plus continuation as one string (greedy by default), like the
    book's per-epoch sample. Restores the model's train/eval mode."""
    result = generate(model, prompt, max_new_tokens=max_new_tokens, **settings)
    return prompt + result.samples[0].text
