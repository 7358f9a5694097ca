"""Progress on the long actions issue 25 left (deliver 7): checkpoint export and book
import report byte counts that only grow; the CLI draws them on stderr only on a
terminal; the app shows elapsed and ETA for exports (Checkpoints) and the timeline."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from textual.widgets import Static

import gptcore.sampling.timeline
import gptcore.weights.export
from gptcore.cli import main
from gptcore.runs.checkpoint import load_checkpoint
from gptcore.settings.train import TrainConfig
from gptcore.util.progress import Stages, elapsed_eta_text
from gptcore.weights.book_import import import_book_run
from gptcore.weights.export import _checkpoint_bytes, export_checkpoint
from tests.test_timeline import Host
from tests.tui_helpers import find_pane, host_app, make_checkpoint, run_async, settle, wait_for
from tui.screens.checkpoints import CheckpointsPane
from tui.screens.timeline import TimelineScreen


def _recorder() -> tuple[list[tuple[int, int]], object]:
    calls: list[tuple[int, int]] = []
    return calls, lambda done, total: calls.append((done, total))


def _grows_to_the_end(calls: list[tuple[int, int]]) -> None:
    dones = [done for done, _ in calls]
    assert len({total for _, total in calls}) == 1  # one total throughout
    assert dones[0] == 0 and dones[-1] == calls[-1][1]
    assert all(a < b for a, b in zip(dones, dones[1:], strict=False))  # only grows


@pytest.mark.parametrize("kind", ["pth", "hf"])
def test_export_reports_bytes_that_only_grow(kind: str) -> None:
    checkpoint = make_checkpoint()
    calls, progress = _recorder()
    export_checkpoint(checkpoint, kind, progress=progress)
    _grows_to_the_end(calls)
    assert calls[-1][1] == 3 * _checkpoint_bytes(checkpoint)  # check, read, write
    assert len(calls) >= 3  # progress between the pieces, not only at the end


def test_book_import_reports_bytes_that_only_grow() -> None:
    checkpoint = make_checkpoint()
    pth = export_checkpoint(checkpoint, "pth")
    calls, progress = _recorder()
    model = load_checkpoint(checkpoint).model_config
    run = import_book_run(pth, model, TrainConfig(), "imported", progress)
    _grows_to_the_end(calls)
    assert calls == [(0, 2 * pth.stat().st_size), (pth.stat().st_size, calls[0][1]), calls[-1]]
    assert load_checkpoint(run).step == 0


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_export_and_import_draw_progress_on_a_terminal_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    checkpoint = make_checkpoint()
    assert main(["checkpoints", "export", str(checkpoint), "--format", "pth"]) == 0
    piped = capsys.readouterr()
    assert piped.err == "" and piped.out.strip().endswith("step-5.pth")
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    pth = tmp_path / "again.pth"
    assert main(["checkpoints", "export", str(checkpoint), str(pth), "--format", "pth"]) == 0
    assert "exporting 100% [" in terminal.getvalue() and "ETA" in terminal.getvalue()
    # The import of that file, with the tiny model's shape: the same line, "importing".
    model = ["--set", "model.context_length=32", "--set", "model.emb_dim=32"]
    model += ["--set", "model.n_heads=4", "--set", "model.n_layers=2"]
    model += ["--set", "model.drop_rate=0.0"]
    assert main(["checkpoints", "import", str(pth), "--config", "book", *model]) == 0
    assert "importing 100% [" in terminal.getvalue()


def test_stages_weigh_pieces_and_finish_at_the_total() -> None:
    calls, progress = _recorder()
    stages = Stages(10, progress)
    stages.start()
    stages.done(3)
    stages.done(50)  # never past the total
    stages.finish()
    assert calls == [(0, 10), (3, 10), (10, 10), (10, 10)]
    assert elapsed_eta_text(1, 4, 10.0) == "10s elapsed · ETA 30s"
    assert elapsed_eta_text(0, 4, 2.0) == "2s elapsed · ETA –"


@run_async
async def test_the_checkpoints_screen_shows_an_exports_elapsed_and_eta(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()

    def slow_export(path, kind, out=None, progress=None):  # noqa: ANN001, ANN202
        progress(0, 100)
        progress(40, 100)
        release.wait(30)
        progress(100, 100)
        return Path(path)

    monkeypatch.setattr(gptcore.weights.export, "export_checkpoint", slow_export)
    make_checkpoint()
    app = host_app(CheckpointsPane)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await find_pane(pilot, CheckpointsPane)
        await wait_for(pilot, lambda: pane.loaded)
        pane.focus()
        await pilot.press("e")
        try:
            await wait_for(pilot, lambda: "elapsed · ETA" in pane.export_text)
            detail = str(pane.query_one("#ckpt-detail", Static).render())
            assert "exporting tiny-run/step-5 (.pth): " in detail and "ETA" in detail
        finally:
            release.set()
        await settle(pilot, "ckpt-export")
        await wait_for(pilot, lambda: pane.export_text == "")


@run_async
async def test_the_timeline_screen_shows_elapsed_and_eta(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    release = threading.Event()

    def slow_timeline(*args, progress=None, **kwargs):  # noqa: ANN002, ANN003, ANN202
        progress(0, 3)
        progress(1, 3)
        release.wait(30)
        progress(3, 3)
        return []

    monkeypatch.setattr(gptcore.sampling.timeline, "sample_timeline", slow_timeline)
    app = Host(tmp_path / "run")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TimelineScreen)
        status = screen.query_one("#timeline-status", Static)
        try:
            await wait_for(pilot, lambda: "1 of 3 models sampled · " in str(status.render()))
            assert "elapsed · ETA" in str(status.render())
        finally:
            release.set()
        await settle(pilot)
        await wait_for(pilot, lambda: "no checkpoints yet" in str(status.render()))
