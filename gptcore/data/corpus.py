"""Reading a corpus's documents: text files, JSON Lines / JSON, Parquet, any of them
compressed (.gz .bz2 .xz .zst), a folder of such files, a Hugging Face dataset
(a save_to_disk folder or `hf:NAME`), a pipe, or the built-in corpus (the English
help topics that ship with every CPython, so it works offline).

Every file or record is one document; the text is the documents joined with
`<|endoftext|>`. It is streamed (read and decoded a block at a time, with cuts that
never split a UTF-8 character), so a corpus of gigabytes never sits in memory whole.
Special files (devices, sockets) and non-UTF-8 text are refused with a message
that names the file.
"""

from __future__ import annotations

import array
import os
import re
import select
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gptcore.data import hfdatasets, records
from gptcore.data.compressed import (
    COMPRESSED_SUFFIXES,
    compression_of,
    display,
    inner_suffix,
    read_blocks,
)
from gptcore.errors import CorpusError
from gptcore.model.tokenizer import END_OF_TEXT

BUILTIN = "builtin"
DEFAULT_TEXT_FIELD = "text"


TEXT_SUFFIXES = {".txt", ".md", ".rst", ".text", ".markdown", ".org", ".tex", ".csv"}
# What a folder's files may hold (each possibly compressed, except Parquet).
CORPUS_SUFFIXES = TEXT_SUFFIXES | records.JSON_SUFFIXES | records.PARQUET_SUFFIXES


READ_BYTES = 1 << 23  # a corpus is read (and decoded) 8 MiB at a time


MAX_PIPE_BYTES = 1 << 30  # a pipe is held in memory once: beyond this, use a file


PIPE_WAIT_S = 60.0  # how long a pipe may stay silent before its first byte


ProgressFn = Callable[[int, int], None]  # (characters done, characters total)


@dataclass
class CorpusText:
    name: str
    text: str
    files: int


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


_display = display  # a path for messages (bytes that are not UTF-8 shown as \\xNN)


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


def is_corpus_file(path: Path) -> bool:
    """Whether a file in a corpus folder is read: by its suffix (under a compression
    suffix, for all but Parquet, which compresses inside)."""
    inner = inner_suffix(path)
    if compression_of(path) and inner in records.PARQUET_SUFFIXES:
        return False
    return inner in CORPUS_SUFFIXES


def corpus_files(folder: Path) -> list[Path]:
    """The files a corpus folder is made of, in a stable order; hidden ones skipped."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and is_corpus_file(p)
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
    if hfdatasets.is_hub_source(str(source)):
        return str(source)
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
    return read_blocks(path, READ_BYTES)


def _memory_blocks(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), READ_BYTES):
        yield bytes(view[start : start + READ_BYTES])


Document = Iterable[str]  # one document's text, in blocks
DocStream = Callable[[], Iterator[Document]]  # reads a file's (or dataset's) documents again


@dataclass(frozen=True)
class DocStats:
    """Documents and their lengths in characters."""

    documents: int
    shortest: int
    median: int
    longest: int

    @classmethod
    def of(cls, lengths: array.array) -> DocStats:
        import numpy as np

        if not lengths:
            return cls(0, 0, 0, 0)
        values = np.frombuffer(lengths, dtype=np.int64)
        median = int(np.partition(values, len(values) // 2)[len(values) // 2])
        return cls(len(values), int(values.min()), median, int(values.max()))


@dataclass
class CorpusSource:
    """A corpus checked and measured but not held in memory: `documents()` and
    `blocks()` read it again, a block at a time, each time they are called."""

    name: str
    files: int  # documents (a folder's files; a JSONL file's or dataset's records)
    n_chars: int
    docs: list[DocStream]
    doc_chars: array.array = field(default_factory=lambda: array.array("q"))

    def documents(self) -> Iterator[Document]:
        for stream in self.docs:
            yield from stream()

    def blocks(self) -> Iterator[str]:
        """The text: the documents joined with `<|endoftext|>` (the tokenizer's
        chunker gathers short ones, so they are handed on as they come)."""
        for i, doc in enumerate(self.documents()):
            if i:
                yield END_OF_TEXT
            yield from doc

    def stats(self) -> DocStats:
        return DocStats.of(self.doc_chars)


def _measure(doc: Document) -> tuple[int, bool]:
    """(characters, blank) of a document, read once through."""
    chars, blank = 0, True
    for block in doc:
        chars += len(block)
        blank = blank and block.isspace() if block else blank
    return chars, blank


def _one(texts: Iterator[str]) -> Iterator[Document]:
    """Records as documents of one block each."""
    return ((text,) for text in texts)


@dataclass(frozen=True)
class ParquetStream:
    """A Parquet file's documents (a DocStream) that Arrow can also measure alone."""

    path: Path
    column: str

    def __call__(self) -> Iterator[Document]:
        return _one(records.parquet_documents(self.path, self.column))

    def lengths(self) -> Iterator[int]:
        return records.parquet_lengths(self.path, self.column)


