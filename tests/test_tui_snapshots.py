"""Snapshot tests of the app's part-1 screens at 80x24 (pytest-textual-snapshot).

Generated with textual 8.2.8 and pytest-textual-snapshot 1.1.0; what they show
is pinned: a corpus given as pasted text (no temp paths on screen), the
`tiny` preset, the default theme, and a watched run read from a fixed file.
Regenerate with `pytest tests/test_tui_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from gptcore.runs.events import EvalEnd, Finished, RunStarted, Sample, StepEnd, to_record
from gptcore.runs.rundir import write_run_config
from gptcore.settings.model import PRESETS
from gptcore.settings.train import TrainConfig
from tui.screens.train import TrainPane

from .tui_helpers import make_app, pin_step_timing, settle, train_state, wait_for, write_corpus

SIZE = (80, 24)


@pytest.fixture(autouse=True)
def fixed_device_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Train screen's run-time estimate measures the device: pinned here."""
    pin_step_timing(monkeypatch)


PASTED = "Every effort moves you forward, one small step at a time. [/b] stays verbatim. " * 40


async def paste_corpus(pilot: Pilot) -> None:
    await settle(pilot, "corpus")
    await pilot.press("t")
    pilot.app.query_one("#corpus-paste-text", TextArea).text = PASTED
    await pilot.press("ctrl+r")
    await settle(pilot, "corpus")
    pilot.app.query_one("#corpus-pane").focus()
    await pilot.pause()


def test_corpus_screen(snap_compare, tmp_path: Path) -> None:
    app = make_app(write_corpus(tmp_path))
    assert snap_compare(app, terminal_size=SIZE, run_before=paste_corpus)


def test_corpus_screen_after_a_bad_path(
    snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One state at a time: the failed path and its error, then the numbers of the
    corpus still in use, labelled as such."""
    monkeypatch.chdir(tmp_path)  # the file tree shows the working directory

    async def before(pilot: Pilot) -> None:
        await paste_corpus(pilot)
        await pilot.press("f")
        pilot.app.query_one("#corpus-path", Input).value = "no-such-corpus.txt"
        await pilot.press("enter")
        await settle(pilot, "corpus")
        pilot.app.query_one("#corpus-pane").focus()
        await pilot.pause()

    app = make_app(write_corpus(tmp_path))
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_train_screen_form(snap_compare, tmp_path: Path) -> None:
    async def before(pilot: Pilot) -> None:
        await settle(pilot, "corpus")
        await pilot.press("2")
        await pilot.pause()

    assert snap_compare(make_app(write_corpus(tmp_path)), terminal_size=SIZE, run_before=before)


def test_train_screen_watching_a_run(snap_compare, tmp_path: Path) -> None:
    run = tmp_path / "20260101-120000-tiny"
    run.mkdir()
    events = [RunStarted(str(run), "cpu", "fp32", 40, 3_300_000, time=0.0)]
    for step in range(40):
        loss = 10.9 - step * 0.12
        events.append(
            StepEnd(
                step,
                step // 20,
                loss,
                4e-4,
                (step + 1) * 512,
                2000.0 + step,
                1.0,
                None,
                (step + 1) * 0.25,
                40,
                time=0.0,
            )
        )
        if step % 5 == 0:
            events.append(EvalEnd(step, step // 20, loss, loss + 0.3, (step + 1) * 512, time=0.0))
        if step in (19, 39):
            events.append(Sample(step, step // 20, "Every effort moves you [/b] to the", time=0.0))
    events.append(Finished(40, 2, "completed", 40 * 512, 10.0, time=0.0))
    with (run / "metrics.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(to_record(e)) + "\n" for e in events)
    write_run_config(run, PRESETS["tiny"], TrainConfig(corpus="builtin", epochs=2, batch_size=8))

    async def before(pilot: Pilot) -> None:
        await settle(pilot, "corpus")
        await wait_for(pilot, lambda: train_state(pilot).state == "finished")  # read in a worker
        pane = pilot.app.query_one(TrainPane)
        while not (pane.form.config_key or "").startswith("run:"):  # its config.toml, read too
            await pilot.pause(0.05)
        await pilot.pause()

    app = make_app(write_corpus(tmp_path), watch_dir=run)
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_help_screen(snap_compare, tmp_path: Path) -> None:
    async def before(pilot: Pilot) -> None:
        await settle(pilot, "corpus")
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(make_app(write_corpus(tmp_path)), terminal_size=SIZE, run_before=before)


def test_speed_lab_screen(snap_compare, tmp_path: Path) -> None:
    """The Speed Lab with a saved result (a fixed report: no timing on screen)."""
    from gptcore.speedlab.results import RungResult, SpeedReport, save_report
    from gptcore.speedlab.rungs import RUNGS

    skipped = {
        "tf32": "CUDA only (NVIDIA tensor cores)",
        "pinned": "CUDA only (copies to a GPU)",
        "compile": "compiling takes minutes on a CPU; --compile to include it",
        "max_batch": "no fixed memory ceiling on a CPU",
    }
    rungs = []
    for i, rung in enumerate(RUNGS):
        if rung.key in skipped:
            rungs.append(RungResult(i, rung.key, rung.title, skipped=skipped[rung.key]))
        else:
            rungs.append(RungResult(i, rung.key, rung.title, 50.0 + 12.5 * i, 1.0, 10**9, 2))
    save_report(
        SpeedReport(
            device="cpu",
            device_name="Example CPU [x86_64]",
            torch_version="2.5.1",
            model="book-124m",
            context=256,
            batch_size=2,
            steps=3,
            started="2025-01-31T14:02:00+00:00",
            memory_kind="peak RSS rise",
            rungs=rungs,
        )
    )

    async def before(pilot: Pilot) -> None:
        await settle(pilot, "corpus")
        await pilot.press("7")
        await settle(pilot, "speedlab-saved")

    assert snap_compare(make_app(write_corpus(tmp_path)), terminal_size=SIZE, run_before=before)
