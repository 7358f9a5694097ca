"""Corpora: read text, tokenize once into a memory-mapped cache, cut into windows.

A corpus is a .txt file, a folder of text files, or the built-in corpus (the
English help topics that ship with every CPython, so it works offline). The
text is split by characters at `train_ratio` as the book does, each part is
tokenized once (in parallel, in chunks that cannot change the tokens) into a
uint16 file keyed by the content's hash, and later runs memory-map that file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .errors import CorpusError
from .paths import token_cache_dir
from .tokenizer import END_OF_TEXT, get_tokenizer

BUILTIN = "builtin"
TEXT_SUFFIXES = {".txt", ".md", ".rst", ".text", ".markdown", ".org", ".tex", ".csv", ".json"}
CACHE_FORMAT = 1
CHUNK_CHARS = 1 << 20  # 1 MiB of text per tokenizer task

ProgressFn = Callable[[int, int], None]  # (characters done, characters total)


@dataclass
class CorpusText:
    name: str
    text: str
    files: int


@dataclass
class TokenizedCorpus:
    """A corpus split by characters into train and validation token arrays."""

    name: str
    n_chars: int
    files: int
    train_tokens: np.ndarray
    val_tokens: np.ndarray
    train_chars: int
    val_chars: int
    key: str

    @property
    def n_tokens(self) -> int:
        return len(self.train_tokens) + len(self.val_tokens)


# ---------------------------------------------------------------- reading text


def builtin_text() -> str:
    """CPython's pydoc help topics (~460 KB of English prose), deterministic order."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key].strip() for key in sorted(topics)) + "\n"


def _decode(data: bytes, path: Path, errors: str) -> str:
    if b"\x00" in data[:8192]:
        raise CorpusError(f"{path} looks like a binary file (it contains NUL bytes), not text")
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{path} is not valid UTF-8 (bad byte at offset {exc.start}); "
            "convert it to UTF-8 or decode with replacement characters "
            "(--decode-errors replace)"
        ) from None


def _text_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in TEXT_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def read_corpus(source: str | Path, errors: str = "strict") -> CorpusText:
    """Read a corpus: BUILTIN, a text file, or a folder of text files.

    Files in a folder are joined with `<|endoftext|>` between documents, as
    GPT-2's training data was. `errors="replace"` decodes bad UTF-8 with U+FFFD.
    """
    if str(source) == BUILTIN:
        return CorpusText("builtin (Python help topics)", builtin_text(), 1)
    path = Path(source).expanduser()
    if not path.exists():
        raise CorpusError(f"corpus not found: {path}")
    if path.is_dir():
        files = _text_files(path)
        if not files:
            suffixes = ", ".join(sorted(TEXT_SUFFIXES))
            raise CorpusError(f"folder {path} holds no text files ({suffixes})")
        texts = [_decode(p.read_bytes(), p, errors) for p in files]
        texts = [t for t in texts if t.strip()]
        if not texts:
            raise CorpusError(f"every text file in {path} is empty")
        return CorpusText(path.name or str(path), END_OF_TEXT.join(texts), len(texts))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"cannot read corpus {path}: {exc.strerror or exc}") from None
    text = _decode(data, path, errors)
    if not text.strip():
        raise CorpusError(f"corpus file {path} is empty")
    return CorpusText(path.name, text, 1)


# ---------------------------------------------------------------- tokenizing

# A boundary where GPT-2's pre-tokenizer never joins the two sides: after a
# non-space and before " X", or between "X\n" and a following non-space.
_SAFE_SPLIT = re.compile(r"(?<=\S)(?= \S)|(?<=\S\n)(?=\S)")


def split_for_tokenizing(text: str, chunk_chars: int = CHUNK_CHARS) -> list[str]:
    """Cut text into ~chunk_chars pieces whose separate encodings concatenate
    to exactly the encoding of the whole text."""
    pieces, start = [], 0
    while len(text) - start > chunk_chars:
        match = _SAFE_SPLIT.search(text, start + chunk_chars)
        if match is None:
            break
        pieces.append(text[start : match.start()])
        start = match.start()
    pieces.append(text[start:])
    return pieces


