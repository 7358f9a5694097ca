"""Checkpoint bookkeeping with a real tiny Trainer run: what retention keeps, the epoch shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gptcore.data.corpus import builtin_text
from gptcore.runs.checkpoint import load_checkpoint
from gptcore.runs.checkpoints import list_checkpoints, rename_checkpoint
from gptcore.runs.events import CheckpointSaved, StepEnd
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.training.trainer import Trainer
from gptcore.util.paths import runs_dir

MODEL = GPTConfig(context_length=16, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.0)


def settings(tmp_path: Path, **train) -> TrainConfig:
    """About ten steps per epoch on 1,600 characters of the built-in corpus."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(builtin_text()[:1600], encoding="utf-8")
    base = dict(corpus=str(corpus), batch_size=2, max_length=16, stride=16, epochs=2,
                eval_freq=3, eval_iter=1, sample_tokens=0, precision="fp32")  # fmt: skip
    return TrainConfig(**{**base, **train})


def test_manual_checkpoint_kept_by_retention(tmp_path: Path) -> None:
    holder: dict = {}

    def listener(event) -> None:
        if isinstance(event, StepEnd) and event.step == 1:
            holder["t"].request_checkpoint()  # the app's `k`: saved after step 2
        if isinstance(event, CheckpointSaved) and event.step == 4:
            rename_checkpoint(event.path, "pinned")
        if isinstance(event, CheckpointSaved) and event.reason == "epoch" and event.epoch == 2:
            holder["t"].request_checkpoint()  # asked for after the last step's saves

    cfg = settings(tmp_path, checkpoint_every=1, keep_last=1)
    events: list = []
    trainer = Trainer(MODEL, cfg, listeners=[events.append, listener], run_dir=runs_dir() / "k")
    holder["t"] = trainer
    trainer.run()
    last = trainer.state.step
    kept = {p.name: load_checkpoint(p) for p in (runs_dir() / "k" / "checkpoints").iterdir()}
    manual = sorted((c.step, name) for name, c in kept.items() if c.reason == "manual")
    # Both asks survive every later save's retention, as does the renamed checkpoint.
    assert manual[0] == (2, "step-000002") and manual[-1][0] == last
    assert kept["pinned"].step == 4
    # Automatic ones are still pruned to keep_last (+ the best, which may be another).
    auto = [c for c in kept.values() if c.reason in ("epoch", "periodic", "final")]
    assert 1 <= len(auto) <= 2 and max(c.step for c in auto) == last
    saved = [e.reason for e in events if isinstance(e, CheckpointSaved)]
    assert saved.count("manual") == 2


def test_end_of_training_checkpoint_shows_the_last_epoch_everywhere(tmp_path: Path) -> None:
    cfg = settings(tmp_path, epochs=3)
    trainer = Trainer(MODEL, cfg, run_dir=runs_dir() / "three")
    trainer.run()
    n = trainer.plan.steps_per_epoch
    infos = {i.name: i for i in list_checkpoints()}
    assert sorted((i.step, i.epoch) for i in infos.values()) == [(n, 1), (2 * n, 2), (3 * n, 3)]
    out = subprocess.run(
        [sys.executable, "-m", "gptcore", "checkpoints", "list"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    row = next(line.split() for line in out.splitlines() if f"step-{3 * n:06d}" in line)
    assert row[2:4] == [str(3 * n), "3"]  # step, epoch
