"""Speed Lab: the ladder's rungs, their models, cancel, saving, the CLI and the screen."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest
from torch import nn

from gptcore.cli import main
from gptcore.model.gpt import MultiHeadAttention
from gptcore.settings.model import PRESETS, GPTConfig
from gptcore.speedlab import ladder as speedlab
from gptcore.speedlab.ladder import BookAttention, BookGELU, BookLayerNorm, build_model, run_ladder
from gptcore.speedlab.results import RungFinished, RungResult, load_report, scan_results
from gptcore.speedlab.rungs import COMPILE_ON_CPU, RUNG_KEYS, flags_for
from tests.tui_helpers import host_app, run_async, wait_for
from tui.screens.speedlab import SpeedLabPane, results_table

MINI = GPTConfig(
    vocab_size=250, context_length=16, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.0
)


@pytest.fixture(autouse=True)
def mini_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    """A preset small enough for a rung in milliseconds; bf16 runs (emulated is fine)."""
    monkeypatch.setitem(PRESETS, "mini", MINI)
    monkeypatch.setenv("GPT_TUI_CPU_BF16", "1")


def test_every_rung_runs_or_says_why_and_the_result_is_saved() -> None:
    report = run_ladder("mini", steps=1, warmup=0, device="cpu")
    assert [r.key for r in report.rungs] == RUNG_KEYS
    for rung in report.rungs:
        assert rung.measured != bool(rung.skipped), rung
    skipped = {r.key: r.skipped for r in report.rungs if r.skipped}
    # On a CPU: TF32, pinned memory and the batch search are CUDA's; compile is opt-in.
    assert set(skipped) == {"tf32", "pinned", "compile", "max_batch"}
    assert "CUDA only" in skipped["tf32"] and "CUDA only" in skipped["pinned"]
    assert skipped["compile"] == COMPILE_ON_CPU
    assert skipped["max_batch"] == "no fixed memory ceiling on a CPU"
    first = report.rungs[0]
    assert report.ratio(first) == 1.0 and first.peak_memory is not None
    assert first.batch_size == 2 and report.context == 16
    # Saved, and read back equal, with the device's name.
    assert report.path is not None
    data = json.loads(Path(report.path).read_text(encoding="utf-8"))
    assert data["device"] == "cpu" and data["device_name"] == speedlab.device_name(
        __import__("torch").device("cpu")
    )
    assert data["torch_version"] and data["model"] == "mini"
    again = load_report(report.path)
    assert again.rungs == report.rungs and again.device_name == report.device_name
    assert [r.path for r in scan_results()[0]] == [report.path]


def test_bf16_is_skipped_on_a_cpu_without_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPT_TUI_CPU_BF16", "0")
    reasons = speedlab.skip_reasons(__import__("torch").device("cpu"))
    assert reasons["bf16"] == "this CPU has no native bf16"


def test_flags_are_cumulative_and_leave_out_what_does_not_run() -> None:
    assert flags_for(0, {}) == set()
    assert flags_for(1, {}) == {"mask"}
    skipped = {"tf32": "CUDA only", "pinned": "CUDA only"}
    assert flags_for(5, skipped) == {"mask", "fused_adamw", "bf16"}
    assert flags_for(10, {}) == set(RUNG_KEYS[1:])


def test_rung_zero_is_the_books_model_and_the_last_is_the_fast_one() -> None:
    book = build_model(MINI, flags_for(0, {}))
    block = book.trf_blocks[0]
    assert isinstance(block.att, BookAttention) and block.att.stored_mask
    assert "mask" in dict(block.att.named_buffers())
    assert isinstance(block.norm1, BookLayerNorm) and isinstance(book.final_norm, BookLayerNorm)
    assert isinstance(block.ff.layers[1], BookGELU)
    # Rung 1: the same attention, its mask made on the fly (no buffer).
    on_the_fly = build_model(MINI, flags_for(1, {})).trf_blocks[0].att
    assert not on_the_fly.stored_mask and not list(on_the_fly.buffers())
    fast = build_model(MINI, flags_for(10, {}))
    block = fast.trf_blocks[0]
    assert type(block.att) is MultiHeadAttention
    assert type(block.norm1) is nn.LayerNorm and type(block.ff.layers[1]) is nn.GELU
    assert fast.out_head.weight.shape[0] % 64 == 0  # the padded vocabulary
    x = __import__("torch").randint(0, MINI.vocab_size, (2, 16))
    assert book(x).shape == fast(x).shape == (2, 16, MINI.vocab_size)


def test_cancel_stops_between_rungs_and_saves_what_finished() -> None:
    stop = threading.Event()

    def on_event(event: object) -> None:
        if isinstance(event, RungFinished) and event.result.index == 1:
            stop.set()

    report = run_ladder("mini", steps=1, warmup=0, device="cpu", on_event=on_event, cancel=stop)
    assert report.cancelled
    assert [r.index for r in report.rungs] == [0, 1]
    saved = load_report(report.path)
    assert saved.cancelled and [r.key for r in saved.rungs] == ["book", "mask"]


def test_cli_json_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["speedlab", "--model", "mini", "--steps", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["key"] for r in data["rungs"]] == RUNG_KEYS
    assert data["rungs"][0]["ratio"] == 1.0 and data["device_name"]
    assert main(["speedlab", "--list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["started"] for r in listed] == [data["started"]]
    assert main(["speedlab", "--list"]) == 0
    assert "mini · ctx 16 · batch 2 · 1 step" in capsys.readouterr().out


def test_cli_table_shows_bars_ratios_and_reasons(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["speedlab", "--model", "mini", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "1.00×" in out and "█" in out
    assert f"torch.compile: {COMPILE_ON_CPU}" in out
    assert "saved: " in out
    assert main(["speedlab", "--batch", "0"]) == 2


def _fast_ladder(monkeypatch: pytest.MonkeyPatch, release: threading.Event) -> None:
    """Rungs 0-2 finish at once; rung 3 waits (checking for cancel) until released."""

    def measure(index, config, flags, device, batch, steps, warmup, memory, on_event, check):
        if index >= 3:
            while not release.wait(0.01):
                check()
        on_event(speedlab.StepDone(index, 1, 1))
        rung = speedlab.RUNGS[index]
        return RungResult(index, rung.key, rung.title, 100.0 * (index + 1), 0.1, 1000, batch)

    monkeypatch.setattr(speedlab, "measure_rung", measure)


def _text(renderable: object) -> str:
    from rich.console import Console

    console = Console(width=80, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_screen_runs_shows_rows_and_cancels(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    _fast_ladder(monkeypatch, release)

    @run_async
    async def flow() -> None:
        app = host_app(SpeedLabPane)
        async with app.run_test(size=(80, 24)) as pilot:
            pane = app.query_one(SpeedLabPane)
            pane.focus()
            await pilot.pause()
            await pilot.press("s")
            await wait_for(pilot, lambda: pane.report is not None and len(pane.report.rungs) >= 3)
            assert pane.running_rung == 3
            table = _text(results_table(pane.report, pane.running_rung))
            assert "running…" in table and "1.00×" in table and "4.00×" not in table
            assert pane.report.ratio(pane.report.rungs[0]) == 1.0
            await pilot.press("c")
            await wait_for(pilot, lambda: not pane.running and pane.report.cancelled)
            status = str(app.query_one("#speedlab-status").render())
            assert status.startswith("cancelled · saved ")
            assert [r.index for r in pane.report.rungs] == [0, 1, 2]
            await wait_for(pilot, lambda: len(pane.saved) == 1)

    flow()


def test_the_screen_names_a_damaged_saved_result() -> None:
    """A saved result that cannot be read is left out of the picker, with a notice that
    names the file (not silently)."""
    from gptcore.speedlab.results import results_dir

    results_dir().mkdir(parents=True, exist_ok=True)
    (results_dir() / "2026-01-01-broken.json").write_text('{"rungs": "not a list"')

    @run_async
    async def flow() -> None:
        app = host_app(SpeedLabPane)
        async with app.run_test(size=(80, 24)) as pilot:
            pane = app.query_one(SpeedLabPane)
            await wait_for(pilot, lambda: any(n.title == "Speed" for n in app._notifications))
            (note,) = [n.message for n in app._notifications if n.title == "Speed"]
            assert "2026-01-01-broken.json" in note and pane.saved == []

    flow()
