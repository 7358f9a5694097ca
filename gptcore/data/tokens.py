"""Tokenizing a corpus once into a cache that later runs memory-map.

The corpus is split into train and validation text as the setting `split` says:
by characters at `train_ratio` as the book does ("position"), or whole documents
drawn at random with a seed ("documents"), or not at all ("all", for a corpus
whose validation text comes from elsewhere). Each part is tokenized in parallel,
in chunks cut only where the cut cannot change the tokens, into a sharded cache
keyed by the content's hash (gptcore.data.shards; `prepare_corpus`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gptcore.data import hfdatasets, shards
from gptcore.data.corpus import (
    BUILTIN,
    DEFAULT_TEXT_FIELD,
    READ_BYTES,
    CorpusSource,
    DocStats,
    ProgressFn,
    _display,
    _refuse_special,
    builtin_text,
    corpus_files,
    corpus_name,
    open_corpus,
    read_pipe,
)
from gptcore.data.shards import CacheWriter, Manifest, ShardedTokens
from gptcore.errors import CorpusError
from gptcore.model.tokenizer import END_OF_TEXT, encode_to_uint16, get_tokenizer
from gptcore.util.fsutil import exclusive
from gptcore.util.paths import token_cache_dir

# 3: sharded, with a manifest (gptcore.data.shards) and document statistics
CACHE_FORMAT = 3
SPLITS = ("position", "documents", "all")


CHUNK_CHARS = 1 << 20  # 1 MiB of text per tokenizer task


Tokens = np.ndarray | ShardedTokens  # one mapped shard, or several read as one


@dataclass
class TokenizedCorpus:
    """A corpus split into train and validation token arrays (memory-mapped)."""

    name: str
    n_chars: int
    files: int  # documents
    train_tokens: Tokens
    val_tokens: Tokens
    train_chars: int
    val_chars: int
    key: str
    n_tokens: int  # of the whole text: the split can cut a token, so not train + val
    doc_stats: DocStats | None = None
    split: str = "position"
    # A mixture's sources: (name, train tokens, weight) each (gptcore.data.mixture).
    sources: tuple[tuple[str, int, float], ...] = ()


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


class _PartChunker:
    """Cuts one part's text, given in blocks, at safe boundaries into ~chunk_chars
    chunks whose separate encodings concatenate to exactly the part's encoding."""

    def __init__(self, part: int, chunk_chars: int) -> None:
        self.part, self.chunk_chars = part, chunk_chars
        self.pieces: list[str] = []
        self.size = 0
        self.buf, self.scan = "", 0  # scan: where in buf a boundary is sought next

    def add(self, block: str) -> Iterator[tuple[int, str]]:
        self.pieces.append(block)
        self.size += len(block)
        if len(self.buf) + self.size <= self.chunk_chars:
            return  # short documents gather until a chunk's worth is in
        buf = self.buf + "".join(self.pieces)
        self.pieces, self.size = [], 0
        start, scan = 0, self.scan
        while len(buf) - start > self.chunk_chars:
            match = _SAFE_SPLIT.search(buf, max(start + self.chunk_chars, scan))
            if match is None:
                # No boundary yet (a very long word): look again once more text is in,
                # from just before the end (the pattern sees two characters back).
                scan = max(0, len(buf) - 2)
                break
            yield self.part, buf[start : match.start()]
            start = match.start()
        self.buf, self.scan = buf[start:], max(0, scan - start)

    def flush(self) -> Iterator[tuple[int, str]]:
        buf = self.buf + "".join(self.pieces)
        self.buf, self.pieces, self.size, self.scan = "", [], 0, 0
        if buf:
            yield self.part, buf


def chunk_parts(
    parted: Iterable[tuple[int, str]], chunk_chars: int = CHUNK_CHARS
) -> Iterator[tuple[int, str]]:
    """(part, chunk) over (part, block) pairs: each part's text (0 train, 1
    validation, in any interleaving) cut at safe boundaries into ~chunk_chars
    chunks whose separate encodings concatenate to exactly the part's encoding.
    Holds about a block plus a chunk per part."""
    chunkers = [_PartChunker(0, chunk_chars), _PartChunker(1, chunk_chars)]
    for part, block in parted:
        yield from chunkers[part].add(block)
    for chunker in chunkers:
        yield from chunker.flush()


def stream_chunks(
    blocks: Iterable[str], split: int, chunk_chars: int = CHUNK_CHARS
) -> Iterator[tuple[int, str]]:
    """(part, chunk) over a text given in blocks: part 0 is the text before
    character `split` (train), part 1 the rest (validation); see chunk_parts."""
    return chunk_parts(_split_blocks(blocks, split), chunk_chars)


