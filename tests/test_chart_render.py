"""The app never dies drawing a chart.

plotext's build took log10 of its stored data in place on every render, so with the
Runs chart on log y a second resize failed with "math domain error" and ended the
app (issue 25). Here: that reproduction in the app, and every chart mode (panel,
x-axis, smoothing, log y, pinned run, reference lines, health marks) drawn with
empty, NaN, infinite, one-point, zero and negative series across a sequence of
sizes, through the charts' own drawing path (SafePlot.draw_text, which raises what
plotext raises), checking that drawing leaves the plotted data as it was.
"""

from __future__ import annotations

import copy
import itertools
import math
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from gptcore.runs.curves import X_AXES
from gptcore.runs.events import EvalEnd
from gptcore.runs.table import RunSeries
from tui.app import GptTuiApp
from tui.runstate import RunState
from tui.screens.runs import RunsPane
from tui.screens.runs.chart import PANELS, SMOOTHINGS, ChartView, draw_runs
from tui.settings import Settings
from tui.widgets.loss_chart import LossChart
from tui.widgets.run_chart import RunChart

from .test_tui_runs import table_names, write_pinned_run
from .tui_helpers import find_pane, run_async, wait_for

SIZES = [(80, 20), (23, 7), (120, 40), (1, 1), (60, 12)]


class ChartHost(App):
    """The two chart widgets alone: drawn directly, far faster than the whole app."""

    def compose(self) -> ComposeResult:
        yield RunChart(id="runs-chart")
        yield LossChart(id="loss-chart")


def series(values: list[float], steps: list[int] | None = None) -> RunSeries:
    """A run whose every per-step and per-eval number is `values`."""
    steps = steps if steps is not None else list(range(len(values)))
    return RunSeries(
        step_steps=list(steps),
        step_tokens=[s * 512 for s in steps],
        step_times=[float(s) * 3.5 for s in steps],
        step_loss=list(values),
        lr=list(values),
        grad_norm=list(values),
        tokens_per_s=list(values),
        eval_steps=list(steps),
        eval_tokens=[s * 512 for s in steps],
        eval_times=[float(s) * 3.5 for s in steps],
        train_loss=list(values),
        val_loss=list(values),
        marks=[(s, "spike", "a spike") for s in steps[:1]],
    )


NASTY_RUNS = {
    "empty": series([]),
    "one-point": series([4.2]),
    "nan-and-inf": series([math.nan, 3.0, math.inf, -math.inf, 2.5]),
    "all-nan": series([math.nan, math.nan]),
    "zero-and-negative": series([0.0, -1.0, 2.0, -3.5]),
    "flat": series([6.239] * 5),
    "huge-and-tiny": series([1e300, 1e-300, 5e-324, 1.7e308]),
    "ordinary": series([10.5 - 0.7 * i for i in range(12)]),
}
REFERENCE = [("GPT-2 124M val", 3.3), ("nan line", math.nan), ("negative", -2.0)]


def plotted(chart) -> object:
    """What plotext holds for the chart (data, ticks, lines, texts), deep-copied."""
    monitor = chart.plt.monitor
    fields = ("x", "y", "xticks", "yticks", "hcoord", "vcoord", "tx", "ty", "xlim", "ylim")
    return copy.deepcopy({name: getattr(monitor, name) for name in fields})


def draw_at_sizes(chart, sizes) -> None:
    """Draw at each size; plotext's stored data must come out as it went in."""
    before, drawn = plotted(chart), copy.deepcopy(getattr(chart, "drawn", None))
    for width, height in sizes:
        assert isinstance(chart.draw_text(width, height), str)
    assert plotted(chart) == before
    assert getattr(chart, "drawn", None) == drawn


