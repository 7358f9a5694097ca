"""Preparing a folder of Project Gutenberg books as a corpus, as the book's bonus
chapter does (ch05/03_bonus_pretraining_on_gutenberg), as one resumable command.

Each book is cleaned: the Project Gutenberg header and licence footer are cut at
their "*** START OF ... PROJECT GUTENBERG EBOOK ..." and "*** END OF ..." markers
(a book without them is kept whole and counted), runs of blank lines are folded to
one as the book's script does, and it is optionally kept only if English. Exact
duplicates (the same cleaned text under two names) are dropped. Each kept book is
written as its own UTF-8 .txt file in the output folder, which is a corpus gpt-tui
reads directly (one document per book) and which the book's pretraining script
reads too (it trains on every .txt file under a folder).

English test: the book's own (at least 90% of the characters ASCII) catches books
in other scripts but passes French or German, so a second, equally simple test
asks that common English function words ("the", "and", "of", ...) make up at
least 15% of the words (English prose: 30-45%; other Latin-script languages: a
few percent). No language-identification package is needed (the ones worth using
download a model), and the verdict is the same on every machine.

Resumable: every output file is written atomically, and the done-list (the file
name, verdict and text hash of every book handled) is rewritten atomically as it
grows; after a kill, a rerun skips what the done-list holds and redoes the rest
(rewriting an output file gives the same bytes).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from gptcore.data.compressed import display, inner_suffix, read_blocks
from gptcore.errors import CorpusError, DamagedFile
from gptcore.util.fsutil import atomic_write_bytes, atomic_write_text
from gptcore.util.typedfile import read_json

DONE_FILE = ".gutenberg-done.json"
REPORT_FILE = ".gutenberg-report.json"  # hidden: a corpus folder skips it
SAVE_EVERY_S = 0.5  # the done-list is rewritten at most this often (and at the end)
BOOK_SUFFIXES = {".txt"}
MAX_BOOK_BYTES = 1 << 28

_START = re.compile(
    r"^\s*\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK[^\n]*$", re.I | re.M
)
_END = re.compile(r"^\s*\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK[^\n]*$", re.I | re.M)
_BLANK_RUNS = re.compile(r"\n\s*\n")
_WORD = re.compile(r"[A-Za-z]+")
ENGLISH_WORDS = frozenset(
    [
        "the",
        "of",
        "and",
        "to",
        "a",
        "in",
        "that",
        "is",
        "was",
        "he",
        "for",
        "it",
        "with",
        "as",
        "his",
        "on",
        "be",
        "at",
        "by",
        "i",
        "had",
        "not",
        "are",
        "but",
        "from",
        "or",
        "have",
        "an",
        "they",
        "which",
        "one",
        "you",
        "were",
        "her",
        "all",
        "she",
        "there",
        "would",
        "their",
        "we",
        "him",
        "been",
        "has",
        "when",
        "who",
        "will",
        "more",
        "no",
        "if",
        "out",
        "so",
        "said",
        "what",
        "up",
        "its",
        "about",
        "into",
        "than",
        "them",
        "can",
        "only",
        "other",
        "new",
        "some",
        "could",
        "time",
        "these",
        "two",
        "may",
        "then",
        "do",
        "first",
        "any",
        "my",
        "now",
        "such",
        "like",
        "our",
        "over",
        "me",
        "even",
        "most",
        "made",
        "after",
        "also",
        "did",
        "many",
        "before",
        "must",
        "through",
        "back",
        "years",
        "where",
        "much",
        "your",
        "way",
        "well",
        "down",
        "should",
        "because",
        "each",
        "just",
        "those",
        "people",
        "how",
        "too",
        "little",
        "very",
    ]
)
ASCII_SHARE, ENGLISH_WORD_SHARE, SAMPLE_CHARS = 0.9, 0.15, 100_000

# Why a book is dropped, as the report names it.
NOT_ENGLISH, DUPLICATE, EMPTY, UNREADABLE = "not English", "duplicate", "empty", "unreadable"


class Entry(msgspec.Struct, frozen=True):
    """One book's verdict in the done-list."""

    file: str
    kept: bool
    reason: str = ""  # why dropped; for a kept book, notes ("no markers")
    sha256: str = ""  # of the cleaned text
    duplicate_of: str = ""


class DoneList(msgspec.Struct):
    entries: list[Entry] = []


@dataclass(frozen=True)
class Cleaned:
    text: str
    markers: str  # "both", "start only", "end only" or "none"
    latin1: bool  # decoded as Latin-1 (not UTF-8), as older Gutenberg files are


def strip_boilerplate(text: str) -> tuple[str, str]:
    """The book without Project Gutenberg's header and footer, and which markers it had."""
    start, end = _START.search(text), _END.search(text)
    if end is not None and start is not None and end.start() < start.end():
        end = _END.search(text, start.end())
    body = text[start.end() if start else 0 : end.start() if end else len(text)]
    markers = {(True, True): "both", (True, False): "start only", (False, True): "end only"}
    return body, markers.get((start is not None, end is not None), "none")


def is_english(text: str) -> bool:
    """The book's ASCII test and an English function-word test (module docstring)."""
    sample = text[:SAMPLE_CHARS]
    if not sample:
        return False
    if sum(ch < "\x80" for ch in sample) / len(sample) <= ASCII_SHARE:
        return False
    words = [w.lower() for w in _WORD.findall(sample)]
    if not words:
        return False
    return sum(w in ENGLISH_WORDS for w in words) / len(words) >= ENGLISH_WORD_SHARE


