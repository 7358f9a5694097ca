"""Deleting and writing only inside what is ours: `checkpoints rm` / rename / the app's
delete refuse foreign folders, `--run-dir` never reuses a run, one process per run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gptcore.cli import main
from gptcore.errors import CheckpointError
from gptcore.model.gpt import GPTModel
from gptcore.runs.checkpoint import load_checkpoint, save_checkpoint
from gptcore.runs.checkpoints import delete_checkpoint, rename_checkpoint
from gptcore.runs.events import Failed, Finished, StepEnd
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.training.resume import prepare_run
from gptcore.training.trainer import Trainer

from .run_helpers import write_tiny_run_config

REPO = Path(__file__).resolve().parents[1]
CFG = GPTConfig(context_length=16, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.0)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_tiny_run_config(tmp_path / "tiny.toml")


def make_checkpoint(run: Path, step: int) -> Path:
    torch.manual_seed(step)
    return save_checkpoint(
        run / "checkpoints" / f"step-{step:06d}",
        GPTModel(CFG),
        train_config=TrainConfig().to_dict(),
        step=step,
        epoch=0,
        tokens_seen=step,
    )


def foreign_project(folder: Path) -> Path:
    """A folder that has a meta.json, as many projects do, and a file we must not lose."""
    (folder / "src").mkdir(parents=True)
    (folder / "meta.json").write_text('{"name": "p"}')
    (folder / "src" / "main.c").write_text("precious")
    return folder / "src" / "main.c"


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpt-tui: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_rm_refuses_a_foreign_folder_with_a_meta_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    precious = foreign_project(tmp_path / "X")
    assert main(["checkpoints", "rm", str(tmp_path / "X")]) == 2
    assert "X" in one_error_line(capsys.readouterr().err)
    monkeypatch.chdir(tmp_path)
    assert main(["checkpoints", "rm", "X"]) == 2  # relative, too
    one_error_line(capsys.readouterr().err)
    assert precious.read_text() == "precious"

    # Inside a run's checkpoints/ folder, but not a gpt-tui checkpoint: kept too.
    run = tmp_path / "run"
    real = make_checkpoint(run, 1)
    notes = run / "checkpoints" / "notes"
    notes_file = foreign_project(notes)
    forged = run / "checkpoints" / "forged"
    forged.mkdir()
    (forged / "meta.json").write_text('{"format": "something-else"}')
    for path in (notes, forged):
        with pytest.raises(CheckpointError, match="not a gpt-tui checkpoint") as info:
            delete_checkpoint(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert notes_file.read_text() == "precious" and forged.exists()
    # One foreign spec among several: nothing at all is deleted.
    assert main(["checkpoints", "rm", str(real), str(tmp_path / "X")]) == 2
    one_error_line(capsys.readouterr().err)
    assert load_checkpoint(real).step == 1
    # Our own checkpoint, named relatively, still goes.
    monkeypatch.chdir(run / "checkpoints")
    assert main(["checkpoints", "rm", "step-000001"]) == 0
    assert not real.exists()


def test_rm_dot_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "Y"
    folder.mkdir()
    (folder / "meta.json").write_text("{}")
    monkeypatch.chdir(folder)
    assert main(["checkpoints", "rm", "."]) == 2
    one_error_line(capsys.readouterr().err)
    assert (folder / "meta.json").exists()
    with pytest.raises(CheckpointError, match="not in a run's checkpoints/ folder"):
        rename_checkpoint(".", "other")

    # `.` inside one of our checkpoints names that checkpoint.
    ckpt = make_checkpoint(tmp_path / "run", 1)
    monkeypatch.chdir(ckpt)
    assert main(["checkpoints", "rename", ".", "kept"]) == 0
    assert (tmp_path / "run" / "checkpoints" / "kept" / "meta.json").exists()


@pytest.mark.parametrize(
    "name",
    ["   ", "a\nb", "tab\there", "bell\x07", "x" * 101, "x" * 300]
    + ["step-000009", "step-12", "step-000003-2", "\ud83d"],
)
def test_rename_refuses_bad_names(name: str, tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "run", 1)
    with pytest.raises(CheckpointError) as info:
        rename_checkpoint(ckpt, name)
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["step-000001"]


def test_rename_accepts_good_names_and_refuses_foreign_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ckpt = make_checkpoint(tmp_path / "run", 1)
    assert main(["checkpoints", "rename", str(ckpt), "step-000009"]) == 2
    assert "automatic" in one_error_line(capsys.readouterr().err)
    assert main(["checkpoints", "rename", str(ckpt), "y" * 300]) == 2  # ENAMETOOLONG before
    one_error_line(capsys.readouterr().err)
    for name in ("", "a/b", "..", ".hidden"):  # refused before too: still refused
        with pytest.raises(CheckpointError):
            rename_checkpoint(ckpt, name)
    renamed = rename_checkpoint(ckpt, "final 🎉 step-9")
    assert load_checkpoint(renamed).step == 1
    foreign_project(tmp_path / "X")
    with pytest.raises(CheckpointError, match="not in a run's checkpoints/ folder"):
        rename_checkpoint(tmp_path / "X", "mine")
    assert (tmp_path / "X" / "src" / "main.c").exists()


def snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_run_dir_holding_a_run_is_refused_unless_resuming_it(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    train = ["train", "--config", str(config)]
    assert main([*train, "--set", "max_steps=2", "--run-dir", str(run)]) == 0
    before = snapshot(run)
    assert "config.toml" in before and "metrics.jsonl" in before
    assert any(name.startswith("checkpoints/step-000002/") for name in before)
    capsys.readouterr()
    assert main([*train, "--set", "max_steps=4", "--set", "lr=0.01", "--run-dir", str(run)]) == 2
    assert "already holds a run" in one_error_line(capsys.readouterr().err)
    assert snapshot(run) == before
    # A folder with only checkpoints/ counts as a run too.
    other = tmp_path / "other"
    make_checkpoint(other, 1)
    assert main([*train, "--set", "max_steps=1", "--run-dir", str(other)]) == 2
    assert sorted(p.name for p in other.iterdir()) == ["checkpoints"]
    # Resuming that run into its own folder is what --resume is for.
    resume = ["train", "--resume", str(run), "--set", "max_steps=3", "--run-dir", str(run)]
    assert main(resume) == 0
    assert load_checkpoint(run / "checkpoints" / "step-000003").step == 3


def test_a_second_trainer_on_a_held_run_names_the_holder(config: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    prepared = prepare_run(config, ["checkpoint_every=1", "max_steps=4"])
    second: list = []
    lock_seen: list = []

    def start_another(event: object) -> None:
        if isinstance(event, StepEnd) and event.step == 2 and not second:
            lock_seen.append(json.loads((run / ".lock").read_text()))
            other = Trainer(prepared.model_config, prepared.train_config, resume=run)
            second.append(other.run())

    first = Trainer(
        prepared.model_config, prepared.train_config, listeners=[start_another], run_dir=run
    )
    result = first.run()
    assert isinstance(result, Finished) and result.step == 4
    assert lock_seen and lock_seen[0]["pid"] == os.getpid()
    (refused,) = second
    assert isinstance(refused, Failed) and f"pid {os.getpid()}" in refused.error
    # The refused one wrote nothing: one started event, no failed one.
    events = [
        json.loads(line)["event"] for line in (run / "metrics.jsonl").read_text().splitlines()
    ]
    assert events.count("started") == 1 and "failed" not in events
    assert not (run / ".lock").exists()  # released after a normal end


def test_a_stale_lock_is_taken_over(config: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert (
        main(["train", "--config", str(config), "--set", "max_steps=2", "--run-dir", str(run)]) == 0
    )
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    (run / ".lock").write_text(json.dumps({"pid": finished.pid, "host": socket.gethostname()}))
    assert main(["train", "--resume", str(run), "--set", "max_steps=3"]) == 0
    assert load_checkpoint(run / "checkpoints" / "step-000003").step == 3
    assert not (run / ".lock").exists()


def test_kill_9_does_not_block_the_next_resume(
    config: Path, tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "GPT_TUI_HOME": str(isolated_home)}
    cmd = [sys.executable, "-m", "gptcore", "train", "--config", str(config), "--quiet"]
    proc = subprocess.Popen(
        [*cmd, "--set", "epochs=1000", "--set", "checkpoint_every=1", "--run-dir", str(run)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (run / "checkpoints").is_dir() and any((run / "checkpoints").glob("step-*")):
                break
            time.sleep(0.05)
        holder = json.loads((run / ".lock").read_text())
        assert holder["pid"] == proc.pid
        # While it trains, a resume is refused and names it.
        assert main(["train", "--resume", str(run), "--set", "max_steps=1000000"]) == 2
        assert f"pid {proc.pid}" in one_error_line(capsys.readouterr().err)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    assert (run / ".lock").exists()  # a crash leaves it behind ...
    stopped = max(load_checkpoint(p).step for p in (run / "checkpoints").glob("step-*"))
    code = main(["train", "--resume", str(run), "--set", f"max_steps={stopped + 1}"])
    assert code == 0  # ... and the next resume takes it over
    assert not (run / ".lock").exists()
