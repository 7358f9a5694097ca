"""Tokenizing a corpus once into a cache that later runs memory-map.

The text is split by characters at `train_ratio` as the book does; each part is
tokenized in parallel, in chunks cut only where the cut cannot change the tokens,
into a uint16 file keyed by the content's hash (`prepare_corpus`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gptcore.data.corpus import (
    BUILTIN,
    READ_BYTES,
    CorpusSource,
    ProgressFn,
    _display,
    _refuse_special,
    _text_files,
    builtin_text,
    corpus_name,
    open_corpus,
    read_pipe,
)
from gptcore.errors import CorpusError
from gptcore.model.tokenizer import END_OF_TEXT, encode_to_uint16, get_tokenizer
from gptcore.util.fsutil import atomic_open, atomic_write_bytes
from gptcore.util.paths import token_cache_dir

CACHE_FORMAT = 2  # 2: meta.json counts the whole text's tokens
# A cache folder: the two splits' token ids (uint16), then the meta that marks it complete.
TRAIN_FILE, VAL_FILE, META_FILE = "train.bin", "val.bin", "meta.json"


CHUNK_CHARS = 1 << 20  # 1 MiB of text per tokenizer task


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
        names = (TRAIN_FILE, VAL_FILE)
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
    atomic_write_bytes(folder / META_FILE, json.dumps(meta).encode())  # last: marks completeness
    loaded = _load_cached(folder, key)
    if loaded is None:  # pragma: no cover - only if the disk lost what we just wrote
        raise CorpusError(f"the token cache in {folder} could not be read back")
    return loaded


def _load_cached(folder: Path, key: str) -> TokenizedCorpus | None:
    """The cached corpus in `folder`, or None if absent or damaged (then rebuilt)."""
    try:
        meta = json.loads((folder / META_FILE).read_text())
        train = _load_tokens(folder / TRAIN_FILE)
        val = _load_tokens(folder / VAL_FILE)
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
