"""How fast a metrics.jsonl is read: the typed reader against the old json path (issue 25).

    python benchmarks/bench_follow.py              # a ~100 MB file, 3 rounds each
    python benchmarks/bench_follow.py --mb 20 --rounds 5

Writes a metrics.jsonl of about --mb megabytes to a temporary folder, with the
events a training run writes (a step event per step, an evaluation every 20 steps,
a system sample every 50, a sample every 500, a NaN loss written as null now and
then), through the trainer's own MetricsWriter. Then it reads the whole file with
gptcore.runs.metrics.MetricsFollower (msgspec, decoding each line into its event
dataclass with types and ranges checked) and with a copy of the code it replaced
(json.loads + the old from_record, no checks), in alternating rounds in the same
process, and prints each reader's median and the ratio. Both must return the same
events. A shared machine is noisy: compare the ratio, not the seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's gptcore

from gptcore.runs.events import (
    EVENT_TYPES,
    EvalEnd,
    Event,
    RunStarted,
    Sample,
    StepEnd,
    SystemSample,
)
from gptcore.runs.metrics import MetricsFollower, MetricsWriter

# ---------------------------------------------------------------- the old path (yardstick)


def old_from_record(record: dict[str, Any]) -> Event | None:
    """gptcore.runs.events.from_record before the typed reader (kept as it was)."""
    cls = EVENT_TYPES.get(record.get("event", ""))
    if cls is None:
        return None
    fields = {f.name: f.type for f in dataclasses.fields(cls)}
    values = {
        k: math.nan if v is None and fields[k] == "float" else v
        for k, v in record.items()
        if k in fields
    }
    try:
        return cls(**values)
    except TypeError:
        return None


def old_parse_line(line: bytes) -> Event | None:
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return old_from_record(record) if isinstance(record, dict) else None


def old_read(path: Path) -> list[Event]:
    """The old MetricsFollower.poll on a whole file: read it, split, parse each line."""
    with path.open("rb") as f:
        data = f.read()
    *lines, _ = data.split(b"\n")
    return [e for e in map(old_parse_line, lines) if e is not None]


# ---------------------------------------------------------------- the file


def write_metrics(path: Path, megabytes: float) -> int:
    """A metrics.jsonl of about `megabytes` MB, written as the trainer writes it."""
    writer = MetricsWriter(path)
    start = 1_700_000_000.0
    writer(RunStarted(str(path.parent), "cuda:0", "bf16", 1_000_000, 124_439_808, time=start))
    step, tokens = 0, 0
    while path.stat().st_size < megabytes * 1e6:
        for _ in range(1000):
            tokens += 8192
            loss = math.nan if step % 997 == 996 else 10.0 * math.exp(-step / 5e4) + 2.5
            writer(
                StepEnd(
                    step, step // 10_000, loss, 4e-4 * min(1.0, step / 2000), tokens,
                    41_234.5 + step % 7, 0.8 + (step % 13) / 10, 0.41, step * 0.19,
                    1_000_000, time=start + step * 0.19,
                )
            )  # fmt: skip
            if step % 20 == 19:
                writer(EvalEnd(step, step // 10_000, loss, loss + 0.3, tokens, start + step * 0.19))
            if step % 50 == 49:
                writer(
                    SystemSample(
                        step, step // 10_000, 99.5, 3_456_789_012, "NVIDIA H100 80GB HBM3",
                        41_000_000_000, 85_000_000_000, 97.0, start + step * 0.19,
                    )
                )  # fmt: skip
            if step % 500 == 499:
                writer(Sample(step, step // 10_000, "Every effort moves you " * 4))
            step += 1
    writer.close()
    return step


def same_events(a: list[Event], b: list[Event]) -> bool:
    """Equal event by event, a NaN equal to a NaN."""

    def key(event: Event) -> tuple:
        return tuple(
            "nan" if isinstance(v, float) and math.isnan(v) else v for v in vars(event).values()
        )

    return len(a) == len(b) and all(
        type(x) is type(y) and key(x) == key(y) for x, y in zip(a, b, strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0, help="file size in MB (default 100)")
    parser.add_argument("--rounds", type=int, default=3, help="reads per reader (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metrics.jsonl"
        steps = write_metrics(path, args.mb)
        size = path.stat().st_size
        lines = sum(1 for _ in path.open("rb"))
        print(f"metrics.jsonl: {size / 1e6:.1f} MB, {lines:,} lines, {steps:,} steps")
        times: dict[str, list[float]] = {
            "typed reader (msgspec)": [],
            "old (json + from_record)": [],
        }
        readers = {
            "typed reader (msgspec)": lambda: MetricsFollower(path).poll(),
            "old (json + from_record)": lambda: old_read(path),
        }
        for _ in range(args.rounds):  # alternating; each result dropped before the next read
            for name, read in readers.items():
                gc.collect()
                t0 = time.perf_counter()
                events = read()
                times[name].append(time.perf_counter() - t0)
                del events
        new, old = readers["typed reader (msgspec)"](), readers["old (json + from_record)"]()
        if not same_events(new, old):
            raise SystemExit(f"the readers disagree: {len(new):,} events against {len(old):,}")
        print(f"events read: {len(new):,} (both readers agree)")
        for name, values in times.items():
            med = statistics.median(values)
            runs = ", ".join(f"{v:.2f}" for v in values)
            print(f"  {name:<26} median {med:6.2f} s  ({size / 1e6 / med:5.0f} MB/s)  [{runs}]")
        ratio = statistics.median(times["old (json + from_record)"]) / statistics.median(
            times["typed reader (msgspec)"]
        )
        print(f"typed reader: {ratio:.2f}x the speed of the old path (cpus: {os.cpu_count()})")


if __name__ == "__main__":
    main()
