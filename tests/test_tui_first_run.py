"""A newcomer's first run: the Train form opens on the quick config, and every
config shows about how long it takes here before Start."""

from __future__ import annotations

import pytest
from textual.widgets import Select

from gptcore.data.plan import batch_plan
from gptcore.settings.files import shipped_configs
from gptcore.util.fmt import format_duration
from tui.app import GptTuiApp
from tui.configs import load_config
from tui.screens.train import TrainPane
from tui.settings import Settings

from .test_tui_app import text_of
from .tui_helpers import pin_step_timing, run_async, settle


@pytest.fixture
def fixed_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    pin_step_timing(monkeypatch)


async def _estimate_line(app: GptTuiApp, pilot) -> str:
    await settle(pilot)  # the corpus, then the rate probe
    await settle(pilot)
    return text_of(app, "#run-stats").splitlines()[-1]


@run_async
async def test_a_first_start_opens_on_the_quick_run_with_its_estimate(fixed_rate: None) -> None:
    import gptcore.planner.timing as timing

    app = GptTuiApp(settings=Settings())  # no saved config: a first start
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        line = await _estimate_line(app, pilot)
        quick = str(shipped_configs()["quick"])
        assert app.query_one("#config-select", Select).value == quick
        model, train = app.state.run_config
        assert load_config(quick)[0] == model and train.corpus == "builtin"
        plan = batch_plan(*app.state.corpus_tokens, model, train)
        seconds = timing.run_time(model, train, plan, timing.probe(model, train, "cpu")).mid
        assert line == f"time {format_duration(seconds)} on cpu"
        assert 60 < seconds < 600  # minutes, not hours, at this rate


@run_async
async def test_the_book_run_shows_hours_before_start(fixed_rate: None) -> None:
    app = GptTuiApp(settings=Settings(config=str(shipped_configs()["book"])))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        line = await _estimate_line(app, pilot)
        assert line.startswith("time ") and line.endswith(" on cpu")
        assert "h" in line.split()[1]  # e.g. "time 4h40m on cpu"
        assert app.query_one(TrainPane).state.state == "idle"  # nothing started
