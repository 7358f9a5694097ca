"""Pilot tests of the app: the shell, the Corpus and Train screens, watching a run,
and quitting during training. They wait for workers and messages, never on time."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import re
import threading
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text
from textual.widgets import Input, RichLog, Static, TabbedContent, TextArea

from gptcore.runs.events import EvalEnd, Finished, RunStarted, Sample, StepEnd, to_record
from gptcore.runs.lock import RunLock
from tui.app import SCREENS, GptTuiApp
from tui.pump import TrainEvents
from tui.screens.dialogs import ConfirmScreen
from tui.screens.help import HelpScreen, help_table
from tui.screens.open_run import OpenRunScreen
from tui.screens.train import TrainPane
from tui.settings import load_settings

from .tui_helpers import (
    SLOW_WAIT_S,
    fast_config,
    make_app,
    run_async,
    settle,
    train_state,
    wait_for,
    write_corpus,
)

SIZE = (80, 24)


def text_of(app: GptTuiApp, selector: str) -> str:
    renderable = app.query_one(selector, Static).render()
    return renderable.plain if isinstance(renderable, Text) else str(renderable)


def log_text(log: RichLog) -> str:
    return "\n".join(strip.text for strip in log.lines)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path)


# ---------------------------------------------------------------- the shell


@run_async
async def test_tabs_keys_help_palette_and_theme(corpus: Path) -> None:
    app = make_app(corpus)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, "corpus")
        tabs = app.query_one(TabbedContent)
        titles = [str(tab.label) for tab in tabs.query("ContentTab")]
        assert titles == ["Corpus", "Train", "Chat", "Checkpoints", "Models", "Runs", "Speed"]
        for tab, _title, key, pane in SCREENS:
            await pilot.press(key)
            await pilot.pause()
            assert tabs.active == tab
            shown = app.query_one(pane)  # focus is inside it: the screen's keys work at once
            assert app.focused is shown or shown in app.focused.ancestors

        # Escape leaves an input so single keys switch screens again.
        await pilot.press("2")
        await pilot.pause()
        app.query_one("#f-batch-size", Input).focus()
        await pilot.press("1")  # typed into the input, not a screen switch
        assert tabs.active == "train"
        await pilot.press("escape", "1")
        await pilot.pause()
        assert tabs.active == "corpus"

        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        console = Console(record=True, width=100, file=io.StringIO())
        console.print(help_table(app.screen.sections))
        help_text = console.export_text()
        for key, words in [("s", "Start"), ("p", "Pause"), ("b", "Built-in"), ("2", "Train")]:
            assert re.search(rf"^{key}\s+{words}", help_text, re.MULTILINE), (key, help_text)
        assert "ctrl+q" in help_text and "Quit" in help_text
        # The Sweeps view is no tab (the palette opens it), but its keys are here too.
        assert "Sweeps (ctrl+p, Sweeps)" in help_text
        assert re.search(r"^n\s+Next sweep", help_text, re.MULTILINE), help_text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)

        commands = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Start training", "Stop training", "Watch a run", "Theme", "Go to Train"):
            assert title in commands

        app.theme = "nord"
        await pilot.pause()
    assert load_settings().theme == "nord"


def test_every_binding_has_an_id_and_a_description() -> None:
    bindings = list(GptTuiApp.BINDINGS)
    for _tab, _title, _key, pane in SCREENS:
        bindings += list(pane.BINDINGS)
    assert bindings
    for binding in bindings:
        assert binding.id and binding.description, binding


# ---------------------------------------------------------------- Corpus


@run_async
async def test_builtin_and_pasted_corpora_show_their_numbers(corpus: Path) -> None:
    app = make_app(corpus)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, "corpus")
        stats = text_of(app, "#corpus-stats")
        assert "tokens" in stats and "windows  train" in stats and "batches" in stats
        assert "Every effort moves you" in text_of(app, "#corpus-preview")

        await pilot.press("t")
        app.query_one("#corpus-paste-text", TextArea).text = "[/b] pasted words. " * 400
        await pilot.press("ctrl+r")
        await settle(pilot, "corpus")
        assert "pasted-" in text_of(app, "#corpus-name")
        assert text_of(app, "#corpus-error") == ""
        assert "[/b] pasted words." in text_of(app, "#corpus-preview")  # verbatim
        assert "pasted-" in load_settings().corpus  # remembered for next time

        await pilot.press("escape", "b")
        await settle(pilot, "corpus")
        assert "builtin" in text_of(app, "#corpus-name")
        assert app.state.corpus_source == "builtin"


@run_async
async def test_corpus_and_train_screens_show_the_trainers_batch_plan(verdict_path: Path) -> None:
    """The book's corpus counts 5,145 tokens (not train + val), and both screens show
    gptcore's batch plan for configs/tiny.toml: the numbers the Trainer runs."""
    from gptcore.data.plan import batch_plan
    from gptcore.data.tokens import prepare_corpus
    from gptcore.settings.files import shipped_configs
    from tui.configs import load_config

    key = str(shipped_configs()["tiny"])
    app = make_app(verdict_path, config=key)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, "corpus")
        await settle(pilot)
        stats = text_of(app, "#corpus-stats")
        assert "characters 20,479  tokens 5,145" in stats
        model, train = load_config(key)
        train = dataclasses.replace(train, corpus=str(verdict_path))
        assert app.state.run_config == (model, train)
        corpus = prepare_corpus(verdict_path)
        plan = batch_plan(len(corpus.train_tokens), len(corpus.val_tokens), model, train)
        assert plan.train_windows == 160 and plan.steps_per_epoch == 20
        assert "windows  train 160  val 8" in stats
        assert f"batches  train {plan.train_batches}  val {plan.val_batches}" in stats
        assert "steps    20 per epoch, 60 in all" in stats

        await pilot.press("2")
        await pilot.pause()
        plan_lines = text_of(app, "#run-stats").splitlines()
        assert plan_lines[:2] == ["plan 60 steps (20/epoch)", "160 windows × 64, batch 8"]


