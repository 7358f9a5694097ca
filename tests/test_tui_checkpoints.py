"""Pilot tests of the Checkpoints screen: damaged entries, rename, delete, export, open."""

from __future__ import annotations

import re

from textual.widgets import DataTable, Input, Static

from gptcore.runs.checkpoint import load_checkpoint, save_checkpoint
from gptcore.training.evaluate import evaluate_model
from gptcore.util.paths import runs_dir
from gptcore.weights.modelspec import load_spec
from tests.tui_helpers import (
    find_pane,
    host_app,
    make_checkpoint,
    make_corrupted,
    run_async,
    settle,
    tiny_model,
    wait_for,
)
from tui.app import GptTuiApp
from tui.screens.chat import ChatPane
from tui.screens.checkpoints import CheckpointsPane
from tui.settings import Settings


async def _start(pilot) -> CheckpointsPane:
    pane = await find_pane(pilot, CheckpointsPane)
    await wait_for(pilot, lambda: pane.loaded)
    pane.query_one(DataTable).focus()
    await pilot.pause()
    return pane


def _row(pane: CheckpointsPane, name: str) -> list[str]:
    table = pane.query_one(DataTable)
    for key in table.rows:
        cells = [str(c) for c in table.get_row(key)]
        if cells[2] == name:
            return cells
    raise AssertionError(f"no row {name}")


async def _highlight(pilot, pane: CheckpointsPane, name: str) -> None:
    table = pane.query_one(DataTable)
    path = next(str(i.path) for i in pane.infos if i.name == name)
    table.move_cursor(row=table.get_row_index(path))
    await pilot.pause()


@run_async
async def test_lists_damaged_entries_with_their_reason_and_marks_the_best():
    make_checkpoint(name="step-5", step=5, val_loss=7.0)
    make_checkpoint(name="step-10", step=10, val_loss=6.5)
    make_corrupted(name="broken")
    app = host_app(CheckpointsPane)
    async with app.run_test(size=(140, 30)) as pilot:
        pane = await _start(pilot)
        assert pane.query_one(DataTable).row_count == 3
        broken = _row(pane, "broken")
        assert broken[0] == "⚠" and broken[3] == "damaged"
        assert "meta.json is corrupted (not valid JSON)" in broken[-1]
        assert _row(pane, "step-10")[0] == "★" and _row(pane, "step-5")[0] == ""
        summary = str(pane.query_one("#ckpt-summary", Static).render())
        assert "3 checkpoint(s) in 1 run(s), 1 damaged" in summary
        await _highlight(pilot, pane, "broken")
        detail = str(pane.query_one("#ckpt-detail", Static).render())
        assert "tiny-run/broken cannot be used:" in detail and "not valid JSON" in detail
        # Opening a damaged checkpoint is refused, not a crash.
        await pilot.press("e")
        assert not (runs_dir() / "tiny-run" / "exports").exists()
        # Sorting by step puts step-10 first among the usable ones.
        pane.sort_by = "date"
        await pilot.press("s")
        assert pane.sort_by == "step"
        table = pane.query_one(DataTable)
        first = [str(c) for c in table.get_row_at(0)]
        assert first[2] == "step-10"


@run_async
async def test_rename_and_delete_ask_first():
    make_checkpoint(name="step-5")
    make_checkpoint(name="step-10", step=10)
    app = host_app(CheckpointsPane)
    async with app.run_test(size=(140, 30)) as pilot:
        pane = await _start(pilot)
        await _highlight(pilot, pane, "step-5")
        await pilot.press("r")
        await pilot.pause()
        field = app.screen.query_one("#prompt-input", Input)
        field.value = "keeper"
        await pilot.press("enter")
        await wait_for(pilot, lambda: any(i.name == "keeper" for i in pane.infos))
        assert load_checkpoint(runs_dir() / "tiny-run" / "checkpoints" / "keeper").step == 5
        await _highlight(pilot, pane, "step-10")
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("n")  # declined: still there
        await pilot.pause()
        assert (runs_dir() / "tiny-run" / "checkpoints" / "step-10").is_dir()
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await wait_for(pilot, lambda: [i.name for i in pane.infos] == ["keeper"])
        assert not (runs_dir() / "tiny-run" / "checkpoints" / "step-10").exists()


