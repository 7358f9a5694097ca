"""The Train screen's status line: what a long step or phase is doing (with its
elapsed time), stopping at once, an honest ETA, and one line at 80x24 and 60x20."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.text import Text
from textual.widgets import Static

import gptcore.training.trainer
import tui.screens.train.dashboard
from gptcore.runs.events import (
    CheckpointSaved,
    EvalEnd,
    Failed,
    Finished,
    Phase,
    RunStarted,
    Sample,
    StepEnd,
    SystemSample,
    from_record,
    to_record,
)
from gptcore.runs.lock import RunLock
from gptcore.runs.metrics import read_metrics
from gptcore.runs.table import run_row
from gptcore.settings.train import TrainConfig
from gptcore.training.trainer import Trainer
from tui.app import GptTuiApp
from tui.pump import TrainEvents
from tui.runstate import RunState
from tui.screens.train import TrainPane

from .tui_helpers import (
    FAST_MODEL,
    GUARD_S,
    SLOW_WAIT_S,
    fast_config,
    make_app,
    run_async,
    settle,
    train_state,
    wait_for,
)
from .tui_helpers import write_corpus as write_text_corpus

SIZES = [(80, 24), (60, 20)]


def status(app: GptTuiApp) -> str:
    renderable = app.query_one("#run-state", Static).render()
    return renderable.plain if isinstance(renderable, Text) else str(renderable)


def step(n: int, elapsed: float = 1.0, total: int = 100, at: float | None = None) -> StepEnd:
    return StepEnd(
        n, 0, 5.0, 4e-4, 64 * (n + 1), 900.0, 1.0, None, elapsed, total, time=at or time.time()
    )


def stop_the_clock(monkeypatch: pytest.MonkeyPatch) -> float:
    """The Train screen's clock stands still (elapsed times are then exact)."""
    now = time.time()
    monkeypatch.setattr(tui.screens.train.dashboard, "time", SimpleNamespace(time=lambda: now))
    return now


async def show(pilot, *events: object) -> TrainPane:  # noqa: ANN001
    """Deliver events to the Train screen as a live run's would arrive."""
    pane = pilot.app.query_one(TrainPane)
    pane.post_message(TrainEvents(list(events), pane.handle))
    await pilot.pause()
    return pane


# ---------------------------------------------------------------- the engine


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_text_corpus(tmp_path, repeats=6)


def test_trainer_announces_its_slow_phases(corpus: Path, tmp_path: Path) -> None:
    events: list = []
    cfg = TrainConfig(
        corpus=str(corpus), batch_size=2, epochs=1, eval_freq=4, eval_iter=1,
        sample_tokens=4, checkpoint_every=None, device="cpu",
    )  # fmt: skip
    result = Trainer(FAST_MODEL, cfg, listeners=[events.append], run_dir=tmp_path / "run").run()
    assert isinstance(result, Finished)
    kinds = [e.name if isinstance(e, Phase) else type(e).__name__ for e in events]
    # Setup, before the run starts: the corpus, then the model.
    assert kinds[:3] == ["corpus", "model", "RunStarted"]
    # Each slow piece of work is announced just before the event that ends it.
    for phase, ends in (
        ("eval", "EvalEnd"),
        ("sample", "Sample"),
        ("checkpoint", "CheckpointSaved"),
    ):
        at = [i for i, k in enumerate(kinds) if k == phase]
        assert at and all(kinds[i + 1] == ends for i in at), (phase, kinds)
    # Never one per step: only around the slow work (a save that writes nothing has none).
    assert kinds.count("eval") == kinds.count("EvalEnd") and kinds.count("checkpoint") == 1
    # metrics.jsonl holds them too (readers skip unknown events); they read back.
    on_file = read_metrics(tmp_path / "run" / "metrics.jsonl")
    phases = [e for e in on_file if isinstance(e, Phase)]
    assert [p.name for p in phases][:1] == ["eval"]  # setup phases precede the file
    assert from_record(to_record(phases[0])) == phases[0]
    assert run_row(tmp_path / "run").state == "finished"


