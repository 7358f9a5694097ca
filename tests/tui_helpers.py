"""Helpers shared by the app's Pilot and snapshot tests (it holds no tests itself).

Waiting: `wait_for(pilot, condition)` is the one way a test waits for the app. It
re-checks the condition each time the app has handled a message (and at least
every TICK_S, for state a worker thread sets directly), never sleeps in a loop, and
fails within WAIT_S seconds with a message that names what it waited for. Waits on
real work (a tiny model training on two busy cores) pass `timeout=SLOW_WAIT_S`.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import functools
import inspect
import os
import shutil
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

import torch
from textual.app import App
from textual.message_pump import MessagePump
from textual.pilot import Pilot
from textual.worker import WorkerCancelled, WorkerFailed, WorkerState

from gptcore.model.gpt import GPTModel
from gptcore.runs.checkpoint import save_checkpoint
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.util.paths import runs_dir
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
# The model of the checkpoints the Chat / Checkpoints / Models / Inspector tests open.
TINY = GPTConfig(context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)

# How long a wait may take before it fails. Scaled by GPT_TUI_TEST_WAIT_SCALE (e.g. 4
# on a machine much slower than two shared cores).
WAIT_S = 5.0  # the app reacting: a key, a message, a tiny model loading in a worker
SLOW_WAIT_S = 60.0  # real work on two busy cores: a tiny model training, a download
GUARD_S = 180.0  # a test's own thread handshakes: only a guard against a hang
TICK_S = 0.05  # re-check at least this often (state set by a thread without a message)


def run_async(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test in a fresh event loop (no asyncio plugin needed)."""

    @functools.wraps(test)
    def wrapper(*args: object, **kwargs: object) -> None:
        asyncio.run(test(*args, **kwargs))  # type: ignore[arg-type]

    return wrapper


# --- waiting ---------------------------------------------------------------------

_waiters: set[asyncio.Event] = set()
_original_dispatch: Callable | None = None


def _wake_on_every_message() -> None:
    """Make every message pump wake the waiters after it handles a message.

    Textual has no public hook that sees every message of every widget
    (`run_test(message_hook=...)` is fixed when the app starts, and runs before the
    message is handled); this wraps MessagePump._dispatch_message while a wait is on.
    Should Textual rename it, waits still work, on TICK_S alone.
    """
    global _original_dispatch
    original = getattr(MessagePump, "_dispatch_message", None)
    if _original_dispatch is not None or original is None:
        return

    async def dispatch_then_wake(self: MessagePump, message: object) -> None:
        try:
            await original(self, message)
        finally:
            for event in tuple(_waiters):
                event.set()

    _original_dispatch = original
    MessagePump._dispatch_message = dispatch_then_wake  # type: ignore[method-assign]


def _stop_waking() -> None:
    global _original_dispatch
    if not _waiters and _original_dispatch is not None:
        MessagePump._dispatch_message = _original_dispatch  # type: ignore[method-assign]
        _original_dispatch = None


def _describe(condition: Callable[[], object]) -> str:
    """The source of a lambda (`lambda: pane.loaded`), else the function's name."""
    name = getattr(condition, "__qualname__", repr(condition))
    try:
        source = textwrap.dedent(inspect.getsource(condition)).strip()
    except (OSError, TypeError):
        return name
    # getsource gives the lines the lambda is on: a whole statement, or (in a call
    # spread over lines) the lambda's own line with the call's comma or bracket.
    for text in (source, source.rstrip(",) \n")):
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        lambdas = [node for node in ast.walk(tree) if isinstance(node, ast.Lambda)]
        if len(lambdas) == 1:
            return ast.get_source_segment(text, lambdas[0]) or name
        return name
    return source.splitlines()[0]


def _app_report(app: App) -> str:
    """What the app was doing, for a failed wait: its screen and unfinished or failed workers."""
    lines = [f"screen: {type(app.screen).__name__}"]
    for worker in app.workers:
        if worker.state == WorkerState.ERROR:
            lines.append(f"worker {worker.name!r} failed: {worker.error!r}")
        elif not worker.is_finished:
            lines.append(f"worker {worker.name!r} still {worker.state.name.lower()}")
    return "; ".join(lines)


