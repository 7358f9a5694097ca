"""What the Runs screen's chart shows: the panel, x-axis, smoothing and log scale
(ChartView), and the curves of the overlaid runs drawn with them (draw_runs).

The curves are the runs' own series (gptcore.runs.table.RunSeries); smoothing is a
debiased EMA on the full series, done by the RunChart widget.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gptcore.runs.curves import X_AXES
from gptcore.runs.table import RunSeries
from gptcore.util.fmt import format_si

from ...widgets.run_chart import Curve, RunChart

SMOOTHINGS = (0.0, 0.6, 0.8, 0.9, 0.95, 0.99)
DEFAULT_SMOOTHING = 0.6
# (id, chart title): the panels `c` cycles through.
PANELS = (
    ("loss", "train / val loss"),
    ("lr", "learning rate"),
    ("grad_norm", "gradient norm"),
    ("tokens_per_s", "tokens/s"),
)


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


def _next(options: Sequence, current: object) -> object:
    return options[(list(options).index(current) + 1) % len(options)]


@dataclass
class ChartView:
    """How the chart shows the runs; the keys c, x, l, [ and ] change it."""

    panel: str = PANELS[0][0]
    x_axis: str = X_AXES[0]
    smoothing: float = DEFAULT_SMOOTHING
    log_y: bool = False

    def next_panel(self) -> None:
        self.panel = str(_next([panel for panel, _title in PANELS], self.panel))

    def next_x_axis(self) -> None:
        self.x_axis = str(_next(X_AXES, self.x_axis))

    def smooth(self, direction: int) -> None:
        """One step along SMOOTHINGS (-1 less, +1 more), stopping at either end."""
        at = min(range(len(SMOOTHINGS)), key=lambda i: abs(SMOOTHINGS[i] - self.smoothing))
        self.smoothing = SMOOTHINGS[max(0, min(len(SMOOTHINGS) - 1, at + direction))]

    def title(self) -> str:
        title = dict(PANELS)[self.panel] + f" · smoothing {self.smoothing:g}"
        return title + (" · log y" if self.log_y else "")


def draw_runs(
    chart: RunChart,
    view: ChartView,
    runs: Iterable[tuple[Path, RunSeries]],
    pinned: Path | None,
    reference: Sequence[tuple[str, float]],
) -> None:
    """Show the `runs` (in overlay order) on `chart` as `view` says, with the runs'
    health marks and, on the loss panel, the `reference` lines."""
    curves: list[Curve] = []
    marks: list[tuple[str, float]] = []
    for path, series in runs:
        curves += panel_curves(path.name, series, view.panel, view.x_axis)
        for step, _kind, _text in series.marks:
            x = x_at_step(series, view.x_axis, step)
            if x is not None:
                marks.append((path.name, x))
    x_label, x_format = {"step": ("step", None), "tokens": ("tokens seen", short_si)}.get(
        view.x_axis, ("", None)
    )
    if view.x_axis == "time":  # seconds, minutes or hours: whichever reads best
        longest = max((x for c in curves for x in c.xs if math.isfinite(x)), default=0.0)
        unit, scale = time_unit(longest)
        curves = [dataclasses.replace(c, xs=[x / scale for x in c.xs]) for c in curves]
        marks = [(run, x / scale) for run, x in marks]
        x_label = f"wall time ({unit})"
    chart.show(
        curves,
        title=view.title(),
        x_label=x_label,
        smoothing=view.smoothing,
        log_y=view.log_y,
        pinned=pinned.name if pinned else None,
        lines=reference if view.panel == "loss" else (),
        marks=marks,
        x_format=x_format,
        x_integer=view.x_axis == "step",
    )