BAD_CORPORA = [
    ("binary.txt", b"\x00\x01binary\xff" * 50, "looks like a binary file"),
    ("empty.txt", b"", "is empty"),
    ("short.txt", b"Too short.", "needs at least"),
    ("missing.txt", None, "corpus not found"),
]


@run_async
async def test_bad_corpora_are_explained_inline(tmp_path: Path, corpus: Path) -> None:
    app = make_app(corpus)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, "corpus")
        await pilot.press("f")
        for name, content, words in BAD_CORPORA:
            bad = tmp_path / name
            if content is not None:
                bad.write_bytes(content)
            app.query_one("#corpus-path", Input).value = str(bad)
            await pilot.press("enter")
            await settle(pilot, "corpus")
            assert words in text_of(app, "#corpus-error"), name
            assert app.is_running  # nothing crashed
        app.query_one("#corpus-path", Input).value = str(corpus)
        await pilot.press("enter")
        await settle(pilot, "corpus")
        assert text_of(app, "#corpus-error") == ""  # a good corpus clears the message


# ---------------------------------------------------------------- Train: the form


@run_async
async def test_invalid_hyperparameters_are_marked_and_block_start(corpus: Path) -> None:
    app = make_app(corpus, fast_config(corpus))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, "corpus")
        await pilot.press("2")
        await pilot.pause()
        batch = app.query_one("#f-batch-size", Input)
        assert not batch.has_class("-invalid")
        batch.value = "0"
        await pilot.pause()
        assert batch.has_class("-invalid")
        assert "batch size" in text_of(app, "#form-reason") and "positive" in text_of(
            app, "#form-reason"
        )
        await pilot.press("escape", "s")
        await pilot.pause()
        assert not [w for w in app.workers if w.group == "train"]  # Start was blocked
        assert app.query_one(TrainPane).state.state == "idle"

        app.query_one("#f-lr", Input).value = "fast"
        batch.value = "4"
        await pilot.pause()
        assert not batch.has_class("-invalid")
        assert "learn rate" in text_of(app, "#form-reason")
        app.query_one("#f-lr", Input).value = "0.001"
        await pilot.pause()
        assert text_of(app, "#form-reason") == ""
        model, train = app.state.run_config
        assert (train.batch_size, train.lr, train.corpus) == (4, 0.001, str(corpus))


