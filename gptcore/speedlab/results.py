"""The Speed Lab's results: the report and the events a ladder run emits, saved as
JSON under DATA/speedlab/ named by time and device (so runs on different
machines can be compared: `scan_results`), and how a report is described.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import msgspec

from gptcore.errors import DamagedFile
from gptcore.util import paths
from gptcore.util.fsutil import atomic_write_text
from gptcore.util.typedfile import Count, read_json

# A measured rate or duration: >= 0, finite (a saved result's schema refuses the rest).
Measure = Annotated[float, msgspec.Meta(ge=0.0, le=sys.float_info.max)]


# The field types are the saved JSON's schema too: load_report decodes a file straight
# into these dataclasses through the typed reader (gptcore.util.typedfile).
@dataclass
class RungResult:
    index: Count
    key: str
    title: str
    tokens_per_s: Measure | None = None
    step_s: Measure | None = None
    peak_memory: Count | None = None  # bytes; see memory_kind
    batch_size: Count | None = None
    skipped: str | None = None  # why the rung did not run here

    @property
    def measured(self) -> bool:
        return self.tokens_per_s is not None


@dataclass
class SpeedReport:
    device: str  # "cpu", "cuda:0", ...
    device_name: str  # "AMD EPYC 9R14", "NVIDIA H100 80GB HBM3"
    torch_version: str
    model: str
    context: Count
    batch_size: Count
    steps: Count
    started: str  # ISO 8601, UTC
    memory_kind: str  # "cuda max allocated", "peak RSS rise", "ru_maxrss rise"
    rungs: list[RungResult] = field(default_factory=list)
    cancelled: bool = False
    path: str | None = None  # where it was saved

    @property
    def baseline(self) -> float | None:
        first = self.rungs[0] if self.rungs else None
        return first.tokens_per_s if first is not None and first.measured else None

    def ratio(self, rung: RungResult) -> float | None:
        base = self.baseline
        if base is None or not rung.measured or base <= 0:
            return None
        return rung.tokens_per_s / base  # type: ignore[operator]

    @property
    def best(self) -> float:
        return max((r.tokens_per_s or 0.0 for r in self.rungs), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("path")
        for rung, out in zip(self.rungs, data["rungs"], strict=True):
            out["ratio"] = self.ratio(rung)
        return data


# Progress events: plain data, as the Trainer's.
@dataclass(frozen=True)
class RungStarted:
    index: int
    total: int
    title: str


@dataclass(frozen=True)
class StepDone:
    index: int  # the rung
    step: int  # 1-based, warm-up steps included
    steps: int


@dataclass(frozen=True)
class RungFinished:
    result: RungResult


Event = RungStarted | StepDone | RungFinished


class Cancelled(Exception):
    pass


def results_dir() -> Path:
    return paths.data_dir() / "speedlab"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "device"


def save_report(report: SpeedReport) -> Path:
    """Write the report atomically as DATA/speedlab/TIME-DEVICE.json; sets report.path."""
    folder = results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = re.sub(r"[^0-9T]", "", report.started)[:15]
    path = folder / f"{stamp}-{_slug(report.device_name)}.json"
    atomic_write_text(path, report_json(report) + "\n")
    report.path = str(path)
    return path


def report_json(report: SpeedReport) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False)


def load_report(path: str | Path) -> SpeedReport:
    """A saved report, through the typed reader: DamagedFile names the file and the
    field of anything wrong (a FIFO in its place, a string where a rate goes)."""
    report = read_json(path, SpeedReport)
    report.path = str(path)
    return report


def scan_results() -> tuple[list[SpeedReport], list[DamagedFile]]:
    """Saved reports, newest first, and the files in the results folder that could
    not be read (each names its file and field)."""
    folder = results_dir()
    reports, damaged = [], []
    try:
        paths = sorted(folder.glob("*.json"), reverse=True) if folder.is_dir() else []
    except OSError as exc:
        return [], [DamagedFile(folder, f"cannot be read ({exc.strerror or exc})")]
    for path in paths:
        try:
            reports.append(load_report(path))
        except DamagedFile as exc:
            damaged.append(exc)
        except FileNotFoundError:
            continue  # deleted meanwhile
    reports.sort(key=lambda r: r.started, reverse=True)
    return reports, damaged


def describe_workload(report: SpeedReport) -> str:
    """`book-124m · ctx 256 · batch 2 · 3 steps`."""
    return (
        f"{report.model} · ctx {report.context} · batch {report.batch_size} · "
        f"{report.steps} step{'s' if report.steps != 1 else ''}"
    )


def describe_device(report: SpeedReport) -> str:
    """`cpu · AMD EPYC · torch 2.5.1`."""
    return f"{report.device} · {report.device_name} · torch {report.torch_version}"