def tokenize(
    text: str, progress: ProgressFn | None = None, threads: int | None = None
) -> np.ndarray:
    """Encode text to a uint16 array, in parallel chunks, reporting progress."""
    enc = get_tokenizer()
    threads = threads or max(1, min(8, os.cpu_count() or 1))
    chunks = split_for_tokenizing(text)
    parts: list[np.ndarray] = []
    done = 0
    group = threads * 2
    for i in range(0, len(chunks), group):
        batch = chunks[i : i + group]
        encoded = enc.encode_batch(batch, num_threads=threads, allowed_special={END_OF_TEXT})
        parts.extend(np.asarray(ids, dtype=np.uint16) for ids in encoded)
        done += sum(len(c) for c in batch)
        if progress:
            progress(done, len(text))
    if not parts:
        return np.zeros(0, dtype=np.uint16)
    return np.concatenate(parts)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_tokens(path: Path) -> np.ndarray:
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=np.uint16)
    return np.memmap(path, dtype=np.uint16, mode="r")


def prepare_corpus(
    source: str | Path,
    train_ratio: float = 0.9,
    errors: str = "strict",
    progress: ProgressFn | None = None,
    cache_dir: Path | None = None,
) -> TokenizedCorpus:
    """Read, split by characters and tokenize a corpus, reusing the token cache."""
    if not 0 < train_ratio < 1:
        raise CorpusError(f"train_ratio must be between 0 and 1, got {train_ratio}")
    corpus = read_corpus(source, errors)
    text = corpus.text
    digest = hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()
    key = f"{digest[:32]}-r{train_ratio:g}-v{CACHE_FORMAT}"
    folder = (cache_dir or token_cache_dir()) / key
    split = int(train_ratio * len(text))
    meta_path = folder / "meta.json"
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            train = _load_tokens(folder / "train.bin")
            val = _load_tokens(folder / "val.bin")
            if len(train) == meta["train_tokens"] and len(val) == meta["val_tokens"]:
                if progress:
                    progress(len(text), len(text))
                return TokenizedCorpus(
                    corpus.name, len(text), corpus.files, train, val, split, len(text) - split, key
                )
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is rebuilt below

    def part_progress(offset: int) -> ProgressFn | None:
        if progress is None:
            return None
        return lambda done, _total: progress(offset + done, len(text))

    train = tokenize(text[:split], part_progress(0))
    val = tokenize(text[split:], part_progress(split))
    _write_atomic(folder / "train.bin", train.tobytes())
    _write_atomic(folder / "val.bin", val.tobytes())
    meta = {
        "name": corpus.name,
        "chars": len(text),
        "train_tokens": len(train),
        "val_tokens": len(val),
        "train_ratio": train_ratio,
    }
    _write_atomic(meta_path, json.dumps(meta).encode())  # written last: marks completeness
    return TokenizedCorpus(
        corpus.name, len(text), corpus.files, train, val, split, len(text) - split, key
    )


# ---------------------------------------------------------------- windows


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


def count_windows(n_tokens: int, max_length: int, stride: int) -> int:
    return len(range(0, n_tokens - max_length, stride))


def count_batches(n_windows: int, batch_size: int, drop_last: bool) -> int:
    return n_windows // batch_size if drop_last else -(-n_windows // batch_size)


def require_windows(tokens: np.ndarray, max_length: int, what: str) -> None:
    """The book's loader silently yields no batch (and NaN losses) here: say why."""
    if len(tokens) <= max_length:
        raise CorpusError(
            f"the {what} split has {len(tokens)} tokens, but one window of context length "
            f"{max_length} needs at least {max_length + 1}; use a larger corpus, a smaller "
            "context length, or a different train_ratio"
        )


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
