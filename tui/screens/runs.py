"""The Runs screen: every run in a table; several overlaid in one chart.

The table is gptcore.run_table's (the same rows as `gpt-tui runs`). Space adds the
highlighted run to the overlay, `r` pins it as the reference (listed first, drawn
on top), `/` filters by name or setting (`lr=0.003`). The chart shows one panel at
a time (loss, learning rate, gradient norm, tokens/s) against steps, tokens seen or
wall time, smoothed by a debiased EMA on the full series (gptcore.curves), with the
losses of any GPT-2 size on disk as reference lines.

Files are read only in thread workers: a running run's metrics.jsonl is followed
every POLL_S (gptcore.run_table.SeriesFollower), a finished one is read once.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.message import Message
from textual.widgets import DataTable, Input, Static
from textual.worker import Worker

from gptcore.runs.curves import X_AXES
from gptcore.runs.table import RunRow, RunSeries, SeriesFollower, filter_rows
from gptcore.util.fmt import format_count, format_si

from ..widgets.run_chart import Curve, RunChart

# What tells runs apart first: at 80 columns everything up to `last train` fits.
COLUMNS = ("", "name", "state", "steps", "tokens", "best val", "last train", "model", "corpus")
COLUMNS += ("started",)
NAME_WIDTH, CORPUS_WIDTH = 22, 12
POLL_S = 1.0  # how often the overlaid running runs' metrics.jsonl are read
LIST_S = 5.0  # how often the table is re-read while a run in it is running
SMOOTHINGS = (0.0, 0.6, 0.8, 0.9, 0.95, 0.99)
DEFAULT_SMOOTHING = 0.6
# (id, chart title): the panels `c` cycles through.
PANELS = (
    ("loss", "train / val loss"),
    ("lr", "learning rate"),
    ("grad_norm", "gradient norm"),
    ("tokens_per_s", "tokens/s"),
)
STATE_STYLES = {"running": "bold green", "failed": "red", "stopped": "yellow"}


def clip(text: str, width: int) -> str:
    """`text` in at most `width` characters, cut in the middle (both ends tell)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def time_unit(seconds: float) -> tuple[str, float]:
    """The unit wall times up to `seconds` read best in, and its length in seconds."""
    if seconds >= 2 * 3600:
        return "h", 3600.0
    if seconds >= 120:
        return "min", 60.0
    return "s", 1.0


def short_si(value: float) -> str:
    """A tick label for tokens: "1.2M", "512"."""
    return format_si(value).replace(" ", "")


def x_values(series: RunSeries, axis: str, evals: bool) -> list[float]:
    """The step or eval points' x values on `axis` (one of X_AXES)."""
    if axis == "step":
        return [float(s) for s in (series.eval_steps if evals else series.step_steps)]
    if axis == "tokens":
        return [float(t) for t in (series.eval_tokens if evals else series.step_tokens)]
    return list(series.eval_times if evals else series.step_times)


def x_at_step(series: RunSeries, axis: str, step: int) -> float | None:
    """Where `step` falls on `axis`: the x of the first logged step at or after it."""
    if axis == "step":
        return float(step)
    i = bisect.bisect_left(series.step_steps, step)
    if i == len(series.step_steps):
        i -= 1
    if i < 0:
        return None
    return float(series.step_tokens[i] if axis == "tokens" else series.step_times[i])


def panel_curves(name: str, series: RunSeries, panel: str, axis: str) -> list[Curve]:
    """One run's curves for `panel`: its per-step train loss and eval val loss, or
    the per-step learning rate, gradient norm or tokens/s."""
    steps = x_values(series, axis, evals=False)
    if panel == "loss":
        return [
            Curve(name, "train", steps, list(series.step_loss)),
            Curve(name, "val", x_values(series, axis, evals=True), list(series.val_loss), True),
        ]
    return [Curve(name, panel, steps, list(getattr(series, panel)))]


