"""The windows a model trains on: input/target pairs cut from a token array, as the
book's GPTDatasetV1 does, the book's DataLoader, and random-offset windows for
large corpora.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from gptcore.data.plan import short_split_error
from gptcore.errors import CorpusError


def window_at(tokens: np.ndarray, start: int, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input, target) for the window starting at token `start`."""
    chunk = torch.from_numpy(np.asarray(tokens[start : start + max_length + 1], dtype=np.int64))
    return chunk[:-1], chunk[1:]


class WindowDataset(Dataset):
    """The book's GPTDatasetV1 over a token array: input ids[i:i+L], target
    ids[i+1:i+L+1] for i in range(0, len(ids) - L, stride)."""

    def __init__(self, tokens: np.ndarray, max_length: int, stride: int) -> None:
        if max_length <= 0 or stride <= 0:
            raise CorpusError(f"max_length and stride must be positive, got {max_length}, {stride}")
        self.tokens = tokens
        self.max_length = max_length
        self.starts = range(0, len(tokens) - max_length, stride)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return window_at(self.tokens, self.starts[index], self.max_length)


def require_windows(tokens: np.ndarray, max_length: int, what: str) -> None:
    """The book's loader silently yields no batch (and NaN losses) here: say why."""
    if len(tokens) <= max_length:
        raise short_split_error(what, len(tokens), max_length)


def make_loader(
    tokens: np.ndarray,
    batch_size: int,
    max_length: int,
    stride: int,
    shuffle: bool,
    drop_last: bool,
    generator: torch.Generator | None = None,
) -> DataLoader:
    """The book's create_dataloader_v1 over a token array (num_workers=0)."""
    return DataLoader(
        WindowDataset(tokens, max_length, stride),
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=0,
        generator=generator,
    )


class RandomWindowSampler(Sampler[int]):
    """For large corpora: `num_samples` window starts drawn uniformly at random
    from any token offset (not only multiples of the stride)."""

    def __init__(
        self, n_tokens: int, max_length: int, num_samples: int, generator: torch.Generator
    ) -> None:
        self.high = n_tokens - max_length
        if self.high <= 0:
            raise CorpusError(f"{n_tokens} tokens are too few for windows of {max_length}")
        self.num_samples = num_samples
        self.generator = generator

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        yield from torch.randint(
            0, self.high, (self.num_samples,), generator=self.generator
        ).tolist()


class OffsetWindowDataset(Dataset):
    """Windows addressed by their start offset (used with RandomWindowSampler)."""

    def __init__(self, tokens: np.ndarray, max_length: int) -> None:
        self.tokens = tokens
        self.max_length = max_length

    def __len__(self) -> int:
        return max(0, len(self.tokens) - self.max_length)

    def __getitem__(self, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        return window_at(self.tokens, start, self.max_length)
