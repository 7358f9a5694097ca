"""The Checkpoints screen: every checkpoint across runs in one sortable table
(checkpoints.table), the highlighted one's details below it, and its actions.

Damaged or foreign entries stay in the table, marked, with the engine's reason
(gptcore.runs.checkpoints.list_checkpoints never raises for them). Actions: open
in Chat, continue training (a finished run asks for more epochs first), rename, delete (confirmed), export to the book's .pth
or the Hugging Face layout (gptcore.weights.export), and compare two checkpoints'
losses on the current corpus (checkpoints.compare). Listing, deleting, exports and
comparisons run in thread workers that only post messages.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState

from gptcore.errors import GptTuiError
from gptcore.runs.rundir import checkpoint_label, resume_command
from gptcore.training.continuation import continue_offer
from gptcore.util.fmt import format_bytes, format_count
from gptcore.util.progress import elapsed_eta_text
from gptcore.util.throttle import Throttle

from ...messages import CheckpointsChanged, OpenInChat, ResumeRun
from ..dialogs import ConfirmScreen, PromptScreen
from . import compare
from .continue_dialog import ContinueRunScreen
from .table import HEADER_SORTS, SORTS, CheckpointTable, summary_text

if TYPE_CHECKING:
    from gptcore.runs.checkpoint import CheckpointInfo


class CheckpointList(Message):
    def __init__(self, infos: list[CheckpointInfo]) -> None:
        super().__init__()
        self.infos = infos


class CheckpointDeleted(Message):
    def __init__(
        self, path: Path, label: str, error: str | None, left: tuple[str, ...] = ()
    ) -> None:
        super().__init__()
        self.path, self.label, self.error, self.left = path, label, error, left


class CompareProgress(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class ExportProgress(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class CompareDone(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class CheckpointsPane(Container, can_focus=True):
    """List, open, continue, rename, delete, export and compare checkpoints."""

    BINDINGS = [
        Binding("o", "open_chat", "Chat", id="ckpt-chat"),
        Binding("t", "continue_training", "Continue", id="ckpt-continue"),
        Binding("m", "mark", "Mark", id="ckpt-mark"),
        Binding("v", "compare", "Compare", id="ckpt-compare"),
        Binding("d,delete", "delete", "Delete", id="ckpt-delete"),
        # Listed in help (?) and the palette; the footer keeps to what fits at 80 columns.
        Binding("r", "rename", "Rename", id="ckpt-rename", show=False),
        Binding("e", "export_pth", "Export .pth", id="ckpt-export-pth", show=False),
        Binding("h", "export_hf", "Export HF", id="ckpt-export-hf", show=False),
        Binding("s", "sort", "Sort", id="ckpt-sort", show=False),
        Binding("g", "refresh", "Refresh", id="ckpt-refresh", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.infos: list[CheckpointInfo] = []
        self.sort_by = "date"
        self.marked: Path | None = None
        self.compare_text = ""
        self.export_text = ""  # an export's progress while it runs
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Static("reading checkpoints …", id="ckpt-summary", markup=False)
        yield CheckpointTable(id="ckpt-table")
        with VerticalScroll(id="ckpt-detail-box"):  # scrolls when a path wraps at 60 columns
            yield Static("", id="ckpt-detail", markup=False)

    def on_show(self) -> None:
        self.refresh_list()  # each visit: training may have saved new checkpoints

    def on_focus(self) -> None:
        self.query_one(CheckpointTable).focus()

    # ------------------------------------------------------------ listing

    def refresh_list(self) -> None:
        self._list()

    @work(thread=True, exclusive=True, exit_on_error=False, group="ckpt-list")
    def _list(self) -> None:
        from gptcore.runs.checkpoints import list_checkpoints

        self.post_message(CheckpointList(list_checkpoints()))

    def on_checkpoint_list(self, message: CheckpointList) -> None:
        self.infos = message.infos
        self.loaded = True
        if self.marked is not None and all(i.path != self.marked for i in self.infos):
            self.marked = None
        self._fill()

    def _fill(self) -> None:
        self.query_one(CheckpointTable).show(self.infos, self.sort_by, self.marked)
        self.query_one("#ckpt-summary", Static).update(Text(summary_text(self.infos, self.sort_by)))
        self._show_detail()
        self.refresh_bindings()

    def current(self) -> CheckpointInfo | None:
        """The highlighted checkpoint."""
        path = self.query_one(CheckpointTable).current_path()
        return next((i for i in self.infos if i.path == path), None)

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()
        self.refresh_bindings()

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_chat()

    @on(DataTable.HeaderSelected)
    def _header(self, event: DataTable.HeaderSelected) -> None:
        label = str(event.label)
        if label in HEADER_SORTS:
            self.sort_by = HEADER_SORTS[label]
            self._fill()

    def _show_detail(self) -> None:
        info = self.current()
        detail = self.query_one("#ckpt-detail", Static)
        detail.set_class(info is not None and info.error is not None, "-error")
        # The comparison first: it is what the user waits for, and the box scrolls.
        lines = [text for text in (self.export_text, self.compare_text) if text]
        if info is not None and info.error is not None:
            lines.append(f"{info.run}/{info.name} cannot be used: {info.error}")
        elif info is not None:
            lines.append(str(info.path))
            lines.append(
                f"{info.model} · step {format_count(info.step)} · {format_bytes(info.size_bytes)}"
            )
        if self.marked is not None:
            lines.append(f"A (marked for comparison): {checkpoint_label(self.marked)}")
        detail.update(Text("\n".join(lines)))

    # ------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("sort", "refresh"):
            return True
        info = self.current() if self.is_mounted else None
        if info is None:
            return None
        # On a damaged checkpoint the other keys stay live: each says why it cannot act.
        if action == "compare":
            return True if self.marked is not None and self.marked != info.path else None
        return True

    def action_refresh(self) -> None:
        self.refresh_list()

    def action_sort(self) -> None:
        self.sort_by = SORTS[(SORTS.index(self.sort_by) + 1) % len(SORTS)]
        self._fill()

    def _usable(self) -> CheckpointInfo | None:
        """The highlighted checkpoint, or None after saying why it cannot be used."""
        info = self.current()
        if info is None:
            return None
        if info.error is not None:
            self.notify(info.error, title="Damaged checkpoint", severity="error", markup=False)
            return None
        return info

    def action_open_chat(self) -> None:
        info = self._usable()
        if info is not None:
            self.post_message(OpenInChat(str(info.path)))

    def action_continue_training(self) -> None:
        """Show the command that continues this run headless; offer to run it here.
        A finished run first asks for more epochs or steps (ContinueRunScreen)."""
        info = self._usable()
        if info is None:
            return
        from gptcore.runs.checkpoint import load_checkpoint

        try:  # meta.json only: the weights are verified when the run starts
            offer = continue_offer(load_checkpoint(info.path, verify=False))
        except GptTuiError as exc:
            self.notify(str(exc), title="Continue", severity="error", markup=False)
            return
        if offer.finished:

            def more(overrides: tuple[str, ...] | None) -> None:
                if overrides is not None:
                    self.post_message(ResumeRun(info.path, overrides))

            self.app.push_screen(ContinueRunScreen(offer), more)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.post_message(ResumeRun(info.path))

        question = (
            f"Continue training {info.run}/{info.name} (step {format_count(info.step)})?\n\n"
            f"In a shell (tmux, SSH) this is:\n{resume_command(info.path)}\n\n"
            "Start it here, on the Train screen?"
        )
        self.app.push_screen(ConfirmScreen(question, "Start here", "Cancel"), answered)

    def action_rename(self) -> None:
        info = self.current()
        if info is None:
            return

        def named(name: str | None) -> None:
            if not name or name == info.name:
                return
            from gptcore.runs.checkpoints import rename_checkpoint

            try:
                new = rename_checkpoint(info.path, name.strip())
            except (GptTuiError, OSError) as exc:
                self.notify(str(exc), title="Rename", severity="error", markup=False)
                return
            if self.marked == info.path:
                self.marked = new
            self.notify(f"renamed to {new.name}", title="Rename", markup=False)
            self._changed()

        self.app.push_screen(PromptScreen(f"Rename {info.run}/{info.name} to:", info.name), named)

    def action_delete(self) -> None:
        info = self.current()
        if info is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(info.path, f"{info.run}/{info.name}")

        size = format_bytes(info.size_bytes)
        question = f"Delete checkpoint {info.run}/{info.name} ({size})? This cannot be undone."
        self.app.push_screen(ConfirmScreen(question, "Delete"), answered)

    @work(thread=True, exclusive=True, exit_on_error=False, group="ckpt-delete")
    def _delete(self, path: Path, label: str) -> None:
        """Delete off the UI thread: a large checkpoint on a slow disk takes a while."""
        from gptcore.runs.checkpoints import delete_checkpoint

        try:
            deleted = delete_checkpoint(path)
        except (GptTuiError, OSError) as exc:
            self.post_message(CheckpointDeleted(path, label, str(exc)))
        else:
            self.post_message(CheckpointDeleted(path, label, None, deleted.left))

    def on_checkpoint_deleted(self, message: CheckpointDeleted) -> None:
        if message.error is not None:
            self.notify(message.error, title="Delete", severity="error", markup=False)
            return
        if message.left:  # the user's own files stay, and the folder with them
            left = ", ".join(message.left)
            self.notify(
                f"deleted {message.label}; left {len(message.left)} file(s) that gpt-tui "
                f"did not write: {left}",
                title="Delete",
                severity="warning",
                markup=False,
            )
        else:
            self.notify(f"deleted {message.label}", title="Delete", markup=False)
        self._changed()

    def _changed(self) -> None:
        self.post_message(CheckpointsChanged())  # the app re-lists here and in Chat

    def action_export_pth(self) -> None:
        info = self._usable()
        if info is not None:
            self._export(info.path, "pth")

    def action_export_hf(self) -> None:
        info = self._usable()
        if info is not None:
            self._export(info.path, "hf")

    @work(thread=True, exclusive=True, exit_on_error=False, group="ckpt-export")
    def _export(self, path: Path, kind: Literal["pth", "hf"]) -> None:
        """gptcore's export_checkpoint (`gpt-tui checkpoints export`), into the run's
        exports/, its progress shown above the details (elapsed and ETA)."""
        from gptcore.weights.export import export_checkpoint

        what = f"exporting {checkpoint_label(path)} ({'.pth' if kind == 'pth' else 'HF'})"
        started = time.monotonic()
        shown = Throttle(compare.PROGRESS_INTERVAL_S)

        def on_progress(done: int, total: int) -> None:
            if shown.ready(force=done == 0):
                elapsed = time.monotonic() - started
                percent = f"{done / total:.0%}" if total else ""
                eta = elapsed_eta_text(done, total, elapsed)
                self.post_message(ExportProgress(f"{what}: {percent} · {eta}"))

        try:
            out = export_checkpoint(path, kind, progress=on_progress)
        finally:
            self.post_message(ExportProgress(""))
        self.notify(f"exported {out}", title="Export", markup=False)  # thread-safe

    def on_export_progress(self, message: ExportProgress) -> None:
        self.export_text = message.text
        self._show_detail()

    def action_mark(self) -> None:
        info = self._usable()
        if info is None:
            return
        self.marked = None if self.marked == info.path else info.path
        self._fill()

    def action_compare(self) -> None:
        info = self._usable()
        if info is None or self.marked is None or self.marked == info.path:
            self.notify("mark one checkpoint (m), then highlight another and press v",
                        title="Compare", markup=False)  # fmt: skip
            return
        source = self.app.state.corpus_source
        self.compare_text = f"comparing on corpus {source}, each on its run's split …"
        self._show_detail()
        self._compare(self.marked, info.path, source, compare.COMPARE_BATCHES)

    @work(thread=True, exclusive=True, exit_on_error=False, group="ckpt-compare")
    def _compare(self, a: Path, b: Path, source: str, max_batches: int) -> None:
        def on_progress(text: str) -> None:
            self.post_message(CompareProgress(text))

        text = compare.compare_checkpoints(a, b, source, max_batches, on_progress)
        self.post_message(CompareDone(text))

    def on_compare_progress(self, message: CompareProgress) -> None:
        if self.compare_text.startswith("comparing on corpus"):  # not a result already
            self.compare_text = message.text
            self._show_detail()

    def on_compare_done(self, message: CompareDone) -> None:
        self.compare_text = message.text
        self._show_detail()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR or not event.worker.group.startswith("ckpt-"):
            return
        error = event.worker.error
        text = str(error) if isinstance(error, GptTuiError) else f"{type(error).__name__}: {error}"
        if event.worker.group == "ckpt-compare":
            self.compare_text = f"compare failed: {text}"
            self._show_detail()
        self.notify(text, title="Checkpoints", severity="error", markup=False)
