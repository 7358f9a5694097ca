"""Resume is exact with default settings (issue 25): a run killed with SIGKILL or stopped
with SIGTERM and resumed ends bit for bit where the uninterrupted run ends, with
precision = "auto", even when the resuming process would pick another precision
(it keeps the one the checkpoint recorded)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gptcore.cli import main
from gptcore.hardware import perf
from gptcore.runs.checkpoint import Checkpoint, load_checkpoint
from gptcore.runs.checkpoints import latest_checkpoint

from .test_precision_table import auto_config

REPO = Path(__file__).resolve().parents[1]
EVERY = ["--set", "epochs=1000", "--set", "checkpoint_every=2"]


def _steps(metrics: Path) -> list[int]:
    if not metrics.exists():
        return []
    out = []
    for line in metrics.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:  # a line being written
            continue
        if event.get("event") == "step":
            out.append(event["step"])
    return out


def _wait_until(proc: subprocess.Popen, ready, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        assert proc.poll() is None, f"training ended before {what}: {proc.stderr.read()}"
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout} s")


def _same(a: Checkpoint, b: Checkpoint) -> None:
    wa, wb = a.state_dict(), b.state_dict()
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    oa, ob = a.optimizer_state()["optimizer"]["state"], b.optimizer_state()["optimizer"]["state"]
    assert oa.keys() == ob.keys()
    for i in oa:
        assert torch.equal(oa[i]["exp_avg"], ob[i]["exp_avg"])
        assert torch.equal(oa[i]["exp_avg_sq"], ob[i]["exp_avg_sq"])


@pytest.mark.parametrize("stop", ["SIGKILL", "SIGTERM"])
def test_a_resume_with_default_settings_is_bitwise_the_uninterrupted_run(
    stop: str, tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = auto_config(tmp_path)
    run = tmp_path / "run"
    # This machine has native bf16 while training...
    env = {**os.environ, "GPT_TUI_HOME": str(isolated_home), perf.NATIVE_BF16_ENV: "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gptcore", "train", "--config", str(config), *EVERY,
         "--run-dir", str(run)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # Past a periodic checkpoint, and some steps beyond it.
        _wait_until(proc, lambda: len(_steps(run / "metrics.jsonl")) >= 5, "five steps")
        proc.send_signal(getattr(signal, stop))
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == (-signal.SIGKILL if stop == "SIGKILL" else 128 + signal.SIGTERM)
    stopped = load_checkpoint(latest_checkpoint(run))
    assert stopped.precision == "bf16" and stopped.train_config["precision"] == "auto"
    end = stopped.step + 3

    # ... and has none when the run is resumed: "auto" keeps the recorded bf16.
    monkeypatch.setenv(perf.NATIVE_BF16_ENV, "0")
    assert main(["train", "--resume", str(run), "--set", f"max_steps={end}"]) == 0
    resumed = load_checkpoint(run / "checkpoints" / f"step-{end:06d}")
    assert resumed.precision == "bf16"

    monkeypatch.setenv(perf.NATIVE_BF16_ENV, "1")
    straight = tmp_path / "straight"
    args = ["train", "--config", str(config), *EVERY, "--set", f"max_steps={end}"]
    assert main([*args, "--run-dir", str(straight)]) == 0
    _same(resumed, load_checkpoint(straight / "checkpoints" / f"step-{end:06d}"))