# ---------------------------------------------------------------- Train: running


@run_async
async def test_train_tiny_see_losses_and_samples_pause_resume_stop(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path, repeats=12)  # about 10 steps an epoch: samples come fast
    app = make_app(corpus, fast_config(corpus, epochs=1000))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, "corpus")
        await pilot.press("2", "s")
        await wait_for(
            pilot,
            lambda: len(train_state(pilot).samples) >= 1 and len(train_state(pilot).evals) >= 3,
            timeout=SLOW_WAIT_S,
        )
        pane = app.query_one(TrainPane)
        state = pane.state
        assert state.state == "running"
        assert state.evals[-1].train_loss < state.evals[0].train_loss  # it learns
        assert list(state.step_losses) and max(state.tokens_per_s) > 0
        assert "epoch 1" in log_text(app.query_one("#samples", RichLog))
        assert "RUNNING" in text_of(app, "#run-state")
        stats = text_of(app, "#run-stats")
        assert "tok/s" in stats and "cpu" in stats and "ETA" in stats
        assert pane.run_dir is not None and (pane.run_dir / "metrics.jsonl").exists()

        await pilot.press("p")
        assert pane.trainer.paused and pane.state.state == "paused"
        assert "PAUSED" in text_of(app, "#run-state")
        await pilot.press("p")
        assert not pane.trainer.paused and pane.state.state == "running"
        seen = pane.state.last_step.step
        await wait_for(
            pilot, lambda: train_state(pilot).last_step.step > seen, timeout=SLOW_WAIT_S
        )  # it goes on

        await pilot.press("x")
        await settle(pilot, "train")
        assert pane.state.state == "stopped"
        assert "STOPPED · by the user" in text_of(app, "#run-state")
        assert pane.state.checkpoints[-1].reason == "interrupt"
        assert pane.trainer is None and not pane.training
        assert pane.check_action("start", ()) is True  # ready for another run


def test_quit_while_training_confirms_saves_and_leaves_no_thread(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path, repeats=12)
    before = {t.ident for t in threading.enumerate()}
    app = make_app(corpus, fast_config(corpus, epochs=1000))
    run_dirs: list[Path] = []

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, "corpus")
            await pilot.press("2", "s")
            await wait_for(
                pilot, lambda: train_state(pilot).last_step is not None, timeout=SLOW_WAIT_S
            )
            pane = app.query_one(TrainPane)
            await pilot.press("ctrl+q")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")  # changed my mind: training goes on
            await pilot.pause()
            assert pane.training and app.is_running
            await pilot.press("ctrl+q")
            await pilot.pause()
            await pilot.press("y")
            await settle(pilot)
            run_dirs.append(pane.run_dir)

    asyncio.run(scenario())
    assert app.return_value == 0
    alive = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert alive == []
    records = [json.loads(line) for line in (run_dirs[0] / "metrics.jsonl").open()]
    reasons = [r.get("reason") for r in records]
    assert "interrupt" in reasons  # the checkpoint saved on the way out
    assert "cancelled" in reasons


@run_async
async def test_model_output_is_shown_verbatim(corpus: Path) -> None:
    app = make_app(corpus)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, "corpus")
        await pilot.press("2")
        pane = app.query_one(TrainPane)
        pane.post_message(TrainEvents([Sample(4, 0, "a [/b] b [red]c[/red] [bold]")], pane.handle))
        await pilot.pause()
        assert "a [/b] b [red]c[/red] [bold]" in log_text(app.query_one("#samples", RichLog))