def test_paused_time_is_not_elapsed_time(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ETA divides elapsed_s by the steps done: a pause must not count."""
    trainer: Trainer | None = None

    class Clock:  # the trainer's time module: each wait while paused lasts 100 s
        offset = 0.0

        def perf_counter(self) -> float:
            return time.perf_counter() + self.offset

        def sleep(self, seconds: float) -> None:
            self.offset += 100.0
            trainer.unpause()  # the user resumes

        def __getattr__(self, name: str) -> object:
            return getattr(time, name)

    monkeypatch.setattr(gptcore.training.trainer, "time", Clock())
    steps: list[StepEnd] = []

    def listen(event: object) -> None:
        if isinstance(event, StepEnd):
            steps.append(event)
            if event.step == 1:
                trainer.pause()

    cfg = TrainConfig(
        corpus=str(corpus), batch_size=2, epochs=1, max_steps=4, eval_freq=100, eval_iter=1,
        sample_tokens=0, checkpoint_every=None, device="cpu",
    )  # fmt: skip
    trainer = Trainer(FAST_MODEL, cfg, listeners=[listen])
    result = trainer.run()
    assert isinstance(result, Finished) and len(steps) == 4
    assert steps[2].elapsed_s - steps[1].elapsed_s < 50  # the 100 s pause is left out
    assert result.elapsed_s < 50


# ---------------------------------------------------------------- the run state


def test_no_eta_once_a_run_is_over() -> None:
    for end in (
        Finished(10, 1, "cancelled", 640, 9.0),
        Finished(10, 1, "completed", 640, 9.0),
        Failed(5, 0, "boom"),
    ):
        state = RunState()
        state.apply(RunStarted("/runs/x", "cpu", "fp32", 100, 1000))
        state.apply(step(4, elapsed=5.0))
        assert state.eta_s() == pytest.approx(95.0)
        state.apply(end)
        assert state.eta_s() is None, end


def test_run_state_says_what_the_trainer_is_doing() -> None:
    now = 1_000_000.0
    state = RunState(state="starting", message="building the model …")
    state.apply(Phase("corpus", 0, time=now))
    assert state.detail(now) == "loading the corpus …"  # shown at once while starting
    state.apply(RunStarted("/runs/x", "cpu", "fp32", 100, 1000, time=now))
    assert state.detail(now + 0.5) == "on cpu (fp32)"  # a short wait shows no timer
    assert state.detail(now + 66) == "first step … 1m06s"
    state.apply(step(0, at=now + 66))
    assert state.detail(now + 67.5) == "step 2 … 1s"
    state.apply(Phase("eval", 1, time=now + 70))
    assert state.detail(now + 82) == "evaluating … 12s"
    state.apply(EvalEnd(0, 0, 4.0, 4.5, 64, time=now + 83))
    assert state.detail(now + 83.5) == "on cpu (fp32)"
    # Paused time is not the step's: the timer restarts on resume.
    state.set_paused(True, now + 84)
    assert state.detail(now + 200) == "press p to resume"
    state.set_paused(False, now + 200)
    assert state.detail(now + 200.5) == "resumed"
    state.request_stop(now + 201)
    assert state.state == "stopping" and state.active
    assert state.detail(now + 201) == "after the current step …"
    assert state.detail(now + 213) == "after the current step … 12s"
    state.apply(Phase("checkpoint", 2, time=now + 214))
    assert state.detail(now + 217) == "saving a checkpoint … 3s"
    state.apply(CheckpointSaved(2, 0, "/runs/x/checkpoints/step-2", "interrupt", time=now + 218))
    state.apply(Finished(2, 0, "cancelled", 128, 3.0, time=now + 218))
    assert state.state == "stopped" and state.detail(now + 300) == "by the user at step 2"
    assert state.detail(now + 300, width=20) == "by the user"  # narrow words, same meaning


# ---------------------------------------------------------------- the screen


@run_async
async def test_status_shows_a_long_phase_with_its_elapsed_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = stop_the_clock(monkeypatch)
    app = make_app(write_text_corpus(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, "corpus")
        await pilot.press("2")
        await show(pilot, RunStarted("/r", "cpu", "fp32", 100, 124_000_000, time=now - 66))
        assert status(app) == "RUNNING · first step … 1m06s"  # not just "device cpu"
        pane = await show(pilot, step(0, at=now - 20), Phase("eval", 1, time=now - 12))
        assert status(app) == "RUNNING · evaluating … 12s"
        pane.state.activity_since -= 5  # five seconds later, the timer redraws it
        pane.tick()
        assert status(app) == "RUNNING · evaluating … 17s"
        await show(pilot, EvalEnd(0, 0, 4.0, 4.5, 64), Phase("sample", 1, time=now - 4))
        assert status(app) == "RUNNING · generating a sample … 4s"
        await show(pilot, Sample(0, 0, "Every effort"), Phase("checkpoint", 1, time=now - 3))
        assert status(app) == "RUNNING · saving a checkpoint … 3s"
        await show(pilot, CheckpointSaved(1, 0, "/r/checkpoints/step-1", "manual"))
        assert status(app) == "RUNNING · on cpu (fp32)"
        await show(pilot, Finished(1, 0, "completed", 64, 66.0))
        assert status(app) == "FINISHED · all epochs done, step 1"
        assert "ETA" not in app.query_one("#run-stats", Static).render().plain  # not stale


@run_async
async def test_stop_says_stopping_at_once(tmp_path: Path) -> None:
    corpus = write_text_corpus(tmp_path, repeats=12)
    app = make_app(corpus, fast_config(corpus, epochs=1000))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, "corpus")
        await pilot.press("2", "s")
        await wait_for(pilot, lambda: train_state(pilot).last_step is not None, timeout=SLOW_WAIT_S)
        pane = app.query_one(TrainPane)
        long_step = threading.Event()  # a step of the 124M model on a CPU: it ends when set
        inside = threading.Event()  # the trainer is in that step: it cannot stop before it ends

        def hold(event: object) -> None:
            if isinstance(event, StepEnd):
                inside.set()
                long_step.wait(GUARD_S)

        pane.trainer.add_listener(hold)
        # Pressed between two steps, the stop could land at once (a race, seen under load).
        await wait_for(pilot, inside.is_set, "the trainer to be inside a held step")
        await pilot.press("x")
        assert status(app) == "STOPPING · after the current step …"
        assert pane.state.state == "stopping" and pane.training
        long_step.set()
        await settle(pilot, "train")
        assert pane.state.state == "stopped" and status(app).startswith("STOPPED · ")


def test_quit_while_training_says_stopping_at_once(tmp_path: Path) -> None:
    corpus = write_text_corpus(tmp_path, repeats=12)
    app = make_app(corpus, fast_config(corpus, epochs=1000))
    seen: list[str] = []

    async def scenario() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot, "corpus")
            await pilot.press("2", "s")
            await wait_for(
                pilot, lambda: train_state(pilot).last_step is not None, timeout=SLOW_WAIT_S
            )
            pane = app.query_one(TrainPane)
            render = pane.render_state

            def recorded() -> None:
                render()
                seen.append(status(app))

            pane.render_state = recorded  # type: ignore[method-assign]
            await pilot.press("ctrl+q")
            await pilot.pause()
            await pilot.press("y")
            await settle(pilot)

    asyncio.run(scenario())
    assert app.return_value == 0
    stopping = [i for i, s in enumerate(seen) if s.startswith("STOPPING · after the current step")]
    stopped = [i for i, s in enumerate(seen) if s.startswith("STOPPED")]
    assert stopping and stopped and stopping[0] < stopped[0], seen
    assert any("stopping after the current step" in n.message for n in app._notifications)


@pytest.mark.parametrize("size", SIZES)
@run_async
async def test_the_status_line_fits_on_one_line(
    tmp_path: Path, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = stop_the_clock(monkeypatch)
    app = make_app(write_text_corpus(tmp_path))
    async with app.run_test(size=size) as pilot:
        await settle(pilot, "corpus")
        await pilot.press("2")
        await pilot.pause()
        widget = app.query_one("#run-state", Static)
        pane = app.query_one(TrainPane)
        lines: list[str] = []

        async def check(*events: object) -> None:
            await show(pilot, *events)
            await pilot.pause()
            lines.append(status(app))
            assert widget.size.height == 1, (size, status(app))

        await check()  # idle
        pane.follow(None, RunState(state="starting", message="building the model …"))
        await check(Phase("corpus", 0, time=now - 3))
        await check(Phase("model", 0, time=now - 3))
        await check(RunStarted("/r", "cpu", "fp32", 99_999, 10**8, time=now - 605))
        await check(step(12_344, total=99_999, at=now - 40), Phase("eval", 12_345, time=now - 12))
        await check(Phase("sample", 12_345, time=now - 75))
        await check(Phase("checkpoint", 12_345, time=now - 3))
        pane.state.apply(CheckpointSaved(12_345, 3, "/r/checkpoints/step-012345", "manual"))
        pane.state.request_stop(now - 42)
        pane.render_state()
        await check()
        for reason in ("completed", "max_steps", "max_time", "cancelled", "pruned"):
            pane.follow(None, RunState(state="running"))
            await check(Finished(12_345, 3, reason, 10**6, 60.0))
        assert lines[-5].startswith("FINISHED · ") and lines[-2].startswith("STOPPED · ")
        assert lines[-1].startswith("PRUNED · by the")  # a sweep's trial: not "finished"
        if size == (80, 24):  # the wide words
            assert lines[-5] == "FINISHED · all epochs done, step 12,345"
            assert lines[-1] == "PRUNED · by the sweep's pruner at step 12,345"
            assert lines[7] == "STOPPING · after the current step … 42s"


def system_line(app: GptTuiApp) -> str:
    widget = app.query_one("#run-system", Static)
    return widget.render().plain if widget.display else ""


@run_async
async def test_the_system_line_shows_while_a_run_is_live_and_watched(tmp_path: Path) -> None:
    corpus = write_text_corpus(tmp_path, repeats=12)
    app = make_app(corpus, fast_config(corpus, epochs=1000))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, "corpus")
        await pilot.press("2")
        assert system_line(app) == ""  # idle: no run to describe
        await pilot.press("s")
        await wait_for(pilot, lambda: train_state(pilot).last_step is not None, timeout=SLOW_WAIT_S)
        pane = app.query_one(TrainPane)
        pane.tick()  # the 1 s timer's refresh, now
        await settle(pilot, "sysinfo")
        line = system_line(app)
        assert line.startswith("cpu ") and " · rss " in line, line
        assert "rss" not in app.query_one("#run-stats", Static).render().plain  # one source
        await pilot.press("x")
        await settle(pilot, "train")
        run_dir = pane.run_dir
        pane.tick()
        await settle(pilot, "sysinfo")
        assert system_line(app) == ""  # the run is over
        pane.watch_run(run_dir)  # a finished run: nothing of this machine to show
        await settle(pilot)
        assert pane.state.state == "stopped" and system_line(app) == ""
        pane.action_leave_watch()
        watched = tmp_path / "watched"
        watched.mkdir()
        events = [RunStarted(str(watched), "cpu", "fp32", 100, 10**6), step(0)]
        (watched / "metrics.jsonl").write_text(
            "".join(json.dumps(to_record(e)) + "\n" for e in events)
        )
        with RunLock(watched):  # a process trains there
            pane.watch_run(watched)  # in progress, but it has not reported its use yet
            await settle(pilot)
            pane.tick()
            await settle(pilot)
            assert pane.state.active and system_line(app) == ""  # never this app's numbers
            sample = SystemSample(0, 0, 187.0, 3_000_000_000, time=time.time() - 4)
            with (watched / "metrics.jsonl").open("a", encoding="utf-8") as f:
                f.write(json.dumps(to_record(sample)) + "\n")
            pane.poll_watched()
            await settle(pilot)
            pane.tick()
            await settle(pilot)
            # What the watched run's own process reported (it may be on another machine).
            assert system_line(app) == "run: cpu 187% · rss 3.0 GB · 4s ago", system_line(app)


# ---------------------------------------------------------------- health and the bell


def rings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every App.bell() from now on."""
    rung: list[int] = []
    monkeypatch.setattr(GptTuiApp, "bell", lambda app: rung.append(1))
    return rung


def notes(app: GptTuiApp) -> list[tuple[str, str, str]]:
    return [(n.title, n.severity, n.message) for n in app._notifications]


@run_async
async def test_a_run_that_ends_rings_the_bell_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rung = rings(monkeypatch)
    app = make_app(write_text_corpus(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, "corpus")
        await pilot.press("2")
        await show(pilot, RunStarted("/r/my-run", "cpu", "fp32", 100, 10**6), step(0))
        assert rung == []
        await show(pilot, Finished(100, 1, "completed", 6400, 60.0))
        assert rung == [1]
        assert ("Training finished", "information", "my-run: all epochs done, step 100") in notes(
            app
        )
        pane = app.query_one(TrainPane)
        pane.follow(None, RunState(state="starting"))
        await show(pilot, RunStarted("/r/my-run", "cpu", "fp32", 100, 10**6))
        await show(pilot, Failed(3, 0, "the loss became nan", kind="nan"))
        assert rung == [1, 1]
        assert notes(app)[-1][:2] == ("Training failed", "error")


@run_async
async def test_no_bell_when_the_setting_is_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tui.settings import Settings

    rung = rings(monkeypatch)
    corpus = write_text_corpus(tmp_path)
    app = GptTuiApp(settings=Settings(corpus=str(corpus), config="preset:tiny", bell=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, "corpus")
        await pilot.press("2")
        await show(pilot, RunStarted("/r/quiet", "cpu", "fp32", 10, 10**6))
        await show(pilot, Finished(10, 1, "completed", 640, 6.0))
        assert rung == []
        assert notes(app)[-1][:2] == ("Training finished", "information")  # still said


@run_async
async def test_health_signals_are_recorded_and_notified(tmp_path: Path) -> None:
    from gptcore.runs.events import Overfitting, Spike

    app = make_app(write_text_corpus(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, "corpus")
        await pilot.press("2")
        spike = Spike(30, 1, "loss", 12.5, 8.0, True)
        over = Overfitting(40, 2, 3, 4.5, 20, "/r/[b]/checkpoints/step-000020")
        pane = await show(pilot, RunStarted("/r", "cpu", "fp32", 100, 10**6), step(0), spike)
        pane = await show(pilot, over)
        assert pane.state.health == [spike, over]
        warned = [n for n in notes(app) if n[1] == "warning"]
        assert warned == [
            ("Spike", "warning", "loss spike at step 30 (epoch 2): 12.5, z 8.0; update skipped"),
            (
                "Overfitting",
                "warning",
                "overfitting at step 40 (epoch 3): val loss rose while train loss fell for "
                "3 evals; best val 4.500 at step 20 (/r/[b]/checkpoints/step-000020)",
            ),
        ]


@run_async
async def test_a_watched_run_notifies_its_health_and_rings_when_it_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gptcore.runs.events import Overfitting, Spike
    from gptcore.runs.metrics import MetricsWriter

    rung = rings(monkeypatch)
    run = tmp_path / "elsewhere"
    run.mkdir()
    writer = MetricsWriter(run / "metrics.jsonl")
    for event in (RunStarted(str(run), "cpu", "fp32", 100, 10**6), step(0)):
        writer(event)
    writer(Overfitting(0, 0, 3, 4.5, 0, None))
    app = make_app(write_text_corpus(tmp_path), watch_dir=run)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, "corpus")
        await wait_for(pilot, lambda: len(train_state(pilot).health) == 1)
        assert [n[0] for n in notes(app) if n[1] == "warning"] == ["Overfitting"]
        writer(Spike(1, 0, "grad_norm", 9.0, 7.0, False))
        writer(Finished(2, 0, "max_steps", 128, 2.0))
        writer.close()
        await wait_for(pilot, lambda: train_state(pilot).state == "finished")
        assert rung == [1]  # it ended while we watched
        assert [n[0] for n in notes(app) if n[1] == "warning"] == ["Overfitting", "Spike"]
        assert notes(app)[-1][:2] == ("Training finished", "information")
        # A run that had already ended when we began watching is history, not news.
        app.query_one(TrainPane).watch_run(run)
        await wait_for(pilot, lambda: train_state(pilot).state == "finished")
        assert rung == [1]
        assert notes(app)[-1][0] == "Run health"  # its two signals, in one notification


@run_async
async def test_a_watched_run_whose_process_dies_is_stopped_and_rings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rung = rings(monkeypatch)
    run = tmp_path / "elsewhere"
    run.mkdir()
    lock = RunLock(run).acquire()  # its process trains there
    events = [RunStarted(str(run), "cpu", "fp32", 100, 10**6), step(0)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(to_record(e)) + "\n" for e in events))
    app = make_app(write_text_corpus(tmp_path), watch_dir=run)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, "corpus")
        await wait_for(pilot, lambda: train_state(pilot).state == "running")
        assert status(app).startswith("RUNNING (watched)")
        lock.release()  # the process is gone without a closing event (kill -9)
        await wait_for(pilot, lambda: train_state(pilot).state == "stopped")
        assert status(app) == "STOPPED (watched) · died"  # the narrow words at 80x24
        assert rung == [1]  # it died while we watched: news
        assert notes(app)[-1][:2] == ("Training stopped", "information")
        assert notes(app)[-1][2] == "elsewhere: its process died (killed or crashed)"
