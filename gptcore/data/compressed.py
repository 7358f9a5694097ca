"""Reading a corpus file's bytes, decompressing .gz, .bz2, .xz and .zst on the fly.

A compressed file is streamed a block at a time, never whole. One that ends before
its end-of-stream marker (a download cut short) is refused with a message naming
the file, so a partial corpus never trains unnoticed. zstd needs the optional
`zstandard` package (the `corpora` extra).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
from collections.abc import Iterator
from pathlib import Path

from gptcore.errors import CorpusError

COMPRESSED_SUFFIXES = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstd", ".zstd": "zstd"}
CORPORA_EXTRA = "pip install 'gpt-tui[corpora]'"


def display(path: Path) -> str:
    """A path for messages: bytes that are not UTF-8 shown as \\xNN, never an error."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def compression_of(path: Path) -> str | None:
    """ "gzip", "bzip2", "xz" or "zstd" by the file's last suffix, else None."""
    return COMPRESSED_SUFFIXES.get(path.suffix.lower())


def inner_suffix(path: Path) -> str:
    """The suffix that says what a file holds: "a.jsonl.gz" -> ".jsonl"."""
    name = Path(path.name)
    if compression_of(name):
        name = Path(name.stem)
    return name.suffix.lower()


def need_extra(package: str, what: str) -> CorpusError:
    """The one-line message for an optional package that is not installed."""
    return CorpusError(f"{what} needs the Python package {package}: {CORPORA_EXTRA}")


def read_blocks(path: Path, block_bytes: int) -> Iterator[bytes]:
    """The (decompressed) bytes of `path` in blocks of about `block_bytes`."""
    kind = compression_of(path)
    try:
        if kind == "zstd":
            yield from _zstd_blocks_checked(path, block_bytes)
            return
        opener = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}.get(kind or "", open)
        with opener(path, "rb") as f:
            while block := f.read(block_bytes):
                yield block
    except EOFError:
        raise CorpusError(
            f"{display(path)} is truncated: the {kind} stream ends before its end marker "
            "(an interrupted download?)"
        ) from None
    except (OSError, lzma.LZMAError, ValueError) as exc:
        if kind is None:
            raise CorpusError(
                f"cannot read corpus {display(path)}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        raise CorpusError(f"{display(path)} is not a valid {kind} file: {exc}") from None


def _zstd_blocks_checked(path: Path, block_bytes: int) -> Iterator[bytes]:
    """zstd frames decompressed one after another; a cut frame raises EOFError."""
    try:
        import zstandard
    except ImportError:
        raise need_extra("zstandard", f"reading {display(path)}") from None
    try:
        with open(path, "rb") as raw:
            decomp, in_frame = zstandard.ZstdDecompressor().decompressobj(), False
            while chunk := raw.read(block_bytes):
                while chunk:
                    in_frame = True
                    out = decomp.decompress(chunk)
                    if out:
                        yield out
                    if not decomp.eof:
                        break
                    chunk = decomp.unused_data  # the next frame's start, if any
                    decomp, in_frame = zstandard.ZstdDecompressor().decompressobj(), False
            if in_frame:
                raise EOFError
    except zstandard.ZstdError as exc:
        raise CorpusError(f"{display(path)} is not a valid zstd file: {exc}") from None
