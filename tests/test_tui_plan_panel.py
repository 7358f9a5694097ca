"""The Train screen's plan before Start (`m`, the model summary): the step's peak
memory with its largest parts, whether it fits this device's free memory, and what
would make it fit (gptcore.planner)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from textual.widgets import Input, Select, Static

from gptcore.planner import devices
from gptcore.settings.model import PRESETS

from .test_tui_summary import body, wait_for_summary
from .tui_helpers import make_app, run_async, settle, write_corpus

GB = 2**30


@pytest.fixture
def eight_gb_free(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine pretends to have 8 GB free (the planner's view of it)."""
    monkeypatch.setattr(devices, "available_memory", lambda device: 8 * GB)


@run_async
async def test_the_plan_shows_memory_fit_and_what_would_fit(
    tmp_path: Path, eight_gb_free: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gptcore.planner import timing

    probed: list[tuple] = []  # (model, batch) of every run-time probe
    real_probe = timing.probe

    def recording_probe(model, train, device):  # noqa: ANN001, ANN202
        probed.append((model, train.batch_size))
        return real_probe(model, train, device)

    monkeypatch.setattr(timing, "probe", recording_probe)
    app = make_app(write_corpus(tmp_path))
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot, "corpus")
        await pilot.press("2")
        await pilot.pause()
        await pilot.press("m")
        await wait_for_summary(pilot, lambda v: v.request.model == PRESETS["tiny"])
        text = body(app)
        assert "this run (" in text
        assert "peak " in text and "logits " in text  # the tiny model's largest part
        assert "fits this CPU (7.2 GB usable of 8.6 GB free)" in text

        # gpt2-small at batch 16: far over 8 GB.
        app.query_one("#preset-select", Select).value = "gpt2-small"
        await wait_for_summary(pilot, lambda v: v.request.model == PRESETS["gpt2-small"])
        app.query_one("#f-batch-size", Input).value = "16"
        await wait_for_summary(pilot, lambda v: v.request.train.batch_size == 16)
        text = body(app)
        assert "does NOT fit this CPU" in text
        assert "fits with batch_size" in text and "grad_accum" in text
        # The stats under the status line say so too (at a window and batch this corpus
        # has, with 1 GB free), and a run that cannot fit is never probed (its steps
        # would need the memory).
        monkeypatch.setattr(devices, "available_memory", lambda device: 1 * GB)
        app.query_one("#f-model-context-length", Input).value = "64"
        app.query_one("#f-batch-size", Input).value = "2"
        await wait_for_summary(pilot, lambda v: v.request.train.batch_size == 2)
        await settle(pilot, "estimate")
        stats = str(app.query_one("#run-stats", Static).render())
        assert "too much" in stats and "m: what would fit" in stats
        assert not any(model.emb_dim == 768 for model, _ in probed)
        assert (PRESETS["tiny"], 2) in probed  # the first config's run was timed

        monkeypatch.setattr(devices, "available_memory", lambda device: 8 * GB)
        # batch_size "auto" (tiny again, a model this corpus trains): the plan shows the
        # batch the run would pick, which fits; the batch plan previews it as 1.
        app.query_one("#preset-select", Select).value = "tiny"
        await wait_for_summary(pilot, lambda v: v.request.model == PRESETS["tiny"])
        app.query_one("#f-batch-size", Input).value = "auto"
        await wait_for_summary(pilot, lambda v: v.request.train.batch_size == "auto")
        text = body(app)
        assert re.search(r"this run \(\w+, batch \d+ × 1\)", text), text
        assert "fits this CPU" in text and "does NOT fit" not in text
        stats = str(app.query_one("#run-stats", Static).render())
        batch = int(re.search(r"this run \(\w+, batch (\d+) ×", text).group(1))
        assert f"batch auto {batch}×1" in stats  # the same batch as the plan's

        # The button beside the batch size toggles "auto" and back to the number.
        app.query_one("#f-batch-size", Input).value = "3"
        await pilot.click("#batch-auto")
        assert app.query_one("#f-batch-size", Input).value == "auto"
        await pilot.click("#batch-auto")
        assert app.query_one("#f-batch-size", Input).value == "3"
