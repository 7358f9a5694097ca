"""The app stays responsive while a run trains (issue 18): the key footer is not
rebuilt for status redraws that change no key, and the app (never headless
training) lets torch's idle OpenMP threads sleep. No timing assertions."""

from __future__ import annotations

import argparse
import os
import sys
import threading

import pytest
from textual.widgets import Footer, TabPane

import tui.app
import tui.background
import tui.screens.train.live
from gptcore.runs.events import StepEnd
from gptcore.settings.train import TrainConfig
from tui.background import TRAIN_NICENESS, IdleCollector, lower_thread_priority
from tui.runhandle import RunHandle
from tui.screens.train import TrainPane
from tui.screens.train.live import train_in_thread

from .tui_helpers import FAST_MODEL, make_app, run_async, settle

SIZE = (80, 24)


@run_async
async def test_footer_is_not_rebuilt_when_no_key_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    rebuilt = []
    original = Footer.recompose

    async def counting(self: Footer) -> None:
        rebuilt.append(self)
        await original(self)

    monkeypatch.setattr(Footer, "recompose", counting)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        train = app.query_one(TrainPane)
        # Start-up work may still change the keys on a busy machine (focus arriving,
        # screens finishing their loads): wait until no rebuild came for a while.
        quiet, before = 0, len(rebuilt)
        for _ in range(500):
            await pilot.pause(0.02)
            quiet, before = (quiet + 1, before) if len(rebuilt) == before else (0, len(rebuilt))
            if quiet >= 25:
                break
        # What a training run does many times a minute: status redraws and step events.
        for step in range(5):
            train.apply_events([StepEnd(step, 0, 5.0, 4e-4, 512 * step, 50.0, 1.0)])
            train.render_state()
            await pilot.pause()
        assert len(rebuilt) == before
        # A key that changes (the Start key dims while a run trains) still shows.
        train.handle = RunHandle("live")
        train.state.state = "running"
        train.render_state()
        await pilot.pause()
        await pilot.pause()
        assert len(rebuilt) == before + 1


def test_idle_threads_sleep_in_the_app_only(monkeypatch: pytest.MonkeyPatch) -> None:
    environ: dict[str, str] = {}
    tui.app.quiet_idle_threads(environ)
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE"}
    mine = {"OMP_WAIT_POLICY": "ACTIVE"}
    tui.app.quiet_idle_threads(mine)
    assert mine == {"OMP_WAIT_POLICY": "ACTIVE"}  # the user's choice stays

    # Opening the app applies it (before any torch import), on the real environment.
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(tui.app.GptTuiApp, "run", lambda self: 0)
    assert tui.app.run(argparse.Namespace(command=None)) == 0
    assert os.environ.get("OMP_WAIT_POLICY") == "PASSIVE"


def test_lowered_priority_is_the_calling_threads_only() -> None:
    """The training thread runs at niceness 10; the app's own thread keeps its priority."""
    if not sys.platform.startswith("linux"):
        assert lower_thread_priority() is False  # elsewhere it would lower the whole app
        return
    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen = {}

    def worker() -> None:
        seen["applied"] = lower_thread_priority()
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == {"applied": True, "nice": max(main_before, TRAIN_NICENESS)}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before


class Posted:
    """A message target for the training worker run outside the app."""

    def __init__(self) -> None:
        self.messages: list[object] = []

    def post_message(self, message: object) -> bool:
        self.messages.append(message)
        return True


# What the worker prepares: the Train form's configs (prepare_run checks them).
FORM_CONFIGS = (FAST_MODEL, TrainConfig(device="cpu"))


def test_the_training_worker_lowers_its_priority_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """The training worker lowers its own thread's priority before the Trainer is built."""
    calls = []
    monkeypatch.setattr(
        tui.screens.train.live,
        "lower_thread_priority",
        lambda: calls.append(threading.get_ident()),
    )

    class Stop(Exception):
        pass

    def no_trainer(*args: object, **kwargs: object) -> None:
        calls.append("trainer")
        raise Stop

    monkeypatch.setattr("gptcore.training.trainer.trainer_for", no_trainer)
    handle = RunHandle("live")
    with pytest.raises(Stop):
        train_in_thread(Posted(), handle, configs=FORM_CONFIGS)  # run in this thread
    assert calls == [threading.get_ident(), "trainer"]
    assert handle.ended.is_set()  # a run that failed to start has ended too


