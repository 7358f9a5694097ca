"""A checkpoint's losses are measured on its own weights (issue 25, deliver 5), and
older kept checkpoints carry weights only (deliver 9)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from gptcore.data.corpus import raw_topics_text
from gptcore.data.order import DataOrder
from gptcore.data.plan import batch_plan
from gptcore.data.tokens import prepare_corpus
from gptcore.runs.checkpoint import OPTIMIZER, WEIGHTS, decode_rng, load_checkpoint
from gptcore.runs.checkpoints import load_model
from gptcore.runs.events import CheckpointSaved, EvalEnd, Finished
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.training.evaluate import calc_loss_batch, evaluate_checkpoint
from gptcore.training.resume import prepare_run
from gptcore.training.trainer import Trainer

# Dropout on: a draw the save-time evaluation took from the run's RNG would show.
MODEL = GPTConfig(context_length=16, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.1)


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    """11 steps of 2 windows of 16 tokens per epoch, 95 val tokens."""
    path = tmp_path / "corpus.txt"
    path.write_text(raw_topics_text()[:1600], encoding="utf-8")
    return path


def settings(corpus: Path, **kw) -> TrainConfig:
    base = dict(corpus=str(corpus), batch_size=2, max_length=16, stride=16, epochs=2,
                eval_freq=4, eval_iter=2, sample_tokens=0, lr=1e-3, precision="fp32")  # fmt: skip
    return TrainConfig(**{**base, **kw})


def train(cfg: TrainConfig, run_dir: Path | None, **kw) -> tuple[Trainer, list]:
    events: list = []
    trainer = Trainer(MODEL, cfg, listeners=[events.append], run_dir=run_dir, **kw)
    assert isinstance(trainer.run(), Finished)
    return trainer, events


def fresh_losses(path: Path, cfg: TrainConfig) -> tuple[float, float]:
    """The book's evaluation of the checkpoint at `path` with the run's settings: the
    same eval batches, the train ones drawn from the RNG state the checkpoint saved."""
    model, ckpt = load_model(path, "cpu")
    corpus = prepare_corpus(cfg.corpus, cfg.train_ratio, cfg.decode_errors)
    plan = batch_plan(len(corpus.train_tokens), len(corpus.val_tokens), MODEL, cfg).check()
    torch.set_rng_state(decode_rng(ckpt.rng)["torch"])
    train_batches, val_batches = DataOrder(corpus, plan, cfg.shuffle).eval_batches(cfg.eval_iter)
    with torch.no_grad():
        train_loss = np.mean([calc_loss_batch(x, y, model, "cpu").item() for x, y in train_batches])
        val_loss = np.mean([calc_loss_batch(x, y, model, "cpu").item() for x, y in val_batches])
    return float(train_loss), float(val_loss)


def test_every_checkpoints_losses_are_a_fresh_evaluation_of_its_weights(
    corpus_file: Path, tmp_path: Path
) -> None:
    # Checkpoints at steps 3, 6, 9, 11 (epoch), 12, ...; evaluations at steps 1, 5, 9, ...
    cfg = settings(corpus_file, checkpoint_every=3, keep_last=20, keep_optimizer="all")
    trainer, events = train(cfg, tmp_path / "run")
    evals = {e.step + 1: e for e in events if isinstance(e, EvalEnd)}  # by steps done
    saved = [e for e in events if isinstance(e, CheckpointSaved)]
    assert {e.step for e in saved} - set(evals), "no checkpoint between two evaluations"
    assert {e.step for e in saved} & set(evals), "no checkpoint at an evaluation"
    for event in saved:
        ckpt = load_checkpoint(event.path)
        assert ckpt.meta["loss_step"] == ckpt.step
        train_loss, val_loss = fresh_losses(ckpt.path, cfg)
        assert ckpt.val_loss == pytest.approx(val_loss, abs=1e-6), ckpt.path.name
        if ckpt.step in evals:  # the run's own evaluation of these weights, whose draw
            train_loss = evals[ckpt.step].train_loss  # came before the RNG state saved
        assert ckpt.train_loss == pytest.approx(train_loss, abs=1e-6), ckpt.path.name
        # The engine's own task agrees on val (its batches are in order, like the book's).
        again = evaluate_checkpoint(ckpt.path, max_batches=cfg.eval_iter, device="cpu")
        assert again.evaluation.val_loss == pytest.approx(ckpt.val_loss, abs=1e-6)


def test_evaluating_at_a_save_leaves_the_runs_random_stream_alone(
    corpus_file: Path, tmp_path: Path
) -> None:
    cfg = settings(corpus_file, checkpoint_every=1, keep_last=1)
    saving, _ = train(cfg, tmp_path / "run")  # saves (and evaluates) after every step
    quiet, _ = train(cfg, None)  # no run folder: never saves
    a, b = saving.model.state_dict(), quiet.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def _files_bytes(run: Path) -> int:
    return sum(p.stat().st_size for p in (run / "checkpoints").rglob("*") if p.is_file())


def test_only_the_latest_checkpoint_keeps_optimizer_state(
    corpus_file: Path, tmp_path: Path
) -> None:
    # The quick run's policy: every epoch's checkpoint kept (keep_last = epochs = 5).
    cfg = settings(corpus_file, epochs=5, keep_last=5, eval_freq=11)
    train(cfg, tmp_path / "latest")
    train(dataclasses.replace(cfg, keep_optimizer="all"), tmp_path / "all")
    kept = sorted((tmp_path / "latest" / "checkpoints").iterdir())
    assert len(kept) == 5
    for path in kept[:-1]:
        ckpt = load_checkpoint(path)  # verified: meta.json and files agree
        assert not ckpt.has_optimizer and not (path / OPTIMIZER).exists()
        assert sorted(p.name for p in path.iterdir()) == ["meta.json", WEIGHTS]
    assert load_checkpoint(kept[-1]).has_optimizer
    assert all(
        load_checkpoint(p).has_optimizer for p in (tmp_path / "all" / "checkpoints").iterdir()
    )
    # AdamW's two moments are twice the weights: 4 x 1 + 1 x 3 of 5 x 3 weights' sizes.
    ratio = _files_bytes(tmp_path / "latest") / _files_bytes(tmp_path / "all")
    assert ratio == pytest.approx(7 / 15, abs=0.01)
    # configs/quick.toml keeps four (3 x 1 + 1 x 3): 40% of what keeping five whole took.
    train(dataclasses.replace(cfg, keep_last=4), tmp_path / "quick")
    assert len(list((tmp_path / "quick" / "checkpoints").iterdir())) == 4
    ratio = _files_bytes(tmp_path / "quick") / _files_bytes(tmp_path / "all")
    assert ratio == pytest.approx(6 / 15, abs=0.01)


def test_resuming_from_the_latest_is_still_exact(corpus_file: Path, tmp_path: Path) -> None:
    cfg = settings(corpus_file, epochs=3, keep_last=3)
    straight, _ = train(cfg, tmp_path / "straight")
    split = tmp_path / "split"
    train(dataclasses.replace(cfg, max_steps=17), split)  # epoch 1 saved, then step 17
    assert [
        load_checkpoint(p).has_optimizer for p in sorted((split / "checkpoints").iterdir())
    ] == [
        False,
        True,
    ]
    resumed, _ = train(cfg, None, resume=split)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_weights_only_checkpoint_resumes_with_a_fresh_optimizer_and_says_so(
    corpus_file: Path, tmp_path: Path
) -> None:
    cfg = settings(corpus_file, epochs=2, keep_last=2)
    train(cfg, tmp_path / "run")
    older = sorted((tmp_path / "run" / "checkpoints").iterdir())[0]
    run = prepare_run(resume=older, overrides=["epochs=3"])
    assert f"{older.name} holds weights only" in run.notice and "AdamW starts afresh" in run.notice
    latest = prepare_run(resume=tmp_path / "run", overrides=["epochs=3"])
    assert latest.notice is None or "weights only" not in latest.notice