def snapshot(series: RunSeries) -> RunSeries:
    """A copy the UI thread can read while a worker keeps appending to the original."""
    return dataclasses.replace(
        series, **{f.name: list(getattr(series, f.name)) for f in dataclasses.fields(series)}
    )


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
    def __init__(self, key: tuple, lines: list[tuple[str, float]]) -> None:
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
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[RunRow] = []
        self.query_text = ""
        self.selected: list[Path] = []  # overlaid, in the order they were picked
        self.extra: list[Path] = []  # run folders added by hand (`a`), listed with the others
        self.pinned: Path | None = None
        self.series: dict[Path, RunSeries] = {}  # snapshots, read on the UI thread only
        self.smoothing = DEFAULT_SMOOTHING
        self.log_y = False
        self.x_axis = X_AXES[0]
        self.panel = PANELS[0][0]
        self.loaded = False
        self.reference: list[tuple[str, float]] = []
        self._reference_key: tuple | None = None
        # Touched only by the follow worker, one at a time (see _poll).
        self._followers: dict[Path, SeriesFollower] = {}
        self._read_once: set[Path] = set()
        self._follow_worker: Worker | None = None
        self._last_list = 0.0

    def compose(self) -> ComposeResult:
        yield Static("reading runs …", id="runs-summary", markup=False)
        table: DataTable = DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table
        yield Input(
            placeholder="filter: words or key=value (lr=0.003)",
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
        self.query_one(DataTable).focus()

    # ------------------------------------------------------------ the table

    def refresh_list(self) -> None:
        self._last_list = time.monotonic()
        self._list(tuple(self.extra))

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-list")
    def _list(self, extra: tuple[Path, ...]) -> None:
        from gptcore.errors import GptTuiError
        from gptcore.runs.table import run_table

        try:
            self.post_message(RunRows(run_table(extra=extra)))
        except (GptTuiError, OSError) as exc:
            self.post_message(RunRows([], str(exc)))

    def on_run_rows(self, message: RunRows) -> None:
        if message.error:
            self.notify(message.error, title="Runs", severity="error", markup=False)
        self.rows = message.rows
        self.loaded = True
        known = {row.path for row in self.rows}
        self.selected = [p for p in self.selected if p in known]
        if self.pinned not in known:
            self.pinned = None
        self._fill()
        self._poll()

    def shown_rows(self) -> list[RunRow]:
        """The rows the filter keeps, the pinned run first."""
        rows = filter_rows(self.rows, self.query_text)
        return sorted(rows, key=lambda row: row.path != self.pinned)

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        current = self.current()
        table.clear()
        rows = self.shown_rows()
        for row in rows:
            table.add_row(*self._cells(row), key=str(row.path))
        if current is not None and any(row.path == current.path for row in rows):
            table.move_cursor(row=table.get_row_index(str(current.path)))
        self._summarize()
        self.refresh_bindings()

    def _cells(self, row: RunRow) -> list[Text]:
        def num(value: float | None) -> str:
            return "–" if value is None or not math.isfinite(value) else f"{value:.3f}"

        mark = Text("")
        if row.path in self.selected:
            colour = "rgb({},{},{})".format(*self.query_one(RunChart).colours.colour(row.name))
            mark = Text("★" if row.path == self.pinned else "●", style=f"bold {colour}")
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

    def _summarize(self) -> None:
        if not self.loaded:
            return
        shown = len(self.shown_rows())
        if not self.rows:
            from gptcore.util.paths import runs_dir

            text = f"no runs yet in {runs_dir()}: train a model on the Train screen"
        else:
            text = f"{len(self.rows)} run(s)"
            if self.query_text:
                text += f", {shown} match “{self.query_text}”"
            text += f" · {len(self.selected)} overlaid (space)"
            if self.pinned is not None:
                text += f" · ★ {self.pinned.name}"
        self.query_one("#runs-summary", Static).update(Text(text))

    def current(self) -> RunRow | None:
        """The highlighted run."""
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # no rows / cursor out of range after a clear
            return None
        return next((row for row in self.rows if str(row.path) == key), None)

    def _row(self, path: Path) -> RunRow | None:
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
        jobs = []
        for path in self.selected:
            row = self._row(path)
            if path in self._read_once and row is not None and row.state != "running":
                continue
            if path not in self._followers:
                self._followers[path] = SeriesFollower(path)
            jobs.append(self._followers[path])
            if row is not None and row.state != "running":
                self._read_once.add(path)
            else:
                self._read_once.discard(path)
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
        row = self._row(path) if path is not None else None
        if row is None or not row.corpus or self.panel != "loss":
            return
        c = row.config
        key = (  # the run's own split and windows (max_length, else the context)
            row.corpus,
            c.get("train_ratio", 0.9),
            c.get("max_length") or c.get("model.context_length", 1024),
            c.get("batch_size", 2),
        )
        if key != self._reference_key:
            self._reference_key = key
            self.reference = []
            self._reference(key)

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-reference")
    def _reference(self, key: tuple) -> None:
        from gptcore.errors import GptTuiError
        from gptcore.training.reference import local_gpt2_sizes, reference_losses

        lines: list[tuple[str, float]] = []
        for size in local_gpt2_sizes():
            try:
                losses = reference_losses(size, *key)
            except (GptTuiError, OSError, ValueError):
                continue  # a corpus too short for one batch: no line, not an error
            if losses is not None:
                lines.append((f"GPT-2 {size} train", losses[0]))
                lines.append((f"GPT-2 {size} val", losses[1]))
        self.post_message(ReferenceLines(key, lines))

    def on_reference_lines(self, message: ReferenceLines) -> None:
        if message.key == self._reference_key:
            self.reference = message.lines
            self._draw()

    # ------------------------------------------------------------ the chart

    def _draw(self) -> None:
        chart = self.query_one(RunChart)
        curves: list[Curve] = []
        marks: list[tuple[str, float]] = []
        for path in self.selected:
            series = self.series.get(path)
            if series is None:
                continue
            curves += panel_curves(path.name, series, self.panel, self.x_axis)
            for step, _kind, _text in series.marks:
                x = x_at_step(series, self.x_axis, step)
                if x is not None:
                    marks.append((path.name, x))
        title = dict(PANELS)[self.panel]
        title += f" · smoothing {self.smoothing:g}" + (" · log y" if self.log_y else "")
        x_label, x_format = {"step": ("step", None), "tokens": ("tokens seen", short_si)}.get(
            self.x_axis, ("", None)
        )
        if self.x_axis == "time":  # seconds, minutes or hours: whichever reads best
            longest = max((x for c in curves for x in c.xs if math.isfinite(x)), default=0.0)
            unit, scale = time_unit(longest)
            curves = [dataclasses.replace(c, xs=[x / scale for x in c.xs]) for c in curves]
            marks = [(run, x / scale) for run, x in marks]
            x_label = f"wall time ({unit})"
        chart.show(
            curves,
            title=title,
            x_label=x_label,
            smoothing=self.smoothing,
            log_y=self.log_y,
            pinned=self.pinned.name if self.pinned else None,
            lines=self.reference if self.panel == "loss" else (),
            marks=marks,
            x_format=x_format,
            x_integer=self.x_axis == "step",
        )

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
        self.query_one(DataTable).focus()

    @on(Input.Blurred, "#runs-filter-input")
    def _filter_left(self, event: Input.Blurred) -> None:
        event.input.display = bool(event.value.strip())  # an active filter stays in sight

    def action_smoothing(self, direction: int) -> None:
        at = min(range(len(SMOOTHINGS)), key=lambda i: abs(SMOOTHINGS[i] - self.smoothing))
        self.smoothing = SMOOTHINGS[max(0, min(len(SMOOTHINGS) - 1, at + direction))]
        self._draw()

    def action_log_y(self) -> None:
        self.log_y = not self.log_y
        self._draw()

    def action_x_axis(self) -> None:
        self.x_axis = X_AXES[(X_AXES.index(self.x_axis) + 1) % len(X_AXES)]
        self._draw()

    def action_panel(self) -> None:
        ids = [panel for panel, _title in PANELS]
        self.panel = ids[(ids.index(self.panel) + 1) % len(ids)]
        self._want_reference()
        self._draw()

    def action_refresh(self) -> None:
        self.refresh_list()

    def action_add_run(self) -> None:
        """List a run folder from elsewhere (another data dir, a copy from a server)."""
        from .open_run import OpenRunScreen

        def picked(path: str | None) -> None:
            from gptcore.runs.rundir import RunDir

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
        from .timeline import TimelineScreen  # slice R4's screen

        self.app.push_screen(TimelineScreen(row.path))