def file_stream(path: Path, errors: str, text_field: str) -> DocStream:
    """How one file's documents are read, by what its suffix says it holds."""
    inner = inner_suffix(path)
    if inner in records.PARQUET_SUFFIXES:
        return ParquetStream(path, text_field)
    if inner == ".json":
        return lambda: _one(records.json_documents(path, text_field, errors, READ_BYTES))
    if inner in records.JSON_SUFFIXES:
        return lambda: _one(records.jsonl_documents(path, text_field, errors, READ_BYTES))
    return lambda: iter([_decode_blocks_of(path, errors)])


def _measured(name: str, streams: list[DocStream]) -> CorpusSource:
    """The streams read through once: each document measured, blank ones dropped
    (a stream left without any is dropped whole)."""
    kept: list[DocStream] = []
    lengths = array.array("q")
    for stream in streams:
        before = len(lengths)
        if isinstance(stream, ParquetStream):  # measured in Arrow: no strings built
            lengths.extend(stream.lengths())
        else:
            for doc in stream():
                n, blank = _measure(doc)
                if not blank:
                    lengths.append(n)
        if len(lengths) > before:
            kept.append(stream)
    chars = sum(lengths) + len(END_OF_TEXT) * max(0, len(lengths) - 1)
    return CorpusSource(name, len(lengths), chars, kept, lengths)


def open_corpus(
    source: str | Path,
    errors: str = "strict",
    piped: bytes | None = None,
    text_field: str = DEFAULT_TEXT_FIELD,
) -> CorpusSource:
    """Check and measure a corpus by reading it through once, keeping only a block
    of it in memory: BUILTIN, a file (text, JSON Lines, JSON, Parquet, compressed),
    a pipe, a folder of such files, a save_to_disk folder, or `hf:NAME`.

    Every file or record is one document; documents are joined with `<|endoftext|>`,
    as GPT-2's training data was. `text_field` names the JSON field or the column
    that holds a record's text. `errors="replace"` decodes bad UTF-8 with U+FFFD.
    Devices are refused; special files inside a folder are skipped. `piped`: the
    bytes of a pipe already read (a pipe can be read only once).
    """
    if str(source) == BUILTIN:
        text = builtin_text()
        return _measured(corpus_name(source), [lambda: iter([[text]])])
    if hfdatasets.is_hub_source(str(source)):
        name = str(source)
        corpus = _measured(name, [lambda: _one(hfdatasets.hub_documents(name, text_field))])
        if not corpus.docs:
            raise CorpusError(f"the dataset {name} holds no text in column {text_field!r}")
        return corpus
    path = Path(source).expanduser()
    if not path.exists():
        raise CorpusError(f"corpus not found: {_display(path)}")
    if path.is_dir():
        if hfdatasets.is_saved_dataset(path):
            streams: list[DocStream] = [
                lambda: _one(hfdatasets.saved_dataset_documents(path, text_field))
            ]
        else:
            files = corpus_files(path)
            if not files:
                suffixes = " ".join(sorted(CORPUS_SUFFIXES))
                compressed = " ".join(sorted(COMPRESSED_SUFFIXES))
                raise CorpusError(
                    f"folder {_display(path)} holds no text files ({suffixes}, "
                    f"each also compressed: {compressed})"
                )
            streams = [file_stream(file, errors, text_field) for file in files]
        corpus = _measured(corpus_name(path), streams)
        if not corpus.docs:
            raise CorpusError(f"every file in {_display(path)} is empty")
        return corpus
    if piped is None and _refuse_special(path):
        piped = read_pipe(path)
    if piped is not None:
        data = piped
        stream: DocStream = lambda: iter(  # noqa: E731
            [_decode_blocks(_memory_blocks(data), path, errors)]
        )
    else:
        stream = file_stream(path, errors, text_field)
    corpus = _measured(corpus_name(path), [stream])
    if not corpus.docs:
        raise CorpusError(f"corpus file {_display(path)} is empty")
    return corpus


def _decode_blocks_of(path: Path, errors: str) -> Iterator[str]:
    return _decode_blocks(_file_blocks(path), path, errors)


def read_corpus(source: str | Path, errors: str = "strict") -> CorpusText:
    """Read a whole corpus into memory (see open_corpus, which streams it)."""
    opened = open_corpus(source, errors)
    return CorpusText(opened.name, "".join(opened.blocks()), opened.files)
