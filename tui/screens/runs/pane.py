"""The Runs screen: every run in a table (runs.table); several overlaid in one chart
(runs.chart).

Space adds the highlighted run to the overlay, `r` pins it as the reference (listed
first, drawn on top), `/` filters by name or setting (`lr=0.003`). The chart shows
one panel at a time (loss, learning rate, gradient norm, tokens/s) against steps,
tokens seen or wall time, smoothed by a debiased EMA on the full series
(gptcore.runs.curves), with the losses of any GPT-2 size on disk as reference lines.

Files are read only in thread workers: a running run's metrics.jsonl is followed
every POLL_S (runs.follow), a finished one is read once.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.message import Message
from textual.widgets import Input, Static
from textual.worker import Worker

from gptcore.errors import GptTuiError
from gptcore.runs.rundir import RunDir
from gptcore.runs.table import RunRow, RunSeries, SeriesFollower, filter_rows, run_table

from ...widgets.run_chart import RunChart
from ..open_run import OpenRunScreen
from ..timeline import TimelineScreen
from .chart import ChartView, draw_runs, snapshot
from .follow import Followers, ReferenceKey, reference_key, reference_lines
from .table import RunTable, summary_text

POLL_S = 1.0  # how often the overlaid running runs' metrics.jsonl are read
LIST_S = 5.0  # how often the table is re-read while a run in it is running


class RunRows(Message):
    def __init__(self, rows: list[RunRow], error: str | None = None) -> None:
        super().__init__()
        self.rows, self.error = rows, error


class SeriesRead(Message):
    """New data of some overlaid runs: path -> a snapshot of its series."""

    def __init__(self, series: dict[Path, RunSeries]) -> None:
        super().__init__()
        self.series = series


class ReferenceLines(Message):
    def __init__(self, key: ReferenceKey, lines: list[tuple[str, float]]) -> None:
        super().__init__()
        self.key, self.lines = key, lines


class RunsPane(Container, can_focus=True):
    """Compare runs: a table of every run and their curves overlaid."""

    BINDINGS = [
        Binding("space", "toggle", "Overlay", id="runs-toggle"),
        Binding("r", "pin", "Pin", id="runs-pin"),
        Binding("slash", "filter", "Filter", id="runs-filter", key_display="/"),
        Binding("c", "panel", "Panel", id="runs-panel"),
        Binding("t", "timeline", "Timeline", id="runs-timeline"),
        # Listed in help (?) and the palette; the footer keeps to what fits at 80 columns.
        Binding("x", "x_axis", "X-axis: step / tokens / time", id="runs-x-axis", show=False),
        Binding("l", "log_y", "Log y on/off", id="runs-log", show=False),
        Binding(
            "left_square_bracket",
            "smoothing(-1)",
            "Less smoothing",
            id="runs-smooth-less",
            key_display="[",
            show=False,
        ),  # fmt: skip
        Binding(
            "right_square_bracket",
            "smoothing(1)",
            "More smoothing",
            id="runs-smooth-more",
            key_display="]",
            show=False,
        ),  # fmt: skip
        Binding("g", "refresh", "Refresh", id="runs-refresh", show=False),
        Binding("a", "add_run", "Add a run folder", id="runs-add", show=False),
        # Reached only from the filter (the table takes ↓ itself).
        Binding("down", "to_table", "Back to the table", id="runs-to-table", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[RunRow] = []
        self.query_text = ""
        self.selected: list[Path] = []  # overlaid, in the order they were picked
        self.extra: list[Path] = []  # run folders added by hand (`a`), listed with the others
        self.pinned: Path | None = None
        self.series: dict[Path, RunSeries] = {}  # snapshots, read on the UI thread only
        self.view = ChartView()
        self.loaded = False
        self.reference: list[tuple[str, float]] = []
        self._reference_key: ReferenceKey | None = None
        self._followers = Followers()  # used by one follow worker at a time (see _poll)
        self._follow_worker: Worker | None = None
        self._last_list = 0.0
        self._told: set[Path] = set()  # the runs whose problem was notified

    def compose(self) -> ComposeResult:
        yield Static("reading runs …", id="runs-summary", markup=False)
        yield RunTable(id="runs-table")
        yield Input(
            placeholder="filter: words or key=value (lr=0.003) · Esc or ↓: back to the table",
            id="runs-filter-input",
            compact=True,
        )
        yield RunChart(id="runs-chart")

    def on_mount(self) -> None:
        self.query_one("#runs-filter-input").display = False
        self.set_interval(POLL_S, self._tick)
        self._draw()

    def on_show(self) -> None:
        self.refresh_list()  # each visit: runs may have started or ended meanwhile

    def on_focus(self) -> None:
        self.query_one(RunTable).focus()

    # ------------------------------------------------------------ the table

    def refresh_list(self) -> None:
        self._last_list = time.monotonic()
        self._list(tuple(self.extra))

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-list")
    def _list(self, extra: tuple[Path, ...]) -> None:

        try:
            self.post_message(RunRows(run_table(extra=extra)))
        except (GptTuiError, OSError) as exc:
            self.post_message(RunRows([], str(exc)))

    def on_run_rows(self, message: RunRows) -> None:
        if message.error:
            self.notify(message.error, title="Runs", severity="error", markup=False)
        self.rows = message.rows
        self.loaded = True
        self._tell_problems(message.rows)
        known = {row.path for row in self.rows}
        self.selected = [p for p in self.selected if p in known]
        if self.pinned not in known:
            self.pinned = None
        self._fill()
        self._poll()

    def _tell_problems(self, rows: list[RunRow]) -> None:
        """What could not be read of a run (a damaged file, names its field), told once
        per run (a running run's count of damaged lines grows: not a toast each time)."""
        for row in rows:
            if row.problem is not None and row.path not in self._told:
                self._told.add(row.path)
                self.notify(row.problem, title=f"Run {row.name}", severity="warning", markup=False)

    def shown_rows(self) -> list[RunRow]:
        """The rows the filter keeps, the pinned run first."""
        rows = filter_rows(self.rows, self.query_text)
        return sorted(rows, key=lambda row: row.path != self.pinned)

    def _fill(self) -> None:
        rows = self.shown_rows()
        colours = self.query_one(RunChart).colours
        self.query_one(RunTable).show(rows, self.selected, self.pinned, colours.colour)
        if self.loaded:
            text = summary_text(
                self.rows, len(rows), self.query_text, len(self.selected), self.pinned
            )
            self.query_one("#runs-summary", Static).update(Text(text))
        self.refresh_bindings()

    def current(self) -> RunRow | None:
        """The highlighted run."""
        return self._row(self.query_one(RunTable).current_path())

    def _row(self, path: Path | None) -> RunRow | None:
        return next((row for row in self.rows if row.path == path), None)

    # ------------------------------------------------------------ following runs

    def _tick(self) -> None:
        running = any(row.state == "running" for row in self.rows)
        if running and time.monotonic() - self._last_list >= LIST_S:
            self.refresh_list()  # a run's state and numbers change while it trains
        self._poll()

    def _poll(self) -> None:
        """Read the overlaid runs that need it: running ones each time, others once."""
        if self._follow_worker is not None and self._follow_worker.is_running:
            return  # its followers are busy; the next tick comes back
        jobs = self._followers.due(self.selected, self._row)
        if jobs:
            self._follow_worker = self._follow(jobs)

    @work(thread=True, exit_on_error=False, group="runs-follow")
    def _follow(self, followers: list[SeriesFollower]) -> None:
        changed = {f.path: snapshot(f.series) for f in followers if f.update()}
        if changed:
            self.post_message(SeriesRead(changed))

    def on_series_read(self, message: SeriesRead) -> None:
        self.series.update(message.series)
        self._draw()

    # ------------------------------------------------------------ reference lines

    def _want_reference(self) -> None:
        """GPT-2's losses on the reference run's corpus split, for each size on disk."""
        path = self.pinned or (self.selected[0] if self.selected else None)
        row = self._row(path)
        key = reference_key(row) if row is not None and self.view.panel == "loss" else None
        if key is not None and key != self._reference_key:
            self._reference_key = key
            self.reference = []
            self._reference(key)

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-reference")
    def _reference(self, key: ReferenceKey) -> None:
        self.post_message(ReferenceLines(key, reference_lines(key)))

    def on_reference_lines(self, message: ReferenceLines) -> None:
        if message.key == self._reference_key:
            self.reference = message.lines
            self._draw()

    # ------------------------------------------------------------ the chart

    def _draw(self) -> None:
        runs = [(path, self.series[path]) for path in self.selected if path in self.series]
        draw_runs(self.query_one(RunChart), self.view, runs, self.pinned, self.reference)

    # ------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("toggle", "pin", "timeline"):
            return True if self.is_mounted and self.current() is not None else None
        return True

    def action_toggle(self) -> None:
        row = self.current()
        if row is None:
            return
        if row.path in self.selected:
            self.selected.remove(row.path)
            if self.pinned == row.path:
                self.pinned = None
        else:
            self.selected.append(row.path)
        self._changed()

    def action_pin(self) -> None:
        row = self.current()
        if row is None:
            return
        if self.pinned == row.path:
            self.pinned = None  # r again unpins
        else:
            self.pinned = row.path
            if row.path not in self.selected:
                self.selected.append(row.path)
        self._changed()

    def _changed(self) -> None:
        self._fill()
        self._want_reference()
        self._draw()
        self._poll()

    def action_filter(self) -> None:
        box = self.query_one("#runs-filter-input", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#runs-filter-input")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value.strip()
        self._fill()

    @on(Input.Submitted, "#runs-filter-input")
    def _filter_done(self, event: Input.Submitted) -> None:
        # The filter applies as it is typed. Enter leaves the focus here: keys typed
        # after it stay text (they opened the timeline with `t` when Enter went back
        # to the table); Escape or ↓ go back to the table.
        event.stop()

    def action_to_table(self) -> None:
        self.query_one(RunTable).focus()

    @on(Input.Blurred, "#runs-filter-input")
    def _filter_left(self, event: Input.Blurred) -> None:
        event.input.display = bool(event.value.strip())  # an active filter stays in sight

    def action_smoothing(self, direction: int) -> None:
        self.view.smooth(direction)
        self._draw()

    def action_log_y(self) -> None:
        self.view.log_y = not self.view.log_y
        self._draw()

    def action_x_axis(self) -> None:
        self.view.next_x_axis()
        self._draw()

    def action_panel(self) -> None:
        self.view.next_panel()
        self._want_reference()
        self._draw()

    def action_refresh(self) -> None:
        self.refresh_list()

    def action_add_run(self) -> None:
        """List a run folder from elsewhere (another data dir, a copy from a server)."""

        def picked(path: str | None) -> None:

            if not path:
                return
            if not RunDir(path).is_run():  # two stat calls: fine on the UI thread
                self.notify(
                    f"{path} is not a run folder (it has no config.toml or metrics.jsonl)",
                    title="Add a run",
                    severity="error",
                )
                return
            if Path(path).resolve() not in [p.resolve() for p in self.extra]:
                self.extra.append(Path(path))
            self.refresh_list()

        self.app.push_screen(
            OpenRunScreen("Add a run to the table: type its folder or pick one"), picked
        )

    def action_timeline(self) -> None:
        row = self.current()
        if row is None:
            self.notify("no run to show: the table is empty", title="Timeline", severity="warning")
            return

        self.app.push_screen(TimelineScreen(row.path))
