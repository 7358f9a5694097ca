"""The Checkpoints screen's table: one row per checkpoint across runs, sortable,
damaged entries marked with the engine's reason, each run's best starred."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text

from gptcore.util.fmt import format_bytes, format_count, format_si
from gptcore.util.paths import runs_dir

from ..cells import PathTable, clip

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
# Header labels that sort the table when clicked, and the order each one picks.
HEADER_SORTS = {"checkpoint": "date", "date": "date", "step": "step", "val": "val", "run": "run"}


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


def short_date(created: float) -> str:
    """Five columns: the time ("14:05") for a checkpoint saved today, else month-day."""
    when, today = time.localtime(created), time.localtime()
    same_day = when.tm_year == today.tm_year and when.tm_yday == today.tm_yday
    return time.strftime("%H:%M" if same_day else "%m-%d", when)


def short_reason(info: CheckpointInfo, width: int = 60) -> str:
    """The error without the checkpoint's own path (the row already names it)."""
    text = (info.error or "").replace(str(info.path) + "/", "").replace(str(info.path), "it")
    return text if len(text) <= width else text[: width - 1] + "…"


def checkpoint_cells(info: CheckpointInfo, mark: str) -> list[Text]:
    """One row: `mark` ("★" best of its run, "A" marked, "") first; a damaged
    checkpoint shows "damaged" and its reason instead of numbers."""

    def num(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    if info.error is not None:
        return [
            Text("⚠", style="bold red"),
            Text(clip(info.run, RUN_WIDTH)),
            Text(clip(info.name, NAME_WIDTH), style="red"),
            Text("damaged", style="red"),
            *(Text("") for _ in range(5)),
            Text(format_bytes(info.size_bytes)),
            Text(short_reason(info), style="red"),
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


def summary_text(infos: list[CheckpointInfo], sort_by: str) -> str:
    """The line above the table: how many, how many damaged, the order, the star."""
    if not infos:
        return f"no checkpoints yet in {runs_dir()}: train a model on the Train screen"
    damaged = sum(1 for i in infos if i.error is not None)
    runs = len({i.run for i in infos})
    return (
        f"{len(infos)} checkpoint(s) in {runs} run(s)"
        + (f", {damaged} damaged" if damaged else "")
        + f" · sorted by {sort_by} (s) · ★ best val loss of its run"
    )


class CheckpointTable(PathTable):
    """The rows of `show`; the highlighted row stays highlighted across refills."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.add_columns(*COLUMNS)

    def show(self, infos: list[CheckpointInfo], sort_by: str, marked: Path | None) -> None:
        """Fill the table with `infos` in `sort_by` order, the best of each run starred
        (gptcore.runs.checkpoints.run_picks) and the `marked` one lettered A."""
        from gptcore.runs.checkpoints import run_picks

        current = self.current_path()
        self.clear()
        best = {p.best.path for p in run_picks(infos).values() if p.best is not None}
        for info in sort_infos(infos, sort_by):
            mark = "★" if info.path in best else ("A" if info.path == marked else "")
            self.add_row(*checkpoint_cells(info, mark), key=str(info.path))
        if current is not None and any(i.path == current for i in infos):
            self.move_cursor(row=self.get_row_index(str(current)))
