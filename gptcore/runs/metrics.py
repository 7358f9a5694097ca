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

from gptcore.errors import DamagedFile, DiskFullError, GptTuiError
from gptcore.runs.events import Event, Sample, decode_line, to_record
from gptcore.runs.rundir import RunDir
from gptcore.util.fsutil import disk_full
from gptcore.util.typedfile import MB, open_regular

READ_BYTES = 8 * MB  # read a large file in pieces: its text and its events never both whole
MAX_LINE = 16 * MB  # a longer line is damaged (the trainer's are well under 1 KB)


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

    `poll()` never blocks and never raises: it returns the events on complete lines
    added since the last call (a line still being written waits for its newline). A
    file that shrank (rewritten) is read again from the start. A damaged line (a
    wrong type, a number out of range, not JSON) is skipped and counted in `damaged`,
    the first one's message kept in `first_damage`; a file that cannot be read (a
    FIFO in its place, no permission) gives no events and says why in `problem`.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.offset = 0
        self.lines = 0  # complete lines read so far
        self.damaged = 0  # of them, skipped as damaged
        self.first_damage: str | None = None
        self.problem: str | None = None  # why the file cannot be read now, if it cannot
        self._partial = b""
        self._skipping = False  # inside a line longer than MAX_LINE: dropped to its end

    def poll(self) -> list[Event]:
        try:
            fd = open_regular(self.path)
        except FileNotFoundError:
            self.problem = None
            return []
        except DamagedFile as exc:
            self.problem = str(exc)
            return []
        events: list[Event] = []
        try:
            size = os.fstat(fd).st_size
            if size < self.offset:
                self._restart()
            os.lseek(fd, self.offset, os.SEEK_SET)
            while self.offset < size:
                data = os.read(fd, min(size - self.offset, READ_BYTES))
                if not data:
                    break
                self.offset += len(data)
                self._parse(data, events)
            self.problem = None
        except OSError as exc:
            self.problem = f"{self.path} cannot be read ({exc.strerror or exc})"
        finally:
            os.close(fd)
        return events

    def _restart(self) -> None:
        self.offset, self.lines, self.damaged, self.first_damage = 0, 0, 0, None
        self._partial, self._skipping = b"", False

    def _parse(self, data: bytes, events: list[Event]) -> None:
        *lines, partial = (self._partial + data).split(b"\n")
        if self._skipping and lines:  # the rest of an overlong line
            self._skipping = False
            lines = lines[1:]
        for line in lines:
            self.lines += 1
            if len(line) > MAX_LINE:
                self._damage(None, f"is longer than {MAX_LINE:,} bytes")
                continue
            try:
                event = decode_line(line, self.path)
            except DamagedFile as exc:
                self._damage(exc.field, exc.problem)
                continue
            if event is not None:
                events.append(event)
        if len(partial) > MAX_LINE and not self._skipping:
            self.lines += 1
            self._damage(None, f"is longer than {MAX_LINE:,} bytes")
            partial, self._skipping = b"", True
        self._partial = b"" if self._skipping else partial

    def _damage(self, field: str | None, problem: str) -> None:
        self.damaged += 1
        if self.first_damage is None:
            where = f"{self.path} line {self.lines}"
            self.first_damage = str(DamagedFile(where, problem, field))

    def report(self) -> str | None:
        """One line about what could not be read: the file itself, or its damaged lines."""
        if self.problem is not None:
            return self.problem
        if self.damaged:
            lines = "1 damaged line" if self.damaged == 1 else f"{self.damaged:,} damaged lines"
            return f"{lines} skipped; the first: {self.first_damage}"
        return None


def parse_line(line: bytes | str) -> Event | None:
    """The event on one metrics.jsonl line; None for a blank, unknown or damaged one."""
    try:
        return decode_line(line.encode() if isinstance(line, str) else line)
    except DamagedFile:
        return None


def read_metrics(path: str | Path) -> list[Event]:
    """Every event in a metrics.jsonl file (complete lines only; damaged ones skipped)."""
    return MetricsFollower(path).poll()