def clean_book(path: Path) -> Cleaned:
    """Read and clean one book file (UTF-8, else Latin-1)."""
    data, size = [], 0
    for block in read_blocks(path, 1 << 22):
        size += len(block)
        if size > MAX_BOOK_BYTES:
            raise CorpusError(f"{display(path)} is over {MAX_BOOK_BYTES >> 20} MiB: not a book")
        data.append(block)
    raw = b"".join(data)
    try:
        text, latin1 = raw.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        text, latin1 = raw.decode("latin-1"), True
    text = text.replace("\r\n", "\n")
    body, markers = strip_boilerplate(text)
    body = _BLANK_RUNS.sub("\n\n", body).strip()
    return Cleaned(body + "\n" if body else "", markers, latin1)


def book_files(folder: Path) -> list[Path]:
    """The books under `folder` (.txt, also compressed), hidden files skipped."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and inner_suffix(p) in BOOK_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


@dataclass
class Report:
    """What a preparation kept and dropped, and why."""

    total: int
    kept: int
    dropped: dict[str, int]
    no_markers: int
    partial_markers: int
    latin1: int
    resumed: int  # books the done-list already held

    def lines(self) -> str:
        dropped = ", ".join(f"{n} {why}" for why, n in sorted(self.dropped.items())) or "none"
        return (
            f"books    {self.total:,} ({self.resumed:,} done before this run)\n"
            f"kept     {self.kept:,} ({self.no_markers:,} without Gutenberg markers, kept whole; "
            f"{self.partial_markers:,} with only one marker; {self.latin1:,} read as Latin-1)\n"
            f"dropped  {dropped}"
        )


def _load_done(out: Path) -> dict[str, Entry]:
    try:
        done = read_json(out / DONE_FILE, DoneList, 64 << 20)
    except FileNotFoundError:
        return {}
    except DamagedFile:
        return {}  # redone from scratch: outputs are rewritten with the same bytes
    return {entry.file: entry for entry in done.entries}


def prepare_gutenberg(
    folder: str | Path,
    out: str | Path,
    *,
    english_only: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Clean every book under `folder` into `out` (see the module docstring)."""
    src, dest = Path(folder).expanduser(), Path(out).expanduser()
    if not src.is_dir():
        raise CorpusError(f"Gutenberg folder not found: {display(src)}")
    if dest.resolve() == src.resolve() or src.resolve() in dest.resolve().parents:
        raise CorpusError(f"the output folder {display(dest)} must be outside {display(src)}")
    books = book_files(src)
    if not books:
        raise CorpusError(f"{display(src)} holds no .txt books")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CorpusError(
            f"cannot create the output folder {display(dest)}: {exc.strerror}"
        ) from None
    done = _load_done(dest)
    resumed = sum(1 for b in books if b.relative_to(src).as_posix() in done)
    seen = {e.sha256: e.file for e in done.values() if e.kept}
    last_save = time.monotonic()
    for i, book in enumerate(books):
        name = book.relative_to(src).as_posix()
        if name not in done:
            done[name] = _judge(book, name, dest, english_only, seen)
            if time.monotonic() - last_save >= SAVE_EVERY_S:
                _save_done(dest, done)
                last_save = time.monotonic()
        if progress:
            progress(i + 1, len(books))
    _save_done(dest, done)
    report = _report([done[b.relative_to(src).as_posix()] for b in books], resumed)
    _write_state(dest / REPORT_FILE, msgspec.json.encode(report.__dict__))
    return report


def _output_name(name: str) -> str:
    """books/12345.txt.gz -> books/12345.txt"""
    path = Path(name)
    while path.suffix.lower() != ".txt" and path.suffix:
        path = path.with_suffix("")
    return path.as_posix()


def _judge(book: Path, name: str, dest: Path, english_only: bool, seen: dict[str, str]) -> Entry:
    """Clean one book and write it, or say why it is dropped."""
    try:
        cleaned = clean_book(book)
    except CorpusError as exc:
        return Entry(name, False, f"{UNREADABLE}: {exc}")
    except OSError as exc:  # a book we may not read is dropped, not the whole run
        return Entry(name, False, f"{UNREADABLE}: {exc.strerror or exc}")
    if not cleaned.text.strip():
        return Entry(name, False, EMPTY)
    if english_only and not is_english(cleaned.text):
        return Entry(name, False, NOT_ENGLISH)
    digest = hashlib.sha256(cleaned.text.encode("utf-8")).hexdigest()
    if digest in seen and seen[digest] != name:
        return Entry(name, False, DUPLICATE, digest, seen[digest])
    seen[digest] = name
    target = dest / _output_name(name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, cleaned.text)
    except OSError as exc:  # a full disk, say: stop; a rerun carries on from here
        raise CorpusError(f"cannot write {display(target)}: {exc.strerror or exc}") from None
    notes = [] if cleaned.markers == "both" else [f"markers: {cleaned.markers}"]
    notes += ["latin-1"] if cleaned.latin1 else []
    return Entry(name, True, "; ".join(notes), digest)


def _save_done(dest: Path, done: dict[str, Entry]) -> None:
    _write_state(dest / DONE_FILE, msgspec.json.encode(DoneList(list(done.values()))))


def _write_state(path: Path, data: bytes) -> None:
    """Write the done-list or the report whole; a full disk, say, is one line (a rerun
    carries on from the last done-list that was written)."""
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise CorpusError(f"cannot write {display(path)}: {exc.strerror or exc}") from None


def _report(entries: list[Entry], resumed: int) -> Report:
    dropped = Counter(e.reason.split(":")[0] for e in entries if not e.kept)
    kept = [e for e in entries if e.kept]
    return Report(
        total=len(entries),
        kept=len(kept),
        dropped=dict(dropped),
        no_markers=sum("markers: none" in e.reason for e in kept),
        partial_markers=sum("only" in e.reason for e in kept),
        latin1=sum("latin-1" in e.reason for e in kept),
        resumed=resumed,
    )
