"""The Sweeps screen: the sweeps under DATA/sweeps, one at a time.

It shows the sweep's budget used and left, its best configuration so far, the
leaderboard (best val loss first; mean±spread across seeds), a per-parameter view
(val loss against one parameter's values, `p` for the next) and the parameters'
importance once enough trials are complete. A sweep is watched by reading its
study every POLL_S in a thread worker, so one started headless (tmux, SSH) shows
the same as one started here. `s` starts a sweep file headless, `x` stops the
sweep (its runs save a checkpoint), `r` resumes it, `n` shows the next sweep.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from gptcore.errors import GptTuiError
from gptcore.sweep.control import list_sweeps, start_sweep, stop_sweep, sweep_pids
from gptcore.sweep.folder import SweepFolder
from gptcore.sweep.leaderboard import SweepStatus, param_points, sweep_status
from gptcore.sweep.spec import load_sweep, resolve_sweep_path

from .paramview import param_lines

POLL_S = 2.0  # how often the shown sweep's study is read
TABLE_ROWS = 50  # the leaderboard's first rows (the best)


class SweepRead(Message):
    """What a worker read: the sweep folders and the shown one's status (or why not)."""

    def __init__(
        self,
        folders: list[Path],
        shown: Path | None,
        status: SweepStatus | None,
        error: str | None = None,
    ) -> None:
        super().__init__()
        self.folders, self.shown, self.status, self.error = folders, shown, status, error


