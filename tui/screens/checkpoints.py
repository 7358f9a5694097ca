"""The Checkpoints screen: every checkpoint across runs in one sortable table.

Damaged or foreign entries stay in the table, marked, with the engine's reason
(gptcore.checkpoint.list_checkpoints never raises for them). Actions: open in
Chat, continue training, rename, delete (confirmed), export to the book's .pth or
the Hugging Face layout, and compare two checkpoints' losses on the current corpus.
Listing, exports and comparisons run in thread workers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState

from gptcore.errors import GptTuiError
from gptcore.runs.rundir import RunDir, checkpoint_label, resume_command
from gptcore.util.fmt import format_bytes, format_count, format_si

from ..messages import CheckpointsChanged, OpenInChat, ResumeRun

if TYPE_CHECKING:
    from gptcore.runs.checkpoint import CheckpointInfo

COLUMNS = (
    "",
    "run",
    "checkpoint",
    "step",
    "epoch",
    "train",
    "val",
    "tokens",
    "date",
    "size",
    "note",
)  # at 80 columns everything up to `tokens` fits (names are clipped, numbers compact)
RUN_WIDTH, NAME_WIDTH = 20, 14  # a default run name (date-time-config) fits whole
SORTS = ("date", "step", "val", "run")
COMPARE_BATCHES = 20  # per split: enough for a fair comparison, quick on a CPU


def sort_infos(infos: list[CheckpointInfo], by: str) -> list[CheckpointInfo]:
    """Damaged entries last within the order; missing values sort last."""
    inf = float("inf")
    keys = {
        "date": lambda i: (i.error is not None, -(i.created or 0)),
        "step": lambda i: (i.error is not None, -(i.step if i.step is not None else -1)),
        "val": lambda i: (i.error is not None, i.val_loss if i.val_loss is not None else inf),
        "run": lambda i: (i.run, i.error is not None, i.step or 0),
    }
    return sorted(infos, key=keys[by])


def clip(text: str, width: int) -> str:
    """`text` in at most `width` characters, cut in the middle (both ends tell)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def short_date(created: float) -> str:
    """Five columns: the time ("14:05") for a checkpoint saved today, else month-day."""
    when, today = time.localtime(created), time.localtime()
    same_day = when.tm_year == today.tm_year and when.tm_yday == today.tm_yday
    return time.strftime("%H:%M" if same_day else "%m-%d", when)


def short_reason(info: CheckpointInfo, width: int = 60) -> str:
    """The error without the checkpoint's own path (the row already names it)."""
    text = (info.error or "").replace(str(info.path) + "/", "").replace(str(info.path), "it")
    return text if len(text) <= width else text[: width - 1] + "…"


class CheckpointList(Message):
    def __init__(self, infos: list[CheckpointInfo]) -> None:
        super().__init__()
        self.infos = infos


