"""The app stays responsive while a run trains (issue 18): the key footer is not
rebuilt for status redraws that change no key, and the app (never headless
training) lets torch's idle OpenMP threads sleep. No timing assertions."""

from __future__ import annotations

import argparse
import os
import sys
import threading

import pytest
from textual.widgets import Footer

import tui.app
import tui.screens.train
from gptcore.events import StepEnd
from tui.background import TRAIN_NICENESS, lower_thread_priority
from tui.screens.train import TrainPane

from .tui_helpers import make_app, run_async, settle

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
        before = len(rebuilt)
        # What a training run does many times a minute: status redraws and step events.
        for step in range(5):
            train.apply_events([StepEnd(step, 0, 5.0, 4e-4, 512 * step, 50.0, 1.0)])
            train._render_state()
            await pilot.pause()
        assert len(rebuilt) == before
        # A key that changes (the Start key dims while a run trains) still shows.
        train.live = True
        train.state.state = "running"
        train._render_state()
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


def test_the_training_worker_lowers_its_priority_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """run_training lowers its own thread's priority before the Trainer is built."""
    calls = []
    monkeypatch.setattr(
        tui.screens.train, "lower_thread_priority", lambda: calls.append(threading.get_ident())
    )

    class Stop(Exception):
        pass

    def no_trainer(*args: object, **kwargs: object) -> None:
        calls.append("trainer")
        raise Stop

    monkeypatch.setattr("gptcore.train.Trainer", no_trainer)
    pane = TrainPane()
    with pytest.raises(Stop):
        # The undecorated worker body, run in this thread.
        TrainPane.run_training.__wrapped__(pane, None, None, "live-0", threading.Event())
    assert calls == [threading.get_ident(), "trainer"]
