"""Pilot tests: the Train screen's controls do what they say. Watching a run is
read-only (its own config in a locked form, w leaves), Checkpoints `t` shows the
resume command before anything starts, and every key that cannot act says why."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import DataTable, Input, Select, Static, TabbedContent

from gptcore.runs.checkpoint import save_checkpoint
from gptcore.runs.events import RunStarted, StepEnd, to_record
from gptcore.runs.rundir import write_run_config
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.util.paths import runs_dir
from tui.app import GptTuiApp
from tui.screens.dialogs import ConfirmScreen
from tui.screens.train import TrainPane
from tui.widgets.model_summary import ModelSummaryView

from .tui_helpers import (
    SLOW_WAIT_S,
    TINY,
    fast_config,
    make_app,
    run_async,
    settle,
    tiny_model,
    train_state,
    wait_for,
    write_corpus,
)

SIZE = (80, 24)
# The watched run's model: unlike any form config, so the form cannot show it by chance.
WATCHED = GPTConfig(
    context_length=24, emb_dim=48, n_heads=3, n_layers=1, drop_rate=0.0, vocab_size=50257
)


async def press_and_note(pilot, key: str) -> str:
    """Press `key` and return the one refusal it gave (the run may notify meanwhile)."""
    before = {n.identity for n in pilot.app._notifications}  # older ones may expire meanwhile
    await pilot.press(key)
    await pilot.pause()
    added = [
        n.message
        for n in pilot.app._notifications
        if n.identity not in before and n.title.startswith("Can't")
    ]
    assert len(added) == 1, (key, added)
    return added[0]


def footer_actions(app: GptTuiApp) -> set[str]:
    """The actions the footer offers (enabled or dimmed)."""
    return {a.binding.action for a in app.screen.active_bindings.values() if a.binding.show}


def field(app: GptTuiApp, name: str) -> str:
    return app.query_one(f"#f-{name}", Input).value


def selected_config(app: GptTuiApp) -> str:
    """The label of the config the form's dropdown shows."""
    select = app.query_one("#config-select", Select)
    return next(str(label) for label, value in select._options if value == select.value)


def write_watched_run(tmp_path: Path, corpus: Path) -> Path:
    run = tmp_path / "20260101-000000-watched"
    run.mkdir()
    train = TrainConfig(corpus=str(corpus), batch_size=3, epochs=7, lr=0.0007)
    write_run_config(run, WATCHED, train)
    with (run / "metrics.jsonl").open("w", encoding="utf-8") as f:
        for event in (
            RunStarted(str(run), "cpu", "fp32", 100, 1234),
            StepEnd(0, 0, 10.9, 4e-4, 512, 900.0, 1.0, None, 0.5, 100),
        ):
            f.write(json.dumps(to_record(event)) + "\n")
    return run


# ---------------------------------------------------------------- watching


@run_async
async def test_watch_is_read_only_shows_the_runs_config_and_w_leaves(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path)
    run = write_watched_run(tmp_path, corpus)
    app = make_app(corpus, fast_config(corpus), watch_dir=run)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, "corpus")
        pane = app.query_one(TrainPane)
        await wait_for(pilot, lambda: train_state(pilot).last_step is not None)
        await pilot.pause()
        pane.focus()
        await pilot.pause()

        # The form is the watched run's own config, read-only.
        assert (field(app, "model-context-length"), field(app, "epochs")) == ("24", "7")
        assert (field(app, "batch-size"), field(app, "lr")) == ("3", "0.0007")
        assert app.query_one("#train-form").disabled
        assert selected_config(app) == "20260101-000000-watched (watched)"
        assert app.state.run_config[0] == WATCHED
        await pilot.press("m")  # the model summary is of the watched run's model
        await pilot.pause()
        assert app.query_one(ModelSummaryView).request.model == WATCHED
        await pilot.press("m")

        # Its controls are not offered, and their keys say why instead of acting.
        shown = footer_actions(app)
        assert not shown & {"start", "pause", "stop", "checkpoint"}
        assert "leave_watch" in shown
        for key in "spxk":
            note = await press_and_note(pilot, key)
            assert "watching 20260101-000000-watched read-only" in note
            assert "w leaves watch mode" in note
        assert pane.watching == run and not pane.live and not pane.training

        # w goes back to the form and the config the user had picked.
        await pilot.press("w")
        await pilot.pause()
        await pilot.pause()
        assert pane.watching is None
        assert not app.query_one("#train-form").disabled
        assert field(app, "model-context-length") == "16"  # FAST_MODEL's
        assert app.query_one("#config-select", Select).value == fast_config(corpus)
        assert {"start", "watch"} <= footer_actions(app)
        assert "leave_watch" not in footer_actions(app)


