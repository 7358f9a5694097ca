"""Documents stored as records: JSON Lines (.jsonl, .json), JSON arrays and Parquet.

Each record is one document: its text is the field (JSON) or column (Parquet) the
user names, "text" by default. Records are streamed: JSON Lines a block of lines
at a time, Parquet a row group at a time, so a shard of gigabytes never sits in
memory whole. Blank records are skipped, as blank files in a folder are; a record
without the field, a field that is not text or a line that is not JSON stops with
a message naming the file and the line (or row).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gptcore.data.compressed import display, need_extra, read_blocks
from gptcore.errors import CorpusError

JSON_SUFFIXES = {".jsonl", ".ndjson", ".json"}
PARQUET_SUFFIXES = {".parquet"}
MAX_JSON_ARRAY_BYTES = 1 << 30  # a JSON array is parsed whole: beyond this, use JSON Lines


class NotUtf8Record(CorpusError):
    """A record that is not valid UTF-8 (JSON must be); `reason` without a remedy."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"{reason}; convert it to UTF-8 or decode with replacement characters "
            "(decode_errors = replace)"
        )
        self.reason = reason


def _text_of(record: Any, field: str, where: str) -> str | None:
    """The record's document, None when blank; CorpusError when it has none."""
    if not isinstance(record, dict):
        raise CorpusError(f"{where} is not a JSON object with a {field!r} field")
    if field not in record:
        keys = ", ".join(sorted(map(str, record))[:8]) or "none"
        raise CorpusError(
            f"{where} has no field {field!r} (its fields: {keys}); choose one with text_field"
        )
    text = record[field]
    if text is None:
        return None
    if not isinstance(text, str):
        raise CorpusError(f"{where}: field {field!r} holds {type(text).__name__}, not text")
    return None if not text or text.isspace() else text


def _decode_line(line: bytes, errors: str, where: str) -> Any:
    import msgspec

    try:
        return msgspec.json.decode(line)
    except msgspec.DecodeError as exc:
        problem = str(exc)
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        if errors != "replace":
            raise NotUtf8Record(
                f"{where} is not valid UTF-8 (bad byte at column {bad.start + 1})"
            ) from None
        try:
            return msgspec.json.decode(line.decode("utf-8", "replace"))
        except msgspec.DecodeError as exc:
            problem = str(exc)
    raise CorpusError(f"{where} is not valid JSON ({problem})")


def _lines(path: Path, block_bytes: int) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of a (possibly compressed) file, streamed."""
    carry, number = b"", 0
    for block in read_blocks(path, block_bytes):
        lines = (carry + block).split(b"\n")
        carry = lines.pop()
        for line in lines:
            number += 1
            yield number, line
    if carry:
        yield number + 1, carry


def jsonl_documents(path: Path, field: str, errors: str, block_bytes: int) -> Iterator[str]:
    """The documents of a JSON Lines file (blank lines and blank records skipped)."""
    name = display(path)
    for number, line in _lines(path, block_bytes):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        text = _text_of(_decode_line(line, errors, where), field, where)
        if text is not None:
            yield text


def json_documents(path: Path, field: str, errors: str, block_bytes: int) -> Iterator[str]:
    """A .json file: a JSON array of records (parsed whole), else JSON Lines."""
    head = b""
    for block in read_blocks(path, 4096):
        head = block.lstrip()
        if head:
            break
    if not head.startswith(b"["):
        yield from jsonl_documents(path, field, errors, block_bytes)
        return
    data, size = [], 0
    for block in read_blocks(path, block_bytes):
        size += len(block)
        if size > MAX_JSON_ARRAY_BYTES:
            raise CorpusError(
                f"{display(path)} is a JSON array over {MAX_JSON_ARRAY_BYTES >> 20} MiB; "
                "write it as JSON Lines (one record per line) to stream it"
            )
        data.append(block)
    records = _decode_line(b"".join(data), errors, display(path))
    for i, record in enumerate(records):
        text = _text_of(record, field, f"{display(path)} record {i + 1}")
        if text is not None:
            yield text


# Python's str.isspace() characters, as an RE2 class: Arrow then finds the records
# parquet_documents skips as blank, with the same answer.
_PY_SPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
_BLANK = "^[" + "".join(f"\\x{{{ord(c):x}}}" for c in _PY_SPACE) + "]*$"


def _parquet_groups(path: Path, column: str, convert: Callable[[Any], list]) -> Iterator[list]:
    """convert(one row group's column), for each row group of a Parquet file, with
    every failure turned into a message naming the file."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise need_extra("pyarrow", f"reading {display(path)}") from None
    name = display(path)
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
        if column not in schema.names:
            names = ", ".join(schema.names[:8]) or "none"
            raise CorpusError(
                f"{name} has no column {column!r} (its columns: {names}); choose one "
                "with text_field"
            )
        kind = schema.field(column).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise CorpusError(f"{name}: column {column!r} holds {kind}, not text")
        for group in range(parquet.num_row_groups):
            yield convert(parquet.read_row_group(group, columns=[column]).column(0))
    except UnicodeDecodeError:
        raise NotUtf8Record(f"{name}: column {column!r} holds text that is not UTF-8") from None
    except (pa.ArrowException, OSError) as exc:
        raise CorpusError(f"{name} is not a readable Parquet file: {exc}") from None


def parquet_documents(path: Path, column: str) -> Iterator[str]:
    """The documents in one column of a Parquet file, read a row group at a time."""
    for texts in _parquet_groups(path, column, lambda values: values.to_pylist()):
        for text in texts:
            if text and not text.isspace():
                yield text


def _kept_lengths(values: Any) -> list:
    """The lengths (characters) of a row group's non-blank texts, computed in Arrow."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        values.validate(full=True)  # Arrow's string functions assume valid UTF-8
    except pa.ArrowInvalid:
        raise UnicodeDecodeError("utf-8", b"", 0, 1, "invalid UTF-8 in a Parquet column") from None
    blank = pc.fill_null(pc.match_substring_regex(values, _BLANK), True)  # null: blank
    return pc.filter(pc.utf8_length(values), pc.invert(blank)).to_pylist()


def parquet_lengths(path: Path, column: str) -> Iterator[int]:
    """The lengths of the documents parquet_documents yields, without building them
    as Python strings: measuring a Parquet corpus costs a read, not a conversion."""
    for lengths in _parquet_groups(path, column, _kept_lengths):
        yield from lengths
