"""`gpt-tui runs`: every run in one table (or JSON), newest first."""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gptcore.runs.table import filter_rows, row_record, run_table
from gptcore.util.fmt import MISSING, format_bytes, format_si
from gptcore.util.paths import runs_dir

if TYPE_CHECKING:
    from gptcore.runs.table import RunRow

MIN_WIDTH = 80
# Columns that give way, in turn, when the table is too wide: (column, narrowest width).
SHRINKABLE = [("name", 16), ("corpus", 8), ("model", 8), ("name", 10)]
RIGHT = {"steps", "tokens", "best val", "last train"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "runs",
        help="list runs: model, corpus, steps, tokens, best val, state",
        description="Every run under the data dir's runs folder, plus any RUN folders given, "
        "newest first. --filter keeps the runs whose name, model or corpus contains each word "
        "and whose settings match each key=value (lr=0.003, model.n_layers=4).",
    )
    p.add_argument("runs", metavar="RUN", nargs="*", help="a run folder to list too")
    p.add_argument("--filter", metavar="Q", default="", help="words and key=value settings")
    p.add_argument("--json", action="store_true", help="print a JSON list of the rows")
    p.set_defaults(func=run)


def _loss(value: float | None) -> str:
    return MISSING if value is None or not math.isfinite(value) else f"{value:.3f}"


def _when(epoch_s: float, now: float | None = None) -> str:
    """A start time as `ls -l` shortens it: "19:17" today, "Dec 01" this year, else "2024"."""
    then, today = time.localtime(epoch_s), time.localtime(now)
    if then[:3] == today[:3]:
        return time.strftime("%H:%M", then)
    return time.strftime("%b %d" if then.tm_year == today.tm_year else "%Y", then)


def _cells(row: RunRow) -> dict[str, str]:

    steps = MISSING if row.steps is None else f"{row.steps:,}"
    if row.steps is not None and row.total_steps and row.steps != row.total_steps:
        steps += f"/{row.total_steps:,}"
    started = MISSING if row.started is None else _when(row.started)
    return {
        "name": row.name,
        "model": row.model,
        "corpus": (Path(row.corpus).stem or row.corpus) if row.corpus else MISSING,
        "steps": steps,
        "tokens": MISSING if row.tokens_seen is None else format_si(row.tokens_seen),
        "best val": _loss(row.best_val),
        "last train": _loss(row.last_train),
        "disk": MISSING if row.disk_bytes is None else format_bytes(row.disk_bytes),
        "state": row.state,
        "started": started,
    }


def _clip(text: str, width: int) -> str:
    """`text` in `width` columns, its middle replaced by "…" (run names differ at both ends)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def format_table(rows: list[RunRow], width: int = MIN_WIDTH) -> str:
    """The rows as aligned columns in `width` characters (long names and paths clipped);
    two-word headers take two lines so the number columns stay narrow."""
    cells = [_cells(row) for row in rows]
    columns = list(cells[0]) if cells else []
    heads = {c: c.rpartition(" ")[::2] for c in columns}  # (top line, bottom line)
    widths = {
        c: max(len(heads[c][0]), len(heads[c][1]), *(len(cell[c]) for cell in cells))
        for c in columns
    }
    # Disk use only where it fits whole: at 80 columns names and models come first.
    if "disk" in widths and sum(widths.values()) + len(widths) - 1 > width:
        columns.remove("disk")
        del widths["disk"], heads["disk"]
    for column, narrowest in SHRINKABLE:
        excess = sum(widths.values()) + len(widths) - 1 - width
        if excess > 0:
            widths[column] = max(min(narrowest, widths[column]), widths[column] - excess)

    def line(values: dict[str, str]) -> str:
        parts = []
        for c in columns:
            text = _clip(values[c], widths[c])
            parts.append(text.rjust(widths[c]) if c in RIGHT else text.ljust(widths[c]))
        return " ".join(parts).rstrip()

    lines = [line({c: top for c, (top, _) in heads.items()})]
    lines += [line({c: bottom for c, (_, bottom) in heads.items()})]
    lines += [line(cell) for cell in cells]
    return "\n".join(text for text in lines if text)


def run(args: argparse.Namespace) -> int:

    rows = filter_rows(run_table(extra=args.runs), args.filter)
    if args.json:
        print(json.dumps([row_record(row) for row in rows]))
    elif rows:
        print(format_table(rows, max(MIN_WIDTH, shutil.get_terminal_size().columns)))
        # What could not be read, under the table: the file and the field, one line each.
        for row in rows:
            if row.problem is not None:
                print(f"{row.name}: {row.problem}")
    elif args.filter:
        print(f"no runs match {args.filter!r}")
    else:
        print(f"no runs in {runs_dir()}")
    return 0