# ---------------------------------------------------------------- watching


def append(path: Path, *events: object, partial: str = "") -> None:
    with path.open("a", encoding="utf-8") as f:
        for event in events:
            f.write(json.dumps(to_record(event)) + "\n")  # type: ignore[arg-type]
        f.write(partial)


@run_async
async def test_watch_follows_a_growing_metrics_file(tmp_path: Path, corpus: Path) -> None:
    run = tmp_path / "20260101-000000-tiny"
    run.mkdir()
    metrics = run / "metrics.jsonl"
    append(
        metrics,
        RunStarted(str(run), "cuda", "bf16", 100, 1234),
        StepEnd(0, 0, 10.9, 4e-4, 512, 900.0, 1.0, None, 0.5, 100),
        StepEnd(1, 0, 10.5, 4e-4, 1024, 950.0, 1.0, None, 1.0, 100),
    )
    app = make_app(corpus, watch_dir=run)
    with RunLock(run):  # a process trains there, as in a real run
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, "corpus")
            pane = app.query_one(TrainPane)
            # The file is read in a worker thread, never on the UI thread.
            readers: list[threading.Thread] = []
            poll = pane._follower.poll
            pane._follower.poll = lambda: readers.append(threading.current_thread()) or poll()
            await wait_for(
                pilot,
                lambda: (
                    train_state(pilot).last_step is not None
                    and train_state(pilot).last_step.step == 1
                ),
            )
            assert app.query_one(TabbedContent).active == "train"
            assert pane.watching == run
            assert text_of(app, "#run-state").startswith("RUNNING (watched)")
            assert "cuda" in text_of(app, "#run-stats")
            assert pane.check_action("stop", ()) is False  # read-only: no controls for it

            # The run goes on elsewhere: new lines, the last one still being written.
            append(
                metrics,
                EvalEnd(1, 0, 9.8, 9.9, 1024),
                Sample(1, 0, "Every effort moves you [/b]"),
                partial='{"event": "finished", "step": 2, "epo',
            )
            pane.poll_watched()  # what the timer does every 0.25 s
            await wait_for(pilot, lambda: len(train_state(pilot).evals) == 1)
            assert pane.state.state == "running"
            assert "Every effort moves you [/b]" in log_text(app.query_one("#samples", RichLog))
            with metrics.open("a", encoding="utf-8") as f:
                f.write(
                    json.dumps(to_record(Finished(2, 1, "completed", 1536, 3.0)))[
                        len('{"event": "finished", "step": 2, "epo') :
                    ]
                    + "\n"
                )
            pane.poll_watched()
            await wait_for(pilot, lambda: train_state(pilot).state == "finished")
            assert text_of(app, "#run-state").startswith("FINISHED (watched) · all epochs done")
            assert readers and threading.main_thread() not in readers


@run_async
async def test_open_a_run_from_the_train_screen(tmp_path: Path, corpus: Path) -> None:
    run = tmp_path / "run-a"
    run.mkdir()
    append(run / "metrics.jsonl", RunStarted(str(run), "cpu", "fp32", 10, 99))
    app = make_app(corpus)
    with RunLock(run):  # a process trains there, as in a real run
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, "corpus")
            await pilot.press("2", "w")
            await pilot.pause()
            assert isinstance(app.screen, OpenRunScreen)
            app.screen.query_one("#run-path", Input).value = str(tmp_path / "missing")
            await pilot.press("enter")
            await pilot.pause()
            assert "no such folder" in str(app.screen.query_one("#run-path-error", Static).render())
            app.screen.query_one("#run-path", Input).value = str(run)
            await pilot.press("enter")
            await wait_for(pilot, lambda: train_state(pilot).state == "running")
            pane = app.query_one(TrainPane)
            assert pane.watching == run