@run_async
async def test_every_chart_mode_draws_at_every_size() -> None:
    """Each panel x x-axis x log y x smoothing, with every nasty series overlaid
    (one pinned) and the reference lines, drawn at a sequence of sizes."""
    async with ChartHost().run_test(size=(80, 24)) as pilot:
        chart = pilot.app.query_one(RunChart)
        runs = [(Path(name), s) for name, s in NASTY_RUNS.items()]
        modes = itertools.product(
            [p for p, _title in PANELS], X_AXES, (False, True), (0.0, SMOOTHINGS[-1])
        )
        for panel, axis, log_y, smoothing in modes:
            view = ChartView(panel=panel, x_axis=axis, smoothing=smoothing, log_y=log_y)
            draw_runs(chart, view, runs, Path("ordinary"), REFERENCE)
            assert {d.run for d in chart.drawn} >= {"ordinary", "one-point"}
            draw_at_sizes(chart, SIZES)
        # Each nasty run alone too: an empty or all-NaN chart is a chart of its own.
        for name, one in NASTY_RUNS.items():
            for log_y in (False, True):
                draw_runs(chart, ChartView(log_y=log_y), [(Path(name), one)], None, REFERENCE)
                draw_at_sizes(chart, SIZES)


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, -1.0, 1e-300, 5e-324, 1e308, 6.239]),
)
sizes = st.lists(st.tuples(st.integers(1, 140), st.integers(1, 45)), min_size=2, max_size=4)


@st.composite
def run_series(draw: st.DrawFn) -> RunSeries:
    values = draw(st.lists(numbers, max_size=6))
    steps = draw(st.lists(st.integers(-3, 10**12), min_size=len(values), max_size=len(values)))
    return series(values, steps)


@st.composite
def chart_views(draw: st.DrawFn) -> ChartView:
    return ChartView(
        panel=draw(st.sampled_from([p for p, _title in PANELS])),
        x_axis=draw(st.sampled_from(X_AXES)),
        smoothing=draw(st.sampled_from(SMOOTHINGS)),
        log_y=draw(st.booleans()),
    )


@run_async
async def test_any_series_in_any_mode_draws_at_any_size() -> None:
    async with ChartHost().run_test(size=(80, 24)) as pilot:
        chart = pilot.app.query_one(RunChart)
        loss = pilot.app.query_one(LossChart)

        @settings(
            max_examples=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(
            runs=st.lists(run_series(), max_size=3),
            view=chart_views(),
            pin=st.booleans(),
            reference=st.lists(st.tuples(st.just("ref"), numbers), max_size=2),
            at=sizes,
        )
        def draws(runs, view, pin, reference, at) -> None:
            named = [(Path(f"run-{i}"), s) for i, s in enumerate(runs)]
            pinned = named[0][0] if pin and named else None
            draw_runs(chart, view, named, pinned, reference)
            draw_at_sizes(chart, at)

        @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            evals=st.lists(st.tuples(st.integers(-3, 10**9), numbers, numbers), max_size=5),
            at=sizes,
        )
        def loss_draws(evals, at) -> None:
            state = RunState()
            state.evals = [EvalEnd(step, 0, t, v, 0, time=0.0) for step, t, v in evals]
            loss.show_run(state)
            draw_at_sizes(loss, at)

        draws()
        loss_draws()


@run_async
async def test_resizing_the_runs_chart_on_log_y_keeps_the_app_running() -> None:
    """The reproduction: 6, space on a run, l, then two resizes."""
    write_pinned_run("lr-0.004", 0.004, "finished")
    async with GptTuiApp(settings=Settings()).run_test(size=(80, 24)) as pilot:
        pane = await find_pane(pilot, RunsPane)
        await pilot.press("6")
        await wait_for(pilot, lambda: pane.loaded and table_names(pane) == ["lr-0.004"])
        pane.query_one(DataTable).focus()
        await pilot.press("space")
        await wait_for(pilot, lambda: len(pane.series) == 1)
        await pilot.press("l")
        chart = pane.query_one(RunChart)
        await wait_for(pilot, lambda: chart.log_y and bool(chart.drawn))
        for size in ((60, 20), (100, 30), (80, 24)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            # Each size drawn, through the widget's own render (what a resize calls).
            assert "could not be drawn" not in str(chart.render())
        assert pilot.app.is_running and pilot.app._exception is None
        assert pilot.app.screen.query_one(RunChart) is chart
