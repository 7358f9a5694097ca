"""torchrun with 2 gloo processes on CPU equals one process on the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gptcore.data.plan import batch_plan
from gptcore.data.tokens import prepare_corpus
from gptcore.runs.checkpoints import load_model
from gptcore.runs.events import EvalEnd
from gptcore.runs.metrics import read_metrics
from gptcore.settings.files import load_run_config
from gptcore.training.trainer import Trainer

from .run_helpers import tiny_corpus, write_tiny_run_config

REPO = Path(__file__).resolve().parents[1]


def torchrun(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GPT_TUI_HOME": str(home), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    return subprocess.run(
        [*cmd, "-m", "gptcore", "train", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    for batch in (1, 2):
        write_tiny_run_config(tmp_path / f"b{batch}.toml", batch_size=batch, sample_tokens=0)
    return tmp_path, tiny_corpus(tmp_path)


def single_process(tmp_path: Path) -> tuple[Trainer, list]:
    model_cfg, train_cfg = load_run_config(tmp_path / "b2.toml")
    events: list = []
    trainer = Trainer(model_cfg, train_cfg, listeners=[events.append], run_dir=tmp_path / "one")
    trainer.run()
    return trainer, events


def test_two_gloo_processes_match_one_process(setup, isolated_home: Path) -> None:
    tmp_path, _ = setup
    run = tmp_path / "ddp"
    proc = torchrun(isolated_home, "--config", str(tmp_path / "b1.toml"), "--run-dir", str(run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("Train loss") == 8  # only rank 0 prints
    one, events = single_process(tmp_path)
    ddp_model, ckpt = load_model(run)
    assert ckpt.step == one.state.step == 22 and ckpt.tokens_seen == one.state.tokens_seen
    # The batch plan the screens show for 2 processes is the one torchrun ran.
    model_cfg, b1 = load_run_config(tmp_path / "b1.toml")
    corpus = prepare_corpus(b1.corpus)
    plan = batch_plan(len(corpus.train_tokens), len(corpus.val_tokens), model_cfg, b1, 2)
    assert plan.total_steps == ckpt.step and plan.global_batch == 2
    for key, value in one.model.state_dict().items():
        torch.testing.assert_close(ddp_model.state_dict()[key], value, rtol=1e-4, atol=1e-6)
    ddp_evals = [e for e in read_metrics(run / "metrics.jsonl") if isinstance(e, EvalEnd)]
    ours = [e for e in events if isinstance(e, EvalEnd)]
    assert [e.step for e in ddp_evals] == [e.step for e in ours]
    for a, b in zip(ddp_evals, ours, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, abs=1e-4)
        assert a.val_loss == pytest.approx(b.val_loss, abs=1e-4)


@pytest.mark.slow
def test_ddp_resume(setup, isolated_home: Path) -> None:
    tmp_path, _ = setup
    run = tmp_path / "ddp"
    first = torchrun(
        isolated_home,
        *("--config", str(tmp_path / "b1.toml"), "--run-dir", str(run), "--set", "max_steps=7"),
    )
    assert first.returncode == 0, first.stderr[-3000:]
    second = torchrun(isolated_home, "--config", str(tmp_path / "b1.toml"), "--resume", str(run))
    assert second.returncode == 0, second.stderr[-3000:]
    one, _ = single_process(tmp_path)
    ddp_model, ckpt = load_model(run)
    assert ckpt.step == 22
    for key, value in one.model.state_dict().items():
        torch.testing.assert_close(ddp_model.state_dict()[key], value, rtol=1e-4, atol=1e-6)
