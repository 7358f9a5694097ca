"""Corpora: read text, tokenize once into a memory-mapped cache, cut into windows.

A corpus is a .txt file, a folder of text files, or the built-in corpus (the
English help topics that ship with every CPython, so it works offline). The
text is split by characters at `train_ratio` as the book does, each part is
tokenized once (in parallel, in chunks that cannot change the tokens) into a
uint16 file keyed by the content's hash, and later runs memory-map that file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import select
import stat
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .errors import CorpusError
from .fsutil import atomic_open, atomic_write_bytes
from .paths import token_cache_dir
from .plan import short_split_error
from .tokenizer import END_OF_TEXT, encode_to_uint16, get_tokenizer

BUILTIN = "builtin"
TEXT_SUFFIXES = {".txt", ".md", ".rst", ".text", ".markdown", ".org", ".tex", ".csv", ".json"}
CACHE_FORMAT = 2  # 2: meta.json counts the whole text's tokens
CHUNK_CHARS = 1 << 20  # 1 MiB of text per tokenizer task
MAX_PIPE_BYTES = 1 << 30  # a pipe is held in memory once: beyond this, use a file
PIPE_WAIT_S = 60.0  # how long a pipe may stay silent before its first byte

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
    n_tokens: int  # of the whole text: the split can cut a token, so not train + val


# ---------------------------------------------------------------- reading text


def raw_topics_text() -> str:
    """CPython's pydoc help topics as printed by help(): indented, wrapped at 70 columns."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key].strip() for key in sorted(topics)) + "\n"


# A reStructuredText heading underline ("*****", "=====") left in the help topics.
_UNDERLINE = re.compile(r"[*=~^-]{3,}")


def fold_layout(text: str) -> str:
    """One line per paragraph (no blank lines), runs of spaces as one.

    The help topics are laid out for a terminal: a sixth of their GPT-2 tokens are
    single spaces of indentation and alignment, and a small model trained on them
    learns "a space follows a space" first, so its greedy samples are whitespace.
    Blank lines go too: a newline that can follow a newline is what such a model
    repeats next. Folded, the same words and punctuation remain and samples become text.
    """
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [" ".join(line.split()) for line in block.splitlines()]
        words = [line for line in lines if line and not _UNDERLINE.fullmatch(line)]
        if words:
            paragraphs.append(" ".join(words))
    return "\n".join(paragraphs) + "\n"


def builtin_text() -> str:
    """The built-in corpus: CPython's pydoc help topics (~430 KB of English prose about
    Python) in a deterministic order, their terminal layout folded (fold_layout)."""
    return fold_layout(raw_topics_text())


def _display(path: Path) -> str:
    """A path for messages: bytes that are not UTF-8 shown as \\xNN, never an error."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class NotUtf8Error(CorpusError):
    """A corpus file that is not valid UTF-8.

    The message ends with what the user can do about it, which depends on the front
    end: the CLI's flag by default; the app passes its own to `with_hint`.
    """

    CLI_HINT = "convert it to UTF-8 or decode with replacement characters (--decode-errors replace)"

    def __init__(self, reason: str, hint: str = CLI_HINT) -> None:
        super().__init__(f"{reason}; {hint}")
        self.reason = reason  # the problem alone, without a remedy

    def with_hint(self, hint: str) -> str:
        return f"{self.reason}; {hint}"


def _decode(data: bytes, path: Path, errors: str) -> str:
    if b"\x00" in data[:8192]:
        raise CorpusError(
            f"{_display(path)} looks like a binary file (it contains NUL bytes), not text"
        )
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        raise NotUtf8Error(
            f"{_display(path)} is not valid UTF-8 (bad byte at offset {exc.start})"
        ) from None


def _text_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in TEXT_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _special_kind(path: Path) -> str | None:
    """What kind of special file `path` is ("pipe", "character device", ...), or None.

    Reading a device (/dev/zero, a terminal) never ends, so those are refused;
    a pipe (a FIFO, or `<(command)` given as /dev/fd/N) is read once.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return None  # missing or unreadable: the reader names the problem
    if stat.S_ISFIFO(mode):
        return "pipe"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return None


