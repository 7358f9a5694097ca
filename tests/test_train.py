"""The Trainer: the book's loop semantics and RNG stream, exact resume, control, failures."""

from __future__ import annotations

import dataclasses
import math
import threading
from pathlib import Path

import pytest
import torch

from gptcore.data.corpus import raw_topics_text
from gptcore.data.order import loader_pass_seed, shuffled_order
from gptcore.data.tokens import prepare_corpus
from gptcore.data.windows import make_loader
from gptcore.errors import ConfigError
from gptcore.hardware import perf
from gptcore.model.gpt import GPTModel
from gptcore.runs.checkpoint import load_checkpoint
from gptcore.runs.checkpoints import load_model
from gptcore.runs.events import (
    CheckpointSaved,
    EvalEnd,
    Failed,
    Finished,
    Phase,
    RunStarted,
    Sample,
    StepEnd,
)
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.training import step as step_mod
from gptcore.training.step import lr_at
from gptcore.training.trainer import Trainer

from .run_helpers import book_train_model_simple

MODEL = GPTConfig(context_length=16, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.1)


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    """373 train tokens (23 windows of 16: 11 steps of 2 per epoch) and 95 val tokens."""
    path = tmp_path / "corpus.txt"
    path.write_text(raw_topics_text()[:1600], encoding="utf-8")
    return path


def settings(corpus: Path, **kw) -> TrainConfig:
    base = dict(
        corpus=str(corpus),
        batch_size=2,
        max_length=16,
        stride=16,
        epochs=2,
        eval_freq=3,
        eval_iter=2,
        sample_tokens=0,
        lr=1e-3,
        precision="fp32",  # the suite's numbers must not depend on the CPU's bf16 support
    )
    base.update(kw)
    return TrainConfig(**base)


def run(model=MODEL, cfg=None, **kw):
    events: list = []
    trainer = Trainer(model, cfg, listeners=[events.append], **kw)
    result = trainer.run()
    return trainer, result, events


def of(events, cls):
    return [e for e in events if isinstance(e, cls)]


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_data_order_draws_like_the_books_dataloader(corpus_file: Path) -> None:
    corpus = prepare_corpus(corpus_file)
    torch.manual_seed(7)
    loader = make_loader(corpus.train_tokens, 2, 16, 16, True, True)
    book = [x for x, _ in loader]
    book_state = torch.get_rng_state()
    torch.manual_seed(7)
    order = shuffled_order(len(loader.dataset), loader_pass_seed(True))
    ours = [
        torch.stack([loader.dataset[i][0] for i in order[k * 2 : k * 2 + 2]])
        for k in range(len(book))
    ]
    assert all(torch.equal(a, b) for a, b in zip(book, ours, strict=True))
    assert torch.equal(torch.get_rng_state(), book_state)


def test_the_books_loop_around_our_model_matches_bitwise(corpus_file: Path) -> None:
    """The book's train_model_simple (DataLoader, dropout on) around gpt-tui's own GPTModel
    gives the same weights and evals, bit for bit (the data order and RNG stream are exact;
    against the book's own model code the weights match only to float rounding)."""
    cfg = settings(corpus_file, epochs=2, eval_freq=3, eval_iter=2, adamw="default")
    trainer, result, events = run(cfg=cfg)
    assert isinstance(result, Finished) and result.reason == "completed"

    torch.manual_seed(cfg.seed)
    model = GPTModel(MODEL)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    evals = book_train_model_simple(
        model, optimizer, corpus_file, cfg.epochs, cfg.eval_freq, cfg.eval_iter
    )
    ours = weights(trainer.model)
    for key, value in model.state_dict().items():
        assert torch.equal(ours[key], value), key
    got = [(e.step, e.train_loss, e.val_loss) for e in of(events, EvalEnd)]
    assert got == pytest.approx(evals, abs=0, rel=1e-12)


