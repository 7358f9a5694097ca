"""The Speed Lab's results: the report and the events a ladder run emits, saved as
JSON under DATA/speedlab/ named by time and device (so runs on different
machines can be compared: `list_results`), and how a report is described.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptcore.util import paths
from gptcore.util.fsutil import atomic_write_text


@dataclass
class RungResult:
    index: int
    key: str
    title: str
    tokens_per_s: float | None = None
    step_s: float | None = None
    peak_memory: int | None = None  # bytes; see memory_kind
    batch_size: int | None = None
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
    context: int
    batch_size: int
    steps: int
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

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | None = None) -> SpeedReport:
        names = {f.name for f in dataclasses.fields(RungResult)}
        rungs = [RungResult(**{k: v for k, v in r.items() if k in names}) for r in data["rungs"]]
        known = {f.name for f in dataclasses.fields(cls)} - {"rungs", "path"}
        return cls(**{k: v for k, v in data.items() if k in known}, rungs=rungs, path=path)


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
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return SpeedReport.from_dict(data, path=str(path))


def list_results() -> list[SpeedReport]:
    """Saved reports, newest first; unreadable files are left out."""
    folder = results_dir()
    reports = []
    for path in sorted(folder.glob("*.json"), reverse=True) if folder.is_dir() else []:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            reports.append(load_report(path))
    reports.sort(key=lambda r: r.started, reverse=True)
    return reports


def describe_workload(report: SpeedReport) -> str:
    """`book-124m · ctx 256 · batch 2 · 3 steps`."""
    return (
        f"{report.model} · ctx {report.context} · batch {report.batch_size} · "
        f"{report.steps} step{'s' if report.steps != 1 else ''}"
    )


def describe_device(report: SpeedReport) -> str:
    """`cpu · AMD EPYC · torch 2.5.1`."""
    return f"{report.device} · {report.device_name} · torch {report.torch_version}"
