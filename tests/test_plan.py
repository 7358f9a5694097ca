"""The batch plan: what the Corpus screen shows is what the Trainer runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gptcore.data import order as data_order
from gptcore.data.plan import batch_plan
from gptcore.data.tokens import prepare_corpus
from gptcore.errors import ConfigError, CorpusError
from gptcore.runs.events import StepEnd
from gptcore.settings.files import load_run_config
from gptcore.training.trainer import Trainer
from tui.screens.corpus import CorpusInfo, window_report


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("random", {}),  # configs/tiny.toml as shipped
        ("sequential", {"sampler": "sequential", "stride": 512, "epochs": 1}),
        ("grad_accum-2", {"grad_accum": 2, "epochs": 1}),
    ],
)
def test_corpus_screen_plan_is_what_the_trainer_runs(
    name: str, changes: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, train = load_run_config("tiny")
    train = dataclasses.replace(
        train, **changes, eval_freq=10_000, sample_tokens=0, precision="fp32"
    )
    corpus = prepare_corpus(train.corpus, train.train_ratio)
    text, problem = window_report(CorpusInfo.of(corpus, "builtin"), model, train)
    plan = batch_plan(len(corpus.train_tokens), len(corpus.val_tokens), model, train)
    assert problem is None
    assert f"train {plan.train_windows:,}  val {plan.val_windows:,}" in text
    assert f"batches  train {plan.train_batches:,}" in text
    assert f"{plan.steps_per_epoch:,} per epoch, {plan.total_steps:,} in all" in text
    # Worked by hand from the corpus's 94,037 train tokens, as a check on the plan itself.
    expected = {
        "random": (160, 20, 60),  # samples_per_epoch / batch 8, 3 epochs
        "sequential": (184, 23, 23),  # range(0, 94,037 - 64, 512); 184 // 8
        "grad_accum-2": (160, 10, 10),  # 20 batches of 8, two a step
    }
    assert (plan.train_windows, plan.steps_per_epoch, plan.total_steps) == expected[name]

    # What the Trainer really does: windows per pass, micro-batches, optimizer steps.
    passes, micro_batches = [], []
    real_order, real_batch = data_order.DataOrder.train_order, data_order.DataOrder.step_batch

    def train_order(self, seed):
        order = real_order(self, seed)
        passes.append(len(order))
        return order

    def step_batch(self, order, step_in_epoch, micro):
        micro_batches.append((step_in_epoch, micro))
        return real_batch(self, order, step_in_epoch, micro)

    monkeypatch.setattr(data_order.DataOrder, "train_order", train_order)
    monkeypatch.setattr(data_order.DataOrder, "step_batch", step_batch)
    events: list = []
    result = Trainer(model, train, listeners=[events.append], run_dir=tmp_path / "run").run()
    assert result.reason == "completed", result
    assert sum(isinstance(e, StepEnd) for e in events) == plan.total_steps
    # Every epoch's pass, and each evaluation's fresh pass, draws the planned windows.
    assert set(passes) == {plan.train_windows}
    per_epoch = plan.steps_per_epoch * plan.grad_accum
    assert len(micro_batches) == train.epochs * per_epoch
    assert max(s for s, _ in micro_batches) == plan.steps_per_epoch - 1


def test_plan_counts_processes_and_names_what_stops_training() -> None:
    model, train = load_run_config("tiny")
    one = batch_plan(10_000, 2_000, model, train)
    two = batch_plan(10_000, 2_000, model, train, processes=2)
    assert two.global_batch == 2 * one.global_batch
    assert two.steps_per_epoch == one.steps_per_epoch // 2 == 10
    assert batch_plan(10_000, 2_000, model, train).check() is not None

    # Under DDP each process takes batch_size windows of every global batch: a short last
    # batch (drop_last = false) must still give the last process at least one.
    loose = dataclasses.replace(train, drop_last=False, samples_per_epoch=164)  # 164 % 16 = 4
    assert "leaves process 2 of 2 without any" in str(
        batch_plan(10_000, 2_000, model, loose, processes=2).problem
    )
    assert batch_plan(10_000, 2_000, model, loose).problem is None  # one process: fine
    fits = dataclasses.replace(loose, samples_per_epoch=170)  # 10 left: 8 + 2
    assert batch_plan(10_000, 2_000, model, fits, processes=2).problem is None

    cases = [
        (dataclasses.replace(train, max_length=128), ConfigError, "exceeds the model's context"),
        (train, CorpusError, "validation split has 64 tokens"),
        (dataclasses.replace(train, samples_per_epoch=7), ConfigError, "too small"),
    ]
    for config, error, words in cases:
        val = 64 if error is CorpusError else 2_000
        plan = batch_plan(10_000, val, model, config)
        assert isinstance(plan.problem, error) and words in str(plan.problem)
        with pytest.raises(error, match=words):
            plan.check()
