"""Shared helpers for the Chat / Checkpoints / Models / Inspector app tests."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from gptcore.model.gpt import GPTModel
from gptcore.runs.checkpoint import save_checkpoint
from gptcore.settings.model import GPTConfig
from gptcore.util.paths import runs_dir

TINY = GPTConfig(context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)


def tiny_model(seed: int = 123) -> GPTModel:
    torch.manual_seed(seed)
    return GPTModel(TINY).eval()


def make_checkpoint(
    run: str = "tiny-run",
    name: str = "step-5",
    step: int = 5,
    val_loss: float | None = 7.5,
    seed: int = 123,
) -> Path:
    """A real checkpoint of an untrained tiny model under the isolated GPT_TUI_HOME."""
    return save_checkpoint(
        runs_dir() / run / "checkpoints" / name,
        tiny_model(seed),
        train_config={"batch_size": 2},
        step=step,
        epoch=0,
        tokens_seen=step * 64,
        val_loss=val_loss,
        train_loss=(val_loss or 8.0) - 0.5,
    )


def make_corrupted(run: str = "tiny-run", name: str = "broken") -> Path:
    folder = runs_dir() / run / "checkpoints" / name
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text("{not json", encoding="utf-8")
    return folder


async def wait_until(pilot, condition, tries: int = 500, timeout_s: float = 120.0) -> None:
    """Let the app process messages until `condition()` holds: at least `tries` polls
    and up to `timeout_s` seconds (a loaded 2-core CI machine needs more than 5 s)."""
    deadline = time.monotonic() + timeout_s
    polls = 0
    while polls < tries or time.monotonic() < deadline:
        if condition():
            return
        await pilot.pause(0.01)
        polls += 1
    raise AssertionError("condition never became true")


def run_async(fn):
    """Run an `async def test_...` with asyncio.run (no pytest-asyncio here)."""
    import asyncio
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


def host_app(*panes: type):
    """A bare app holding just the given panes (starts faster than the whole app); it
    routes the panes' app-level messages and loads their styles as the app does."""
    from tui.app import PANE_CSS, PaneRouter

    class Host(PaneRouter):
        CSS_PATH = PANE_CSS

        def compose(self):
            for pane in panes:
                yield pane(id=pane.__name__.lower())

    return Host()


def fixed_home(monkeypatch) -> Path:
    """A GPT_TUI_HOME at a fixed path, emptied: snapshots show paths, which must not vary."""
    import shutil

    home = Path("/tmp/gpt-tui-snapshot-home")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    monkeypatch.setenv("GPT_TUI_HOME", str(home))
    return home


async def settle(pilot) -> None:
    """Wait for every worker to end (a cancelled or failed one included), then for messages."""
    import contextlib

    from textual.worker import WorkerCancelled, WorkerFailed

    for worker in list(pilot.app.workers):
        with contextlib.suppress(WorkerCancelled, WorkerFailed):
            await worker.wait()
    await pilot.pause()


async def pane(pilot, cls: type):
    """The app's pane of `cls`, once mounted (the app mounts most panes after its first frame)."""
    await wait_until(pilot, lambda: bool(pilot.app.query(cls)))
    return pilot.app.query_one(cls)