def test_loop_semantics_steps_evals_and_samples(corpus_file: Path) -> None:
    cfg = settings(corpus_file, epochs=3, eval_freq=5, eval_iter=5, sample_tokens=4, lr=4e-3)
    trainer, result, events = run(model=dataclasses.replace(MODEL, drop_rate=0.0), cfg=cfg)
    per_epoch = trainer.plan.steps_per_epoch
    assert per_epoch == trainer.plan.train_windows // 2  # drop_last batches of 2
    total = 3 * per_epoch
    started = of(events, RunStarted)[0]
    assert started.total_steps == total and started.step == 0
    assert [e.step for e in of(events, StepEnd)] == list(range(total))
    assert [e.epoch for e in of(events, StepEnd)] == [s // per_epoch for s in range(total)]
    # The book's formula: evaluate after global steps 0, 5, 10, ...
    assert [e.step for e in of(events, EvalEnd)] == list(range(0, total, 5))
    assert len(of(events, EvalEnd)) == math.ceil(total / 5)
    samples = of(events, Sample)
    assert [s.epoch for s in samples] == [0, 1, 2]
    assert all(s.text.startswith(cfg.start_context) for s in samples)
    tokens = [e.tokens_seen for e in of(events, StepEnd)]
    assert tokens == [2 * 16 * (i + 1) for i in range(total)]
    assert result.tokens_seen == tokens[-1] and result.step == total
    assert isinstance(events[-1], Finished)
    # ... and the loss falls clearly.
    evals = of(events, EvalEnd)
    assert evals[-1].train_loss < evals[0].train_loss - 1.0
    assert evals[-1].val_loss < evals[0].val_loss


def test_exact_resume_is_bitwise(corpus_file: Path, tmp_path: Path) -> None:
    """Stopping at a step limit (mid-epoch, and at an epoch's last step) and resuming
    gives the weights, optimizer state and evaluations of the uninterrupted run."""
    cfg = settings(corpus_file, epochs=3, eval_freq=3, max_steps=13)
    straight, r1, ev1 = run(cfg=cfg, run_dir=tmp_path / "straight")
    assert r1.step == 13 and straight.plan.steps_per_epoch == 11
    a = weights(straight.model)
    sa = straight.optimizer.state_dict()["state"]
    for stop_at in (6, 11):
        split = tmp_path / f"split-{stop_at}"
        _, r2, _ = run(cfg=dataclasses.replace(cfg, max_steps=stop_at), run_dir=split)
        assert r2.reason == "max_steps" and r2.step == stop_at
        resumed, r3, ev3 = run(cfg=cfg, resume=split)
        assert isinstance(r3, Finished) and r3.step == 13
        assert resumed.run_dir == split  # a resumed run continues in its own folder
        assert of(ev3, RunStarted)[0].step == stop_at
        b = weights(resumed.model)
        assert all(torch.equal(a[k], b[k]) for k in a)
        late = [(e.step, e.train_loss, e.val_loss) for e in of(ev1, EvalEnd) if e.step >= stop_at]
        assert [(e.step, e.train_loss, e.val_loss) for e in of(ev3, EvalEnd)] == late
        assert resumed.state == straight.state  # step, epoch, position, tokens, losses
        sb = resumed.optimizer.state_dict()["state"]
        assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)


def test_cancel_saves_a_checkpoint_that_resumes(corpus_file: Path, tmp_path: Path) -> None:
    cfg = settings(corpus_file, epochs=2)
    holder: dict = {}

    def cancel_at_2(event) -> None:
        if isinstance(event, StepEnd) and event.step == 2:
            holder["t"].cancel()

    trainer = Trainer(MODEL, cfg, listeners=[cancel_at_2], run_dir=tmp_path / "run")
    holder["t"] = trainer
    result = trainer.run()
    assert isinstance(result, Finished) and result.reason == "cancelled" and result.step == 3
    ckpt = load_checkpoint(trainer.policy.last_path)
    assert ckpt.step == 3 and ckpt.reason == "interrupt" and ckpt.has_optimizer
    _, again, _ = run(cfg=cfg, resume=tmp_path / "run")
    assert again.reason == "completed" and again.step == 2 * trainer.plan.steps_per_epoch


def test_pause_holds_steps_until_unpaused(corpus_file: Path) -> None:
    cfg = settings(corpus_file, epochs=1)
    seen: list = []
    holder: dict = {}

    def listener(event) -> None:
        if isinstance(event, StepEnd):
            seen.append((event.step, holder["flag"].is_set()))
            if event.step == 0:
                holder["t"].pause()
                threading.Timer(0.3, lambda: (holder["flag"].set(), holder["t"].unpause())).start()

    trainer = Trainer(MODEL, cfg, listeners=[listener])
    holder.update(t=trainer, flag=threading.Event())
    result = trainer.run()
    assert isinstance(result, Finished) and result.reason == "completed"
    # Every step after the pause ran only once the unpause had happened.
    assert seen[0] == (0, False) and all(flag for step, flag in seen[1:])


