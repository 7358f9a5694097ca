"""Sweeps lose nothing (issue 28): SIGTERM mid-trial, or kill -9 at any moment, then
`gpt-tui sweep --resume` finishes the study; no completed trial is trained again and
the interrupted one goes on from its checkpoint. Real (tiny) runs in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from gptcore.cli import main
from gptcore.sweep.folder import SweepFolder
from gptcore.sweep.study import open_study

from .sweep_helpers import write_sweep

REPO = Path(__file__).resolve().parents[1]
STEPS = 24
BODY = f"""sampler = "grid"
pruner = "none"
[train]
epochs = 100
max_steps = {STEPS}
eval_freq = 4
eval_iter = 1
checkpoint_every = 4
keep_last = 2
[space]
lr = [0.003, 0.001, 0.01]
"""


def _events(run: Path, name: str) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == name]


def _start(tmp_path: Path, home: Path) -> tuple[subprocess.Popen, Path]:
    sweep_file = write_sweep(tmp_path, BODY)
    folder = tmp_path / "sweep"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gptcore", "sweep", str(sweep_file), "--dir", str(folder)],
        cwd=REPO,
        env={**os.environ, "GPT_TUI_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, folder


def _wait_for(proc: subprocess.Popen, metrics: Path, text: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics.exists() and text in metrics.read_text():
            return
        assert proc.poll() is None, f"the sweep ended first: {proc.communicate()}"
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no {text} in {metrics} within the timeout")


def _finished_study(folder: Path) -> list[optuna.trial.FrozenTrial]:
    sweep = SweepFolder(folder)
    trials = open_study(sweep.spec(), sweep.storage_url(), create=False).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert sorted(t.params["lr"] for t in trials) == [0.001, 0.003, 0.01]
    return trials


def test_sigterm_mid_trial_then_resume_finishes_without_rerunning_a_trial(
    tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture
) -> None:
    runs = isolated_home / "data" / "runs"
    proc, folder = _start(tmp_path, isolated_home)
    _wait_for(proc, runs / "sw-t001" / "metrics.jsonl", '"event": "step"')
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err
    assert f"gpt-tui sweep --resume {folder}" in err and "Traceback" not in err
    closing = _events(runs / "sw-t001", "finished")[-1]
    assert closing["reason"] == "cancelled" and closing["step"] < STEPS
    assert (runs / "sw-t001" / "checkpoints" / f"step-{closing['step']:06d}").is_dir()
    assert not (runs / "sw-t002").exists()

    assert main(["sweep", "--resume", str(folder)]) == 0
    assert "trial 1: resuming" in capsys.readouterr().out
    _finished_study(folder)
    starts = {run.name: _events(run, "started") for run in sorted(runs.iterdir())}
    assert sorted(starts) == ["sw-t000", "sw-t001", "sw-t002"]
    assert len(starts["sw-t000"]) == 1 and len(starts["sw-t002"]) == 1  # never rerun
    assert [s["step"] for s in starts["sw-t001"]] == [0, closing["step"]]  # from its checkpoint
    for run in runs.iterdir():  # every run trained its steps once, to the end
        steps = [e["step"] for e in _events(run, "step")]
        assert steps == list(range(STEPS)), run.name
        assert _events(run, "finished")[-1]["reason"] == "max_steps"


@pytest.mark.parametrize("when", ["first step", "first checkpoint"])
def test_kill_9_at_any_moment_leaves_a_study_that_resumes(
    tmp_path: Path, isolated_home: Path, when: str
) -> None:
    runs = isolated_home / "data" / "runs"
    proc, folder = _start(tmp_path, isolated_home)
    wanted = '"event": "step"' if when == "first step" else '"event": "checkpoint"'
    _wait_for(proc, runs / "sw-t001" / "metrics.jsonl", wanted)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    had_checkpoint = any((runs / "sw-t001" / "checkpoints").glob("step-*"))
    assert had_checkpoint or when == "first step"

    assert main(["sweep", "--resume", str(folder)]) == 0
    trials = _finished_study(folder)
    assert len(_events(runs / "sw-t000", "started")) == 1  # the finished trial: not rerun
    (trial_1,) = [t for t in trials if t.number == 1]
    (resumed,) = trial_1.user_attrs["run_dirs"]
    steps = [e["step"] for e in _events(Path(resumed), "step")]
    assert steps[-1] == STEPS - 1
    if had_checkpoint:  # it went on from its checkpoint, in its own folder
        assert Path(resumed).name == "sw-t001"
        assert [s["step"] for s in _events(Path(resumed), "started")][-1] > 0
    else:  # killed before any checkpoint: trained again in a new folder, the old one kept
        assert Path(resumed).name == "sw-t001-a2"
        assert (runs / "sw-t001" / "metrics.jsonl").exists()


def test_a_pruned_trials_run_keeps_its_data_and_says_at_which_step_and_why(
    tmp_path: Path, isolated_home: Path
) -> None:
    from gptcore.runs.table import filter_rows, run_table
    from gptcore.sweep.runner import Runner

    # sampler_seed 1: the grid trains lr 0.01 first, then the hopeless 1e-5
    body = BODY.replace(
        'pruner = "none"', 'pruner = "median"\nstartup_trials = 1\nsampler_seed = 1'
    )
    body = body.replace("lr = [0.003, 0.001, 0.01]", "lr = [0.01, 0.00001]")
    sweep_file = write_sweep(tmp_path, body)
    main_folder = tmp_path / "sweep"
    assert main(["sweep", str(sweep_file), "--dir", str(main_folder)]) == 0
    trials = Runner(SweepFolder(main_folder)).study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED"]
    run = isolated_home / "data" / "runs" / "sw-t001"
    (pruned,) = _events(run, "pruned")
    assert pruned["step"] == trials[1].user_attrs["pruned_step"] and pruned["step"] < STEPS - 1
    assert pruned["reason"].startswith(f"pruned at step {pruned['step']} (")
    assert "tokens) by the median pruner" in pruned["reason"]
    assert "above the median" in pruned["reason"] and pruned["trial"] == 1
    closing = _events(run, "finished")[-1]
    assert closing["reason"] == "pruned" and closing["step"] == pruned["step"] + 1
    assert (run / "checkpoints" / f"step-{closing['step']:06d}").is_dir()  # data kept
    (row,) = filter_rows(run_table(), "sweep=sw trial=1")
    assert row.state == "pruned" and row.path == run
