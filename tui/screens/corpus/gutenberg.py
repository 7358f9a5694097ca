"""Preparing Project Gutenberg books from the Corpus screen (`g`): a dialog asks for
the books' folder, the output folder and whether to keep English only; a second
dialog runs gptcore.data.gutenberg.prepare_gutenberg in a worker with a progress
bar, then shows its kept/dropped report and offers to load the prepared folder as
the corpus. The same work as `gpt-tui corpus prepare gutenberg` (and resumable the
same way: Escape stops it, pressing g again carries on where it stopped).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, ProgressBar, Static
from textual.worker import Worker, WorkerState

from gptcore.data.gutenberg import prepare_gutenberg
from gptcore.errors import GptTuiError
from gptcore.util.fmt import format_duration
from gptcore.util.throttle import Throttle

from ..dialogs import FormDialog

PROGRESS_INTERVAL_S = 0.1  # at most ~10 progress messages a second, plus the last


@dataclass(frozen=True)
class GutenbergRequest:
    """What to prepare: the books under `folder`, cleaned into `out`."""

    folder: str
    out: str
    english_only: bool


def progress_text(done: int, total: int, elapsed_s: float) -> str:
    """`34/120 books · 12s elapsed · ETA 30s` (the ETA from the rate so far)."""
    eta = (total - done) * elapsed_s / done if done else None
    return (
        f"{done:,}/{total:,} books · {format_duration(elapsed_s)} elapsed · "
        f"ETA {format_duration(eta)}"
    )


class GutenbergDialog(FormDialog[GutenbergRequest]):
    """Ask for the books' folder, the output folder and English-only; Enter starts."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="gutenberg-cancel")]
    ACCEPT_ID = "gutenberg-start"

    def __init__(self, last: GutenbergRequest | None = None) -> None:
        super().__init__()
        self.last = last or GutenbergRequest("", "", False)  # asked again: as typed before

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide", id="gutenberg-dialog"):
            yield Static(
                "Prepare Project Gutenberg books as a corpus: headers and licences cut, "
                "duplicates dropped, one cleaned .txt file per book.",
                classes="question",
                markup=False,
            )
            with Horizontal(classes="gutenberg-field"):
                yield Label("books folder", markup=False)
                yield Input(
                    self.last.folder,
                    placeholder="a folder of downloaded .txt books",
                    id="gutenberg-folder",
                    compact=True,
                )
            with Horizontal(classes="gutenberg-field"):
                yield Label("output folder", markup=False)
                yield Input(
                    self.last.out,
                    placeholder="where the cleaned books go",
                    id="gutenberg-out",
                    compact=True,
                )
            yield Checkbox(
                "English books only", self.last.english_only, id="gutenberg-english", compact=True
            )
            yield Static("", id="gutenberg-error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button(
                    "Prepare (enter)", id="gutenberg-start", variant="warning", compact=True
                )
                yield Button("Cancel (esc)", id="gutenberg-no", compact=True)

    def accept(self) -> None:
        folder = self.query_one("#gutenberg-folder", Input).value.strip()
        out = self.query_one("#gutenberg-out", Input).value.strip()
        missing = "#gutenberg-folder" if not folder else "#gutenberg-out" if not out else None
        if missing is not None:  # the engine checks the rest and says what is wrong
            what = "books folder" if missing == "#gutenberg-folder" else "output folder"
            self.query_one("#gutenberg-error", Static).update(f"type the {what}")
            self.query_one(missing, Input).focus()
            return
        english = self.query_one("#gutenberg-english", Checkbox).value
        self.dismiss(GutenbergRequest(folder, out, english))


class GutenbergProgress(Message):
    def __init__(self, done: int, total: int) -> None:
        super().__init__()
        self.done, self.total = done, total


class GutenbergDone(Message):
    """The preparation ended: `report` (kept/dropped lines) or `error`."""

    def __init__(self, report: str = "", error: str = "") -> None:
        super().__init__()
        self.report, self.error = report, error