def test_request_checkpoint_and_keep_last(corpus_file: Path, tmp_path: Path) -> None:
    cfg = settings(corpus_file, epochs=1, batch_size=4, checkpoint_every=1, keep_last=2)
    holder: dict = {}
    saved_losses: list[float] = []  # each checkpoint's own, measured when it was saved

    def listener(event) -> None:
        if isinstance(event, StepEnd) and event.step == 1:
            holder["t"].request_checkpoint()
        if isinstance(event, CheckpointSaved):
            saved_losses.append(load_checkpoint(event.path, verify=False).val_loss)

    trainer = Trainer(MODEL, cfg, listeners=[listener], run_dir=tmp_path / "run")
    holder["t"] = trainer
    events: list = []
    trainer.add_listener(events.append)
    trainer.run()
    reasons = {e.reason for e in of(events, CheckpointSaved)}
    assert {"manual", "periodic", "epoch", "final"} <= reasons
    root = tmp_path / "run" / "checkpoints"
    kept = [load_checkpoint(p) for p in sorted(root.iterdir())]
    steps = sorted(c.step for c in kept)
    total = trainer.plan.steps_per_epoch
    # The newest two and the best (of every checkpoint saved) survive retention.
    assert steps[-2:] == [total - 1, total] and len(kept) <= 3
    assert min(c.val_loss for c in kept) == min(saved_losses)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(
    corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = step_mod.calc_loss_batch

    def poisoned(*args, **kwargs):
        loss = real(*args, **kwargs)
        if not torch.is_grad_enabled():
            return loss  # evaluation
        calls["n"] += 1
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(step_mod, "calc_loss_batch", poisoned)
    cfg = settings(corpus_file, epochs=2, eval_freq=100, checkpoint_every=2)
    trainer, result, events = run(cfg=cfg, run_dir=tmp_path / "run")
    assert isinstance(result, Failed) and result.kind == "nan"
    assert "at step 4" in result.error and "step-000004" in result.error
    model, ckpt = load_model(tmp_path / "run")
    assert ckpt.step == 4
    assert all(math.isfinite(e.loss) for e in of(events, StepEnd))


def test_a_failing_listener_does_not_stop_training(corpus_file: Path) -> None:
    def broken(event) -> None:
        raise RuntimeError("listener bug")

    events: list = []
    trainer = Trainer(MODEL, settings(corpus_file, epochs=1), listeners=[broken, events.append])
    result = trainer.run()
    assert isinstance(result, Finished) and result.reason == "completed"
    assert len(of(events, StepEnd)) == trainer.plan.steps_per_epoch


def test_user_errors_end_in_failed_and_write_nothing(
    corpus_file: Path, tmp_path: Path, isolated_home: Path
) -> None:
    _, result, events = run(cfg=settings(tmp_path / "missing.txt"))
    assert isinstance(result, Failed) and "corpus not found" in result.error
    assert events == [Phase("corpus", 0, time=events[0].time), result]  # "loading the corpus"
    _, result, _ = run(cfg=dataclasses.replace(settings(corpus_file), corpus="verdict"))
    assert "gpt-tui download verdict" in result.error and "--corpus" in result.error
    _, result, _ = run(cfg=settings(corpus_file, batch_size=64))
    assert "too small" in result.error and "batch_size 64" in result.error
    _, result, _ = run(cfg=settings(corpus_file, max_length=32))
    assert "exceeds the model's context length" in result.error
    assert not (isolated_home / "data" / "runs").exists()


def test_time_limit_and_step_limit(corpus_file: Path) -> None:
    _, result, _ = run(cfg=settings(corpus_file, max_time_s=1e-6))
    assert result.reason == "max_time" and result.step == 1
    _, result, events = run(cfg=settings(corpus_file, max_steps=3))
    assert result.reason == "max_steps" and len(of(events, StepEnd)) == 3


def test_grad_accumulation_and_clipping_run(corpus_file: Path) -> None:
    cfg = settings(corpus_file, epochs=1, grad_accum=2, grad_clip=0.5)
    trainer, result, events = run(cfg=cfg)
    assert result.reason == "completed"
    assert trainer.plan.steps_per_epoch == trainer.plan.train_batches // 2
    steps = of(events, StepEnd)
    assert steps[0].tokens_seen == 2 * 2 * 16 and steps[0].grad_norm > 0


def test_lr_schedule() -> None:
    cfg = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=4, lr_schedule="cosine")
    assert [lr_at(cfg, s, 14) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(cfg, 4, 14) == pytest.approx(1.0)
    assert lr_at(cfg, 9, 14) == pytest.approx(0.55)
    assert lr_at(cfg, 14, 14) == pytest.approx(0.1)
    assert lr_at(TrainConfig(lr=0.5), 100, 10) == 0.5


def test_bf16_autocast_trains_on_cpu(corpus_file: Path) -> None:
    _, result, events = run(cfg=settings(corpus_file, precision="bf16", max_steps=2))
    assert result.reason == "max_steps"
    assert of(events, RunStarted)[0].precision == "bf16"


@pytest.mark.parametrize(
    ("masks", "precision", "lane_masks"),
    [
        ("torch", "bf16", False),  # the default: torch's draws, as the book's run makes
        ("fast", "bf16", True),
        ("fast", "fp32", False),  # lane masks need CPU autocast
    ],
)
def test_dropout_masks_setting_picks_the_masks_training_draws(
    corpus_file: Path,
    lane_mask_shapes: list[tuple[int, ...]],
    masks: str,
    precision: str,
    lane_masks: bool,
) -> None:
    from gptcore.model import dropout

    drawn = lane_mask_shapes
    cfg = settings(corpus_file, precision=precision, dropout_masks=masks, max_steps=2)
    _, result, events = run(cfg=cfg)
    assert result.reason == "max_steps"
    assert of(events, RunStarted)[0].precision == precision
    # Per step: the embedding's, the block's attention and its two shortcut dropouts.
    assert len(drawn) == (2 * 4 if lane_masks else 0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not dropout.lane_masks_apply(torch.zeros(1))  # the opt-in ended with the run


def test_dropout_masks_setting_is_checked() -> None:
    with pytest.raises(ConfigError, match="train.dropout_masks must be one of torch, fast"):
        TrainConfig(dropout_masks="lanes")


@pytest.mark.parametrize("native_bf16", ["0", "1"])
def test_fast_default_mode_trains_as_well_as_the_books_fp32(
    tmp_path: Path, native_bf16: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 8: the default fast path (fused AdamW, the device's default precision)
    stays within 3% of plain fp32 with torch's default AdamW at every eval point,
    whether "auto" resolves to bf16 (a CPU with native bf16) or to fp32."""
    monkeypatch.setenv(perf.NATIVE_BF16_ENV, native_bf16)
    path = tmp_path / "corpus.txt"
    path.write_text(raw_topics_text()[:40_000], encoding="utf-8")
    model = GPTConfig(context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)
    common = dict(
        epochs=1, max_steps=36, eval_freq=6, eval_iter=3, lr=3e-3, max_length=32, stride=32
    )
    fast_trainer, fast, fast_events = run(model, settings(path, precision="auto", **common))
    book_trainer, book, book_events = run(
        model, settings(path, precision="fp32", adamw="default", **common)
    )
    assert fast.reason == book.reason == "max_steps"
    assert fast_trainer.adamw_impl == "fused" and book_trainer.adamw_impl == "default"
    assert fast_trainer.precision == ("bf16" if native_bf16 == "1" else "fp32")
    fast_evals, book_evals = of(fast_events, EvalEnd), of(book_events, EvalEnd)
    assert len(fast_evals) == len(book_evals) == 6
    assert book_evals[-1].train_loss < book_evals[0].train_loss - 1.0  # it really trained
    for a, b in zip(fast_evals, book_evals, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=0.03)
        assert a.val_loss == pytest.approx(b.val_loss, rel=0.03)
    # On a CPU there is no known peak: MFU is reported as unknown (None).
    assert all(e.mfu is None for e in of(fast_events, StepEnd))
