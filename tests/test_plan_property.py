"""The batch plan (gptcore.data.plan) against what training really reads: the book's
DataLoader, and the Trainer's data order (gptcore.data.order), over many settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from gptcore.data.corpus import raw_topics_text
from gptcore.data.order import DataOrder
from gptcore.data.plan import BatchPlan, batch_plan, count_batches, count_windows
from gptcore.data.tokens import TokenizedCorpus, prepare_corpus
from gptcore.data.windows import WindowDataset, make_loader
from gptcore.errors import ConfigError, CorpusError
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig

CTX = 16
MODEL = GPTConfig(context_length=CTX, emb_dim=8, n_heads=1, n_layers=1, drop_rate=0.0)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 300), st.integers(1, 20), st.integers(1, 20))
def test_count_windows_is_the_books_dataset_length(n_tokens: int, length: int, stride: int) -> None:
    tokens = np.zeros(n_tokens, dtype=np.uint16)
    assert count_windows(n_tokens, length, stride) == len(WindowDataset(tokens, length, stride))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 200), st.integers(1, 17), st.booleans())
def test_count_batches_is_the_dataloaders_length(
    n_windows: int, batch: int, drop_last: bool
) -> None:
    loader = DataLoader(range(n_windows), batch_size=batch, drop_last=drop_last)
    assert count_batches(n_windows, batch, drop_last) == len(loader) == len(list(loader))


def corpus_of(train_tokens: int, val_tokens: int) -> TokenizedCorpus:
    """Token arrays of these sizes (ids that tell the windows apart)."""
    train = np.arange(train_tokens, dtype=np.int64) % 50_000
    val = np.arange(val_tokens, dtype=np.int64) % 50_000
    return TokenizedCorpus(
        name="t", n_chars=0, files=1, train_tokens=train.astype(np.uint16),
        val_tokens=val.astype(np.uint16), train_chars=0, val_chars=0, key="k",
        n_tokens=train_tokens + val_tokens,
    )  # fmt: skip


@st.composite
def run_settings(draw: st.DrawFn) -> TrainConfig:
    sampler = draw(st.sampled_from(("sequential", "random")))
    length = draw(st.one_of(st.none(), st.integers(2, CTX + 2)))  # past CTX: refused
    return TrainConfig(
        sampler=sampler,
        samples_per_epoch=draw(st.one_of(st.none(), st.integers(1, 40))),
        batch_size=draw(st.integers(1, 5)),
        grad_accum=draw(st.integers(1, 3)),
        max_length=length,
        stride=draw(st.one_of(st.none(), st.integers(1, 20))),
        drop_last=draw(st.booleans()),
        shuffle=draw(st.booleans()),
        epochs=draw(st.integers(1, 4)),
        max_steps=draw(st.one_of(st.none(), st.integers(1, 30))),
    )


sizes = st.integers(0, 400)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run_settings(), sizes, sizes, st.sampled_from((1, 2)), st.integers(0, 2**32))
def test_the_plan_is_what_the_data_order_and_the_dataloader_yield(
    train: TrainConfig, n_train: int, n_val: int, processes: int, seed: int
) -> None:
    plan = batch_plan(n_train, n_val, MODEL, train, processes)  # never raises
    length = train.max_length or CTX
    stride = train.stride or length
    assert (plan.length, plan.stride, plan.processes) == (length, stride, processes)
    whole = train.epochs * plan.steps_per_epoch
    assert plan.total_steps == (min(whole, train.max_steps) if train.max_steps else whole)
    assert plan.steps_per_epoch == plan.train_batches // train.grad_accum

    # What stops training is a value, and it is there exactly when training cannot run.
    if length > CTX:
        assert isinstance(plan.problem, ConfigError) and "context length" in str(plan.problem)
        return
    if n_train <= length or n_val <= length:
        assert isinstance(plan.problem, CorpusError)
        assert "split has" in str(plan.problem)
        return
    if plan.steps_per_epoch == 0:  # "too small", unless the DDP rule below says more
        assert isinstance(plan.problem, ConfigError)
        return
    assume(plan.problem is None)  # the DDP short-last-batch rule: its own test below

    corpus = corpus_of(n_train, n_val)
    # The book's loaders over the same windows: as many windows and batches.
    if train.sampler == "sequential":
        book = make_loader(
            corpus.train_tokens, plan.global_batch, length, stride, True, train.drop_last
        )
        assert (len(book.dataset), len(book)) == (plan.train_windows, plan.train_batches)
    val = make_loader(corpus.val_tokens, plan.global_batch, length, stride, False, False)
    assert (len(val.dataset), len(val)) == (plan.val_windows, plan.val_batches)

    # The Trainer's order: one pass draws the planned windows, and every micro-batch of
    # every step of the epoch is there, for every process, never past the pass's end.
    ranks = [DataOrder(corpus, plan, train.shuffle, rank=r) for r in range(processes)]
    order = ranks[0].train_order(seed)
    expected = train.samples_per_epoch or max(1, n_train // length)
    assert len(order) == (expected if train.sampler == "random" else plan.train_windows)
    rows = 0
    for step in range(plan.steps_per_epoch):
        for micro in range(train.grad_accum):
            for data in ranks:
                x, y = data.step_batch(order, step, micro)
                assert x.shape[1] == length and 1 <= len(x) <= train.batch_size
                assert train.drop_last is False or len(x) == train.batch_size
                rows += len(x)
    assert rows <= len(order)
    # What a step leaves out of the epoch is less than one step's worth of windows.
    assert len(order) - rows < plan.global_batch * train.grad_accum or not train.drop_last


@pytest.mark.parametrize("processes", [2, 3])
def test_under_ddp_no_process_is_left_without_a_batch(processes: int) -> None:
    """With drop_last = false an epoch's last global batch may be short: the plan refuses
    the settings where a process would get no window of it, and allows the rest."""
    corpus = corpus_of(2_000, 200)
    for samples in range(1, 60):
        train = TrainConfig(
            sampler="random", samples_per_epoch=samples, batch_size=3, drop_last=False
        )
        plan = batch_plan(2_000, 200, MODEL, train, processes)
        left = samples % plan.global_batch
        starved = 0 < left <= (processes - 1) * train.batch_size
        assert (plan.problem is not None) == (starved or plan.steps_per_epoch == 0), samples
        if plan.problem is None:
            last = plan.train_batches - 1
            order = DataOrder(corpus, plan, True).train_order(samples)
            for rank in range(processes):
                x, _ = DataOrder(corpus, plan, True, rank=rank).step_batch(order, last, 0)
                assert len(x) >= 1, (samples, rank)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(raw_topics_text()[:3000], encoding="utf-8")
    return path


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ratio=st.sampled_from((0.5, 0.7, 0.85, 0.9, 0.95)),
    batch=st.integers(1, 4),
    stride=st.sampled_from((4, 8, 16)),
    drop_last=st.booleans(),
)
def test_a_split_corpus_plans_what_the_books_loaders_load(
    text_file: Path, ratio: float, batch: int, stride: int, drop_last: bool
) -> None:
    """From text through the split at train_ratio to windows: the plan counts the
    batches the book's create_dataloader_v1 gives on each side of the split."""
    corpus = prepare_corpus(text_file, ratio)
    train = TrainConfig(
        train_ratio=ratio, batch_size=batch, max_length=CTX, stride=stride, drop_last=drop_last
    )
    plan = batch_plan(len(corpus.train_tokens), len(corpus.val_tokens), MODEL, train)
    assert plan.problem is None
    book_train = make_loader(corpus.train_tokens, batch, CTX, stride, True, drop_last)
    book_val = make_loader(corpus.val_tokens, batch, CTX, stride, False, False)
    assert (plan.train_batches, plan.val_batches) == (len(book_train), len(book_val))
    assert plan.steps_per_epoch * train.epochs == plan.total_steps == len(book_train) * train.epochs


