"""Sweep files and a fake objective for the sweep tests (no training: fast)."""

from __future__ import annotations

import math
import threading
from pathlib import Path

from gptcore.sweep.folder import SweepFolder
from gptcore.sweep.prune import PruneCheck
from gptcore.sweep.runner import SeedJob, SeedResult
from gptcore.sweep.spec import load_sweep

from .run_helpers import write_tiny_run_config

FAKE_STEPS = 40
FAKE_EVAL_EVERY = 5
FAKE_TOKENS_PER_STEP = 100


def write_sweep(folder: Path, body: str, name: str = "sw") -> Path:
    """A sweep file over the tiny run config (tests/run_helpers) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    write_tiny_run_config(folder / "tiny.toml", sample_tokens=0)
    path = folder / f"{name}.toml"
    path.write_text(f'base = "tiny.toml"\n{body}', encoding="utf-8")
    return path


def new_folder(sweep_file: Path, where: Path) -> SweepFolder:
    spec = load_sweep(sweep_file)
    folder = SweepFolder(where)
    folder.create(spec, sweep_file.read_text(encoding="utf-8"), None)
    return folder


def fake_loss(lr: float, step: int) -> float:
    """A loss curve whose floor is lowest at lr = 0.003 (log scale) and falls with steps."""
    floor = 3.0 + (math.log10(lr) - math.log10(0.003)) ** 2
    return floor + 5.0 * math.exp(-step / 10)


class FakeTrainer:
    """A SeedTrainer that evaluates the fake curve every FAKE_EVAL_EVERY steps and
    logs each run it trains (trial, seed index)."""

    def __init__(self, log: Path | None = None) -> None:
        self.runs: list[tuple[int, int]] = []
        self.log = log

    def __call__(
        self, job: SeedJob, prune: PruneCheck | None, cancel: threading.Event
    ) -> SeedResult:
        self.runs.append((job.trial, job.seed_index))
        if self.log is not None:
            with self.log.open("a", encoding="utf-8") as f:
                f.write(f"{job.trial} {job.seed_index}\n")
        lr, best = job.train_config.lr, math.inf
        for step in range(0, FAKE_STEPS, FAKE_EVAL_EVERY):
            val = fake_loss(lr, step) + 0.01 * job.seed_index
            best = min(best, val)
            tokens = (step + 1) * FAKE_TOKENS_PER_STEP
            if prune is not None and prune.on_eval(step, 0, val, tokens) is not None:
                return SeedResult("pruned", best, (step + 1) * FAKE_TOKENS_PER_STEP, step + 1)
        return SeedResult("completed", best, FAKE_STEPS * FAKE_TOKENS_PER_STEP, FAKE_STEPS)
