"""Run folders: where a run keeps its config, its metrics stream, samples and checkpoints.

    RUN_DIR/config.toml      the resolved [model] and [train] settings (loadable with --config)
    RUN_DIR/metrics.jsonl    one JSON object per training event, flushed as it happens
    RUN_DIR/samples.txt      each epoch's sample
    RUN_DIR/checkpoints/     one folder per checkpoint (see checkpoint.py)

`MetricsFollower` reads metrics.jsonl incrementally, so the TUI can watch a
run that was started elsewhere (tmux, torchrun).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .config import GPTConfig, TrainConfig
from .events import Event, Sample, from_record, to_record
from .paths import runs_dir

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.jsonl"
SAMPLES_FILE = "samples.txt"


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


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def config_toml(model: GPTConfig, train: TrainConfig) -> str:
    """The resolved run settings as TOML (None values are left out: they are defaults)."""
    lines = ["# written by gpt-tui: the resolved settings of this run", "", "[model]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in model.to_dict().items()]
    lines += ["", "[train]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in train.to_dict().items() if v is not None]
    return "\n".join(lines) + "\n"


def write_run_config(run_dir: Path, model: GPTConfig, train: TrainConfig) -> Path:
    from .checkpoint import atomic_write_text

    path = Path(run_dir) / CONFIG_FILE
    atomic_write_text(path, config_toml(model, train))
    return path


class MetricsWriter:
    """A listener appending one JSON line per event to metrics.jsonl, flushed at once.

    Sample events also go to samples.txt next to it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO | None = self.path.open("a", encoding="utf-8")
        self._samples = self.path.with_name(SAMPLES_FILE)

    def __call__(self, event: Event) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(to_record(event), allow_nan=True) + "\n")
        self._file.flush()
        if isinstance(event, Sample):
            with self._samples.open("a", encoding="utf-8") as f:
                f.write(f"--- epoch {event.epoch + 1}, step {event.step}\n{event.text}\n\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


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
    last_step: int | None
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
    last = _last_record(run_dir / METRICS_FILE)
    if last is None:
        status = "new"
    elif last["event"] == "finished":
        status = "cancelled" if last.get("reason") == "cancelled" else "finished"
    elif last["event"] == "failed":
        status = "failed"
    else:
        status = "running"
    ckpts = run_dir / "checkpoints"
    n = sum(1 for p in ckpts.iterdir() if not p.name.startswith(".")) if ckpts.is_dir() else 0
    step = last.get("step") if last else None
    return RunInfo(
        path=run_dir,
        name=run_dir.name,
        created=run_dir.stat().st_mtime if run_dir.exists() else 0.0,
        status=status,
        last_step=step if isinstance(step, int) else None,
        last_event=last,
        checkpoints=n,
    )


def list_runs(root: str | Path | None = None) -> list[RunInfo]:
    """Every run folder under the runs folder, oldest first."""
    root = Path(root) if root is not None else runs_dir()
    if not root.is_dir():
        return []
    runs = [
        p
        for p in sorted(root.iterdir())
        if p.is_dir() and ((p / CONFIG_FILE).exists() or (p / METRICS_FILE).exists())
    ]
    return [run_status(p) for p in runs]
