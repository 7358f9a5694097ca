"""The Runs screen's table: gptcore.runs.table's rows (the same as `gpt-tui runs`),
the overlaid runs marked in their chart colour, the pinned one starred."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.text import Text

from gptcore.runs.table import RunRow
from gptcore.util.fmt import format_bytes, format_count, format_si
from gptcore.util.paths import runs_dir

from ..cells import PathTable, clip

# What tells runs apart first: at 80 columns everything up to `last train` fits.
COLUMNS = ("", "name", "state", "steps", "tokens", "best val", "last train", "disk", "model")
COLUMNS += ("corpus", "started")
NAME_WIDTH, CORPUS_WIDTH = 22, 12
# Narrower names first, then fewer columns: the losses (up to `last train`) stay in view.
NAME_WIDTHS = (NAME_WIDTH, 16, 12)
WANTED_COLUMNS = COLUMNS.index("last train") + 1
STATE_STYLES = {"running": "bold green", "failed": "red", "stopped": "yellow", "damaged": "red"}


def run_cells(row: RunRow, mark: Text, name_width: int = NAME_WIDTH) -> list[Text]:
    """One row of the table, `mark` (overlaid / pinned) first."""

    def num(value: float | None) -> str:
        return "–" if value is None or not math.isfinite(value) else f"{value:.3f}"

    steps = format_count(row.steps) if row.steps is not None else "–"
    if row.steps is not None and row.total_steps and row.state == "running":
        steps += f"/{format_count(row.total_steps)}"
    started = time.strftime("%m-%d %H:%M", time.localtime(row.started)) if row.started else ""
    tokens = format_si(row.tokens_seen) if row.tokens_seen is not None else "–"
    return [
        mark,
        Text(clip(row.name, name_width)),
        Text(row.state, style=STATE_STYLES.get(row.state, "")),
        Text(steps, justify="right"),
        Text(tokens, justify="right"),
        Text(num(row.best_val), justify="right"),
        Text(num(row.last_train), justify="right"),
        Text(format_bytes(row.disk_bytes) if row.disk_bytes is not None else "–", justify="right"),
        Text(row.model),
        Text(clip(row.corpus or "–", CORPUS_WIDTH)),
        Text(started),
    ]


def summary_text(
    rows: Sequence[RunRow], shown: int, query: str, overlaid: int, pinned: Path | None
) -> str:
    """The line above the table: how many runs, how many match the filter, overlaid, pinned."""
    if not rows:
        return f"no runs yet in {runs_dir()}: train a model on the Train screen"
    text = f"{len(rows)} run(s)"
    if query:
        text += f", {shown} match “{query}”"
    text += f" · {overlaid} overlaid (space)"
    if pinned is not None:
        text += f" · ★ {pinned.name}"
    return text


def fitting_columns(cells: Sequence[Sequence[Text]], width: int, padding: int = 1) -> int:
    """How many leading COLUMNS fit whole in `width` cells (at least two: the mark and
    the name). A column the width cuts would show "6.2" for 6.239; it is left out."""
    used, fit = 0, 0
    for i, header in enumerate(COLUMNS):
        column = max([len(header), *(c[i].cell_len for c in cells)]) + 2 * padding
        if used + column > width and fit >= 2:
            break
        used, fit = used + column, fit + 1
    return fit


class RunTable(PathTable):
    """The rows of `show`, in the columns that fit whole at the table's width; the
    highlighted row stays highlighted across refills."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.add_columns(*COLUMNS)
        self._shown: tuple | None = None  # show()'s arguments, redrawn on a resize

    def on_resize(self) -> None:
        if self._shown is not None:
            self.show(*self._shown)

    def show(
        self,
        rows: Sequence[RunRow],
        selected: Sequence[Path],
        pinned: Path | None,
        colour_of: Callable[[str], tuple[int, int, int]],
    ) -> None:
        """Fill the table with `rows`; the `selected` (overlaid) runs get a dot in
        their chart colour (`colour_of(name)`), the `pinned` one a star."""
        self._shown = (rows, selected, pinned, colour_of)
        current = self.current_path()
        marks = []
        for row in rows:
            mark = Text("")
            if row.path in selected:
                colour = "rgb({},{},{})".format(*colour_of(row.name))
                mark = Text("★" if row.path == pinned else "●", style=f"bold {colour}")
            marks.append(mark)
        # The room inside the table, less a vertical scrollbar's should the rows scroll.
        width = self.scrollable_content_region.width or self.size.width or 80
        if len(rows) > max(1, self.size.height - 1):
            width -= self.styles.scrollbar_size_vertical
        for name_width in NAME_WIDTHS:
            cells = [
                run_cells(row, mark, name_width) for row, mark in zip(rows, marks, strict=True)
            ]
            fit = fitting_columns(cells, width, self.cell_padding)
            if fit >= WANTED_COLUMNS:
                break
        if fit != len(self.columns):
            self.clear(columns=True)
            self.add_columns(*COLUMNS[:fit])
        else:
            self.clear()
        for row, row_cells in zip(rows, cells, strict=True):
            self.add_row(*row_cells[:fit], key=str(row.path))
        if current is not None and any(row.path == current for row in rows):
            self.move_cursor(row=self.get_row_index(str(current)))
