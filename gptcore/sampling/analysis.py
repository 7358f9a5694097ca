"""Next-token analysis: the one workflow behind `gpt-tui inspect` and the inspector screen.

`analyze_next_token` takes the model's logits for the next token (computed once:
gptcore.sampling.nexttoken.next_token_logits), the inspector's controls and the
tokens before it, and returns a frozen NextTokenAnalysis: the top candidates
before and after the sampler chain, the top tokens after each stage of the chain,
the candidates' probabilities at each compared temperature (the book's figure
5.14) and, once `drawn()`, the sampling lab's counts. The command prints it; the
screen draws it. A Vocabulary names the tokens: GPT-2's, or the chapter's 9-word
toy vocabulary (`TOY`, with its logits `toy_logits()`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from gptcore.model.tokenizer import VOCAB_SIZE, encode
from gptcore.model.tokenview import label_of, token_bytes, token_label, token_text
from gptcore.sampling.nexttoken import (
    TOY_LOGITS,
    TOY_VOCAB,
    Candidate,
    Distribution,
    chain_distributions,
    covered,
    distribution,
    sample_counts,
    temperature_table,
    top_candidates,
)
from gptcore.settings.sampling import InspectSettings

STAGE_TOP = 5  # tokens listed after each stage of the chain
DEFAULT_TOP = 20  # candidates listed


@dataclass(frozen=True)
class Vocabulary:
    """The tokens an analysis names: GPT-2's (`toy=False`; `size` may be a model's
    own vocabulary size) or the chapter's toy words (`TOY`)."""

    size: int
    toy: bool = False

    def label(self, token_id: int, width: int | None = None) -> str:
        """How the token shows (gptcore.model.tokenview.token_label)."""
        if self.toy:
            return token_label(TOY_VOCAB[token_id].encode(), width)
        return label_of(token_id, width)

    def text(self, token_id: int) -> str:
        """The token's text as data (JSON output)."""
        if self.toy:
            return TOY_VOCAB[token_id]
        data = token_bytes(token_id)
        return "" if data is None else token_text(data)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (a banned token given as text); the toy vocabulary
        knows its nine words, each exactly as written, and nothing else."""
        if self.toy:
            return [TOY_VOCAB.index(text)] if text in TOY_VOCAB else []
        return encode(text)


TOY = Vocabulary(len(TOY_VOCAB), toy=True)
GPT2 = Vocabulary(VOCAB_SIZE)


def gpt2_vocabulary(size: int = VOCAB_SIZE) -> Vocabulary:
    """GPT-2's tokens, for a model whose vocabulary has `size` entries."""
    return Vocabulary(size)


def toy_logits() -> torch.Tensor:
    """The chapter's logits after "every effort moves you", over the toy vocabulary."""
    return torch.tensor(TOY_LOGITS)


@dataclass(frozen=True)
class StageTop:
    """The most likely tokens after one stage of the sampler chain: (id, probability)."""

    name: str
    top: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class NextTokenAnalysis:
    """What the next token would be, under the raw model and under the controls.

    `candidates` are the highest raw logits, each with its probability before and
    after the chain; `temperatures[t]` holds the candidates' probabilities (in the
    same order) at temperature t alone; `counts` is None until `drawn()`.
    """

    vocabulary: Vocabulary
    controls: InspectSettings
    distribution: Distribution
    candidates: tuple[Candidate, ...]
    stages: tuple[StageTop, ...]
    temperatures: dict[float, tuple[float, ...]]
    counts: Counter[int] | None = None

    def label(self, token_id: int, width: int | None = None) -> str:
        return self.vocabulary.label(token_id, width)

    @property
    def covered(self) -> float:
        """Raw probability mass the candidates cover."""
        return covered(self.candidates)

    @property
    def drawable(self) -> int:
        """How many tokens the chain leaves that can be drawn."""
        return int(self.distribution.kept.sum())

    def probability(self, token_id: int) -> float:
        """The token's probability after the controls (what a draw uses)."""
        return float(self.distribution.probs[token_id])

    def drawn(self) -> NextTokenAnalysis:
        """This analysis with the sampling lab's counts: `controls.draws` single
        draws seeded with `controls.seed`, as the chapter draws (no draws: empty)."""
        c = self.controls
        counts = sample_counts(self.distribution.probs, c.draws, c.seed) if c.draws else Counter()
        return replace(self, counts=counts)

    def lab_ids(self) -> list[int]:
        """The lab's rows: the candidates, then any other token drawn, most drawn first."""
        ids = [c.id for c in self.candidates]
        counts = self.counts or Counter()
        listed = set(ids)
        return ids + sorted((t for t in counts if t not in listed), key=lambda t: -counts[t])


def analyze_next_token(
    logits: torch.Tensor,
    controls: InspectSettings,
    history: Sequence[int] = (),
    vocabulary: Vocabulary = GPT2,
    top: int = DEFAULT_TOP,
) -> NextTokenAnalysis:
    """The analysis of `logits` [vocab] under `controls` (their sampler chain reads
    `history`, the tokens before this one), listing the `top` candidates. The
    lab's draws are left to `drawn()`: they are the slow part."""
    chain = controls.sampling
    dist = distribution(logits, chain=chain, history=history)
    candidates = tuple(top_candidates(dist, top))
    stages = []
    for name, probs in chain_distributions(logits, chain, history):
        values, ids = torch.topk(probs, min(STAGE_TOP, probs.numel()))
        pairs = zip(ids.tolist(), values.tolist(), strict=True)
        stages.append(StageTop(name, tuple((int(i), float(q)) for i, q in pairs)))
    ids = [c.id for c in candidates]
    table = temperature_table(logits, controls.temperatures, ids)
    temperatures = {t: tuple(probs) for t, probs in table.items()}
    return NextTokenAnalysis(vocabulary, controls, dist, candidates, tuple(stages), temperatures)