def _refuse_special(path: Path) -> bool:
    """True if `path` is a pipe; raise CorpusError for devices and sockets."""
    kind = _special_kind(path)
    if kind is None:
        return False
    if kind != "pipe":
        raise CorpusError(
            f"corpus {_display(path)} is a {kind}, not a text file; give a file or a folder"
        )
    return True


def read_pipe(path: Path) -> bytes:
    """All bytes of a pipe, read once (up to MAX_PIPE_BYTES).

    Opened without blocking, then it waits at most PIPE_WAIT_S for a first byte
    (a FIFO nobody writes to would otherwise block forever).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise CorpusError(f"cannot read corpus {_display(path)}: {exc.strerror or exc}") from None
    try:
        ready, _, _ = select.select([fd], [], [], PIPE_WAIT_S)
        if not ready:
            raise CorpusError(
                f"nothing was written to the pipe {_display(path)} in {PIPE_WAIT_S:g} s"
            )
        os.set_blocking(fd, True)
        parts, size = [], 0
        while block := os.read(fd, 1 << 20):
            size += len(block)
            if size > MAX_PIPE_BYTES:
                raise CorpusError(
                    f"the pipe {_display(path)} holds more than {MAX_PIPE_BYTES >> 20} MiB; "
                    "save it to a file and give that file as the corpus"
                )
            parts.append(block)
        return b"".join(parts)
    finally:
        os.close(fd)


def corpus_name(source: str | Path) -> str:
    """The name a corpus is shown by: the file's or folder's own name."""
    if str(source) == BUILTIN:
        return "builtin (Python help topics)"
    path = Path(source).expanduser()
    return _display(Path(path.name)) if path.name else _display(path)


def _file_corpus(data: bytes, path: Path, errors: str) -> CorpusText:
    text = _decode(data, path, errors)
    if not text or text.isspace():  # isspace: no copy of a large text
        raise CorpusError(f"corpus file {_display(path)} is empty")
    return CorpusText(corpus_name(path), text, 1)


def read_corpus(source: str | Path, errors: str = "strict") -> CorpusText:
    """Read a corpus: BUILTIN, a text file, a pipe, or a folder of text files.

    Files in a folder are joined with `<|endoftext|>` between documents, as
    GPT-2's training data was. `errors="replace"` decodes bad UTF-8 with U+FFFD.
    Devices are refused; special files inside a folder are skipped.
    """
    if str(source) == BUILTIN:
        return CorpusText(corpus_name(source), builtin_text(), 1)
    path = Path(source).expanduser()
    if not path.exists():
        raise CorpusError(f"corpus not found: {_display(path)}")
    if path.is_dir():
        files = _text_files(path)
        if not files:
            suffixes = ", ".join(sorted(TEXT_SUFFIXES))
            raise CorpusError(f"folder {_display(path)} holds no text files ({suffixes})")
        texts = [_decode(_read_file(p), p, errors) for p in files]
        texts = [t for t in texts if t and not t.isspace()]
        if not texts:
            raise CorpusError(f"every text file in {_display(path)} is empty")
        return CorpusText(corpus_name(path), END_OF_TEXT.join(texts), len(texts))
    if _refuse_special(path):
        return _file_corpus(read_pipe(path), path, errors)
    return _file_corpus(_read_file(path), path, errors)


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"cannot read corpus {_display(path)}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------- tokenizing

# A boundary where GPT-2's pre-tokenizer never joins the two sides: after a
# non-space and before " X", or between "X\n" and a following non-space.
_SAFE_SPLIT = re.compile(r"(?<=\S)(?= \S)|(?<=\S\n)(?=\S)")


def chunk_spans(
    text: str, start: int = 0, end: int | None = None, chunk_chars: int = CHUNK_CHARS
) -> list[tuple[int, int]]:
    """Cut text[start:end] into ~chunk_chars spans whose separate encodings
    concatenate to exactly the encoding of the whole range."""
    end = len(text) if end is None else end
    spans = []
    while end - start > chunk_chars:
        match = _SAFE_SPLIT.search(text, start + chunk_chars, end)
        if match is None:
            break
        spans.append((start, match.start()))
        start = match.start()
    spans.append((start, end))
    return spans


def split_for_tokenizing(text: str, chunk_chars: int = CHUNK_CHARS) -> list[str]:
    return [text[a:b] for a, b in chunk_spans(text, chunk_chars=chunk_chars)]


def _encode_spans(
    text: str, spans: list[tuple[int, int]], progress: ProgressFn | None, threads: int | None
) -> Iterator[np.ndarray]:
    """uint16 token arrays for each span, in order, encoded on a thread pool.

    tiktoken releases the GIL while encoding, so threads scale; at most
    2 x threads spans are in flight, which bounds memory on huge corpora.
    """
    threads = threads or max(1, min(8, os.cpu_count() or 1))

    def encode(span: tuple[int, int]) -> np.ndarray:
        return encode_to_uint16(text[span[0] : span[1]])

    total = spans[-1][1] - spans[0][0] if spans else 0
    done = 0
    with ThreadPoolExecutor(threads) as pool:
        pending: deque = deque()
        for span in spans:
            pending.append((span, pool.submit(encode, span)))
            if len(pending) >= 2 * threads:
                (a, b), future = pending.popleft()
                yield future.result()
                done += b - a
                if progress:
                    progress(done, total)
        while pending:
            (a, b), future = pending.popleft()
            yield future.result()
            done += b - a
            if progress:
                progress(done, total)


def tokenize(
    text: str, progress: ProgressFn | None = None, threads: int | None = None
) -> np.ndarray:
    """Encode text to a uint16 array, in parallel chunks, reporting progress."""
    parts = list(_encode_spans(text, chunk_spans(text), progress, threads))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)


def _tokenize_to_file(
    text: str, start: int, end: int, path: Path, progress: ProgressFn | None
) -> int:
    """Stream the tokens of text[start:end] into `path` atomically; returns the count."""
    count = 0
    with atomic_open(path, "wb") as f:
        if end > start:
            for ids in _encode_spans(text, chunk_spans(text, start, end), progress, None):
                f.write(ids.tobytes())
                count += len(ids)
    return count


def _count_across_split(text: str, split: int) -> int:
    """How many tokens fewer the whole text has than its two halves encoded apart.

    Cutting at a character can split a word (or a run of spaces) in two, which then
    encodes to more tokens; only the span between the nearest safe boundaries
    around the cut is affected, so only it is encoded again.
    """
    if split <= 0 or split >= len(text):
        return 0
    before = [m.start() for m in _SAFE_SPLIT.finditer(text, max(0, split - 4096), split)]
    after = _SAFE_SPLIT.search(text, split + 1, min(len(text), split + 4096))
    a = before[-1] if before else 0
    b = after.start() if after else len(text)
    tokenizer = get_tokenizer()

    def count(part: str) -> int:
        return len(tokenizer.encode(part, allowed_special={END_OF_TEXT}))

    return count(text[a:split]) + count(text[split:b]) - count(text[a:b])


def _load_tokens(path: Path) -> np.ndarray:
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=np.uint16)
    return np.memmap(path, dtype=np.uint16, mode="r")


def corpus_fingerprint(source: str | Path) -> str:
    """sha256 over the corpus's raw bytes (and file names, for folders).

    Computed by streaming, without decoding, so a cached corpus reloads fast.
    Unreadable input is left for read_corpus to report; devices are refused and
    a pipe, which can be read only once, is for prepare_corpus to read.
    """
    digest = hashlib.sha256()
    if str(source) == BUILTIN:
        digest.update(builtin_text().encode("utf-8"))
        return digest.hexdigest()
    path = Path(source).expanduser()
    if path.is_dir():
        files = _text_files(path)
    elif _refuse_special(path):
        raise CorpusError(f"{_display(path)} is a pipe: it can be read only once")
    else:
        files = [path]
    for file in files:
        if file != path:  # inside a folder: the layout is part of the content
            # fsencode: a name that is not UTF-8 hashes as its bytes on disk
            digest.update(os.fsencode(file.relative_to(path).as_posix()) + b"\0")
        with open(file, "rb") as f:
            while block := f.read(1 << 23):
                digest.update(block)
    return digest.hexdigest()


def prepare_corpus(
    source: str | Path,
    train_ratio: float = 0.9,
    errors: str = "strict",
    progress: ProgressFn | None = None,
    cache_dir: Path | None = None,
) -> TokenizedCorpus:
    """Read, split by characters and tokenize a corpus, reusing the token cache.

    A pipe is read once: its bytes are both hashed and decoded.
    """
    if not 0 < train_ratio < 1:
        raise CorpusError(f"train_ratio must be between 0 and 1, got {train_ratio}")
    path = None if str(source) == BUILTIN else Path(source).expanduser()
    piped = None
    if path is not None and not path.is_dir() and _refuse_special(path):
        piped = read_pipe(path)
        fingerprint: str | None = hashlib.sha256(piped).hexdigest()
    else:
        try:
            fingerprint = corpus_fingerprint(source)
        except OSError:
            fingerprint = None  # read_corpus below names the problem
    if fingerprint is not None:
        key = f"{fingerprint[:32]}-r{train_ratio:g}-{errors}-v{CACHE_FORMAT}"
        folder = (cache_dir or token_cache_dir()) / key
        cached = _load_cached(folder, key)
        if cached is not None:
            if progress:
                progress(cached.n_chars, cached.n_chars)
            # The cache is keyed by content: the same text under another name (a
            # pasted text saved to a file) is named after this source, not the first.
            return dataclasses.replace(cached, name=corpus_name(source))
    if piped is not None and path is not None:
        corpus = _file_corpus(piped, path, errors)
    else:
        corpus = read_corpus(source, errors)
    if fingerprint is None:  # readable now: the earlier failure was transient
        return prepare_corpus(source, train_ratio, errors, progress, cache_dir)
    text = corpus.text
    split = int(train_ratio * len(text))

    def part_progress(offset: int) -> ProgressFn | None:
        if progress is None:
            return None
        return lambda done, _total: progress(offset + done, len(text))

    n_train = _tokenize_to_file(text, 0, split, folder / "train.bin", part_progress(0))
    n_val = _tokenize_to_file(text, split, len(text), folder / "val.bin", part_progress(split))
    meta = {
        "name": corpus.name,
        "files": corpus.files,
        "chars": len(text),
        "train_chars": split,
        "train_tokens": n_train,
        "val_tokens": n_val,
        "tokens": n_train + n_val - _count_across_split(text, split),
        "train_ratio": train_ratio,
    }
    atomic_write_bytes(folder / "meta.json", json.dumps(meta).encode())  # last: marks completeness
    loaded = _load_cached(folder, key)
    if loaded is None:  # pragma: no cover - only if the disk lost what we just wrote
        raise CorpusError(f"the token cache in {folder} could not be read back")
    return loaded


def _load_cached(folder: Path, key: str) -> TokenizedCorpus | None:
    """The cached corpus in `folder`, or None if absent or damaged (then rebuilt)."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        train = _load_tokens(folder / "train.bin")
        val = _load_tokens(folder / "val.bin")
        if len(train) != meta["train_tokens"] or len(val) != meta["val_tokens"]:
            return None
        chars, split = meta["chars"], meta["train_chars"]
        return TokenizedCorpus(
            meta["name"],
            chars,
            meta["files"],
            train,
            val,
            split,
            chars - split,
            key,
            meta["tokens"],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
