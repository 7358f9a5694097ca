"""The sampler chain: from a step's logits to the distribution a token is drawn from.

Sampling follows the book's `generate`: top-k sets every logit below the k-th
largest to -inf, then logits are divided by the temperature and a token is drawn
with `torch.multinomial`; temperature 0 is greedy argmax. Nucleus (top-p)
filtering is applied after temperature scaling.

The whole chain (`apply_chain`, each stage off by default): logit bias and bans
-> repetition penalty -> frequency/presence penalties -> no-repeat-ngram ->
top-k -> temperature -> min-p -> top-p -> draw. The history stages read the
tokens in the context window (prompt included); the penalties only its last
`repetition_window` tokens.
"""

from __future__ import annotations

import torch

from gptcore.settings.sampling import GenerationSettings


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
