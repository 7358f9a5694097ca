"""The order training reads its windows in: the book's DataLoader, draw for draw.

Every pass over a DataLoader takes a base seed from torch's global RNG (unused
with num_workers=0), and a shuffled pass then takes a second draw that seeds a
private generator for `randperm`. Doing that here explicitly (instead of through
DataLoader) keeps the book's RNG stream and lets a checkpoint record the epoch's
seed and position, so resume is exact. Under torchrun each rank takes its slice
of every global batch (batch_size x processes windows).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gptcore.data.mixture import draw_starts
from gptcore.data.plan import BatchPlan
from gptcore.data.tokens import TokenizedCorpus
from gptcore.data.windows import OffsetWindowDataset, RandomWindowSampler, WindowDataset

Batch = tuple[torch.Tensor, torch.Tensor]


def draw_seed() -> int:
    """Exactly the draw DataLoader / RandomSampler make from the global RNG."""
    return int(torch.empty((), dtype=torch.int64).random_().item())


def loader_pass_seed(shuffled: bool) -> int | None:
    """The RNG draws one pass over the book's DataLoader makes: the iterator's base
    seed (unused without worker processes), then, when shuffled, the seed of the
    sampler's private generator, which is returned."""
    draw_seed()
    return draw_seed() if shuffled else None


def shuffled_order(n: int, seed: int | None) -> list[int]:
    """The order RandomSampler yields for `seed` (None: in order)."""
    if seed is None:
        return list(range(n))
    g = torch.Generator()
    g.manual_seed(seed)
    return torch.randperm(n, generator=g).tolist()


class DataOrder:
    """The train and val windows of a corpus under a batch plan, and their batches."""

    def __init__(
        self,
        corpus: TokenizedCorpus,
        plan: BatchPlan,
        shuffle: bool,
        rank: int = 0,
        pin_memory: bool = False,
    ) -> None:
        self.plan = plan
        self.random = plan.sampler == "random"
        self.shuffled = self.random or shuffle
        self.rank = rank
        self.pin_memory = pin_memory  # page-locked batches copy to a GPU asynchronously
        self._train_tokens = len(corpus.train_tokens)
        self._sources = corpus.sources  # a mixture: windows drawn by each source's weight
        if self.random:
            self.train_data: OffsetWindowDataset | WindowDataset = OffsetWindowDataset(
                corpus.train_tokens, plan.length
            )
        else:
            self.train_data = WindowDataset(corpus.train_tokens, plan.length, plan.stride)
        self.val_data = WindowDataset(corpus.val_tokens, plan.length, plan.stride)

    def new_pass(self) -> int | None:
        """Draw a pass over the train loader as DataLoader would; return its seed."""
        return loader_pass_seed(self.shuffled)

    def train_order(self, seed: int | None) -> list[int]:
        """The windows one pass over the train loader visits, for the pass's seed."""
        if self.random:
            g = torch.Generator()
            g.manual_seed(seed)
            if self._sources:
                lengths = [n for _, n, _ in self._sources]
                weights = [w for *_, w in self._sources]
                return draw_starts(lengths, weights, self.plan.length, self.plan.train_windows, g)
            sampler = RandomWindowSampler(
                self._train_tokens, self.plan.length, self.plan.train_windows, g
            )
            return list(sampler)
        return shuffled_order(self.plan.train_windows, seed)

    def step_batch(self, order: Sequence[int], step_in_epoch: int, micro: int) -> Batch:
        """This rank's share of micro-batch `micro` of optimizer step `step_in_epoch`."""
        plan = self.plan
        index = step_in_epoch * plan.grad_accum + micro
        return self._batch(
            self.train_data, order, index, plan.batch_size, self.rank * plan.batch_size
        )

    def eval_batches(self, n_batches: int) -> tuple[list[Batch], list[Batch]]:
        """The book's evaluate_model input: `n_batches` whole global batches of a fresh
        pass over the shuffled train loader, and of the (unshuffled) val loader."""
        plan = self.plan
        order = self.train_order(self.new_pass())
        train = [
            self._batch(self.train_data, order, i, plan.global_batch)
            for i in range(min(n_batches, plan.train_batches))
        ]
        loader_pass_seed(False)  # the val loader's pass draws its base seed too
        val_order = range(len(self.val_data))
        val = [
            self._batch(self.val_data, val_order, i, plan.global_batch)
            for i in range(min(n_batches, plan.val_batches))
        ]
        return train, val

    def _batch(
        self,
        data: WindowDataset | OffsetWindowDataset,
        order: Sequence[int],
        index: int,
        size: int,
        offset: int = 0,
    ) -> Batch:
        start = index * self.plan.global_batch + offset
        pairs = [data[i] for i in order[start : start + size]]
        x, y = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
        if self.pin_memory:
            x, y = x.pin_memory(), y.pin_memory()
        return x, y
