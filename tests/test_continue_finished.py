"""Continuing a finished run (issue 25): `gpt-tui train --resume` of a run with nothing
left to train says so in one line instead of saving its final checkpoint again; more
epochs continue it, and a cosine run continues on the constant schedule (resume never
stretches a cosine). The Checkpoints screen asks for the epochs/steps in a dialog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static

from gptcore.cli import main
from gptcore.errors import ConfigError
from gptcore.runs.checkpoint import load_checkpoint, save_checkpoint
from gptcore.runs.rundir import RunDir
from gptcore.training.continuation import (
    check_more_to_train,
    continue_offer,
    continue_overrides,
)
from gptcore.training.resume import prepare_run
from gptcore.util.paths import runs_dir
from tests.run_helpers import write_tiny_run_config
from tests.tui_helpers import find_pane, host_app, make_checkpoint, run_async, tiny_model, wait_for
from tui.messages import ResumeRun
from tui.screens.checkpoints import CheckpointsPane
from tui.screens.checkpoints.continue_dialog import ContinueRunScreen
from tui.screens.dialogs import ConfirmScreen


def _events(run: Path, name: str) -> list[dict]:
    lines = RunDir(run).metrics.read_text(encoding="utf-8").splitlines()
    return [e for e in map(json.loads, lines) if e.get("event") == name]


def test_cli_refuses_a_finished_run_in_one_line_then_continues_it_with_more_epochs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_tiny_run_config(tmp_path / "tiny.toml", sample_tokens=0)
    run = tmp_path / "run"
    cosine = ["--set", "epochs=1", "--set", 'lr_schedule="cosine"', "--set", "min_lr=0.0001"]
    assert main(["train", "--config", str(config), *cosine, "--run-dir", str(run)]) == 0
    capsys.readouterr()
    saved = sorted(p.name for p in RunDir(run).checkpoint_dirs())
    finished = load_checkpoint(RunDir(run).checkpoint_dirs()[-1])
    metrics_before = RunDir(run).metrics.read_bytes()

    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert f"is finished (all 1 epochs done, step {finished.step})" in err
    assert "--set train.epochs=2" in err and 'train.lr_schedule="constant"' in err
    # Nothing was written: no second "final" checkpoint, no events.
    assert sorted(p.name for p in RunDir(run).checkpoint_dirs()) == saved
    assert RunDir(run).metrics.read_bytes() == metrics_before

    # What the dialog would send: two epochs, and the constant schedule for a cosine run.
    overrides = continue_overrides(continue_offer(finished), "2", "")
    assert overrides == ["train.epochs=2", 'train.lr_schedule="constant"']
    sets = [arg for text in overrides for arg in ("--set", text)]
    assert main(["train", "--resume", str(run), *sets]) == 0
    steps = _events(run, "step")
    resumed = [e for e in steps if e["step"] >= finished.step]
    assert len(resumed) == finished.step  # a second epoch as long as the first
    assert steps[finished.step - 1]["lr"] < 2e-4  # the first epoch's cosine ran down
    assert [e["lr"] for e in resumed] == pytest.approx([4e-4] * len(resumed))  # train.lr
    assert load_checkpoint(RunDir(run).checkpoint_dirs()[-1]).epoch == 2


def _finished_checkpoint(name: str = "step-000022", **train: object) -> Path:
    settings = {"batch_size": 2, "epochs": 2, **train}
    return save_checkpoint(
        runs_dir() / "done-run" / "checkpoints" / name,
        tiny_model(1),
        train_config=settings,
        step=22,
        epoch=2,
        tokens_seen=22 * 32,
        val_loss=7.0,
        train_loss=7.2,
        reason="final",
    )


def test_a_step_limit_reached_is_finished_too_and_says_to_raise_it() -> None:
    ckpt = load_checkpoint(_finished_checkpoint(epochs=10, max_steps=22))
    offer = continue_offer(ckpt)
    assert offer.finished and offer.suggested_max_steps == 44
    prepare_run(resume=str(ckpt.path))  # a sweep's restart may still close it
    with pytest.raises(ConfigError, match=r"reached train.max_steps = 22.*max_steps=44"):
        prepare_run(resume=str(ckpt.path), refuse_finished=True)
    with pytest.raises(ConfigError, match="is this run's step limit"):
        continue_overrides(offer, "10", "")
    assert continue_overrides(offer, "10", "30") == ["train.epochs=10", "train.max_steps=30"]
    run = prepare_run(resume=str(ckpt.path), overrides=["train.max_steps=30"])
    check_more_to_train(ckpt, run.train_config)  # more to train: no error


def test_the_dialog_checks_amounts_against_the_declarations() -> None:
    offer = continue_offer(load_checkpoint(_finished_checkpoint()))
    assert offer.finished and offer.suggested_epochs == 4 and not offer.cosine
    assert "constant lr 0.0004" in offer.lr_rule()
    for epochs, steps, field, words in [
        ("2", "", "epochs", "more than the 2 epochs done"),
        ("two", "", "epochs", "must be an integer"),
        ("0", "", "epochs", "must be positive"),
        ("9999999", "", "epochs", "at most 1,000,000"),
        ("3", "22", "max_steps", "more than the 22 steps done"),
        ("3", "-1", "max_steps", "must be positive"),
    ]:
        with pytest.raises(ConfigError) as caught:
            continue_overrides(offer, epochs, steps)
        assert caught.value.errors[0].field == field
        assert words in str(caught.value)
    assert continue_overrides(offer, " 3 ", "") == ["train.epochs=3"]


async def _open_continue(pilot, name: str) -> CheckpointsPane:  # noqa: ANN001
    pane = await find_pane(pilot, CheckpointsPane)
    await wait_for(pilot, lambda: pane.loaded)
    table = pane.query_one(DataTable)
    table.focus()
    path = next(str(i.path) for i in pane.infos if i.name == name)
    table.move_cursor(row=table.get_row_index(path))
    await pilot.pause()
    await pilot.press("t")
    await pilot.pause()
    return pane


@run_async
async def test_continue_on_a_finished_run_asks_for_more_epochs_and_explains_the_cosine():
    path = _finished_checkpoint(lr_schedule="cosine", min_lr=0.0001)
    make_checkpoint(run="open-run", name="step-5")  # epoch 0 of 10: not finished
    sent: list[ResumeRun] = []

    class Recording(type(host_app(CheckpointsPane))):  # type: ignore[misc]
        def on_resume_run(self, message: ResumeRun) -> None:
            sent.append(message)

    app = Recording()
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_continue(pilot, "step-000022")
        dialog = app.screen
        assert isinstance(dialog, ContinueRunScreen)
        text = " ".join(str(s.render()) for s in dialog.query(Static))
        assert "done-run/step-000022 is finished: all 2 epochs done (step 22)" in text
        assert "cosine" in text and "constant lr 0.0004 (train.lr)" in text
        epochs = dialog.query_one("#continue-epochs", Input)
        assert epochs.value == "4" and epochs.has_focus
        epochs.value = "2"  # not more than done: refused in place, the dialog stays
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is dialog
        assert "more than the 2 epochs done" in str(dialog.query_one("#continue-error").render())
        epochs.value = "5"
        await pilot.press("enter")
        await wait_for(pilot, lambda: bool(sent))
        assert sent[0].checkpoint == path
        assert sent[0].overrides == ("train.epochs=5", 'train.lr_schedule="constant"')

        # A run with epochs left gets the plain confirmation, not the dialog.
        await _open_continue(pilot, "step-5")
        assert isinstance(app.screen, ConfirmScreen)
