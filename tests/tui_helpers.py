"""Helpers shared by the app's Pilot and snapshot tests (it holds no tests itself)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path

from textual.pilot import Pilot

from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from tui.app import GptTuiApp
from tui.configs import save_config
from tui.runstate import RunState
from tui.screens.train import TrainPane
from tui.settings import Settings

TEXT = (
    "Every effort moves you forward. The painter looked at the canvas and smiled, "
    "for the light had changed and the picture with it. "
)
# Tiny and fast: a short context so a small corpus gives several batches per epoch.
FAST_MODEL = GPTConfig(
    context_length=16, emb_dim=32, n_heads=2, n_layers=1, drop_rate=0.0, vocab_size=50257
)
GUARD_S = 180  # only a guard against a hang; tests wait on events, not on time


def run_async(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test in a fresh event loop (no asyncio plugin needed)."""

    @functools.wraps(test)
    def wrapper(*args: object, **kwargs: object) -> None:
        asyncio.run(test(*args, **kwargs))  # type: ignore[arg-type]

    return wrapper


def write_corpus(folder: Path, repeats: int = 30) -> Path:
    path = folder / "small.txt"
    path.write_text(TEXT * repeats, encoding="utf-8")
    return path


def fast_config(corpus: Path, **train: object) -> str:
    """Save a quick run config in the (isolated) config dir; returns its key."""
    values = dict(
        corpus=str(corpus),
        batch_size=2,
        epochs=2,
        eval_freq=4,
        eval_iter=1,
        sample_tokens=8,
        lr=0.004,
        checkpoint_every=None,
    )
    values.update(train)
    return str(save_config("fast", FAST_MODEL, TrainConfig(**values)))  # type: ignore[arg-type]


def make_app(
    corpus: Path | str = "builtin", config: str = "preset:tiny", **kw: object
) -> GptTuiApp:
    return GptTuiApp(settings=Settings(corpus=str(corpus), config=config), **kw)  # type: ignore[arg-type]


async def settle(pilot: Pilot, group: str | None = None) -> None:
    """Let pending messages run, then wait for the app's workers (or one group)."""
    app = pilot.app
    await pilot.pause()
    workers = [w for w in app.workers if group is None or w.group == group]
    if workers:  # an empty list would mean "all", including a DirectoryTree's endless loader
        await app.workers.wait_for_complete(workers)
    await pilot.pause()


async def wait_until(pilot: Pilot, predicate: Callable[[RunState], bool]) -> None:
    """Wait until the Train screen's run state satisfies `predicate` (event-driven)."""
    pane = pilot.app.query_one(TrainPane)
    if predicate(pane.state):
        return
    reached = asyncio.Event()
    original = pane.apply_events

    def hooked(events: list) -> None:
        original(events)
        if predicate(pane.state):
            reached.set()

    pane.apply_events = hooked  # type: ignore[method-assign]
    try:
        await asyncio.wait_for(reached.wait(), GUARD_S)
    finally:
        del pane.apply_events
    await pilot.pause()