async def wait_for(
    pilot: Pilot,
    condition: Callable[[], object],
    what: str | None = None,
    timeout: float = WAIT_S,
) -> None:
    """Wait until `condition()` is true, letting the app run meanwhile.

    The condition is checked now, whenever any part of the app has handled a message
    (a worker's state change or a posted message included) and at least every TICK_S;
    once it holds, it is checked again after `pilot.pause()`, where the test goes on.
    Fails after `timeout` seconds with an AssertionError naming `what` (by default
    the lambda's source) and what the app's workers are doing, or at once if the app
    crashed. Returns right after a check that holds, so it still holds when the test
    goes on.
    """
    if condition():
        return
    loop = asyncio.get_running_loop()
    limit = timeout * float(os.environ.get("GPT_TUI_TEST_WAIT_SCALE", "1"))
    deadline = loop.time() + limit
    woken = asyncio.Event()
    _waiters.add(woken)
    _wake_on_every_message()
    try:
        while True:
            if condition():
                # Check again where the test goes on: once the messages pending now are
                # done (a handler that sets a flag has usually posted updates with it).
                await pilot.pause()
                if condition():
                    return
            crash = getattr(pilot.app, "_exception", None)
            if crash is not None:
                raise AssertionError(
                    f"the app crashed while waiting for {what or _describe(condition)}: {crash!r}"
                )
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(
                    f"waited {limit:g} s for {what or _describe(condition)}; it never became "
                    f"true ({_app_report(pilot.app)})"
                )
            woken.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(woken.wait(), min(TICK_S, left))
    finally:
        _waiters.discard(woken)
        _stop_waking()


async def settle(pilot: Pilot, group: str | None = None) -> None:
    """Let pending messages run, then wait for the app's workers (or one group of them)
    to end, a failed or cancelled one included, then for the messages they posted."""
    await pilot.pause()
    for worker in [w for w in pilot.app.workers if group is None or w.group == group]:
        with contextlib.suppress(WorkerCancelled, WorkerFailed):
            await worker.wait()
    await pilot.pause()


async def find_pane(pilot: Pilot, cls: type):
    """The app's pane of `cls`, once mounted (the app mounts most panes after its first frame)."""
    await wait_for(
        pilot,
        lambda: any(pane.is_mounted for pane in pilot.app.query(cls)),
        f"a {cls.__name__} to be mounted",
    )
    return pilot.app.query_one(cls)


def train_state(pilot: Pilot) -> RunState:
    """The Train screen's run state (the screen starts a new one with each run)."""
    return pilot.app.query_one(TrainPane).state


# --- apps --------------------------------------------------------------------------


def make_app(
    corpus: Path | str = "builtin", config: str = "preset:tiny", **kw: object
) -> GptTuiApp:
    return GptTuiApp(settings=Settings(corpus=str(corpus), config=config), **kw)  # type: ignore[arg-type]


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


# --- files ---------------------------------------------------------------------------


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


def fixed_home(monkeypatch) -> Path:
    """A GPT_TUI_HOME at a fixed path, emptied: snapshots show paths, which must not vary."""
    home = Path("/tmp/gpt-tui-snapshot-home")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    monkeypatch.setenv("GPT_TUI_HOME", str(home))
    return home


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


FAKE_FLOPS = 2e10  # FLOP/s the Train screen's pinned run-time probe pretends to reach


def pin_step_timing(monkeypatch) -> None:  # noqa: ANN001
    """Pin the Train screen's run-time probe (gptcore.planner.timing.probe): steps take
    their FLOPs over FAKE_FLOPS, so figures depend on the config, not on the machine."""
    import gptcore.planner.timing as timing

    def fake_probe(model, train, device):  # noqa: ANN001, ANN202
        step = timing.step_flops(model, train) / FAKE_FLOPS
        return timing.StepTiming(
            step_s=(step, step, step),
            eval_batch_s=step / 3,
            sample_token_s=0.01,
            save_bytes_per_s=None,
            setup_s=0.0,
            how="pinned by the tests",
            measured=True,
            precision="fp32",
            device=str(device),
        )

    monkeypatch.setattr(timing, "probe", fake_probe)