class _Stopped(Exception):
    """Raised from the progress callback to stop the preparation (Escape)."""


class GutenbergRunScreen(ModalScreen[str | None]):
    """Run one preparation; dismissed with the output folder to load it as the
    corpus, or None (Close, or Escape, which also stops a preparation under way)."""

    BINDINGS = [Binding("escape", "close", "Stop / close", id="gutenberg-close")]

    def __init__(self, request: GutenbergRequest) -> None:
        super().__init__()
        self.request = request
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._done, self._total = 0, 0
        self.finished = False  # the report (or an error) is shown

    def compose(self) -> ComposeResult:
        english = " (English only)" if self.request.english_only else ""
        with Vertical(classes="dialog wide", id="gutenberg-run"):
            yield Static(
                f"Preparing {self.request.folder} into {self.request.out}{english}",
                classes="question",
                markup=False,
            )
            yield ProgressBar(id="gutenberg-bar", show_eta=False)
            yield Static("", id="gutenberg-status", markup=False)
            yield Static("", id="gutenberg-report", markup=False)
            with Horizontal(classes="buttons"):
                yield Button(
                    "Load as corpus (enter)", id="gutenberg-load", variant="warning", compact=True
                )
                yield Button("Stop (esc)", id="gutenberg-stop", compact=True)

    def on_mount(self) -> None:
        self.query_one("#gutenberg-load", Button).display = False
        self._ticker = self.set_interval(1.0, self._show_status)  # elapsed moves on its own
        self._show_status()
        self._prepare(self.request, self._stop)

    @work(thread=True, exclusive=True, exit_on_error=False, group="gutenberg")
    def _prepare(self, request: GutenbergRequest, stop: threading.Event) -> None:

        updates = Throttle(PROGRESS_INTERVAL_S)

        def progress(done: int, total: int) -> None:
            if stop.is_set():
                raise _Stopped
            if updates.ready(force=done >= total):
                self.post_message(GutenbergProgress(done, total))

        try:
            report = prepare_gutenberg(
                request.folder, request.out, english_only=request.english_only, progress=progress
            )
        except _Stopped:
            return
        except GptTuiError as exc:
            self.post_message(GutenbergDone(error=str(exc)))
            return
        self.post_message(GutenbergDone(report=report.lines()))

    def _show_status(self) -> None:
        if self.finished:
            return
        elapsed = time.monotonic() - self._started
        if not self._total:
            text = f"finding the books · {format_duration(elapsed)} elapsed"
        else:
            text = progress_text(self._done, self._total, elapsed)
        self.query_one("#gutenberg-status", Static).update(text)

    def on_gutenberg_progress(self, message: GutenbergProgress) -> None:
        self._done, self._total = message.done, message.total
        self.query_one(ProgressBar).update(total=message.total, progress=message.done)
        self._show_status()

    def on_gutenberg_done(self, message: GutenbergDone) -> None:
        self._finish(message.report, message.error)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "gutenberg" and event.state == WorkerState.ERROR:
            self._finish("", f"the preparation failed: {event.worker.error}")

    def _finish(self, report: str, error: str) -> None:
        self.finished = True
        self._ticker.stop()
        elapsed = format_duration(time.monotonic() - self._started)
        status = self.query_one("#gutenberg-status", Static)
        if error:
            status.update(f"Not prepared: {error}")
            status.add_class("-error")
        else:
            status.update(f"Done in {elapsed}. Kept and dropped:")
            self.query_one("#gutenberg-report", Static).update(report)
            load = self.query_one("#gutenberg-load", Button)
            load.display = True
            load.focus()
        self.query_one("#gutenberg-stop", Button).label = "Close (esc)"

    def action_close(self) -> None:
        self._stop.set()  # a preparation under way stops at the next book
        self.dismiss(None)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "gutenberg-load":
            self.dismiss(self.request.out)
        else:
            self.action_close()
