"""`gpt-tui speedlab`: the chapter's speed-up ladder measured on this machine."""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
from typing import TYPE_CHECKING

from gptcore.errors import ConfigError
from gptcore.speedlab.results import (
    RungStarted,
    StepDone,
    describe_device,
    describe_workload,
    report_json,
    results_dir,
    scan_results,
)
from gptcore.speedlab.rungs import RUNGS
from gptcore.training.stopsignals import StopSignals
from gptcore.util.bars import bar
from gptcore.util.fmt import MISSING, format_bytes, format_si

from .flags import add_device_flag

if TYPE_CHECKING:
    from gptcore.speedlab.results import Event, SpeedReport

# gptcore.speedlab's defaults, without importing it (and torch) to build the parser.
DEFAULT_MODEL, DEFAULT_BATCH = "book-124m", 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "speedlab",
        help="measure the chapter's speed-ups, one on top of the other, on this machine",
        description="Times a few training steps on random tokens for each rung of the book's "
        "speed ladder (mask on the fly, TF32, fused AdamW, pinned memory, bf16, native "
        "LayerNorm/GELU, FlashAttention, torch.compile, padded vocabulary, largest batch), "
        "each keeping the ones before it, and saves the result with the device's name. "
        "Ctrl-C stops after the current step and keeps the rungs that finished.",
    )
    p.add_argument(
        "--model", default=DEFAULT_MODEL, metavar="PRESET", help=f"default: {DEFAULT_MODEL}"
    )
    p.add_argument("--context", type=int, metavar="N", help="default: the preset's")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH, metavar="N", help="default: 2")
    p.add_argument(
        "--steps", type=int, metavar="N", help="timed steps per rung (default: 3 on a CPU, 20 CUDA)"
    )
    add_device_flag(p)
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="include torch.compile (default: on CUDA only)",
    )
    p.add_argument("--json", action="store_true", help="print the saved result as JSON")
    p.add_argument("--list", action="store_true", help="list the saved results and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gptcore.speedlab.ladder import ReportNotSaved, run_ladder

    if args.list:
        return _list(args.json)
    for name in ("batch", "steps", "context"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name} must be at least 1, got {value}")
    stop = threading.Event()
    progress = _Progress(enabled=not args.json and sys.stderr.isatty())
    signals = StopSignals(lambda signum: stop.set())
    not_saved: ReportNotSaved | None = None
    with signals:
        try:
            report = run_ladder(
                args.model,
                context=args.context,
                batch=args.batch,
                steps=args.steps,
                device=args.device,
                compile=args.compile,
                on_event=progress,
                cancel=stop,
            )
        except ReportNotSaved as exc:  # the rungs were measured: print them all the same
            not_saved, report = exc, exc.report
    progress.done()
    if args.json:
        print(report_json(report))
    else:
        print(format_report(report, shutil.get_terminal_size().columns))
    if not_saved is not None:
        print(f"gpt-tui: error: {not_saved}", file=sys.stderr)
        return 1
    return signals.exit_code or 0


def _list(as_json: bool) -> int:
    import json

    reports, damaged = scan_results()
    if as_json:
        rows = [r.to_dict() | {"path": r.path} for r in reports]
        rows += [{"path": exc.path, "error": str(exc)} for exc in damaged]
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    for exc in damaged:
        print(f"damaged: {exc}")
    if not reports:
        print(f"no saved results in {results_dir()}; run: gpt-tui speedlab --model tiny")
        return 0
    for r in reports:
        best = max((r.ratio(rung) or 0.0 for rung in r.rungs), default=0.0)
        base = r.baseline
        speed = MISSING if base is None else f"{format_si(base, 'tok/s')} → {best:.2f}×"
        print(f"{r.started}  {describe_device(r)}")
        print(f"    {describe_workload(r)}  ·  rung 0 {speed}  ·  {r.path}")
    return 0


class _Progress:
    """One line on stderr, rewritten: the rung and step being timed."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.rung = ""

    def __call__(self, event: Event) -> None:

        if not self.enabled:
            return
        if isinstance(event, RungStarted):
            self.rung = f"rung {event.index}/{event.total - 1} {event.title}"
            self._show(self.rung)
        elif isinstance(event, StepDone):
            self._show(f"{self.rung} · step {event.step}/{event.steps}")

    def _show(self, text: str) -> None:
        print(f"\r\033[Kgpt-tui: {text}", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.enabled:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def format_report(report: SpeedReport, columns: int = 80) -> str:
    """The table: one bar per rung scaled to the fastest, ratio to rung 0, peak memory;
    the rungs that did not run, with the reason."""

    title_w = max(len(r.title) for r in report.rungs) if report.rungs else 10
    # "NN  title  bar  tok/s  ratio  memory"
    bar_w = max(8, min(40, columns - (4 + title_w + 2 + 2 + 9 + 8 + 9)))
    lines = [
        f"Speed Lab · {describe_workload(report)}",
        describe_device(report),
        "",
        f"{'#':>2}  {'rung':<{title_w}}  {'tokens/s (bar: vs. the fastest)':<{bar_w}}  "
        f"{'tok/s':>8} {'× rung 0':>8} {'peak mem':>9}",
    ]
    skipped = []
    for r in report.rungs:
        if not r.measured:
            skipped.append(r)
            lines.append(f"{r.index:>2}  {r.title:<{title_w}}  – skipped")
            continue
        ratio = report.ratio(r)
        batch = f"  (batch {r.batch_size})" if r.batch_size != report.batch_size else ""
        of_best = r.tokens_per_s / report.best if report.best > 0 else 0.0
        lines.append(
            f"{r.index:>2}  {r.title:<{title_w}}  {bar(of_best, bar_w)}  "
            f"{format_si(r.tokens_per_s):>8} "
            f"{(MISSING if ratio is None else f'{ratio:.2f}×'):>8} "
            f"{format_bytes(r.peak_memory):>9}{batch}"
        )
    if skipped:
        lines += ["", "not run here:"]
        lines += [f"{r.index:>2}  {r.title}: {r.skipped}" for r in skipped]
    lines += ["", f"peak memory: {MEMORY_NOTES.get(report.memory_kind, report.memory_kind)}"]
    if report.cancelled:
        lines.append(f"stopped after {len(report.rungs)} of {len(RUNGS)} rungs")
    lines.append(f"saved: {report.path}" if report.path else "nothing measured, nothing saved")
    return "\n".join(lines)


MEMORY_NOTES = {
    "cuda max allocated": "torch.cuda.max_memory_allocated during the rung",
    "peak RSS rise": "how far the process's peak resident memory rose during the rung",
    "ru_maxrss rise": "rise of the process's lifetime peak RSS (ru_maxrss) during the rung",
}
