"""Corpora: read text, tokenize once into a memory-mapped cache, cut into windows.

A corpus is a .txt file, a folder of text files, or the built-in corpus (the
English help topics that ship with every CPython, so it works offline). The
text is split by characters at `train_ratio` as the book does, each part is
tokenized once (in parallel, in chunks that cannot change the tokens) into a
uint16 file keyed by the content's hash, and later runs memory-map that file.
The text is streamed (read, decoded, cut and tokenized a block at a time), so a
corpus of gigabytes never sits in memory whole.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import re
import select
import stat
from collections import deque
from collections.abc import Callable, Iterable, Iterator
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
READ_BYTES = 1 << 23  # a corpus is read (and decoded) 8 MiB at a time
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


def _utf8_cut(data: bytes) -> int:
    """Where to cut `data` so no UTF-8 sequence straddles the cut: before a lead
    byte among the last four bytes, else at the end. Decoding the two sides apart
    then gives exactly the characters (and errors) of decoding them together."""
    for i in range(len(data) - 1, max(-1, len(data) - 5), -1):
        if data[i] >= 0xC0:
            return i
        if data[i] < 0x80:
            break
    return len(data)


def _decode_blocks(blocks: Iterable[bytes], path: Path, errors: str) -> Iterator[str]:
    """The text of a stream of byte blocks, decoded block by block (see _decode)."""
    carry, offset = b"", 0
    for block in blocks:
        data = carry + block if carry else block
        if offset < 8192 and b"\x00" in data[: 8192 - offset]:
            raise CorpusError(
                f"{_display(path)} looks like a binary file (it contains NUL bytes), not text"
            )
        cut = _utf8_cut(data)
        yield _decode_at(data[:cut], offset, path, errors)
        offset += cut
        carry = data[cut:]
    if carry:
        yield _decode_at(carry, offset, path, errors)


def _decode_at(data: bytes, offset: int, path: Path, errors: str) -> str:
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        raise NotUtf8Error(
            f"{_display(path)} is not valid UTF-8 (bad byte at offset {offset + exc.start})"
        ) from None


def _file_blocks(path: Path) -> Iterator[bytes]:
    try:
        with open(path, "rb") as f:
            while block := f.read(READ_BYTES):
                yield block
    except OSError as exc:
        raise CorpusError(f"cannot read corpus {_display(path)}: {exc.strerror or exc}") from None


def _memory_blocks(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), READ_BYTES):
        yield bytes(view[start : start + READ_BYTES])


@dataclass
class CorpusSource:
    """A corpus checked and measured but not held in memory: `blocks()` reads
    its text again, in blocks of about READ_BYTES, each time it is called."""

    name: str
    files: int
    n_chars: int
    docs: list[Callable[[], Iterator[str]]]

    def blocks(self) -> Iterator[str]:
        """The text: the documents joined with `<|endoftext|>`."""
        for i, doc in enumerate(self.docs):
            if i:
                yield END_OF_TEXT
            yield from doc()


def _measure(doc: Callable[[], Iterator[str]]) -> tuple[int, bool]:
    """(characters, blank) of a document, read once through."""
    chars, blank = 0, True
    for block in doc():
        chars += len(block)
        blank = blank and block.isspace() if block else blank
    return chars, blank


def open_corpus(
    source: str | Path, errors: str = "strict", piped: bytes | None = None
) -> CorpusSource:
    """Check and measure a corpus (BUILTIN, a text file, a pipe, or a folder of text
    files) by reading it through once, keeping only a block of it in memory.

    Files in a folder are joined with `<|endoftext|>` between documents, as
    GPT-2's training data was. `errors="replace"` decodes bad UTF-8 with U+FFFD.
    Devices are refused; special files inside a folder are skipped. `piped`:
    the bytes of a pipe already read (a pipe can be read only once).
    """
    if str(source) == BUILTIN:
        text = builtin_text()
        return CorpusSource(corpus_name(source), 1, len(text), [lambda: iter([text])])
    path = Path(source).expanduser()
    if not path.exists():
        raise CorpusError(f"corpus not found: {_display(path)}")
    if path.is_dir():
        files = _text_files(path)
        if not files:
            suffixes = ", ".join(sorted(TEXT_SUFFIXES))
            raise CorpusError(f"folder {_display(path)} holds no text files ({suffixes})")
        docs, chars = [], 0
        for file in files:
            doc = functools.partial(_decode_blocks_of, file, errors)
            n, blank = _measure(doc)
            if not blank:
                docs.append(doc)
                chars += n
        if not docs:
            raise CorpusError(f"every text file in {_display(path)} is empty")
        chars += len(END_OF_TEXT) * (len(docs) - 1)
        return CorpusSource(corpus_name(path), len(docs), chars, docs)
    if piped is None and _refuse_special(path):
        piped = read_pipe(path)
    if piped is not None:
        data = piped
        doc = lambda: _decode_blocks(_memory_blocks(data), path, errors)  # noqa: E731
    else:
        doc = functools.partial(_decode_blocks_of, path, errors)
    chars, blank = _measure(doc)
    if blank:
        raise CorpusError(f"corpus file {_display(path)} is empty")
    return CorpusSource(corpus_name(path), 1, chars, [doc])


def _decode_blocks_of(path: Path, errors: str) -> Iterator[str]:
    return _decode_blocks(_file_blocks(path), path, errors)


def read_corpus(source: str | Path, errors: str = "strict") -> CorpusText:
    """Read a whole corpus into memory (see open_corpus, which streams it)."""
    opened = open_corpus(source, errors)
    return CorpusText(opened.name, "".join(opened.blocks()), opened.files)


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


def _encode_parallel(
    chunks: Iterable[tuple[int, str]], threads: int | None
) -> Iterator[tuple[int, str, np.ndarray]]:
    """(part, chunk, uint16 ids) for each (part, chunk), in order, encoded on a thread pool.

    tiktoken releases the GIL while encoding, so threads scale; at most
    2 x threads chunks are in flight (and `chunks` is read only that far ahead),
    which bounds memory on huge corpora.
    """
    # One thread per core, as tiktoken's encode_ordinary_batch uses; capped so the
    # chunks being encoded (~10 MB each at their peak) stay well under 1 GB.
    threads = threads or max(1, min(32, os.cpu_count() or 1))
    pending: deque = deque()
    with ThreadPoolExecutor(threads) as pool:
        try:
            for part, chunk in chunks:
                pending.append((part, chunk, pool.submit(encode_to_uint16, chunk)))
                if len(pending) >= 2 * threads:
                    part, chunk, future = pending.popleft()
                    yield part, chunk, future.result()
            while pending:
                part, chunk, future = pending.popleft()
                yield part, chunk, future.result()
        finally:  # an error or a cancel: drop the queued work instead of finishing it
            for *_, future in pending:
                future.cancel()


def tokenize(
    text: str, progress: ProgressFn | None = None, threads: int | None = None
) -> np.ndarray:
    """Encode text to a uint16 array, in parallel chunks, reporting progress."""
    parts, done = [], 0
    for _, chunk, ids in _encode_parallel(((0, c) for c in split_for_tokenizing(text)), threads):
        parts.append(ids)
        done += len(chunk)
        if progress:
            progress(done, len(text))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)


def _split_blocks(blocks: Iterable[str], split: int) -> Iterator[tuple[int, str]]:
    """(part, block): part 0 for the text before character `split`, 1 after it."""
    seen = 0
    for block in blocks:
        if seen < split < seen + len(block):
            yield 0, block[: split - seen]
            yield 1, block[split - seen :]
        else:
            yield (0 if seen < split else 1), block
        seen += len(block)


def stream_chunks(
    blocks: Iterable[str], split: int, chunk_chars: int = CHUNK_CHARS
) -> Iterator[tuple[int, str]]:
    """(part, chunk) over a text given in blocks: part 0 is the text before
    character `split` (train), part 1 the rest (validation), each cut at safe
    boundaries into ~chunk_chars chunks whose separate encodings concatenate to
    exactly the encoding of the part. Holds about one block plus one chunk."""
    buf, buf_part, scan = "", 0, 0  # scan: where in buf a boundary is sought next
    for part, block in _split_blocks(blocks, split):
        if part != buf_part:
            if buf:
                yield buf_part, buf
            buf, buf_part, scan = "", part, 0
        buf += block
        start = 0
        while len(buf) - start > chunk_chars:
            match = _SAFE_SPLIT.search(buf, max(start + chunk_chars, scan))
            if match is None:
                # No boundary yet (a very long word): look again once more text is in,
                # from just before the end (the pattern sees two characters back).
                scan = max(0, len(buf) - 2)
                break
            yield part, buf[start : match.start()]
            start = match.start()
        if start:
            buf = buf[start:]
            scan = max(0, scan - start)
    if buf:
        yield buf_part, buf


def _count_across_split(before: str, after: str) -> int:
    """How many tokens fewer the whole text has than its two parts encoded apart.

    Cutting at a character can split a word (or a run of spaces) in two, which
    then encodes to more tokens; only the span between the nearest safe
    boundaries around the cut is affected, so only it is encoded again. `before`
    ends at the cut and starts at a safe boundary (or the text's start), `after`
    starts at the cut and ends at one (or the text's end).
    """
    if not before or not after:
        return 0
    boundaries = [m.start() for m in _SAFE_SPLIT.finditer(before, max(0, len(before) - 4096))]
    if boundaries:
        before = before[boundaries[-1] :]
    match = _SAFE_SPLIT.search(after, 1, 4096)
    if match is not None:
        after = after[: match.start()]
    tokenizer = get_tokenizer()

    def count(part: str) -> int:
        return len(tokenizer.encode(part, allowed_special={END_OF_TEXT}))

    return count(before) + count(after) - count(before + after)


def _write_token_cache(
    corpus: CorpusSource,
    split: int,
    folder: Path,
    progress: ProgressFn | None,
    chunk_chars: int = CHUNK_CHARS,
    threads: int | None = None,
) -> tuple[int, int, int]:
    """Stream the corpus's tokens into folder/train.bin and folder/val.bin.

    Both files are written to temporary files that take their names only once
    every token is in: an error or a cancel (an exception from `progress`)
    leaves neither. Returns (train tokens, val tokens, tokens of the whole text).
    """
    counts, done = [0, 0], 0
    last_train, first_val = "", ""
    chunks = stream_chunks(corpus.blocks(), split, chunk_chars)
    encoded = _encode_parallel(chunks, threads)
    with contextlib.ExitStack() as stack:
        names = ("train.bin", "val.bin")
        files = [stack.enter_context(atomic_open(folder / name, "wb")) for name in names]
        stack.callback(encoded.close)  # runs first: stops the pool, then the files go
        for part, chunk, ids in encoded:
            files[part].write(ids.tobytes())
            counts[part] += len(ids)
            if part == 0:
                last_train = chunk
            elif not first_val:
                first_val = chunk
            done += len(chunk)
            if progress:
                progress(done, corpus.n_chars)
    return counts[0], counts[1], counts[0] + counts[1] - _count_across_split(last_train, first_val)


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
            while block := f.read(READ_BYTES):
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
            fingerprint = None  # open_corpus below names the problem
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
    corpus = open_corpus(source, errors, piped)
    if fingerprint is None:  # readable now: the earlier failure was transient
        return prepare_corpus(source, train_ratio, errors, progress, cache_dir)
    split = int(train_ratio * corpus.n_chars)
    n_train, n_val, n_tokens = _write_token_cache(corpus, split, folder, progress, CHUNK_CHARS)
    meta = {
        "name": corpus.name,
        "files": corpus.files,
        "chars": corpus.n_chars,
        "train_chars": split,
        "train_tokens": n_train,
        "val_tokens": n_val,
        "tokens": n_tokens,
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