class CheckpointDeleted(Message):
    def __init__(self, path: Path, label: str, error: str | None) -> None:
        super().__init__()
        self.path, self.label, self.error = path, label, error


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
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Static("reading checkpoints …", id="ckpt-summary", markup=False)
        table: DataTable = DataTable(id="ckpt-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table
        with VerticalScroll(id="ckpt-detail-box"):  # scrolls when a path wraps at 60 columns
            yield Static("", id="ckpt-detail", markup=False)

    def on_show(self) -> None:
        self.refresh_list()  # each visit: training may have saved new checkpoints

    def on_focus(self) -> None:
        self.query_one(DataTable).focus()

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
        table = self.query_one(DataTable)
        current = self.current()
        table.clear()
        from gptcore.runs.checkpoints import run_picks

        best = {p.best.path for p in run_picks(self.infos).values() if p.best is not None}
        for info in sort_infos(self.infos, self.sort_by):
            table.add_row(*self._cells(info, info.path in best), key=str(info.path))
        if current is not None and any(i.path == current.path for i in self.infos):
            table.move_cursor(row=table.get_row_index(str(current.path)))
        damaged = sum(1 for i in self.infos if i.error is not None)
        runs = len({i.run for i in self.infos})
        summary = (
            f"{len(self.infos)} checkpoint(s) in {runs} run(s)"
            + (f", {damaged} damaged" if damaged else "")
            + f" · sorted by {self.sort_by} (s) · ★ best val loss of its run"
        )
        if not self.infos:
            from gptcore.util.paths import runs_dir

            summary = f"no checkpoints yet in {runs_dir()}: train a model on the Train screen"
        self.query_one("#ckpt-summary", Static).update(Text(summary))
        self._show_detail()
        self.refresh_bindings()

    def _cells(self, info: CheckpointInfo, best: bool) -> list[Text]:
        def num(value: float | None) -> str:
            return "–" if value is None else f"{value:.3f}"

        mark = "★" if best else ("A" if info.path == self.marked else "")
        if info.error is not None:
            reason = short_reason(info)
            return [
                Text("⚠", style="bold red"),
                Text(clip(info.run, RUN_WIDTH)),
                Text(clip(info.name, NAME_WIDTH), style="red"),
                Text("damaged", style="red"),
                *(Text("") for _ in range(5)),
                Text(format_bytes(info.size_bytes)),
                Text(reason, style="red"),
            ]
        tokens = format_si(info.tokens_seen) if info.tokens_seen is not None else "–"
        return [
            Text(mark, style="bold yellow"),
            Text(clip(info.run, RUN_WIDTH)),
            Text(clip(info.name, NAME_WIDTH)),
            Text(format_count(info.step), justify="right"),
            Text(str(info.epoch or "–"), justify="right"),
            Text(num(info.train_loss), justify="right"),
            Text(num(info.val_loss), justify="right"),
            Text(tokens, justify="right"),
            Text(short_date(info.created) if info.created else ""),
            Text(format_bytes(info.size_bytes), justify="right"),
            Text(info.model),
        ]

    def current(self) -> CheckpointInfo | None:
        """The highlighted checkpoint."""
        table = self.query_one(DataTable)
        if not self.infos or table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # no rows / cursor out of range after a clear
            return None
        return next((i for i in self.infos if str(i.path) == key), None)

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
        by = {"checkpoint": "date", "date": "date", "step": "step", "val": "val", "run": "run"}
        if label in by:
            self.sort_by = by[label]
            self._fill()

    def _show_detail(self) -> None:
        info = self.current()
        detail = self.query_one("#ckpt-detail", Static)
        detail.set_class(info is not None and info.error is not None, "-error")
        # The comparison first: it is what the user waits for, and the box scrolls.
        lines = [self.compare_text] if self.compare_text else []
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
        if action in ("rename", "delete"):
            return True
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
        info = self.current()
        if info is None:
            return None
        if info.error is not None:
            self.notify(info.error, title="Damaged checkpoint", severity="error", markup=False)
            return None
        return info

    def action_open_chat(self) -> None:
        info = self._usable()
        if info is None:
            return
        self.post_message(OpenInChat(str(info.path)))

    def action_continue_training(self) -> None:
        """Show the command that continues this run headless; offer to run it here."""
        info = self._usable()
        if info is None:
            return
        from .dialogs import ConfirmScreen

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
        from .dialogs import PromptScreen

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
        from .dialogs import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(info.path, f"{info.run}/{info.name}")

        size = format_bytes(info.size_bytes)
        self.app.push_screen(
            ConfirmScreen(
                f"Delete checkpoint {info.run}/{info.name} ({size})? This cannot be undone.",
                "Delete",
            ),
            answered,
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="ckpt-delete")
    def _delete(self, path: Path, label: str) -> None:
        """Delete off the UI thread: a large checkpoint on a slow disk takes a while."""
        from gptcore.runs.checkpoints import delete_checkpoint

        try:
            delete_checkpoint(path)
        except (GptTuiError, OSError) as exc:
            self.post_message(CheckpointDeleted(path, label, str(exc)))
        else:
            self.post_message(CheckpointDeleted(path, label, None))

    def on_checkpoint_deleted(self, message: CheckpointDeleted) -> None:
        if message.error is not None:
            self.notify(message.error, title="Delete", severity="error", markup=False)
            return
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
    def _export(self, path: Path, kind: str) -> None:
        run = RunDir.of_checkpoint(path)
        if run is None:
            raise GptTuiError(f"{path} is not inside a run folder: export it with the CLI")
        if kind == "pth":
            from gptcore.weights.book import export_book_pth

            out = export_book_pth(path, run.pth_export(path.name))
        else:
            from gptcore.weights.hf_export import export_hf
            from gptcore.weights.modelspec import load_spec

            out = export_hf(load_spec(str(path), "cpu").model, run.hf_export(path.name))
        self.notify(f"exported {out}", title="Export", markup=False)  # thread-safe

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
        self.compare_text = f"comparing on corpus {source} …"
        self._show_detail()
        self._compare(self.marked, info.path, source, COMPARE_BATCHES)

    @work(thread=True, exclusive=True, exit_on_error=False, group="ckpt-compare")
    def _compare(self, a: Path, b: Path, source: str, max_batches: int) -> None:
        """`gpt-tui eval` on both checkpoints (the first `max_batches` per split), with
        the batch size and device the marked checkpoint's run trained with."""
        from gptcore.data.tokens import prepare_corpus
        from gptcore.training.evaluate import eval_options, evaluate_model
        from gptcore.weights.modelspec import load_spec

        corpus = prepare_corpus(source)
        rows = []
        options = None
        same_run = a.parent == b.parent  # then the run is named once: rows fit 60 columns
        for path in (a, b):
            loaded = load_spec(str(path), "cpu")  # evaluate_model moves it to the device
            if options is None:
                options = eval_options(loaded.checkpoint.train_config if loaded.checkpoint else {})
            batch_size, device = options
            result = evaluate_model(
                loaded.model, corpus, batch_size=batch_size, max_batches=max_batches, device=device
            )
            label = path.name if same_run else checkpoint_label(path)
            rows.append((label, result.train_loss, result.val_loss))
        where = f" of {checkpoint_label(a).rsplit('/', 1)[0]}" if same_run else ""
        width = max(len(label) for label, _, _ in rows)
        lines = [
            f"losses{where} on {corpus.name} ({max_batches} batches per split, "
            f"batch {result.batch_size}, {result.device}):"
        ]
        for mark, (label, train, val) in zip("AB", rows, strict=True):
            lines.append(f"{mark} {label:<{width}}  train {train:.3f} · val {val:.3f}")
        self.post_message(CompareDone("\n".join(lines)))

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