class SweepsPane(Container):
    """See the module docstring."""

    BINDINGS = [
        Binding("n", "next_sweep", "Next sweep", id="sweeps-next"),
        Binding("p", "next_param", "Parameter", id="sweeps-param"),
        Binding("s", "start", "Start", id="sweeps-start"),
        Binding("x", "stop", "Stop", id="sweeps-stop"),
        Binding("r", "resume", "Resume", id="sweeps-resume"),
    ]

    def __init__(self, *, id: str | None = "sweeps-pane") -> None:
        super().__init__(id=id)
        self.folders: list[Path] = []
        self.shown: Path | None = None
        self.status: SweepStatus | None = None
        self.param_index = 0
        # Importance is recomputed only when the complete trials change.
        self._importance: tuple[tuple[Path, int], dict[str, float] | None] | None = None

    def compose(self) -> ComposeResult:
        yield Static("no sweeps yet: press s to start one", id="sweeps-summary", markup=False)
        table = DataTable(id="sweeps-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="sweeps-params", markup=False)
        box = Input(
            placeholder="sweep file or a shipped sweep (quick-lr); Enter starts it",
            id="sweeps-file",
        )
        box.display = False  # shown by `s`
        yield box

    def on_mount(self) -> None:
        self.read()
        self.set_interval(POLL_S, self.read)

    # -- reading (thread worker)

    @work(thread=True, exclusive=True, exit_on_error=False, group="sweeps-read")
    def read(self) -> None:

        folders = [f.path for f in list_sweeps()]
        if self.shown is not None and self.shown not in folders and self.shown.is_dir():
            # started from here a moment ago: its process has not written the folder yet
            self.post_message(
                SweepRead(folders, self.shown, None, f"sweep {self.shown.name}: starting")
            )
            return
        shown = self.shown if self.shown in folders else (folders[-1] if folders else None)
        if shown is None:
            self.post_message(SweepRead(folders, None, None))
            return

        try:
            status = sweep_status(SweepFolder(shown), with_importance=False)
            key = (shown, sum(1 for r in status.rows if r.state == "complete"))
            if self._importance is None or self._importance[0] != key:
                status = sweep_status(SweepFolder(shown))
                self._importance = (key, status.importance)
            status = dataclasses.replace(status, importance=self._importance[1])
        except GptTuiError as exc:
            self.post_message(SweepRead(folders, shown, None, f"{shown.name}: {exc}"))
            return
        self.post_message(SweepRead(folders, shown, status))

    def on_sweep_read(self, message: SweepRead) -> None:
        self.folders = message.folders
        self.shown = message.shown
        if not self.query("#sweeps-summary"):  # read just before the screen closed
            return
        summary = self.query_one("#sweeps-summary", Static)
        if message.error is not None:
            summary.update(message.error)
            return
        self.status = message.status
        if message.status is None:
            summary.update("no sweeps yet: press s to start one (a sweep file, or quick-lr)")
            return
        self._show(message.status)

    # -- drawing

    def _show(self, status: SweepStatus) -> None:
        best = status.best
        head = f"sweep {status.name} ({len(self.folders)} in all): " + "; ".join(
            status.budget_lines()
        )
        if best is not None and best.value is not None:
            shown = ", ".join(f"{k}={_short(v)}" for k, v in best.params.items())
            head += f"\nbest: trial {best.number}, val loss {best.value:.4f}: {shown}"
        else:
            head += "\nbest: no complete trial yet"
        self.query_one("#sweeps-summary", Static).update(head)
        self._fill_table(status)
        self._draw_params(status)

    def _fill_table(self, status: SweepStatus) -> None:
        table = self.query_one("#sweeps-table", DataTable)
        names = [p.name for p in status.spec.space]
        columns = ["#", "state", "val loss", *names, "tokens"]
        if [str(c.label) for c in table.columns.values()] != columns:
            table.clear(columns=True)
            table.add_columns(*columns)
        table.clear()
        for row in status.rows[:TABLE_ROWS]:
            value = "-" if row.value is None else f"{row.value:.4f}"
            if row.spread is not None:
                value += f"±{row.spread:.3f}"
            cells = [str(row.number), row.state, value]
            cells += [_short(row.params.get(n)) for n in names]
            table.add_row(*cells, f"{row.tokens:,}", key=str(row.number))

    def _draw_params(self, status: SweepStatus) -> None:
        names = [p.name for p in status.spec.space]
        name = names[self.param_index % len(names)]
        width = max(40, self.size.width - 2)
        lines = param_lines(name, param_points(status.rows, name), width)
        if status.importance:
            shown = ", ".join(f"{k} {v:.2f}" for k, v in status.importance.items())
            lines.append(f"importance: {shown}")
        self.query_one("#sweeps-params", Static).update("\n".join(lines))

    # -- actions

    def action_next_sweep(self) -> None:
        if not self.folders:
            return
        i = self.folders.index(self.shown) if self.shown in self.folders else -1
        self.shown = self.folders[(i + 1) % len(self.folders)]
        self.read()

    def action_next_param(self) -> None:
        self.param_index += 1
        if self.status is not None:
            self._draw_params(self.status)

    def action_start(self) -> None:
        box = self.query_one("#sweeps-file", Input)
        box.display = True
        box.focus()

    @on(Input.Submitted, "#sweeps-file")
    def start_file(self, event: Input.Submitted) -> None:

        text = event.value.strip()
        try:  # checked here, so a bad file is a message, not a dead background process
            path = resolve_sweep_path(text)
            spec = load_sweep(path)
            folder = SweepFolder.default_for(spec.name)
            if folder.is_sweep():
                raise GptTuiError(f"sweep {spec.name} exists: press r to resume it")
            start_sweep([str(path), "--dir", str(folder.path)], folder.path)
        except (GptTuiError, OSError) as exc:
            self.app.notify(str(exc), severity="error", timeout=10)
            return
        event.input.display = False
        self.shown = folder.path
        self.app.notify(f"sweep {spec.name} started (log: {folder.path / 'sweep.log'})")
        self.read()

    def action_stop(self) -> None:

        if self.shown is None:
            return
        sent = stop_sweep(SweepFolder(self.shown))
        if sent:
            self.app.notify(f"stopping sweep {self.shown.name}: its run saves a checkpoint")
        else:
            self.app.notify(f"sweep {self.shown.name} is not running here", severity="warning")

    def action_resume(self) -> None:

        if self.shown is None:
            return
        if sweep_pids(SweepFolder(self.shown)):
            self.app.notify(f"sweep {self.shown.name} is running", severity="warning")
            return
        try:
            start_sweep(["--resume", str(self.shown)], self.shown)
        except OSError as exc:
            self.app.notify(f"cannot start: {exc}", severity="error")
            return
        self.app.notify(f"sweep {self.shown.name} resumed (log: {self.shown / 'sweep.log'})")


def _short(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)