def test_export_pth_and_hf_and_compare(monkeypatch):
    import tui.screens.checkpoints.compare as compare

    monkeypatch.setattr(compare, "COMPARE_BATCHES", 1)  # the numbers, not their precision
    _export_and_compare()


@run_async
async def _export_and_compare():
    # The marked checkpoint's run trained with batch 3 on the CPU: compare evaluates so.
    step5 = save_checkpoint(
        runs_dir() / "tiny-run" / "checkpoints" / "step-5", tiny_model(1),
        train_config={"batch_size": 3, "device": "cpu"}, step=5, epoch=0, tokens_seen=320,
        val_loss=7.5, train_loss=7.0,
    )  # fmt: skip
    make_checkpoint(name="step-10", step=10, seed=2)
    app = host_app(CheckpointsPane)
    async with app.run_test(size=(140, 30)) as pilot:
        pane = await _start(pilot)
        await _highlight(pilot, pane, "step-5")
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("h")
        await settle(pilot)
        exports = runs_dir() / "tiny-run" / "exports"
        assert (exports / "step-5.pth").is_file()
        assert (exports / "step-5-hf" / "config.json").is_file()
        # The export worker thread reports each file through a notification.
        await wait_for(pilot, lambda: sum("exported" in n.message for n in app._notifications) == 2)
        await pilot.press("m")
        await _highlight(pilot, pane, "step-10")
        await pilot.press("v")
        await settle(pilot)
        await wait_for(pilot, lambda: pane.compare_text.startswith("losses"))
        lines = pane.compare_text.splitlines()
        assert lines[0] == (
            "losses of tiny-run on builtin (Python help topics) (1 batches per split, cpu):"
        )
        assert lines[1].startswith("A step-5   train ")
        assert lines[2].startswith("B step-10  train ")
        # The numbers are those of the engine's evaluate task, as `gpt-tui eval` gives them.
        expected = evaluate_model(
            load_spec(str(step5), "cpu").model, "builtin", batch_size=3, max_batches=1
        )
        assert lines[1] == (
            f"A step-5   train {expected.train_loss:.3f} · val {expected.val_loss:.3f}"
        )
        # Each run's own batch size (3 and 2): the split of each is told apart.
        assert lines[3] == "each on its run's split (train / val tokens):"
        assert lines[4].startswith("A train 0.9: ") and lines[4].endswith(", window 32, batch 3")
        assert lines[5].startswith("B train 0.9: ") and lines[5].endswith(", window 32, batch 2")


@run_async
async def test_open_in_chat_switches_tab_and_loads():
    make_checkpoint(name="step-5")
    app = GptTuiApp(settings=Settings())
    async with app.run_test(size=(100, 30)) as pilot:
        await find_pane(pilot, ChatPane)
        app.action_show_tab("checkpoints")
        pane = await _start(pilot)
        await pilot.press("o")
        chat = app.query_one(ChatPane)
        await wait_for(pilot, lambda: chat.model is not None)
        assert app.query_one("#tabs").active == "chat"
        assert chat.spec == str(pane.infos[0].path)


def test_snapshot_checkpoints(snap_compare, monkeypatch):
    from tests.tui_helpers import fixed_home

    fixed_home(monkeypatch)
    # Fixed dates and a fixed home so the picture does not depend on when it runs.
    save_checkpoint(
        runs_dir() / "tiny-run" / "checkpoints" / "step-5", tiny_model(),
        train_config={}, step=5, epoch=0, tokens_seen=320, val_loss=7.0, train_loss=6.5,
    )  # fmt: skip
    make_corrupted(name="broken")

    async def run_before(pilot):
        pane = await find_pane(pilot, CheckpointsPane)
        await pilot.press("4")
        await wait_for(pilot, lambda: pane.loaded)
        pane.infos[0].created = pane.infos[1].created = 0  # no wall-clock date in the picture
        pane._fill()
        await pilot.pause()

    assert snap_compare(
        GptTuiApp(settings=Settings()), terminal_size=(80, 24), run_before=run_before
    )


