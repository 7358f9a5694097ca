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
from textual.containers import Container
from textual.message import Message
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState

from gptcore.errors import GptTuiError

if TYPE_CHECKING:
    from gptcore.checkpoint import CheckpointInfo

COLUMNS = (
    "",
    "run",
    "checkpoint",
    "step",
    "epoch",
    "train",
    "val",
    "tokens",
    "size",
    "date",
    "note",
)
SORTS = ("date", "step", "val", "run")
COMPARE_BATCHES = 20  # per split: enough for a fair comparison, quick on a CPU


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            if unit == "B" or value >= 100:
                return f"{value:.0f} {unit}"
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover


def best_per_run(infos: list[CheckpointInfo]) -> set[Path]:
    """The checkpoint with the lowest validation loss in each run."""
    best: dict[str, CheckpointInfo] = {}
    for info in infos:
        if info.error is None and info.val_loss is not None:
            current = best.get(info.run)
            if current is None or (info.val_loss, -(info.step or 0)) < (
                current.val_loss,
                -(current.step or 0),
            ):
                best[info.run] = info
    return {i.path for i in best.values()}


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


def short_reason(info: CheckpointInfo, width: int = 60) -> str:
    """The error without the checkpoint's own path (the row already names it)."""
    text = (info.error or "").replace(str(info.path) + "/", "").replace(str(info.path), "it")
    return text if len(text) <= width else text[: width - 1] + "…"


class CheckpointList(Message):
    def __init__(self, infos: list[CheckpointInfo]) -> None:
        super().__init__()
        self.infos = infos


class CheckpointsChanged(Message):
    """A checkpoint was renamed, deleted or exported: other screens may re-list."""