def _mix64(x: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def document_part(index: int, seed: int, train_ratio: float) -> int:
    """0 (train) or 1 (validation) for document `index`: a seeded draw that depends
    on the document's place only, so the split is the same on every machine."""
    return 0 if _mix64(_mix64(seed) ^ index) < train_ratio * 2.0**64 else 1


def _document_blocks(
    corpus: CorpusSource, seed: int, train_ratio: float, counts: list[int]
) -> Iterator[tuple[int, str]]:
    """(part, block) with whole documents routed to train or validation, each part's
    documents joined with `<|endoftext|>`; `counts` gets each part's characters."""
    started = [False, False]
    for index, doc in enumerate(corpus.documents()):
        part = document_part(index, seed, train_ratio)
        if started[part]:
            counts[part] += len(END_OF_TEXT)
            yield part, END_OF_TEXT
        started[part] = True
        for block in doc:
            counts[part] += len(block)
            yield part, block


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


@dataclass(frozen=True)
class SplitSpec:
    """How a corpus is split into train and validation text (see the module docstring)."""

    how: str = "position"
    train_ratio: float = 0.9
    seed: int = 0  # documents only

    def key(self) -> str:
        if self.how == "all":
            return "all"
        if self.how == "documents":
            return f"d{self.train_ratio:g}s{self.seed}"
        return f"r{self.train_ratio:g}"


def _parted_blocks(
    corpus: CorpusSource, split: SplitSpec, counts: list[int]
) -> Iterator[tuple[int, str]]:
    """(part, block) of the corpus's text under `split`; `counts`: each part's characters."""
    if split.how == "documents":
        return _document_blocks(corpus, split.seed, split.train_ratio, counts)
    at = corpus.n_chars if split.how == "all" else int(split.train_ratio * corpus.n_chars)
    counts[:] = [at, corpus.n_chars - at]
    return _split_blocks(corpus.blocks(), at)


def _write_token_cache(
    corpus: CorpusSource,
    split: SplitSpec,
    folder: Path,
    progress: ProgressFn | None,
    chunk_chars: int = CHUNK_CHARS,
    threads: int | None = None,
    shard_bytes: int | None = None,
) -> None:
    """Stream the corpus's tokens into shards of both splits, then the manifest.

    Shards take their names only once full, and the manifest that marks the cache
    complete comes last: an error or a cancel (an exception from `progress`) leaves
    no file behind, and a killed writer leaves no manifest (never used).
    """
    counts, chars, done = [0, 0], [0, 0], 0
    last_train, first_val = "", ""
    chunks = chunk_parts(_parted_blocks(corpus, split, chars), chunk_chars)
    encoded = _encode_parallel(chunks, threads)
    dtype = shards.token_dtype(get_tokenizer().n_vocab)
    writer = CacheWriter(folder, dtype, shard_bytes or shards.SHARD_BYTES)
    try:
        with writer:
            for part, chunk, ids in encoded:
                writer.write(part, ids)
                counts[part] += len(ids)
                if part == 0:
                    last_train = chunk
                elif not first_val:
                    first_val = chunk
                done += len(chunk)
                if progress:
                    progress(min(done, corpus.n_chars), corpus.n_chars)
            tokens = counts[0] + counts[1]
            if split.how == "position":  # the cut may split a token in two
                tokens -= _count_across_split(last_train, first_val)
            stats = corpus.stats()
            writer.commit(
                Manifest(
                    format=CACHE_FORMAT,
                    name=corpus.name,
                    documents=corpus.files,
                    chars=corpus.n_chars if split.how != "documents" else sum(chars),
                    train_chars=chars[0],
                    tokens=tokens,
                    split=split.how,
                    dtype=dtype.name,
                    train=[],
                    val=[],
                    doc_shortest=stats.shortest,
                    doc_median=stats.median,
                    doc_longest=stats.longest,
                )
            )
    finally:
        encoded.close()  # stops the pool when a cancel or an error ends the loop early


def corpus_fingerprint(source: str | Path, text_field: str = DEFAULT_TEXT_FIELD) -> str:
    """sha256 over the corpus's raw bytes (and file names, for folders).

    Computed by streaming, without decoding or decompressing, so a cached corpus
    reloads fast. Unreadable input is left for open_corpus to report; devices are
    refused and a pipe, which can be read only once, is for prepare_corpus to read.
    A hub dataset (`hf:NAME`) is known by its name only: its cache is reused until
    deleted. The text field is part of it (another field is other text).
    """
    digest = hashlib.sha256()
    if text_field != DEFAULT_TEXT_FIELD:
        digest.update(b"field\0" + text_field.encode("utf-8", "surrogatepass") + b"\0")
    if str(source) == BUILTIN:
        digest.update(builtin_text().encode("utf-8"))
        return digest.hexdigest()
    if hfdatasets.is_hub_source(str(source)):
        digest.update(str(source).encode("utf-8", "surrogatepass"))
        return digest.hexdigest()
    path = Path(source).expanduser()
    if path.is_dir():
        if hfdatasets.is_saved_dataset(path):
            files = sorted(p for p in path.rglob("*") if p.is_file())
        else:
            files = corpus_files(path)
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


# Held while a process builds the cache in its folder (gptcore.util.fsutil.exclusive).
LOCK_FILE = ".lock"


def prepare_corpus(
    source: str | Path,
    train_ratio: float = 0.9,
    errors: str = "strict",
    progress: ProgressFn | None = None,
    cache_dir: Path | None = None,
    *,
    text_field: str = DEFAULT_TEXT_FIELD,
    split: str = "position",
    split_seed: int = 0,
) -> TokenizedCorpus:
    """Read, split and tokenize a corpus, reusing the token cache.

    `split`: "position" cuts the text by characters at `train_ratio` (the book's);
    "documents" sends whole documents to validation at random (`split_seed`) with
    probability 1 - train_ratio; "all" keeps every token in the train part.
    A pipe is read once: its bytes are both hashed and decoded.
    """
    if not 0 < train_ratio < 1:
        raise CorpusError(f"train_ratio must be between 0 and 1, got {train_ratio}")
    if split not in SPLITS:
        raise CorpusError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    spec = SplitSpec(split, train_ratio, split_seed)
    path = None
    if str(source) != BUILTIN and not hfdatasets.is_hub_source(str(source)):
        path = Path(source).expanduser()
    piped = None
    if path is not None and not path.is_dir() and _refuse_special(path):
        piped = read_pipe(path)
        fingerprint: str | None = hashlib.sha256(piped).hexdigest()
    else:
        try:
            fingerprint = corpus_fingerprint(source, text_field)
        except OSError:
            fingerprint = None  # open_corpus below names the problem
    if fingerprint is not None:
        key = f"{fingerprint[:32]}-{spec.key()}-{errors}-v{CACHE_FORMAT}"
        folder = (cache_dir or token_cache_dir()) / key
        cached = _load_cached(folder, key)
        if cached is not None:
            if progress:
                progress(cached.n_chars, cached.n_chars)
            # The cache is keyed by content: the same text under another name (a
            # pasted text saved to a file) is named after this source, not the first.
            return dataclasses.replace(cached, name=corpus_name(source))
    corpus = open_corpus(source, errors, piped, text_field)
    if fingerprint is None:  # readable now: the earlier failure was transient
        return prepare_corpus(
            source,
            train_ratio,
            errors,
            progress,
            cache_dir,
            text_field=text_field,
            split=split,
            split_seed=split_seed,
        )
    # One writer at a time: another process (a DDP rank) building the same cache
    # would otherwise rewrite its shards while this one reads them.
    with exclusive(folder / LOCK_FILE):
        loaded = _load_cached(folder, key)
        if loaded is None:
            _write_token_cache(corpus, spec, folder, progress, CHUNK_CHARS)
            loaded = _load_cached(folder, key)
    if loaded is None:  # pragma: no cover - only if the disk lost what we just wrote
        raise CorpusError(f"the token cache in {folder} could not be read back")
    return loaded


def _load_cached(folder: Path, key: str) -> TokenizedCorpus | None:
    """The cached corpus in `folder`, or None if absent, partial or damaged (then
    rebuilt): only a cache whose manifest was written, with every shard it lists
    at the size it says, is used."""
    manifest = shards.read_manifest(folder)
    if manifest is None or manifest.format != CACHE_FORMAT:
        return None
    train = shards.open_part(folder, manifest, "train")
    val = shards.open_part(folder, manifest, "val")
    if train is None or val is None or manifest.train_chars > manifest.chars:
        return None
    stats = DocStats(
        manifest.documents, manifest.doc_shortest, manifest.doc_median, manifest.doc_longest
    )
    return TokenizedCorpus(
        manifest.name,
        manifest.chars,
        manifest.documents,
        train,
        val,
        manifest.train_chars,
        manifest.chars - manifest.train_chars,
        key,
        manifest.tokens,
        stats,
        manifest.split,
    )