# ---------------------------------------------------------------- at 80x24 and 60x20


def screen_lines(app) -> list[str]:
    """The terminal's rows as text, as the user sees them."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def test_compare_shows_both_results_at_80x24_and_60x20(monkeypatch):
    import tui.screens.checkpoints.compare as compare

    monkeypatch.setattr(compare, "COMPARE_BATCHES", 1)
    run = "20261201-181254-tiny"  # a default run name: date, time, config
    make_checkpoint(run=run, name="step-000040", step=40, val_loss=7.5)
    make_checkpoint(run=run, name="step-000060", step=60, val_loss=7.0, seed=2)
    for size in ((80, 24), (60, 20)):
        _compare_at(size, run)


@run_async
async def _compare_at(size, run):
    app = GptTuiApp(settings=Settings())
    async with app.run_test(size=size) as pilot:
        await find_pane(pilot, ChatPane)
        app.action_show_tab("checkpoints")
        pane = await _start(pilot)
        await _highlight(pilot, pane, "step-000040")
        await pilot.press("m")
        await _highlight(pilot, pane, "step-000060")
        await pilot.press("v")
        await settle(pilot)
        await wait_for(pilot, lambda: pane.compare_text.startswith("losses"))
        await pilot.pause()
        text = "\n".join(screen_lines(app))
        assert f"losses of {run} on builtin" in text, (size, text)
        for mark, name in (("A", "step-000040"), ("B", "step-000060")):  # each row whole
            row = rf"{mark} {name}  train \d+\.\d{{3}} · val \d+\.\d{{3}}"
            assert re.search(row, text), (size, text)
        # One run, one split: said once, under the rows.
        assert re.search(r"both train 0\.9: [\d,]+ / [\d,]+, window 32, batch 2", text), text


@run_async
async def test_footer_and_table_at_80_columns():
    make_checkpoint(run="20261201-181254-tiny", name="step-000060", step=60)
    app = GptTuiApp(settings=Settings())
    async with app.run_test(size=(80, 24)) as pilot:
        await find_pane(pilot, ChatPane)
        app.action_show_tab("checkpoints")
        await _start(pilot)
        await pilot.press("m")  # Compare needs a mark to act; the footer shows it anyway
        lines = screen_lines(app)
        footer = lines[-1]
        for key in ("o Chat", "m Mark", "v Compare", "d Delete", "? Help"):
            assert key in footer, footer
        header = next(line for line in lines if " checkpoint " in line)
        assert " tokens " in header, header
        row = next(line for line in lines if "step-000060" in line)
        assert "20261201-181254-tiny" in row and "3.8 k" in row  # 60 steps * 64 tokens


@run_async
async def test_weights_damaged_behind_the_hash_cache_are_flagged_and_lose_the_star():
    import os

    from gptcore.runs.checkpoints import list_checkpoints

    make_checkpoint(name="step-5", step=5, val_loss=7.5)
    best = make_checkpoint(name="step-10", step=10, val_loss=6.5)
    weights = best / "weights.safetensors"
    past = os.stat(weights).st_mtime_ns - 3600 * 10**9
    os.utime(weights, ns=(past, past))
    assert all(i.error is None for i in list_checkpoints())  # its digest is now cached
    # Bytes flipped, size and mtime kept (a backup restored with `cp -p` / `rsync -a`).
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(past, past))
    app = host_app(CheckpointsPane)
    async with app.run_test(size=(140, 30)) as pilot:
        pane = await _start(pilot)
        damaged = _row(pane, "step-10")
        assert damaged[0] == "⚠" and damaged[3] == "damaged"
        assert "corrupted: weights.safetensors" in damaged[-1]
        assert _row(pane, "step-5")[0] == "★"  # the best usable one
        await _highlight(pilot, pane, "step-10")
        detail = str(pane.query_one("#ckpt-detail", Static).render())
        assert "weights.safetensors does not match its recorded sha256" in detail
        await pilot.press("o")  # refused with the reason, as opening it would say
        await pilot.pause()
        assert any("sha256" in n.message for n in app._notifications)


# ---------------------------------------------------------------- each on its own split


def test_compare_evaluates_each_checkpoint_on_its_own_split(monkeypatch, tmp_path, capsys):
    """Two runs that split the corpus differently: compare evaluates each checkpoint on
    its own run's split, says which, and shows what `gpt-tui eval --checkpoint` prints."""
    import json

    import tui.screens.checkpoints.compare as compare
    from gptcore.cli import main
    from gptcore.runs.rundir import checkpoint_label
    from tests.tui_helpers import write_corpus

    monkeypatch.setattr(compare, "COMPARE_BATCHES", 2)
    corpus = write_corpus(tmp_path)
    paths = []
    for run, seed, own in (("run-a", 1, {"train_ratio": 0.9}), ("run-b", 2, {"train_ratio": 0.6})):
        paths.append(
            save_checkpoint(
                runs_dir() / run / "checkpoints" / "step-5",
                tiny_model(seed),
                train_config={**own, "batch_size": 2, "device": "cpu"},
                step=5,
                epoch=0,
                tokens_seen=320,
                val_loss=7.5,
                train_loss=7.0,
            )  # fmt: skip
        )
    cli = []
    for path in paths:
        args = ["eval", "--checkpoint", str(path), "--corpus", str(corpus), "--max-batches", "2"]
        assert main([*args, "--json"]) == 0
        cli.append(json.loads(capsys.readouterr().out))
    a, b = cli
    # Each its own split: 0.6 leaves the validation split four times the tokens of 0.1.
    assert (a["train_ratio"], b["train_ratio"]) == (0.9, 0.6)
    assert b["val_tokens"] > 3 * a["val_tokens"] and b["train_tokens"] < a["train_tokens"]
    # The same text, cut elsewhere (a cut may split a token in two).
    assert abs((a["train_tokens"] + a["val_tokens"]) - (b["train_tokens"] + b["val_tokens"])) <= 2
    lines = _compare_text_in_app(paths, corpus).splitlines()
    assert lines[0] == "losses on small.txt (2 batches per split, cpu):"
    for mark, path, r in zip("AB", paths, cli, strict=True):
        losses = f"train {r['train_loss']:.3f} · val {r['val_loss']:.3f}"
        assert f"{mark} {checkpoint_label(path)}  {losses}" in lines
        split = f"train {r['train_ratio']:g}: {r['train_tokens']:,} / {r['val_tokens']:,}"
        assert f"{mark} {split}, window 32, batch 2" in lines


