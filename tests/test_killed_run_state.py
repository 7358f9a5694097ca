"""One run-state machine (issue 24): a run whose process was killed with SIGKILL
never writes its closing event, and nothing of it holds the run's lock any more.
`gpt-tui runs`, the Runs tab, the watch picker and watch mode (`gpt-tui watch`) all
call it stopped, not running."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from textual.widgets import Input, OptionList, Static

from gptcore.cli import main
from gptcore.runs.lock import lock_holder
from gptcore.runs.table import run_row
from gptcore.util.paths import runs_dir
from tui.screens.open_run import OpenRunScreen
from tui.screens.runs import RunsPane
from tui.screens.train import TrainPane

from .run_helpers import write_tiny_run_config
from .tui_helpers import find_pane, make_app, settle, train_state, wait_for, write_corpus

REPO = Path(__file__).resolve().parents[1]
SIZE = (80, 24)


def start_training(config: Path, run: Path) -> subprocess.Popen:
    """`gpt-tui train` in a child process, for as long as it is let run."""
    cmd = [sys.executable, "-m", "gptcore", "train", "--config", str(config)]
    cmd += ["--set", "epochs=1000", "--run-dir", str(run)]
    return subprocess.Popen(
        cmd, cwd=REPO, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def wait_for_a_step(proc: subprocess.Popen, metrics: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics.exists() and '"event": "step"' in metrics.read_text():
            return
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "it ended"
        time.sleep(0.05)
    raise AssertionError("no step event within the timeout")


def picker_labels(screen: OpenRunScreen) -> list[str]:
    listing = screen.query_one("#run-list", OptionList)
    return [str(listing.get_option_at_index(i).prompt) for i in range(listing.option_count)]


async def what_the_app_shows(run: Path, corpus: Path) -> dict[str, object]:
    """The killed run as the watch picker lists it, as watch mode then shows it, and
    as the Runs tab has it."""
    seen: dict[str, object] = {}
    app = make_app(corpus)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, "corpus")
        await pilot.press("2", "w")
        await wait_for(pilot, lambda: isinstance(app.screen, OpenRunScreen) and app.screen.listed)
        seen["picker"] = picker_labels(app.screen)
        app.screen.query_one("#run-path", Input).value = str(run)
        await pilot.press("enter")  # watch it, as `gpt-tui watch RUN` does
        pane = app.query_one(TrainPane)
        await wait_for(pilot, lambda: pane.watching == run and not train_state(pilot).active)
        seen["watched"] = train_state(pilot).state
        seen["status"] = app.query_one("#run-state", Static).render().plain
        await pilot.press("6")
        runs = await find_pane(pilot, RunsPane)
        await wait_for(pilot, lambda: any(row.path == run for row in runs.rows))
        seen["runs tab"] = next(row.state for row in runs.rows if row.path == run)
    return seen


def test_a_killed_run_is_stopped_everywhere(
    tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture
) -> None:
    config = write_tiny_run_config(tmp_path / "tiny.toml")
    run = runs_dir() / "killed-mid-run"
    proc = start_training(config, run)
    try:
        wait_for_a_step(proc, run / "metrics.jsonl")
        assert run_row(run).state == "running"  # its process holds the lock
        proc.send_signal(signal.SIGKILL)  # no handler runs: nothing is saved or closed
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["event"] not in ("finished", "failed")  # it never closed the run
    assert (run / ".lock").exists() and lock_holder(run) is None  # a stale lock

    # The engine's run table and `gpt-tui runs --json`.
    assert run_row(run).state == "stopped"
    assert main(["runs", "--json"]) == 0
    records = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert records[run.name]["state"] == "stopped"

    # The app: the watch picker, watch mode (what `gpt-tui watch RUN` opens) and the Runs tab.
    seen = asyncio.run(what_the_app_shows(run, write_corpus(tmp_path)))
    assert any(label.startswith(f"{run.name}  (stopped, step ") for label in seen["picker"])
    assert seen["watched"] == "stopped"
    assert str(seen["status"]).startswith("STOPPED (watched) · ")
    assert seen["runs tab"] == "stopped"
