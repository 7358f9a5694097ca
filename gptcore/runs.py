"""Run folders: where a run keeps its config, its metrics stream, samples and checkpoints.

    RUN_DIR/config.toml      the resolved [model] and [train] settings (loadable with --config)
    RUN_DIR/metrics.jsonl    one JSON object per training event, flushed as it happens
    RUN_DIR/samples.txt      each epoch's sample
    RUN_DIR/checkpoints/     one folder per checkpoint (see checkpoint.py)
    RUN_DIR/exports/         the book's .pth and Hugging Face exports of its checkpoints
    RUN_DIR/loss.png         the loss plot, when exported
    RUN_DIR/timeline.json    the sample timeline's cached samples (see timeline.py)
    RUN_DIR/.lock            held while a process trains into the run (see runlock.py)

`RunDir` owns these names: nothing else spells them out. `MetricsFollower`
reads metrics.jsonl incrementally, so the TUI can watch a run that was
started elsewhere (tmux, torchrun).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .config import GPTConfig, TrainConfig
from .errors import DiskFullError, GptTuiError
from .events import Event, Sample, from_record, steps_done, to_record
from .fsutil import atomic_write_bytes, disk_full
from .paths import runs_dir
from .tomlwrite import dumps_toml

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.jsonl"
SAMPLES_FILE = "samples.txt"
CHECKPOINTS_DIR = "checkpoints"
EXPORTS_DIR = "exports"
LOSS_PLOT = "loss.png"
TIMELINE_FILE = "timeline.json"
LOCK_FILE = ".lock"


@dataclass(frozen=True, init=False)
class RunDir:
    """A run folder and every path inside it.

    Build it from the folder (`RunDir(path)`) or from one of its checkpoints
    (`RunDir.of_checkpoint(path)`). Paths are computed, never created here.
    """

    path: Path

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    @classmethod
    def of_checkpoint(cls, checkpoint: str | Path) -> RunDir | None:
        """The run a checkpoint folder belongs to; None for one outside a run's checkpoints/."""
        checkpoint = Path(checkpoint)
        if checkpoint.parent.name != CHECKPOINTS_DIR:
            return None
        return cls(checkpoint.parent.parent)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def samples(self) -> Path:
        return self.path / SAMPLES_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def exports(self) -> Path:
        return self.path / EXPORTS_DIR

    @property
    def loss_plot(self) -> Path:
        return self.path / LOSS_PLOT

    @property
    def timeline(self) -> Path:
        return self.path / TIMELINE_FILE

    @property
    def lock(self) -> Path:
        return self.path / LOCK_FILE

    def checkpoint(self, step: int) -> Path:
        """The folder of the automatic checkpoint after `step` optimizer steps."""
        return self.checkpoints / f"step-{step:06d}"

    def checkpoint_dirs(self) -> list[Path]:
        """Every entry of checkpoints/ (damaged ones too), by name; hidden temporaries left out."""
        if not self.checkpoints.is_dir():
            return []
        return sorted(p for p in self.checkpoints.iterdir() if not p.name.startswith("."))

    def has_checkpoints(self) -> bool:
        return self.checkpoints.is_dir()

    def pth_export(self, checkpoint_name: str) -> Path:
        """Where a checkpoint's book-format .pth export goes."""
        return self.exports / f"{checkpoint_name}.pth"

    def hf_export(self, checkpoint_name: str) -> Path:
        """Where a checkpoint's Hugging Face export folder goes."""
        return self.exports / f"{checkpoint_name}-hf"

    def is_run(self) -> bool:
        """Whether the folder looks like a run (it has a config or a metrics stream)."""
        return self.path.is_dir() and (self.config.exists() or self.metrics.exists())

    def holds_run(self) -> bool:
        """Whether training here would mix with an earlier run's files."""
        return self.is_run() or self.has_checkpoints()


def checkpoint_label(checkpoint: str | Path) -> str:
    """`RUN/NAME` for a checkpoint inside a run, else its path: how screens name one."""
    checkpoint = Path(checkpoint)
    run = RunDir.of_checkpoint(checkpoint)
    return f"{run.name}/{checkpoint.name}" if run is not None else str(checkpoint)


def resume_command(spec: str | Path) -> str:
    """The shell command that continues a run headless (quoted for pasting)."""
    return f"gpt-tui train --resume {shlex.quote(str(spec))}"


def new_run_dir(name: str | None = None, root: str | Path | None = None) -> Path:
    """Create and return a fresh folder `YYYYmmdd-HHMMSS[-name]` under the runs folder."""
    root = Path(root) if root is not None else runs_dir()
    root.mkdir(parents=True, exist_ok=True)
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") if name else ""
    base = time.strftime("%Y%m%d-%H%M%S") + (f"-{label}" if label else "")
    n = 1
    while True:
        path = root / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1


RUN_CONFIG_COMMENT = "written by gpt-tui: the resolved settings of this run"


def config_toml(
    model: GPTConfig, train: TrainConfig, comment: str | None = RUN_CONFIG_COMMENT
) -> str:
    """The resolved settings as TOML that `load_run_config` reads back to equal
    configs (None values are left out: they are defaults)."""
    return dumps_toml({"model": model.to_dict(), "train": train.to_dict()}, comment=comment)


def write_run_config(run_dir: str | Path, model: GPTConfig, train: TrainConfig) -> Path:
    """Write RUN_DIR/config.toml atomically and return its path."""
    path = RunDir(run_dir).config
    # surrogateescape: a path whose name is not UTF-8 (os.fsdecode's surrogates) is
    # written as its bytes on disk, which load_toml reads back to the same path
    atomic_write_bytes(path, config_toml(model, train).encode("utf-8", "surrogateescape"))
    return path


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


@dataclass
class RunInfo:
    path: Path
    name: str
    created: float
    status: str  # "running", "finished", "cancelled", "failed", or "new"
    last_step: int | None  # optimizer steps completed, as the last event says
    last_event: dict[str, Any] | None
    checkpoints: int


def _last_record(path: Path, tail_bytes: int = 65536) -> dict[str, Any] | None:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - tail_bytes))
            data = f.read()
    except OSError:
        return None
    for line in reversed(data.split(b"\n")):
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(record, dict) and "event" in record:
            return record
    return None


def run_status(run_dir: str | Path) -> RunInfo:
    """What a run folder's files say about it."""
    run_dir = Path(run_dir)
    last = _last_record(RunDir(run_dir).metrics)
    if last is None:
        status = "new"
    elif last["event"] == "finished":
        status = "cancelled" if last.get("reason") == "cancelled" else "finished"
    elif last["event"] == "failed":
        status = "failed"
    else:
        status = "running"
    n = len(RunDir(run_dir).checkpoint_dirs())
    event = from_record(last) if last else None
    return RunInfo(
        path=run_dir,
        name=run_dir.name,
        created=run_dir.stat().st_mtime if run_dir.exists() else 0.0,
        status=status,
        last_step=steps_done(event) if event and isinstance(event.step, int) else None,
        last_event=last,
        checkpoints=n,
    )


def list_runs(root: str | Path | None = None) -> list[RunInfo]:
    """Every run folder under the runs folder, oldest first."""
    root = Path(root) if root is not None else runs_dir()
    if not root.is_dir():
        return []
    return [run_status(p) for p in sorted(root.iterdir()) if RunDir(p).is_run()]