def _compare_text_in_app(paths, corpus) -> str:
    import asyncio

    async def compare_them() -> str:
        app = host_app(CheckpointsPane)
        async with app.run_test(size=(140, 30)) as pilot:
            app.state.corpus_source = str(corpus)  # what the Corpus screen loaded
            pane = await _start(pilot)
            table = pane.query_one(DataTable)
            for path, key in zip(paths, ("m", "v"), strict=True):
                table.move_cursor(row=table.get_row_index(str(path)))
                await pilot.press(key)
            await wait_for(pilot, lambda: pane.compare_text.startswith("losses"))
            return pane.compare_text

    return asyncio.run(compare_them())


@run_async
async def test_an_export_error_is_the_clis_message(capsys):
    """Both front ends call export_checkpoint: the screen's notification is the CLI's error."""
    from gptcore.cli import main

    make_checkpoint(name="step-5")
    (runs_dir() / "tiny-run" / "exports").write_text("a file where the folder goes")
    assert main(["checkpoints", "export", "tiny-run"]) == 2
    cli_error = capsys.readouterr().err.strip().removeprefix("gpt-tui: error: ")
    assert cli_error.startswith("cannot write")
    app = host_app(CheckpointsPane)
    async with app.run_test(size=(140, 30)) as pilot:
        await _start(pilot)
        await pilot.press("e")
        await wait_for(pilot, lambda: any(n.message == cli_error for n in app._notifications))