# ---------------------------------------------------------------- Checkpoints `t`


def resumable_checkpoint() -> Path:
    """A tiny run's checkpoint at step 5 that finishes two steps after resuming."""
    train = {"batch_size": 2, "epochs": 1, "max_steps": 7, "eval_freq": 100, "eval_iter": 1}
    train |= {"sample_tokens": 2, "checkpoint_every": None, "keep_last": 10}
    return save_checkpoint(
        runs_dir() / "tiny-run" / "checkpoints" / "step-5", tiny_model(),
        train_config=train, step=5, epoch=0, tokens_seen=320, val_loss=7.0, train_loss=6.5,
    )  # fmt: skip


async def open_checkpoints(pilot) -> None:
    app = pilot.app
    await settle(pilot, "corpus")
    await pilot.press("4")
    await pilot.pause()
    pane = app.query_one("#checkpoints-pane")
    while not pane.loaded:
        await pilot.pause(0.01)
    pane.query_one(DataTable).focus()
    await pilot.pause()


@run_async
async def test_continue_shows_the_command_and_cancel_starts_nothing(tmp_path: Path) -> None:
    path = resumable_checkpoint()
    corpus = write_corpus(tmp_path)
    app = make_app(corpus, fast_config(corpus))
    async with app.run_test(size=SIZE) as pilot:
        await open_checkpoints(pilot)
        await pilot.press("t")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        question = app.screen.query_one(".question", Static).render()
        assert f"gpt-tui train --resume {path}" in str(question)
        await pilot.press("n")
        await pilot.pause()
        train = app.query_one(TrainPane)
        assert not train.live and not train.training
        assert app.query_one(TabbedContent).active == "checkpoints"


@run_async
async def test_continue_confirmed_resumes_with_the_runs_own_config(tmp_path: Path) -> None:
    resumable_checkpoint()
    corpus = write_corpus(tmp_path)
    app = make_app(corpus, fast_config(corpus))
    async with app.run_test(size=SIZE) as pilot:
        await open_checkpoints(pilot)
        await pilot.press("t")
        await pilot.pause()
        await pilot.press("y")
        train = app.query_one(TrainPane)
        await wait_for(pilot, lambda: train_state(pilot).started is not None, timeout=SLOW_WAIT_S)
        assert app.query_one(TabbedContent).active == "train"
        assert train.state.started.step == 5  # it continues the checkpoint's run
        # The form and `m` are the resumed run's (TINY: context 32, 2 layers, batch 2).
        assert (field(app, "model-context-length"), field(app, "batch-size")) == ("32", "2")
        assert field(app, "max-steps") == "7"
        assert selected_config(app) == "tiny-run/step-5 (resumed)"
        assert app.state.run_config[0] == TINY
        await pilot.press("m")
        await pilot.pause()
        assert app.query_one(ModelSummaryView).request.model == TINY
        await settle(pilot, "train")
        assert train.state.state == "finished"


# ---------------------------------------------------------------- keys that cannot act


@run_async
async def test_every_key_that_cannot_act_says_why(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path, repeats=12)
    app = make_app(corpus, fast_config(corpus, epochs=1000))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, "corpus")
        await pilot.press("2")
        await pilot.pause()
        pane = app.query_one(TrainPane)
        for key in "pxk":  # no run yet
            assert "no run is training: s starts one" in await press_and_note(pilot, key)
        assert "no evaluation yet" in await press_and_note(pilot, "e")
        assert not pane.training

        await pilot.press("s")
        await wait_for(pilot, lambda: train_state(pilot).last_step is not None, timeout=SLOW_WAIT_S)
        handle = pane.handle
        note = await press_and_note(pilot, "s")
        assert "a run is training" in note and "x stops it" in note
        note = await press_and_note(pilot, "w")
        assert "a run is training" in note and "watch another run" in note
        assert pane.handle is handle and pane.watching is None  # nothing else started
        await pilot.press("p")
        await pilot.pause()
        assert pane.state.state == "paused"
        assert "a run is paused: p resumes it" in await press_and_note(pilot, "s")
        await pilot.press("x")
        await settle(pilot, "train")
        assert pane.state.state == "stopped"
        assert "no run is training" in await press_and_note(pilot, "x")
