"""The Runs screen: three tiny real runs of different learning rates in the table,
overlaid in one chart; smoothing, log scale, the three x-axes, panels, the filter,
the pinned reference, and a running run followed live. The chart is checked through
the series it drew (RunChart.drawn), not its pixels."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable

from gptcore.runs.curves import debiased_ema
from gptcore.runs.events import EvalEnd, Failed, Finished, RunStarted, StepEnd, to_record
from gptcore.runs.lock import RunLock
from gptcore.runs.rundir import write_run_config
from gptcore.runs.table import RunSeries, SeriesFollower, run_row
from gptcore.settings.model import PRESETS
from gptcore.settings.train import TrainConfig
from gptcore.training.trainer import Trainer
from gptcore.util.paths import runs_dir
from tui.app import SCREENS, GptTuiApp
from tui.screens.runs import RunsPane
from tui.settings import Settings
from tui.widgets.run_chart import RunChart

from .tui_helpers import FAST_MODEL, find_pane, host_app, run_async, wait_for, write_corpus

LRS = {"lr-1e-3": 1e-3, "lr-4e-3": 4e-3, "lr-1e-2": 1e-2}
SIZE = (100, 30)


@pytest.fixture(scope="module")
def made_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three tiny runs trained once for the module (in a home of their own)."""
    folder = tmp_path_factory.mktemp("three-runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPT_TUI_HOME", str(folder / "home"))
        corpus = write_corpus(folder)
        for name, lr in LRS.items():
            config = TrainConfig(
                corpus=str(corpus), batch_size=2, epochs=1, max_steps=8, eval_freq=2,
                eval_iter=1, sample_tokens=0, lr=lr, precision="fp32", device="cpu",
            )  # fmt: skip
            Trainer(FAST_MODEL, config, run_dir=folder / "runs" / name).run()
    return folder / "runs"


@pytest.fixture
def runs(made_runs: Path) -> dict[str, Path]:
    """The three runs copied into this test's runs folder."""
    copied = {}
    for name in LRS:
        copied[name] = shutil.copytree(made_runs / name, runs_dir() / name)
    return copied


def series_of(path: Path) -> RunSeries:
    follower = SeriesFollower(path)
    follower.update()
    return follower.series


def table_names(pane: RunsPane) -> list[str]:
    table = pane.query_one(DataTable)
    return [str(table.get_row_at(i)[1]) for i in range(table.row_count)]


async def open_pane(pilot) -> RunsPane:
    pane = await find_pane(pilot, RunsPane)
    await wait_for(pilot, lambda: pane.loaded)
    pane.query_one(DataTable).focus()
    await pilot.pause()
    return pane


async def overlay(pilot, pane: RunsPane, names: list[str]) -> None:
    """Highlight each named run and press space; wait until all are read."""
    table = pane.query_one(DataTable)
    for name in names:
        table.move_cursor(row=table_names(pane).index(name))
        await pilot.press("space")
    want = {p for p in pane.selected}
    await wait_for(pilot, lambda: want <= set(pane.series))


def drawn(chart: RunChart, run: str, label: str, raw: bool = False):
    return next(d for d in chart.drawn if d.run == run and d.label == label and d.raw == raw)


def test_runs_is_the_sixth_tab() -> None:
    assert ("runs", "Runs", "6", RunsPane) in SCREENS


