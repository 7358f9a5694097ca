"""Streaming generation: text as it is decoded, and the result of a generation.

`TextStream` yields TextDeltas while tokens are drawn (the CLI prints them, Chat
posts them) and then holds a GenerationResult (samples, finish reasons, speed,
token confidence when asked for). Text is decoded incrementally with a UTF-8
decoder that holds back incomplete multibyte sequences, because GPT-2's
byte-level BPE can split one character across tokens: a stream never shows a
replacement character that the final text lacks. `generate` and `sample_text`
are the one-call forms (epoch samples, tests).
"""

from __future__ import annotations

import codecs
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from gptcore.errors import FieldError, GenerationError
from gptcore.model.gpt import GPTModel
from gptcore.model.tokenizer import get_tokenizer
from gptcore.model.tokenview import label_of, token_text
from gptcore.sampling.chain import apply_chain
from gptcore.sampling.chat import encode_prompt
from gptcore.sampling.decode import CancelCheck, _is_cancelled, generate_token_ids
from gptcore.settings.sampling import GenerationSettings, make_settings

FINISH_LENGTH = "length"


FINISH_EOS = "eos"


FINISH_STOP = "stop"


FINISH_CANCELLED = "cancelled"


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
    text: str  # the token's text as data (gptcore.model.tokenview.token_text)
    raw_prob: float
    prob: float

    @property
    def label(self) -> str:
        """The token as gpt-tui shows it (gptcore.model.tokenview.token_label)."""
        return label_of(self.id)


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


def _text_of(token_id: int) -> str:
    return token_text(get_tokenizer().decode_single_token_bytes(token_id))


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
            TokenChoice(i, _text_of(i), r, q) for i, r, q in zip(ids, raws, probs, strict=True)
        )
        out.append((TokenChoice(token, _text_of(token), p_raw, p), top))
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
            most = min(MAX_LOGPROBS, config.vocab_size)
            if (
                isinstance(logprobs, bool)
                or not isinstance(logprobs, int)
                or not 0 <= logprobs <= most
            ):
                message = f"logprobs must be an integer in [0, {most}], got {logprobs!r}"
                raise GenerationError(FieldError("logprobs", message))
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
