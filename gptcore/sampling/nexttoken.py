"""The next-token distribution, before and after each stage of the sampler chain.

The model runs once per prompt (`next_token_logits`); every control change
only re-runs the cheap post-processing (`distribution`), which uses the same
chain as generation, so what the inspector shows is what sampling does. These
are the pieces; gptcore.sampling.analysis puts them together for `gpt-tui
inspect` and the inspector screen.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from gptcore.model.gpt import GPTModel
from gptcore.sampling.chain import chain_stages, filter_logits, sampling_distribution
from gptcore.settings.sampling import GenerationSettings

# The chapter's toy example: a 9-word vocabulary and the logits after "every effort moves you".
TOY_VOCAB = ("closer", "every", "effort", "forward", "inches", "moves", "pizza", "toward", "you")
TOY_LOGITS = (4.51, 0.89, -1.90, 6.75, 1.63, -1.62, -1.89, 6.28, 1.79)


def next_token_logits(model: GPTModel, ids: Sequence[int]) -> torch.Tensor:
    """float32 logits [vocab] for the token after `ids` (the last context_length kept)."""
    if not ids:
        raise ValueError("the prompt has no tokens")
    context = list(ids)[-model.config.context_length :]
    device = model.out_head.weight.device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(torch.tensor([context], device=device))[0, -1]
    finally:
        model.train(was_training)
    return logits.float().cpu()


@dataclass(frozen=True)
class Distribution:
    logits: torch.Tensor  # raw [vocab]
    raw_probs: torch.Tensor  # softmax(raw logits)
    probs: torch.Tensor  # after temperature, top-k, top-p: what sampling draws from
    kept: torch.Tensor  # bool [vocab]: tokens that can still be drawn

    @property
    def entropy(self) -> float:
        """Entropy of the sampling distribution, in nats."""
        p = self.probs[self.probs > 0]
        return float(-(p * p.log()).sum())

    @property
    def raw_entropy(self) -> float:
        p = self.raw_probs[self.raw_probs > 0]
        return float(-(p * p.log()).sum())


def distribution(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    chain: GenerationSettings | None = None,
    history: Sequence[int] = (),
) -> Distribution:
    """The sampling distribution; temperature 0 is greedy (all mass on the argmax).
    `chain` (its own temperature, top-k and top-p win) adds the samplers beyond the
    book, reading `history`, the tokens before this one."""
    logits = logits.float()
    raw = torch.softmax(logits, dim=-1)
    if chain is not None:
        probs = sampling_distribution(logits[None], chain, _history(history))[0]
    elif temperature == 0:
        probs = torch.zeros_like(raw)
        probs[int(logits.argmax())] = 1.0
    else:
        probs = torch.softmax(filter_logits(logits[None], temperature, top_k, top_p)[0], dim=-1)
    return Distribution(logits, raw, probs, probs > 0)


def _history(ids: Sequence[int]) -> torch.Tensor:
    return torch.tensor([list(ids)], dtype=torch.long).reshape(1, -1)


def chain_distributions(
    logits: torch.Tensor, settings: GenerationSettings, history: Sequence[int] = ()
) -> list[tuple[str, torch.Tensor]]:
    """(stage, probabilities [vocab]) after each active stage of the sampler chain
    (gptcore.sampling.chain.chain_stages), starting from the raw softmax ("logits")."""
    stages = chain_stages(logits.float()[None], _history(history), settings)
    out = [(name, torch.softmax(x[0], dim=-1)) for name, x in stages]
    if settings.temperature == 0:
        out.append(("greedy", sampling_distribution(logits[None], settings, _history(history))[0]))
    return out


@dataclass(frozen=True)
class Candidate:
    id: int
    logit: float
    raw_prob: float
    prob: float
    kept: bool


def top_candidates(dist: Distribution, n: int = 20) -> list[Candidate]:
    """The n tokens with the highest raw logits, with both probabilities."""
    n = min(n, dist.logits.numel())
    values, ids = torch.topk(dist.logits, n)
    return [
        Candidate(
            int(i), float(v), float(dist.raw_probs[i]), float(dist.probs[i]), bool(dist.kept[i])
        )
        for v, i in zip(values, ids, strict=True)
    ]


def covered(candidates: Sequence[Candidate]) -> float:
    """Raw probability mass the listed candidates cover."""
    return sum(c.raw_prob for c in candidates)


def temperature_table(
    logits: torch.Tensor, temperatures: Sequence[float], ids: Sequence[int]
) -> dict[float, list[float]]:
    """Probability of each token in `ids` at each temperature (the book's Figure 5.14)."""
    table = {}
    for t in temperatures:
        if not math.isfinite(t) or t < 0:
            raise ValueError(f"temperatures must be finite and >= 0, got {t}")
        probs = distribution(logits, t).probs
        table[t] = [float(probs[i]) for i in ids]
    return table


def sample_counts(probs: torch.Tensor, n: int = 1000, seed: int = 123) -> Counter:
    """Token id -> how often it was drawn in `n` single multinomial draws.

    Drawn one at a time from a generator seeded like `torch.manual_seed(seed)`,
    as the chapter does, so seed 123 on the toy logits reproduces its counts.
    """
    if n <= 0:
        raise ValueError(f"the number of draws must be positive, got {n}")
    generator = torch.Generator().manual_seed(seed)
    probs = probs.float().cpu()
    draws = [int(torch.multinomial(probs, 1, generator=generator)) for _ in range(n)]
    return Counter(draws)