@run_async
async def test_table_overlay_smoothing_log_and_x_axes(runs: dict[str, Path]) -> None:
    async with host_app(RunsPane).run_test(size=SIZE) as pilot:
        pane = await open_pane(pilot)
        assert sorted(table_names(pane)) == sorted(LRS)
        table = pane.query_one(DataTable)
        row = run_row(runs["lr-1e-2"])
        cells = [str(c) for c in table.get_row(str(runs["lr-1e-2"]))]
        assert cells[1:4] == ["lr-1e-2", "finished", "8"]
        assert cells[5] == f"{row.best_val:.3f}" and cells[6] == f"{row.last_train:.3f}"

        # Two runs, then the third: each drawn in its own colour.
        await overlay(pilot, pane, ["lr-1e-3", "lr-1e-2"])
        chart = pane.query_one(RunChart)
        assert {d.run for d in chart.drawn} == {"lr-1e-3", "lr-1e-2"}
        await overlay(pilot, pane, ["lr-4e-3"])
        assert {d.run for d in chart.drawn} == set(LRS)
        colours = {name: drawn(chart, name, "train").colour for name in LRS}
        assert len(set(colours.values())) == 3

        # Smoothing on (the default): the raw series behind, the debiased EMA of it on top.
        assert pane.view.smoothing > 0
        for name, path in runs.items():
            series = series_of(path)
            raw, smooth = drawn(chart, name, "train", raw=True), drawn(chart, name, "train")
            assert raw.ys == series.step_loss and raw.xs == series.step_steps
            assert smooth.ys == pytest.approx(debiased_ema(series.step_loss, pane.view.smoothing))
            assert smooth.ys[0] == series.step_loss[0] and smooth.ys != raw.ys
            assert drawn(chart, name, "val").ys == series.val_loss
            assert raw.colour != colours[name]  # faint: the same hue, closer to the background
        # Smoothing 0: only the raw series, drawn as the curve itself.
        for _ in range(5):
            await pilot.press("left_square_bracket")
        assert pane.view.smoothing == 0
        assert not any(d.raw for d in chart.drawn)
        assert drawn(chart, "lr-1e-2", "train").ys == series_of(runs["lr-1e-2"]).step_loss
        await pilot.press("right_square_bracket")
        assert pane.view.smoothing > 0 and any(d.raw for d in chart.drawn)

        # Log y, on and off.
        await pilot.press("l")
        assert chart.log_y and "log y" in chart.title
        await pilot.press("l")
        assert not chart.log_y

        # The three x-axes: steps, tokens seen, wall time (seconds for runs this short).
        series = series_of(runs["lr-4e-3"])
        await pilot.press("x")
        assert chart.x_label == "tokens seen"
        assert drawn(chart, "lr-4e-3", "train").xs == series.step_tokens
        assert drawn(chart, "lr-4e-3", "val").xs == series.eval_tokens
        await pilot.press("x")
        assert chart.x_label == "wall time (s)"
        assert drawn(chart, "lr-4e-3", "train").xs == pytest.approx(series.step_times)
        await pilot.press("x")
        assert chart.x_label == "step"

        # The other panels: learning rate, gradient norm, tokens/s.
        await pilot.press("c")
        assert drawn(chart, "lr-1e-2", "lr", raw=True).ys == pytest.approx([1e-2] * 8)
        await pilot.press("c")
        assert (
            drawn(chart, "lr-1e-2", "grad_norm", raw=True).ys
            == series_of(runs["lr-1e-2"]).grad_norm
        )

        # A run's colour stays its own when it leaves and comes back.
        table.move_cursor(row=table_names(pane).index("lr-1e-3"))
        await pilot.press("space")
        assert "lr-1e-3" not in {d.run for d in chart.drawn}
        await pilot.press("space")
        await pilot.pause()
        assert drawn(chart, "lr-1e-3", "grad_norm").colour == colours["lr-1e-3"]


@run_async
async def test_filter_and_pinned_reference(runs: dict[str, Path]) -> None:
    async with host_app(RunsPane).run_test(size=SIZE) as pilot:
        pane = await open_pane(pilot)
        await pilot.press("slash", *"1e-2")
        await pilot.pause()
        assert table_names(pane) == ["lr-1e-2"]
        await pilot.press("enter")  # the focus stays in the filter: typing goes on there
        assert pilot.app.focused is pane.query_one("#runs-filter-input")
        await pilot.press("down")  # back to the table, the filter kept (or Escape, in the app)
        assert isinstance(pilot.app.focused, DataTable)
        pane.query_one("#runs-filter-input").value = "lr=0.004"  # a setting's value
        await pilot.pause()
        assert table_names(pane) == ["lr-4e-3"]
        pane.query_one("#runs-filter-input").value = ""
        await pilot.pause()
        assert len(table_names(pane)) == 3

        # r pins the highlighted run: overlaid, listed first, marked, drawn last (on top).
        table = pane.query_one(DataTable)
        await overlay(pilot, pane, ["lr-1e-3"])
        table.move_cursor(row=table_names(pane).index("lr-4e-3"))
        await pilot.press("r")
        await wait_for(pilot, lambda: runs["lr-4e-3"] in pane.series)
        assert pane.pinned == runs["lr-4e-3"]
        assert table_names(pane)[0] == "lr-4e-3"
        assert str(table.get_row_at(0)[0]) == "★"
        chart = pane.query_one(RunChart)
        assert chart.drawn[-1].run == "lr-4e-3"
        assert "lr-4e-3" in str(pane.query_one("#runs-summary").render())


@run_async
async def test_a_running_run_updates_live(runs: dict[str, Path]) -> None:
    path = runs["lr-1e-3"]
    lines = path.joinpath("metrics.jsonl").read_text(encoding="utf-8").splitlines(True)
    steps = [i for i, line in enumerate(lines) if '"event": "step"' in line]
    cut = steps[3] + 1  # the first four steps only, and no closing event yet
    path.joinpath("metrics.jsonl").write_text("".join(lines[:cut]), encoding="utf-8")
    with RunLock(path):  # held as a training process holds it: the run is running
        async with host_app(RunsPane).run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            assert str(pane.query_one(DataTable).get_row(str(path))[2]) == "running"
            await overlay(pilot, pane, ["lr-1e-3"])
            chart = pane.query_one(RunChart)
            assert len(drawn(chart, "lr-1e-3", "train").xs) == 4
            with path.joinpath("metrics.jsonl").open("a", encoding="utf-8") as f:
                f.writelines(lines[cut:])
            await wait_for(pilot, lambda: len(drawn(chart, "lr-1e-3", "train").xs) == 8)


