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

The chain is total: every accepted setting gives a distribution. Top-p always
keeps the most likely token and sums probabilities in float64, so it keeps
exactly the tokens exact arithmetic keeps. A logit pushed to +inf (a tiny
repetition penalty or temperature overflowing float32) wins outright: the row's
distribution is uniform over its +inf tokens, the limit the softmax tends to.
A row the stages leave with no token at all (no-repeat-ngram banning every token
bans and biases left, say) falls back to greedy: the argmax of the logits after
bias/ban, so a banned token is still never drawn.
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
    return _with_fallback(stages[-1][1], logits.float())


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
    logits = _settled(logits / temperature)
    out.append(("temperature", logits))
    if min_p is not None and min_p > 0:
        probs = torch.softmax(logits, dim=-1)
        floor = min_p * probs.max(dim=-1, keepdim=True).values
        logits = logits.masked_fill(probs < floor, float("-inf"))
        out.append(("min-p", logits))
    if top_p is not None and top_p < 1.0:
        logits = _top_p_mask(logits, top_p)
        out.append(("top-p", logits))
    return out


def _top_p_mask(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability reaches top_p.

    Summed in float64: in float32 the running sum of a near-flat row rounds, and
    tokens exact arithmetic keeps are dropped. The most likely token is always kept
    (a top_p below float32's smallest number would otherwise drop it too).
    """
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True, stable=True)
    probs = torch.softmax(sorted_logits.double(), dim=-1)
    mass_before = torch.cumsum(probs, dim=-1)
    mass_before = torch.cat([torch.zeros_like(mass_before[..., :1]), mass_before[..., :-1]], -1)
    drop = mass_before >= top_p
    drop[..., 0] = False
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


def _settled(logits: torch.Tensor) -> torch.Tensor:
    """Logits whose softmax is defined: a row holding +inf keeps only its +inf
    tokens (uniform among them, the softmax's limit); NaN counts as filtered out."""
    logits = torch.nan_to_num(logits, nan=float("-inf"), posinf=float("inf"), neginf=float("-inf"))
    winners = logits == float("inf")
    if not bool(winners.any()):
        return logits
    row_has = winners.any(dim=-1, keepdim=True)
    only_winners = torch.zeros_like(logits).masked_fill(~winners, float("-inf"))
    return torch.where(row_has, only_winners, logits)


def _with_fallback(logits: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """`logits`, with each row the chain emptied (every token -inf) replaced by all
    of the mass on the argmax of `fallback` (the logits after bias/ban)."""
    empty = (logits == float("-inf")).all(dim=-1, keepdim=True)
    if not bool(empty.any()):
        return logits
    greedy = torch.full_like(logits, float("-inf"))
    greedy.scatter_(-1, _settled(fallback).argmax(dim=-1, keepdim=True), 0.0)
    return torch.where(empty, greedy, logits)


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
        # In float64: a penalty below float32's range (1e-320) must not become 0
        # (0 / 0 is NaN); what overflows float32 becomes +inf, settled below.
        seen = logits.gather(-1, recent).double()
        seen = torch.where(seen < 0, seen * s.repetition_penalty, seen / s.repetition_penalty)
        logits = _settled(logits.scatter(-1, recent, seen.to(logits.dtype)))
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
    A row the stages leave with no token gets a last stage, ("fallback", all the
    mass on the argmax of the logits after bias/ban): never a banned token.
    """
    out = [("logits", logits.float())]
    out += _history_stages(out[-1][1], history, settings)
    before_filters = out[1][1] if len(out) > 1 and out[1][0] == "bias/ban" else out[0][1]
    s = settings
    if s.temperature != 0:
        out += _book_stages(out[-1][1], s.temperature, s.top_k, s.top_p, s.min_p)
    settled = _with_fallback(out[-1][1], before_filters)
    if settled is not out[-1][1]:
        out.append(("fallback", settled))
    return out


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
