"""A corpus made of several sources, each drawn from with its own weight.

In a config it is a list of tables (`[[train.corpus]] source = "...", weight = 0.7`),
which gptcore.settings.files.mixture_text makes the one text it is everywhere else
(the CLI's --corpus, a run's saved config): `mix:0.7*web.parquet;0.3*books/`. Each source is tokenized into its own cache;
training draws each window's source by weight, then a start inside that source's
train tokens at random (so a window never spans two sources), which makes the share
of windows from each source its weight, whatever the sources' sizes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gptcore.errors import ConfigError, CorpusError
from gptcore.settings.train import MIXTURE_PREFIX

if TYPE_CHECKING:  # torch loads only where windows are drawn
    import torch


@dataclass(frozen=True)
class Part:
    source: str
    weight: float


def is_mixture(corpus: str) -> bool:
    return corpus.startswith(MIXTURE_PREFIX)


def parse_mixture(text: str) -> list[Part]:
    """The sources of `mix:W*SOURCE;W*SOURCE...`; ConfigError naming the bad entry."""
    parts = []
    for entry in text.removeprefix(MIXTURE_PREFIX).split(";"):
        if not entry.strip():
            continue
        weight, star, source = entry.partition("*")
        try:
            value = float(weight) if star else math.nan
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0) or not source.strip():
            raise ConfigError(
                f"train.corpus: mixture entry {entry.strip()!r} is not WEIGHT*SOURCE "
                "with a positive weight"
            )
        parts.append(Part(source.strip(), value))
    if not parts:
        raise ConfigError("train.corpus: the mixture lists no sources")
    return parts


def draw_starts(
    lengths: Sequence[int],
    weights: Sequence[float],
    window: int,
    n: int,
    generator: torch.Generator,
) -> list[int]:
    """`n` window starts into the sources' train tokens laid end to end: each
    window's source drawn by weight, its start uniform within that source."""
    import torch

    highs = torch.tensor([length - window for length in lengths], dtype=torch.float64)
    if (highs <= 0).any():
        short = [i for i, h in enumerate(highs.tolist()) if h <= 0][0]
        raise CorpusError(
            f"mixture source {short + 1} has {lengths[short]:,} train tokens, too few for "
            f"one window of {window}"
        )
    probs = torch.tensor(weights, dtype=torch.float64)
    picks = torch.multinomial(probs / probs.sum(), n, replacement=True, generator=generator)
    offsets = torch.cumsum(torch.tensor([0, *lengths[:-1]], dtype=torch.int64), 0)
    within = (torch.rand(n, generator=generator, dtype=torch.float64) * highs[picks]).long()
    return (offsets[picks] + within).tolist()