class CompareDone(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class CheckpointsPane(Container, can_focus=True):
    """List, open, continue, rename, delete, export and compare checkpoints."""

    DEFAULT_CSS = """
    CheckpointsPane { height: 1fr; padding: 0 1; }
    CheckpointsPane #ckpt-summary { height: 1; color: $text-muted; }
    CheckpointsPane #ckpt-table { height: 1fr; }
    CheckpointsPane #ckpt-detail {
        height: auto; max-height: 6; border-top: hkey $foreground 20%;
    }
    CheckpointsPane #ckpt-detail.-error { color: $error; }
    """

    BINDINGS = [
        Binding("o", "open_chat", "Chat", id="ckpt-chat"),
        Binding("t", "continue_training", "Continue", id="ckpt-continue"),
        Binding("r", "rename", "Rename", id="ckpt-rename"),
        Binding("d,delete", "delete", "Delete", id="ckpt-delete"),
        Binding("e", "export_pth", "Export .pth", id="ckpt-export-pth"),
        Binding("h", "export_hf", "Export HF", id="ckpt-export-hf"),
        Binding("m", "mark", "Mark", id="ckpt-mark"),
        Binding("v", "compare", "Compare", id="ckpt-compare"),
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
        from gptcore.checkpoint import list_checkpoints

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
        best = best_per_run(self.infos)
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
            from gptcore.paths import runs_dir

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
                Text(info.run),
                Text(info.name, style="red"),
                Text("damaged", style="red"),
                *(Text("") for _ in range(4)),
                Text(human_bytes(info.size_bytes)),
                Text(""),
                Text(reason, style="red"),
            ]
        date = time.strftime("%m-%d %H:%M", time.localtime(info.created)) if info.created else ""
        return [
            Text(mark, style="bold yellow"),
            Text(info.run),
            Text(info.name),
            Text(f"{info.step:,}" if info.step is not None else "–", justify="right"),
            Text(str((info.epoch or 0) + 1), justify="right"),
            Text(num(info.train_loss), justify="right"),
            Text(num(info.val_loss), justify="right"),
            Text(f"{info.tokens_seen:,}" if info.tokens_seen is not None else "–", justify="right"),
            Text(human_bytes(info.size_bytes), justify="right"),
            Text(date),
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
        if info is None:
            detail.update(Text(self.compare_text))
            return
        if info.error is not None:
            text = f"{info.run}/{info.name} cannot be used: {info.error}"
        else:
            text = (
                f"{info.path}\n{info.model} · step {info.step:,} · {human_bytes(info.size_bytes)}"
            )
        if self.marked is not None:
            text += f"\nmarked for comparison: {self.marked.parent.parent.name}/{self.marked.name}"
        if self.compare_text:
            text += "\n" + self.compare_text
        detail.update(Text(text))

    # ------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("sort", "refresh"):
            return True
        info = self.current() if self.is_mounted else None
        if info is None:
            return None
        if action in ("rename", "delete"):
            return True
        if info.error is not None:
            return None  # nothing else works on a damaged checkpoint
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
        from .chat import ChatPane

        chats = self.app.query(ChatPane)
        if not chats:
            return
        chats.first().open_model(f"ckpt:{info.path}")
        _show_tab(self, "chat")

    def action_continue_training(self) -> None:
        info = self._usable()
        if info is None:
            return
        from .train import TrainPane

        trains = self.app.query(TrainPane)
        resume = getattr(trains.first(), "resume_from", None) if trains else None
        if resume is None:
            # The Train screen cannot resume a run yet: give the exact command.
            self.notify(
                f"continue this run with: gpt-tui train --resume {info.path}",
                title="Continue training",
                timeout=15,
                markup=False,
            )
            return
        resume(info.path)
        _show_tab(self, "train")

    def action_rename(self) -> None:
        info = self.current()
        if info is None:
            return
        from .dialogs import PromptScreen

        def named(name: str | None) -> None:
            if not name or name == info.name:
                return
            from gptcore.checkpoint import rename_checkpoint

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
            if not yes:
                return
            from gptcore.checkpoint import delete_checkpoint

            try:
                delete_checkpoint(info.path)
            except (GptTuiError, OSError) as exc:
                self.notify(str(exc), title="Delete", severity="error", markup=False)
                return
            self.notify(f"deleted {info.run}/{info.name}", title="Delete", markup=False)
            self._changed()

        size = human_bytes(info.size_bytes)
        self.app.push_screen(
            ConfirmScreen(
                f"Delete checkpoint {info.run}/{info.name} ({size})? This cannot be undone.",
                "Delete",
            ),
            answered,
        )

    def _changed(self) -> None:
        self.refresh_list()
        from .chat import ChatPane

        for chat in self.app.query(ChatPane):
            chat.refresh_models()

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
        out_dir = path.parent.parent / "exports"
        if kind == "pth":
            from gptcore.checkpoint import export_book_pth

            out = export_book_pth(path, out_dir / f"{path.name}.pth")
        else:
            from gptcore.checkpoint import load_model
            from gptcore.pretrained import export_hf

            model, _ = load_model(path, "cpu")
            out = export_hf(model, out_dir / f"{path.name}-hf")
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
        source = str(getattr(self.app, "corpus_source", "builtin"))
        self.compare_text = f"comparing on corpus {source} …"
        self._show_detail()
        self._compare(self.marked, info.path, source)

    @work(thread=True, exclusive=True, exit_on_error=False, group="ckpt-compare")
    def _compare(self, a: Path, b: Path, source: str) -> None:
        from gptcore.checkpoint import load_model
        from gptcore.data import make_loader, prepare_corpus, require_windows
        from gptcore.evaluate import calc_loss_loader

        corpus = prepare_corpus(source)
        lines = [f"losses on {corpus.name} (first {COMPARE_BATCHES} batches per split):"]
        for path in (a, b):
            model, _ = load_model(path, "cpu")
            ctx = model.config.context_length
            require_windows(corpus.train_tokens, ctx, "training")
            require_windows(corpus.val_tokens, ctx, "validation")
            losses = []
            for tokens in (corpus.train_tokens, corpus.val_tokens):
                loader = make_loader(tokens, 2, ctx, ctx, False, False)
                losses.append(calc_loss_loader(loader, model, "cpu", COMPARE_BATCHES))
            lines.append(
                f"  {path.parent.parent.name}/{path.name}: train {losses[0]:.3f} · val {losses[1]:.3f}"
            )
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


def _show_tab(widget: Container, tab: str) -> None:
    """Switch the app's tab bar (a no-op in an app without one)."""
    show = getattr(widget.app, "action_show_tab", None)
    if show is not None:
        show(tab)