def test_a_split_too_short_for_one_window_is_a_problem_not_a_crash() -> None:
    train = TrainConfig(max_length=CTX, batch_size=1)
    for n_train, n_val, words in [
        (CTX, 1_000, "training split has 16 tokens"),  # a window needs CTX + 1
        (0, 1_000, "training split has 0 tokens"),
        (1_000, CTX, "validation split has 16 tokens"),
    ]:
        plan = batch_plan(n_train, n_val, MODEL, train)
        assert isinstance(plan.problem, CorpusError) and words in str(plan.problem)
        assert "needs at least 17" in str(plan.problem)
        with pytest.raises(CorpusError):
            plan.check()
    ok = batch_plan(CTX + 1, CTX + 1, MODEL, train)
    assert ok.problem is None and (ok.train_windows, ok.val_windows) == (1, 1)
    assert ok.check() is ok


def test_a_huge_epoch_is_refused_before_its_order_is_built() -> None:
    train = TrainConfig(max_length=CTX, stride=1)
    plan = batch_plan(200_000_000, 1_000, MODEL, train)
    assert isinstance(plan.problem, ConfigError) and "larger stride" in str(plan.problem)


def test_describe_shows_the_numbers_of_the_plan() -> None:
    train = TrainConfig(max_length=CTX, batch_size=2, grad_accum=2, epochs=3)
    plan = batch_plan(1_000, 200, MODEL, train, processes=2)
    text = plan.describe()
    assert isinstance(plan, BatchPlan) and plan.problem is None
    assert "batch size 2 x 2 processes, grad_accum 2" in text
    assert f"windows  train {plan.train_windows:,}  val {plan.val_windows:,}" in text
    assert f"{plan.steps_per_epoch:,} per epoch, {plan.total_steps:,} in all" in text
    single = dataclasses.replace(train, grad_accum=1, sampler="random")
    assert "grad_accum" not in batch_plan(1_000, 200, MODEL, single).describe()
    assert "random windows" in batch_plan(1_000, 200, MODEL, single).describe()