# ---------------------------------------------------------------- the look at 80x24


def write_pinned_run(name: str, lr: float, end: str, steps: int = 40) -> None:
    """A run folder written by hand: fixed times and losses, so the picture never varies."""
    run = runs_dir() / name
    run.mkdir(parents=True)
    t0 = 1_767_268_800.0  # 2026-01-01 12:00 UTC
    events: list = [RunStarted(str(run), "cpu", "fp32", steps, 3_300_000, time=t0)]
    for step in range(steps):
        loss = 3.0 + 8.0 * math.exp(-step * lr * 20) + 0.4 * math.sin(step * 1.7)
        events.append(
            StepEnd(step, 0, loss, lr, (step + 1) * 512, 2000.0, 1.0, None, step * 0.5, steps,
                    time=t0 + step)
        )  # fmt: skip
        if step % 5 == 4:
            val = 3.5 + 8.0 * math.exp(-step * lr * 15)
            events.append(EvalEnd(step, 0, loss, val, (step + 1) * 512, time=t0 + step))
    if end == "finished":
        events.append(Finished(steps, 1, "completed", steps * 512, 20.0, time=t0 + steps))
    else:
        events.append(Failed(steps, 1, "loss is NaN", "nan", time=t0 + steps))
    with (run / "metrics.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(to_record(e)) + "\n" for e in events)
    write_run_config(run, PRESETS["tiny"], TrainConfig(corpus="builtin", lr=lr))


def test_snapshot_runs(snap_compare, monkeypatch: pytest.MonkeyPatch) -> None:
    from .tui_helpers import fixed_home

    fixed_home(monkeypatch)
    monkeypatch.setenv("TZ", "UTC")  # the started column
    time.tzset()
    write_pinned_run("lr-0.002", 0.002, "finished")
    write_pinned_run("lr-0.004", 0.004, "finished")
    write_pinned_run("lr-0.01", 0.01, "failed")

    async def run_before(pilot) -> None:
        pane = await find_pane(pilot, RunsPane)
        await pilot.press("6")
        await wait_for(pilot, lambda: pane.loaded)
        table = pane.query_one(DataTable)
        for name in ("lr-0.002", "lr-0.004"):
            table.move_cursor(row=table_names(pane).index(name))
            await pilot.press("space")
        await pilot.press("r")
        await wait_for(pilot, lambda: len(pane.series) == 2)
        await pilot.pause()

    try:
        app = GptTuiApp(settings=Settings())
        assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
    finally:
        monkeypatch.undo()
        time.tzset()


@run_async
async def test_a_run_folder_from_elsewhere_is_added_with_a(runs: dict[str, Path], tmp_path) -> None:
    elsewhere = shutil.copytree(runs["lr-1e-3"], tmp_path / "server-copy" / "far-run")
    not_a_run = tmp_path / "just-a-folder"
    not_a_run.mkdir()
    async with host_app(RunsPane).run_test(size=SIZE) as pilot:
        pane = await open_pane(pilot)
        assert "far-run" not in table_names(pane)
        for folder in (not_a_run, elsewhere):
            await pilot.press("a")
            await pilot.pause()
            pilot.app.screen.query_one("#run-path").value = str(folder)
            await pilot.press("enter")
            await pilot.pause()
        await wait_for(pilot, lambda: "far-run" in table_names(pane))
        assert pane.extra == [elsewhere] and len(table_names(pane)) == 4


@run_async
async def test_gpt2_reference_lines_on_the_runs_split(runs: dict[str, Path], tmp_path) -> None:
    """A downloaded GPT-2 size draws its train and val loss on the run's own split."""
    from gptcore.training.reference import reference_losses

    from .test_reference import _fake_gpt2

    _fake_gpt2(tmp_path)
    async with host_app(RunsPane).run_test(size=SIZE) as pilot:
        pane = await open_pane(pilot)
        await overlay(pilot, pane, ["lr-4e-3"])
        await wait_for(pilot, lambda: bool(pane.reference))
        row = next(r for r in pane.rows if r.name == "lr-4e-3")
        train, val = reference_losses(
            "124M", row.corpus, row.config["train_ratio"], row.config["model.context_length"],
            row.config["batch_size"],
        )  # fmt: skip
        assert pane.reference == [("GPT-2 124M train", train), ("GPT-2 124M val", val)]
