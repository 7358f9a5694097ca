"""The model summary on the Train screen (`m`): the book's figures, live with the form."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input, Select, Static

from gptcore.model.summary import DTYPE_BYTES, summarize_config
from gptcore.planner.plan import RunPlan
from gptcore.settings.model import PRESETS
from gptcore.util.fmt import format_bytes
from tui.widgets.model_summary import ModelSummaryView, model_name, summary_text

from .tui_helpers import make_app, run_async, settle, write_corpus

BOOK_1024 = dataclasses.replace(PRESETS["book-124m"], context_length=1024)


def body(app: object) -> str:
    return str(app.query_one("#summary-body", Static).render())  # type: ignore[attr-defined]


async def wait_for_summary(pilot: Pilot, done: Callable[[ModelSummaryView], bool]) -> None:
    """Let the form publish its config and the summary worker finish (no sleeping)."""
    view = pilot.app.query_one(ModelSummaryView)
    for _ in range(50):
        await settle(pilot, "summary")
        if view.summary is not None and done(view):
            return
    raise AssertionError(f"the summary never got there: {view.request}")


def test_text_has_the_books_figures() -> None:
    summary = summarize_config(BOOK_1024)
    text = summary_text(summary, list(DTYPE_BYTES)).plain
    assert "book-124m at context 1,024" in text
    assert re.search(r"^parameters +163,009,536$", text, re.M)
    assert re.search(r"^  if head tied +124,412,160$", text, re.M)  # the book's second count
    assert re.search(r"fp32 +621.83 MB", text)
    for name, count in summary.by_component.items():
        assert f"{name:<14}{count:>13,}" in text
    assert all(line == line.rstrip() and len(line) <= 44 for line in text.splitlines()[2:])


def test_a_tied_model_counts_its_head_once() -> None:
    config = PRESETS["gpt2-small"]
    summary = summarize_config(config)
    text = summary_text(summary, list(DTYPE_BYTES)).plain
    assert summary.tied and "tied output head" in text and "if head tied" not in text
    assert re.search(rf"^parameters +{summary.total:,}$", text, re.M)
    assert model_name(config) == "gpt2-small"
    assert model_name(dataclasses.replace(config, n_layers=3)) == "custom model"


@run_async
async def test_summary_follows_the_train_form(tmp_path: Path) -> None:
    app = make_app(write_corpus(tmp_path))
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot, "corpus")
        await pilot.press("2")
        await pilot.pause()
        view = app.query_one(ModelSummaryView)
        assert not view.display and view.request is None  # nothing counted until asked
        await pilot.press("m")
        await wait_for_summary(pilot, lambda v: v.request.model == PRESETS["tiny"])
        assert not app.query_one("#loss-chart").display  # the summary takes its place
        tiny_total = summarize_config(PRESETS["tiny"]).total
        assert re.search(rf"^parameters +{tiny_total:,}$", body(app), re.M)

        # The book's model at the book's GPT-2 context: its published figures.
        app.query_one("#preset-select", Select).value = "book-124m"
        await wait_for_summary(pilot, lambda v: v.request.model == PRESETS["book-124m"])
        app.query_one("#f-model-context-length", Input).value = "1024"
        await wait_for_summary(pilot, lambda v: v.request.model == BOOK_1024)
        text = body(app)
        assert "163,009,536" in text and "124,412,160" in text and "621.83 MB" in text
        assert view.summary.total == 163_009_536
        # The planner's memory for the form's run: its peak and largest part, in words.
        before = view.plan
        assert isinstance(before, RunPlan) and before.memory.shape.context == 1024
        assert f"peak {format_bytes(before.memory.peak)}: {before.memory.summary()}" in text
        assert f"batch {before.train.batch_size} × 1" in text

        # A larger batch: the same parameters, more activation memory.
        app.query_one("#f-batch-size", Input).value = "8"
        await wait_for_summary(pilot, lambda v: v.request.train.batch_size == 8)
        after = view.plan
        assert after.memory.shape.batch == 8
        assert after.memory.parts["activations"] > before.memory.parts["activations"]
        assert after.memory.parts["weights"] == before.memory.parts["weights"]
        assert "batch 8 × 1" in body(app) and "163,009,536" in body(app)

        # An invalid form publishes no config: the last valid one stays, marked as such.
        app.query_one("#f-model-context-length", Input).value = "abc"
        await settle(pilot)
        title = str(app.query_one("#summary-title", Static).render())
        assert "last valid; the form has an error: context" in title
        assert view.request.model == BOOK_1024 and "163,009,536" in body(app)
        app.query_one("#f-model-context-length", Input).value = "1024"
        await settle(pilot)
        assert str(app.query_one("#summary-title", Static).render()).endswith("form's config")

        # `m` again: back to the charts.
        await pilot.press("m")
        assert not view.display and app.query_one("#loss-chart").display


def test_summary_snapshot(snap_compare, tmp_path: Path, monkeypatch) -> None:
    from gptcore.planner import devices

    # The planner's section reads this machine's free memory: pinned (8 GiB).
    monkeypatch.setattr(devices, "available_memory", lambda device: 8 * 2**30)
    monkeypatch.setenv("GPT_TUI_CPU_BF16", "1")  # "auto" precision: bf16 on any CPU

    async def before(pilot: Pilot) -> None:
        await settle(pilot, "corpus")
        await pilot.press("2")
        await pilot.pause()
        app = pilot.app
        await pilot.press("m")
        app.query_one("#preset-select", Select).value = "book-124m"
        await wait_for_summary(pilot, lambda v: v.request.model == PRESETS["book-124m"])
        app.query_one("#f-model-context-length", Input).value = "1024"
        await wait_for_summary(pilot, lambda v: v.request.model == BOOK_1024)
        app.query_one("#train-pane").focus()
        await pilot.pause()

    app = make_app(write_corpus(tmp_path))
    assert snap_compare(app, terminal_size=(80, 34), run_before=before)