@run_async
async def test_the_app_freezes_its_long_lived_objects_once_the_screens_exist(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Full GC passes over the app's widgets (and later torch) paused keys for 250-365 ms:
    once every screen is mounted, the objects alive are frozen out of the collector."""
    frozen_with = []
    monkeypatch.setattr(
        tui.app, "freeze_long_lived_objects", lambda: frozen_with.append(len(app.query(TabPane)))
    )
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert frozen_with == [len(tui.app.SCREENS)]  # once, with every screen mounted


def test_freezing_moves_live_objects_out_of_the_collectors_reach() -> None:
    import gc

    from tui.background import freeze_long_lived_objects

    before = gc.get_freeze_count()
    try:
        keep = [object() for _ in range(10)]  # noqa: F841 - alive while frozen
        freeze_long_lived_objects()
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()


def test_the_training_worker_freezes_the_engine_before_it_trains(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order = []
    monkeypatch.setattr(tui.screens.train.live, "lower_thread_priority", lambda: None)
    monkeypatch.setattr(
        tui.screens.train.live, "freeze_long_lived_objects", lambda: order.append("freeze")
    )

    class FakeTrainer:
        def run(self) -> None:
            order.append("run")

    def built(run: object, **kwargs: object) -> FakeTrainer:
        order.append("built")
        return FakeTrainer()

    monkeypatch.setattr("gptcore.training.trainer.trainer_for", built)
    target, handle = Posted(), RunHandle("live")
    train_in_thread(target, handle, configs=FORM_CONFIGS)
    assert order == ["built", "freeze", "run"]
    # The screen gets the Trainer with the run's handle (pause and checkpoint go to it).
    assert [type(m).__name__ for m in target.messages] == ["TrainerReady"]
    assert target.messages[0].handle is handle


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeGC:
    """The three gc calls IdleCollector makes, with counts a test sets."""

    def __init__(self) -> None:
        self.threshold = (700, 10, 10)
        self.count = (0, 0, 0)
        self.collections = 0

    def get_threshold(self) -> tuple[int, int, int]:
        return self.threshold

    def set_threshold(self, *values: int) -> None:
        self.threshold = values

    def get_count(self) -> tuple[int, int, int]:
        return self.count

    def collect(self) -> int:
        self.collections += 1
        self.count = (0, 0, 0)
        return 0


def test_full_collections_wait_for_a_pause_in_the_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gc, clock = FakeGC(), FakeClock()
    monkeypatch.setattr(tui.background, "gc", fake_gc)
    collector = IdleCollector(quiet_s=1.5, max_defer_s=60.0, clock=clock)
    assert not collector.tick()  # not started: CPython's own schedule
    collector.start()
    assert fake_gc.threshold == (700, 10, IdleCollector.FULL_PASS_THRESHOLD)
    fake_gc.count = (5, 3, 9)  # fewer middle passes than CPython waits for
    clock.now += 10
    assert not collector.tick()
    fake_gc.count = (5, 3, 10)  # due, but a key just came
    collector.input_seen()
    clock.now += 1.0
    assert not collector.tick()
    clock.now += 0.6  # keys quiet for 1.6 s
    assert collector.tick()
    assert fake_gc.collections == 1
    collector.stop()
    assert fake_gc.threshold == (700, 10, 10)


def test_steady_typing_still_gets_a_full_collection_after_the_longest_deferral(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_gc, clock = FakeGC(), FakeClock()
    monkeypatch.setattr(tui.background, "gc", fake_gc)
    collector = IdleCollector(quiet_s=1.5, max_defer_s=60.0, clock=clock)
    collector.start()
    for _ in range(59 * 5):  # a key every 0.2 s for 59 s: never quiet, not yet overdue
        clock.now += 0.2
        collector.input_seen()
        fake_gc.count = (0, 0, 50)
        assert not collector.tick()
    clock.now += 1.2
    collector.input_seen()
    assert collector.tick()  # 60 s since the last pass
    clock.now += 120
    assert not collector.tick()  # overdue, but nothing pending since
    assert fake_gc.collections == 1


def test_a_due_pass_at_a_quiet_moment_frees_cyclic_garbage() -> None:
    import gc
    import weakref

    class Node:
        pass

    clock = FakeClock()
    collector = IdleCollector(clock=clock)
    collector.start()
    try:
        for _ in range(gc.get_threshold()[1] + 1):
            gc.collect(1)  # each middle pass counts towards a full one
        gc.disable()  # no young pass may free the cycle first
        try:
            node = Node()
            node.self = node
            alive = weakref.ref(node)
            del node
            clock.now += collector.quiet_s
            assert collector.tick()
        finally:
            gc.enable()
        assert alive() is None
    finally:
        collector.stop()


@run_async
async def test_the_app_defers_full_collections_while_it_runs_and_restores_them() -> None:
    import gc

    before = gc.get_threshold()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert gc.get_threshold()[2] == IdleCollector.FULL_PASS_THRESHOLD
        seen = app._collector._last_input
        await pilot.press("2")
        assert app._collector._last_input > seen  # keys count as input
    assert gc.get_threshold() == before
