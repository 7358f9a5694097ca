"""The Runs screen's table: gptcore.runs.table's rows (the same as `gpt-tui runs`),
the overlaid runs marked in their chart colour, the pinned one starred."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.text import Text

from gptcore.runs.table import RunRow
from gptcore.util.fmt import format_count, format_si
from gptcore.util.paths import runs_dir

from ..cells import PathTable, clip

# What tells runs apart first: at 80 columns everything up to `last train` fits.
COLUMNS = ("", "name", "state", "steps", "tokens", "best val", "last train", "model", "corpus")
COLUMNS += ("started",)
NAME_WIDTH, CORPUS_WIDTH = 22, 12
STATE_STYLES = {"running": "bold green", "failed": "red", "stopped": "yellow"}


def run_cells(row: RunRow, mark: Text) -> list[Text]:
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
        Text(clip(row.name, NAME_WIDTH)),
        Text(row.state, style=STATE_STYLES.get(row.state, "")),
        Text(steps, justify="right"),
        Text(tokens, justify="right"),
        Text(num(row.best_val), justify="right"),
        Text(num(row.last_train), justify="right"),
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


class RunTable(PathTable):
    """The rows of `show`; the highlighted row stays highlighted across refills."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.add_columns(*COLUMNS)

    def show(
        self,
        rows: Sequence[RunRow],
        selected: Sequence[Path],
        pinned: Path | None,
        colour_of: Callable[[str], tuple[int, int, int]],
    ) -> None:
        """Fill the table with `rows`; the `selected` (overlaid) runs get a dot in
        their chart colour (`colour_of(name)`), the `pinned` one a star."""
        current = self.current_path()
        self.clear()
        for row in rows:
            mark = Text("")
            if row.path in selected:
                colour = "rgb({},{},{})".format(*colour_of(row.name))
                mark = Text("★" if row.path == pinned else "●", style=f"bold {colour}")
            self.add_row(*run_cells(row, mark), key=str(row.path))
        if current is not None and any(row.path == current for row in rows):
            self.move_cursor(row=self.get_row_index(str(current)))
