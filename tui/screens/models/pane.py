"""The Models screen: OpenAI's GPT-2 in four sizes and two layouts, on disk or not.

Each row is one size from one source (Hugging Face safetensors, which loads
without TensorFlow, or OpenAI's TensorFlow checkpoint). Downloads run in a thread
worker through gptcore.weights.downloads.download_gpt2, which resumes partial files and
retries dropped connections; its progress events are coalesced to about ten
messages a second. When the screen first shows, a quick probe (one request per
server, a few seconds at most) says whether the machine looks offline; a failed
download shows the engine's error (what was tried, and which folder to fill by hand).
Every key that cannot act on the highlighted row says why (models.status).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.message import Message
from textual.widgets import DataTable, ProgressBar, Static
from textual.worker import Worker, WorkerState

from gptcore.errors import DownloadError, GptTuiError
from gptcore.util.download import DownloadCancelled
from gptcore.util.fmt import format_bytes
from gptcore.util.throttle import Throttle
from gptcore.weights.downloads import (
    delete_gpt2,
    download_gpt2,
    find_gpt2,
    local_status,
    probe_servers,
)
from gptcore.weights.gpt2 import PREFERRED_SOURCES, SIZES, SOURCE_LABELS

from ...messages import CheckpointsChanged, OpenInChat
from ..dialogs import ConfirmScreen
from .status import hint_text, progress_line, refusal, status_text
from .table import WeightsTable

if TYPE_CHECKING:
    from gptcore.util.download import DownloadProgress
    from gptcore.weights.downloads import LocalWeights

PROGRESS_INTERVAL_S = 0.1
PROBE_TIMEOUT_S = 3.0  # per server; the probe never retries


class ModelStatuses(Message):
    def __init__(self, statuses: dict[tuple[str, str], LocalWeights]) -> None:
        super().__init__()
        self.statuses = statuses


class DownloadUpdate(Message):
    def __init__(self, progress: DownloadProgress) -> None:
        super().__init__()
        self.progress = progress


class DownloadFinished(Message):
    def __init__(self, size: str, source: str, path: Path) -> None:
        super().__init__()
        self.size, self.source, self.path = size, source, path


class ServersProbed(Message):
    def __init__(self, problem: str | None) -> None:
        super().__init__()
        self.problem = problem  # None: a download server answered


class WeightsDeleted(Message):
    """Deleting weights ended: `error` why it failed, `left` what stayed in the folder."""

    def __init__(self, label: str, error: str | None, left: str | None = None) -> None:
        super().__init__()
        self.label, self.error, self.left = label, error, left


class ModelsPane(Container, can_focus=True):
    """GPT-2 weights: status, download with progress, cancel, resume, delete, chat."""

    BINDINGS = [
        Binding("d", "download", "Download/Resume", id="models-download"),
        Binding("x", "cancel", "Cancel", id="models-cancel"),
        Binding("o", "open_chat", "Chat", id="models-chat"),
        Binding("delete,r", "delete", "Delete", id="models-delete"),
        Binding("g", "refresh", "Refresh", id="models-refresh", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.statuses: dict[tuple[str, str], LocalWeights] = {}
        self.downloading: tuple[str, str] | None = None
        self.progress: DownloadProgress | None = None
        self.updates = 0  # progress messages received (the throttle keeps this small)
        self.message = ""
        self.loaded = False
        self.probed = False  # the first offline check has answered
        self._offline_notice = ""  # the message the probe showed, if any
        self._cancel: threading.Event | None = None

    def compose(self) -> ComposeResult:
        yield WeightsTable(id="models-table")
        yield ProgressBar(id="models-bar", show_eta=False)
        yield Static("", id="models-progress", markup=False)
        yield Static("", id="models-message", markup=False)
        yield Static("", id="models-hint", markup=False)

    def on_mount(self) -> None:
        self.query_one(ProgressBar).display = False

    def on_show(self) -> None:
        if self.downloading is None:
            self.refresh_status()
        if not self.probed and not self._probing():
            self._probe()

    def on_focus(self) -> None:
        self.query_one(WeightsTable).focus()

    # ------------------------------------------------------------ status

    def refresh_status(self) -> None:
        self._status()

    @work(thread=True, exclusive=True, exit_on_error=False, group="models-status")
    def _status(self) -> None:

        statuses = {(s, src): local_status(s, src) for s in SIZES for src in PREFERRED_SOURCES}
        self.post_message(ModelStatuses(statuses))

    def _probing(self) -> bool:
        return any(w.group == "models-probe" and not w.is_finished for w in self.workers)

    @work(thread=True, exclusive=True, exit_on_error=False, group="models-probe")
    def _probe(self) -> None:

        self.post_message(ServersProbed(probe_servers(PROBE_TIMEOUT_S)))

    def on_servers_probed(self, message: ServersProbed) -> None:
        self.probed = True
        if self.downloading is not None:
            return  # the download reports for itself
        if message.problem is None:
            if self.message and self.message == self._offline_notice:
                self._set_message("")  # online again (after g)
            return
        if self.message and self.message != self._offline_notice:
            return  # keep what a download or delete just said
        self._offline_notice = (
            f"No network? The download servers cannot be reached ({message.problem}).\n"
            "Downloading needs a connection; the folder below can also be filled by hand."
        )
        self._set_message(self._offline_notice, error=True)

    def on_model_statuses(self, message: ModelStatuses) -> None:
        self.statuses = message.statuses
        self.loaded = True
        self._fill()

    def status_text(self, size: str, source: str) -> str:
        row = (size, source)
        return status_text(self.statuses.get(row), self.downloading == row, self.progress)

    def _fill(self) -> None:
        self.query_one(WeightsTable).show(self.statuses, self.status_text)
        self._show_hint()

    def current(self) -> tuple[str, str]:
        """The highlighted (size, source)."""
        return self.query_one(WeightsTable).current()

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_hint()

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        size, source = self.current()
        if self.status_text(size, source) == "complete":
            self.action_open_chat()
        else:
            self.action_download()

    def _show_hint(self) -> None:
        self.query_one("#models-hint", Static).update(Text(hint_text(self.current())))

    def _set_message(self, text: str, error: bool = False) -> None:
        self.message = text
        widget = self.query_one("#models-message", Static)
        widget.update(Text(text))
        widget.set_class(error, "-error")

    # ------------------------------------------------------------ actions

    def refusal(self, action: str) -> str | None:
        """Why `action` cannot act on the highlighted row now, or None when it can.

        The keys stay live (no check_action) so that each one says this instead
        of doing nothing.
        """
        if action == "cancel":
            return None if self._cancel is not None else "no download is running: d starts one"
        if not self.loaded:
            return "still reading what is on disk; try again in a moment"
        row = self.current()
        return refusal(action, row, self.statuses.get(row), self.downloading)

    def _refused(self, action: str) -> bool:
        """Tell the user why `action` cannot act (True), or False when it can."""
        reason = self.refusal(action)
        if reason is not None:
            self.notify(reason, title="Models", markup=False)
        return reason is not None

    def action_refresh(self) -> None:
        self.refresh_status()
        if not self._probing():
            self._probe()

    def action_download(self) -> None:
        if self._refused("download"):
            return
        size, source = self.current()
        self.downloading = (size, source)
        self.progress = None
        self.updates = 0
        self._cancel = threading.Event()
        bar = self.query_one(ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)
        self.query_one("#models-progress", Static).update(Text("connecting …"))
        self._set_message(f"downloading GPT-2 {size} from {SOURCE_LABELS[source]} …")
        self._fill()
        self._download(size, source, self._cancel)

    @work(thread=True, exclusive=True, exit_on_error=False, group="models-download")
    def _download(self, size: str, source: str, cancel: threading.Event) -> None:

        updates = Throttle(PROGRESS_INTERVAL_S)

        def on_progress(p: DownloadProgress) -> None:
            if not updates.ready(force=p.done == p.total):
                return  # coalesced: the next event carries the newer numbers
            self.post_message(DownloadUpdate(p))

        path = download_gpt2(size, source, cancel=cancel, on_progress=on_progress)
        self.post_message(DownloadFinished(size, source, path))

    def on_download_update(self, message: DownloadUpdate) -> None:
        if self.downloading is None:
            return
        p = message.progress
        self.progress = p
        self.updates += 1
        bar = self.query_one(ProgressBar)
        if p.overall_total:
            bar.update(total=p.overall_total, progress=p.overall_done)
        elif p.total:
            bar.update(total=p.total, progress=p.done)
        self.query_one("#models-progress", Static).update(Text(progress_line(p)))
        self._fill()

    def on_download_finished(self, message: DownloadFinished) -> None:
        self._end_download(keep_progress=True)  # the last line shows what came in
        self._set_message(
            f"GPT-2 {message.size} ({message.source}) is complete in {message.path}: o opens it in Chat"
        )
        self._after_change()

    def _end_download(self, keep_progress: bool = False) -> None:
        self.downloading = None
        self._cancel = None
        self.query_one(ProgressBar).display = False
        if not (keep_progress and self.progress is not None):  # no stale "connecting …"
            self.query_one("#models-progress", Static).update("")
        self._fill()
        self.refresh_status()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "models-download" or event.state != WorkerState.ERROR:
            return

        error = event.worker.error
        self._end_download()
        if isinstance(error, DownloadCancelled):
            self._set_message("download cancelled; the partial files are kept: d resumes")
            return
        text = str(error) if isinstance(error, GptTuiError) else f"{type(error).__name__}: {error}"
        offline = isinstance(error, DownloadError) and error.offline
        head = "No network? The download server cannot be reached.\n" if offline else ""
        self._set_message(head + text, error=True)
        self.notify(text, title="Download failed", severity="error", timeout=10, markup=False)

    def action_cancel(self) -> None:
        if self._refused("cancel") or self._cancel is None:
            return
        self._cancel.set()
        self.query_one("#models-progress", Static).update(Text("cancelling …"))

    def on_unmount(self) -> None:
        # Never leave a download thread running behind the app (the .part file stays).
        if self._cancel is not None:
            self._cancel.set()

    def action_open_chat(self) -> None:

        if self._refused("open_chat"):
            return
        size, source = self.current()
        st = self.statuses[(size, source)]
        try:
            preferred = find_gpt2(size)  # what gpt2:SIZE loads
        except GptTuiError:
            preferred = None
        spec = f"gpt2:{size}" if preferred == st.path else f"weights:{st.path}"
        self.post_message(OpenInChat(spec))

    def action_delete(self) -> None:
        if self._refused("delete"):
            return
        size, source = self.current()
        st = self.statuses[(size, source)]

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(size, source, f"GPT-2 {size} ({source})")

        self.app.push_screen(
            ConfirmScreen(
                f"Delete GPT-2 {size} ({source}), {format_bytes(st.bytes)} in {st.path}?", "Delete"
            ),
            answered,
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="models-delete")
    def _delete(self, size: str, source: str, label: str) -> None:
        """Delete off the UI thread: GPT-2 XL is 6 GB of files. Only GPT-2's own files go
        (delete_gpt2); what else is in the folder stays and is named."""
        try:
            deleted = delete_gpt2(size, source)
        except (OSError, GptTuiError) as exc:
            self.post_message(WeightsDeleted(label, f"could not delete {label}: {exc}"))
        else:
            left = deleted.message() if deleted.left else None
            self.post_message(WeightsDeleted(label, None, left))

    def on_weights_deleted(self, message: WeightsDeleted) -> None:
        if message.error is not None:
            self.notify(message.error, title="Models", severity="error", markup=False)
            return
        self._set_message(f"deleted {message.label}")
        if message.left:  # files the user put there: they stay, and they are named
            self.notify(message.left, title="Models", severity="warning", markup=False)
        self._after_change()

    def _after_change(self) -> None:
        self.refresh_status()
        self.post_message(CheckpointsChanged())  # the app has Chat re-list its models
