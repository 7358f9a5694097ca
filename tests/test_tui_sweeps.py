"""The Sweeps view (issue 28): a sweep's leaderboard, best so far, budget, per-parameter
view and importance, read from its study; stop and resume reach the sweep's processes;
an 80x24 snapshot. Sweeps here are filled by the fake objective (no training)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from gptcore.runs.lock import RunLock
from gptcore.sweep.control import list_sweeps, stop_sweep, sweep_pids
from gptcore.sweep.folder import SweepFolder
from gptcore.sweep.runner import Runner
from gptcore.sweep.spec import load_sweep
from tests.tui_helpers import host_app, run_async, settle, wait_for
from tui.app import GptTuiApp
from tui.screens.sweeps import SweepsPane, SweepsScreen

from .sweep_helpers import FakeTrainer, write_sweep

SIZE = (80, 24)
BODY = (
    'sampler = "grid"\npruner = "median"\nstartup_trials = 2\n'
    "[space]\nlr = [0.0003, 0.001, 0.003, 0.01, 0.03]\nwarmup_steps = [0, 10]\n"
)


def make_sweep(tmp_path: Path, name: str = "lr-demo") -> SweepFolder:
    path = write_sweep(tmp_path, BODY, name=name)
    folder = SweepFolder.default_for(name)
    folder.create(load_sweep(path), path.read_text(encoding="utf-8"), None)
    Runner(folder, seed_trainer=FakeTrainer()).run()
    return folder


def _text(pilot: Pilot, selector: str) -> str:
    return str(pilot.app.query_one(selector, Static).render())


@run_async
async def test_the_view_shows_leaderboard_best_budget_params_and_importance(
    tmp_path: Path,
) -> None:
    make_sweep(tmp_path)
    app = host_app(SweepsPane)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "best: trial" in _text(pilot, "#sweeps-summary"))
        summary = _text(pilot, "#sweeps-summary")
        assert "sweep lr-demo" in summary and "trials 10 of 10 (0 left)" in summary
        assert "val loss" in summary and "lr=0.003" in summary
        table = pilot.app.query_one("#sweeps-table", DataTable)
        assert table.row_count == 10
        first = table.get_row_at(0)
        assert first[1] == "complete" and first[3] == "0.003"  # the best trial first
        states = {table.get_row_at(i)[1] for i in range(table.row_count)}
        assert states == {"complete", "pruned"}
        params = _text(pilot, "#sweeps-params")
        assert params.startswith("val loss by lr") and "importance: " in params
        await pilot.press("p")  # the next parameter
        assert _text(pilot, "#sweeps-params").startswith("val loss by warmup_steps")


@run_async
async def test_start_checks_the_file_and_next_cycles_sweeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_sweep(tmp_path, "first")
    make_sweep(tmp_path / "b", "second")
    started: list[list[str]] = []
    monkeypatch.setattr(
        "tui.screens.sweeps.pane.start_sweep", lambda args, folder: started.append(args)
    )
    app = host_app(SweepsPane)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "sweep " in _text(pilot, "#sweeps-summary"))
        first = _text(pilot, "#sweeps-summary").split(":")[0]
        await pilot.press("n")
        await wait_for(pilot, lambda: _text(pilot, "#sweeps-summary").split(":")[0] != first)
        await pilot.press("s")
        box = pilot.app.query_one("#sweeps-file", Input)
        assert box.display and box.has_focus
        box.value = str(tmp_path / "missing.toml")
        await pilot.press("enter")
        assert started == []  # a bad file is a message; nothing starts
        good = write_sweep(tmp_path / "c", BODY, name="third")
        box.value = str(good)
        await pilot.press("enter")
        assert started == [[str(good), "--dir", str(SweepFolder.default_for("third").path)]]


def test_stop_signals_the_processes_holding_the_sweeps_claims(tmp_path: Path) -> None:
    folder = make_sweep(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = RunLock(folder.claim_dir(99))
        folder.claim_dir(99).mkdir(parents=True)
        lock.acquire()
        # The claim names this process; hand it to the child, as a sweep process holds it.
        text = (
            (folder.claim_dir(99) / ".lock")
            .read_text()
            .replace(f'"pid": {os.getpid()}', f'"pid": {child.pid}')
        )
        (folder.claim_dir(99) / ".lock").write_text(text)
        assert sweep_pids(folder) == [child.pid]
        assert stop_sweep(folder) == 1
        assert child.wait(timeout=30) == -signal.SIGTERM
    finally:
        child.kill()
    assert [f.path for f in list_sweeps()] == [folder.path]


@run_async
async def test_the_palette_command_opens_the_view_and_escape_leaves(tmp_path: Path) -> None:
    app = GptTuiApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        (command,) = [c for c in app.get_system_commands(app.screen) if c.title == "Sweeps"]
        command.callback()
        await wait_for(pilot, lambda: isinstance(app.screen, SweepsScreen))
        summaries = lambda: app.screen.query("#sweeps-summary").results(Static)  # noqa: E731
        await wait_for(pilot, lambda: any("no sweeps yet" in str(w.render()) for w in summaries()))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, SweepsScreen))


def test_sweeps_view_snapshot(snap_compare, tmp_path: Path) -> None:
    make_sweep(tmp_path)

    async def before(pilot: Pilot) -> None:
        await wait_for(pilot, lambda: "importance" in _text(pilot, "#sweeps-params"))
        await settle(pilot)

    assert snap_compare(host_app(SweepsPane), terminal_size=SIZE, run_before=before)
