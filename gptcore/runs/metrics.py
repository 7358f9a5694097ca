"""A run's event stream, metrics.jsonl: one JSON object per training event.

`MetricsWriter` appends and flushes a line per event (strict JSON: a NaN is
written as null) and each epoch's sample to samples.txt. `MetricsFollower` reads
the lines added since its last poll, so the TUI can watch a run started
elsewhere (tmux, torchrun); `read_metrics` reads a whole file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any, TextIO

from gptcore.errors import DiskFullError, GptTuiError
from gptcore.runs.events import Event, Sample, from_record, to_record
from gptcore.runs.rundir import RunDir
from gptcore.util.fsutil import disk_full


class MetricsWriter:
    """A listener appending one JSON line per event to metrics.jsonl, flushed at once.

    Every line is strict JSON: a non-finite number (a NaN loss) is written as null.
    Sample events also go to samples.txt next to it. A write that fails (a full disk)
    closes the writer and raises DiskFullError / GptTuiError with one line.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO | None = self.path.open("a", encoding="utf-8")
        self._samples = RunDir(self.path.parent).samples

    def __call__(self, event: Event) -> None:
        if self._file is None:
            return
        line = json.dumps(_finite(to_record(event)), allow_nan=False) + "\n"
        try:
            self._file.write(line)
            self._file.flush()
            if isinstance(event, Sample):
                with self._samples.open("a", encoding="utf-8") as f:
                    f.write(f"--- epoch {event.epoch + 1}, step {event.step}\n{event.text}\n\n")
        except OSError as exc:
            self.close()  # one report: later events are dropped
            if disk_full(exc):
                raise DiskFullError(
                    f"no space left on {self.path.parent}: cannot write {self.path.name}"
                ) from None
            raise GptTuiError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):  # a full disk can fail the last flush too
                self._file.close()
            self._file = None


def _finite(record: dict[str, Any]) -> dict[str, Any]:
    """The record with NaN and infinities as null, so the line stays strict JSON."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()
    }


class MetricsFollower:
    """Follows a metrics.jsonl being written by another process.

    `poll()` never blocks: it returns the events on complete lines added since
    the last call (a line still being written waits for its newline). A file
    that shrank (rewritten) is read again from the start.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.offset = 0
        self._partial = b""

    def poll(self) -> list[Event]:
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return []
        if size < self.offset:
            self.offset, self._partial = 0, b""
        if size == self.offset:
            return []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read(size - self.offset)
        self.offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        events = []
        for line in lines:
            event = parse_line(line)
            if event is not None:
                events.append(event)
        return events


def parse_line(line: bytes | str) -> Event | None:
    """The event on one metrics.jsonl line; None for a blank or malformed one."""
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return from_record(record) if isinstance(record, dict) else None


def read_metrics(path: str | Path) -> list[Event]:
    """Every event in a metrics.jsonl file (complete lines only)."""
    return MetricsFollower(path).poll()
