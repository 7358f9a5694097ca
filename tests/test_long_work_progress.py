"""Long work says how far it is (issue 25, deliver 7): `gpt-tui eval` evaluates a
bounded amount by default (--all for the whole corpus) and evaluation and checkpoint
comparison report progress with counts that only grow."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gptcore.cli import main
from gptcore.commands.eval import DEFAULT_EVAL_BATCHES
from gptcore.training.evaluate import evaluate_model
from gptcore.weights.modelspec import load_spec
from tests.tui_helpers import make_checkpoint
from tui.screens.checkpoints.compare import compare_checkpoints, progress_text


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """About 7,000 tokens: far more than DEFAULT_EVAL_BATCHES batches of a tiny model."""
    path = tmp_path / "story.txt"
    path.write_text(
        " ".join(f"word{i % 97} and the story goes on." for i in range(1500)), encoding="utf-8"
    )
    return path


def run_eval(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["eval", "--preset", "tiny", "--device", "cpu", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_evaluates_a_bounded_amount_unless_told_all(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bounded = run_eval(capsys, "--corpus", str(corpus))
    assert bounded["train_batches"] == DEFAULT_EVAL_BATCHES
    assert bounded["val_batches"] <= DEFAULT_EVAL_BATCHES
    everything = run_eval(capsys, "--corpus", str(corpus), "--all")
    assert everything["train_batches"] > DEFAULT_EVAL_BATCHES
    assert run_eval(capsys, "--corpus", str(corpus), "--max-batches", "3")["train_batches"] == 3


def test_all_and_max_batches_do_not_go_together(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "--preset", "tiny", "--all", "--max-batches", "3"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_evaluation_progress_counts_every_batch_in_order(corpus: Path) -> None:
    calls: list[tuple[int, int]] = []
    model = load_spec("preset:tiny", "cpu", seed=1).model
    result = evaluate_model(
        model, corpus, max_batches=4, device="cpu", progress=lambda d, t: calls.append((d, t))
    )
    total = result.train_batches + result.val_batches
    assert calls == [(n, total) for n in range(total + 1)]


def test_compare_reports_growing_progress_with_elapsed_and_eta(corpus: Path) -> None:
    a = make_checkpoint(name="step-5", step=5)
    b = make_checkpoint(name="step-9", step=9, seed=7)
    lines: list[str] = []
    compare_checkpoints(a, b, str(corpus), max_batches=3, on_progress=lines.append)
    counts = [tuple(map(int, re.search(r"(\d+)/(\d+) batches", line).groups())) for line in lines]
    assert counts, "no progress at all"
    done = [d for d, _ in counts]
    assert done == sorted(done) and counts[-1][0] == counts[-1][1]
    assert lines[-1].startswith(f"comparing on corpus {corpus}: B ")
    assert all("elapsed · ETA" in line for line in lines)


def test_progress_text_estimates_from_the_rate_so_far() -> None:
    text = progress_text("builtin", "A", 10, 40, 20.0)
    assert text == "comparing on corpus builtin: A 10/40 batches · 20s elapsed · ETA 1m00s"
