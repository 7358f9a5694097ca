"""The Speed Lab screen: the chapter's speed-up ladder measured on this machine.

gptcore.run_ladder does the work in a thread worker; its events come
back as messages (steps coalesced to about ten a second) and fill one row per
rung: a bar scaled to the fastest rung, tokens/s, the ratio to rung 0 and the
peak memory, or the reason a rung does not run here. The newest saved result
shows when the screen opens; any saved one can be picked to compare machines.
"""

from __future__ import annotations

import threading

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, ProgressBar, Select, Static
from textual.worker import Worker, WorkerState, get_current_worker

from gptcore.errors import GptTuiError
from gptcore.settings.model import PRESETS
from gptcore.speedlab.results import (
    Event,
    RungFinished,
    RungResult,
    RungStarted,
    SpeedReport,
    StepDone,
    describe_device,
    describe_workload,
    scan_results,
)
from gptcore.speedlab.rungs import DEFAULT_BATCH, RUNGS
from gptcore.util.fmt import MISSING, format_bytes, format_si
from gptcore.util.throttle import Throttle

from ..widgets.bars import Bar

PROGRESS_INTERVAL_S = 0.1
DEFAULT_MODEL = "tiny"  # a first look in seconds; book-124m is the chapter's workload
DEFAULT_STEPS = "3"


class LabEvent(Message):
    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class LabDone(Message):
    def __init__(self, report: SpeedReport) -> None:
        super().__init__()
        self.report = report


class SavedResults(Message):
    """The saved reports, newest first, and why each unreadable file is (one line each)."""

    def __init__(self, reports: list[SpeedReport], damaged: list[str]) -> None:
        super().__init__()
        self.reports, self.damaged = reports, damaged


def report_label(report: SpeedReport) -> str:
    """`2025-01-31 14:02 · tiny · AMD EPYC` for the saved-results picker."""
    when = report.started[:16].replace("T", " ")
    return f"{when} · {report.model} · {report.device_name}"


def results_table(report: SpeedReport, running: int | None = None) -> Table:
    """One row per rung: bar (scaled to the fastest), tok/s, ratio to rung 0, memory;
    a rung that did not run shows its reason; rungs not reached yet show a dot."""
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(justify="right", width=2)
    table.add_column(no_wrap=True)
    table.add_column(ratio=1, overflow="fold")
    table.add_column(justify="right", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_row("#", "rung", "tokens/s", "tok/s", "×rung0", "memory", style="bold")
    done = {r.index: r for r in report.rungs}
    best = report.best
    for index, rung in enumerate(RUNGS):
        result: RungResult | None = done.get(index)
        if result is None:
            state = "running…" if index == running else "·"
            table.add_row(str(index), rung.title, Text(state, style="dim"), "", "", "")
        elif not result.measured:
            # One line (the full reasons are listed under the table).
            reason = Text(result.skipped or "", style="dim", no_wrap=True, overflow="ellipsis")
            table.add_row(str(index), Text(rung.title, style="dim"), reason)
        else:
            ratio = report.ratio(result)
            table.add_row(
                str(index),
                rung.title,
                Bar((result.tokens_per_s or 0.0) / best if best > 0 else 0.0, style="green"),
                format_si(result.tokens_per_s or 0.0),
                MISSING if ratio is None else f"{ratio:.2f}×",
                format_bytes(result.peak_memory),
            )
    return table


def skipped_note(report: SpeedReport) -> Text:
    """What the memory column measures, then each rung not run here with its reason."""
    text = Text(style="dim")
    if report.memory_kind:
        text.append(f"memory: {report.memory_kind}")
    for r in report.rungs:
        if r.skipped:
            text.append(f"\n{r.index} {r.title}: {r.skipped}")
    return text


class SpeedLabPane(Container, can_focus=True):
    """Run the speed ladder on a chosen workload; show it, or a saved result."""

    BINDINGS = [
        Binding("s", "start", "Start", id="speedlab-start"),
        Binding("c,escape", "cancel", "Cancel", id="speedlab-cancel"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.report: SpeedReport | None = None  # shown: a saved one or the run's so far
        self.saved: list[SpeedReport] = []
        self.running_rung: int | None = None
        self._stop: threading.Event | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="speedlab-controls"):
            yield Label("model")
            yield Select(
                [(name, name) for name in PRESETS],
                value=DEFAULT_MODEL,
                allow_blank=False,
                compact=True,
                id="speedlab-model",
            )
            yield Label("steps")
            yield Input(DEFAULT_STEPS, compact=True, id="speedlab-steps")
        with Horizontal(id="speedlab-saved-row"):
            yield Label("saved")
            yield Select([], prompt="no saved results", compact=True, id="speedlab-saved")
        with Horizontal(id="speedlab-progress-row"):
            yield ProgressBar(show_eta=False, id="speedlab-bar")
            yield Static("", id="speedlab-status")
        yield Static("", id="speedlab-header")
        with VerticalScroll(id="speedlab-results"):
            yield Static("", id="speedlab-table")
            yield Static("", id="speedlab-note")

    def on_mount(self) -> None:
        self.query_one("#speedlab-bar", ProgressBar).display = False
        self._status("s starts: each rung keeps the speed-ups above it")
        self._list_saved()

    @property
    def running(self) -> bool:
        return any(w.group == "speedlab" and not w.is_finished for w in self.workers)

    # ------------------------------------------------------------ saved results

    @work(thread=True, exit_on_error=False, group="speedlab-saved")
    def _list_saved(self) -> None:
        reports, damaged = scan_results()
        self.post_message(SavedResults(reports, [str(exc) for exc in damaged]))

    def on_saved_results(self, message: SavedResults) -> None:
        self.saved = message.reports
        if message.damaged:  # listed without them, but never silently
            more = f" (and {len(message.damaged) - 1} more)" if len(message.damaged) > 1 else ""
            self.notify(message.damaged[0] + more, title="Speed", severity="warning", markup=False)
        select = self.query_one("#speedlab-saved", Select)
        with self.prevent(Select.Changed):
            select.set_options((report_label(r), r.path) for r in self.saved)
            if self.saved:
                select.value = self.saved[0].path
        if self.saved and not self.running:
            self.show(self.saved[0])

    @on(Select.Changed, "#speedlab-saved")
    def _saved_picked(self, event: Select.Changed) -> None:
        for report in self.saved:
            if report.path == event.value and not self.running:
                self.show(report)

    # ------------------------------------------------------------ showing

    def show(self, report: SpeedReport) -> None:
        self.report = report
        self.query_one("#speedlab-header", Static).update(
            Text(f"{describe_workload(report)}\n{describe_device(report)}")
        )
        self._render_table()

    def _render_table(self) -> None:
        if self.report is None:
            return
        self.query_one("#speedlab-table", Static).update(
            results_table(self.report, self.running_rung)
        )
        self.query_one("#speedlab-note", Static).update(skipped_note(self.report))

    def _status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#speedlab-status", Static)
        status.update(Text(text))
        status.set_class(error, "-error")

    # ------------------------------------------------------------ running

    def action_start(self) -> None:
        if self.running:
            self.notify("the Speed Lab is already running; c cancels it", severity="warning")
            return
        model = self.query_one("#speedlab-model", Select).value
        text = self.query_one("#speedlab-steps", Input).value.strip()
        if not text.isdigit() or int(text) < 1:
            self._status(f"steps must be a whole number ≥ 1, got {text!r}", error=True)
            return
        steps = int(text)
        self._stop = threading.Event()
        self.running_rung = None
        self.show(
            SpeedReport(
                device="…",
                device_name="this machine",
                torch_version="…",
                model=str(model),
                context=PRESETS[str(model)].context_length,
                batch_size=DEFAULT_BATCH,
                steps=steps,
                started="",
                memory_kind="",
            )
        )
        bar = self.query_one("#speedlab-bar", ProgressBar)
        bar.update(total=len(RUNGS), progress=0)
        bar.display = True
        self._status("starting…")
        self._run(str(model), steps, self._stop)

    @work(thread=True, exclusive=True, exit_on_error=False, group="speedlab")
    def _run(self, model: str, steps: int, stop: threading.Event) -> None:
        from gptcore.speedlab.ladder import run_ladder  # torch: loaded by the first run

        worker = get_current_worker()
        steps_shown = Throttle(PROGRESS_INTERVAL_S)

        def on_event(event: Event) -> None:
            if isinstance(event, StepDone):  # coalesced: a tiny model steps very fast
                last_of_rung = event.step == event.steps
                if not steps_shown.ready(force=last_of_rung):
                    return
            self.post_message(LabEvent(event))

        report = run_ladder(model, steps=steps, on_event=on_event, cancel=stop)
        if not worker.is_cancelled:
            self.post_message(LabDone(report))

    def on_lab_event(self, message: LabEvent) -> None:
        event = message.event
        if isinstance(event, RungStarted):
            self.running_rung = event.index
            self._status(f"rung {event.index} of {event.total - 1}: {event.title}")
            self._render_table()
        elif isinstance(event, StepDone):
            title = RUNGS[event.index].title
            self._status(f"rung {event.index}: {title} · step {event.step}/{event.steps}")
        elif isinstance(event, RungFinished) and self.report is not None:
            self.report.rungs.append(event.result)
            self.query_one("#speedlab-bar", ProgressBar).update(progress=event.result.index + 1)
            self._render_table()

    def on_lab_done(self, message: LabDone) -> None:
        self.running_rung = None
        self.query_one("#speedlab-bar", ProgressBar).display = False
        report = message.report
        self.show(report)
        where = f"saved {report.path}" if report.path else "nothing measured, nothing saved"
        self._status(f"{'cancelled' if report.cancelled else 'done'} · {where}")
        self._list_saved()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "speedlab" or event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        text = str(error) if isinstance(error, GptTuiError) else f"{type(error).__name__}: {error}"
        self.running_rung = None
        self.query_one("#speedlab-bar", ProgressBar).display = False
        self._status(text, error=True)
        self.notify(text, title="Speed Lab failed", severity="error", markup=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            # Nothing to cancel: Escape falls through to the app (leave the input).
            return self._stop is not None and self.running
        return True

    def action_cancel(self) -> None:
        if self._stop is None or not self.running:
            return
        self._stop.set()
        self._status("stopping after this step…")
