"""The run table (`gptcore.run_table`, `gpt-tui runs`) and the run series behind the curves."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gptcore.cli import main
from gptcore.runs.table import SeriesFollower, filter_rows, row_record, run_row, run_table
from gptcore.util.fmt import format_bytes
from gptcore.util.paths import folder_size

from .run_helpers import write_tiny_run_config

LRS = {"lr-1e-3": 0.001, "lr-3e-3": 0.003, "lr-1e-2": 0.01}  # oldest first
STEPS = 4


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose runs folder holds three finished tiny runs that differ only in lr."""
    home = tmp_path_factory.mktemp("runs-home")
    config = write_tiny_run_config(home / "tiny.toml", sample_tokens=0)
    for name, lr in LRS.items():
        args = ["train", "--config", str(config), "--run-dir", str(home / "data/runs" / name)]
        for setting in (f"max_steps={STEPS}", "eval_freq=2", f"lr={lr}"):
            args += ["--set", setting]
        assert main([*args, "--home", str(home)]) == 0
    return home


@pytest.fixture
def runs(home: Path) -> Path:
    return home / "data" / "runs"


def records(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def copy_run(src: Path, dst: Path, keep_lines: int | None = None) -> Path:
    """A copy of a run folder (no checkpoints), its metrics cut to the first `keep_lines`."""
    dst.mkdir(parents=True)
    shutil.copy(src / "config.toml", dst / "config.toml")
    lines = (src / "metrics.jsonl").read_text().splitlines(keepends=True)
    (dst / "metrics.jsonl").write_text("".join(lines[:keep_lines]))
    return dst


def test_the_table_sums_up_each_run_newest_first(runs: Path) -> None:
    rows = run_table(root=runs)
    assert [row.name for row in rows] == list(reversed(LRS))
    for row in rows:
        evals = [r for r in records(row.path) if r["event"] == "eval"]
        assert row.state == "finished"
        assert row.model == "1x16 ctx16"  # no preset matches the tiny shape
        assert row.corpus == str(runs.parent.parent / "corpus.txt")
        assert (row.steps, row.total_steps, row.tokens_seen) == (STEPS, STEPS, STEPS * 2 * 16)
        assert row.best_val == min(r["val_loss"] for r in evals)
        assert row.last_train == evals[-1]["train_loss"]
        assert row.started == records(row.path)[0]["time"]
        assert row.config["lr"] == LRS[row.name]
        assert row.config["model.emb_dim"] == 16


def test_extra_runs_are_listed_once_and_a_non_run_is_refused(runs: Path, tmp_path: Path) -> None:
    outside = copy_run(runs / "lr-1e-3", tmp_path / "elsewhere")
    rows = run_table(root=runs, extra=[outside, runs / "lr-3e-3", f"{runs}/lr-3e-3/"])
    assert sorted(row.name for row in rows) == sorted([*LRS, "elsewhere"])
    with pytest.raises(Exception, match="is not a run folder"):
        run_table(root=runs, extra=[tmp_path])


def test_filter_by_name_and_by_setting(runs: Path) -> None:
    rows = run_table(root=runs)
    assert [row.name for row in filter_rows(rows, "3E-3")] == ["lr-3e-3"]
    assert [row.name for row in filter_rows(rows, "lr=0.003")] == ["lr-3e-3"]
    assert [row.name for row in filter_rows(rows, "lr=3e-3")] == ["lr-3e-3"]
    assert [row.name for row in filter_rows(rows, "lr=1e-2 ctx16")] == ["lr-1e-2"]
    assert len(filter_rows(rows, "model.n_layers=1 corpus")) == 3
    assert filter_rows(rows, "model.n_layers=4") == []
    assert filter_rows(rows, "lr=0.003 lr-1e-3") == []  # every term must match
    assert filter_rows(rows, "no_such_key=1") == []
    assert len(filter_rows(rows, "")) == 3


def test_gpt_tui_runs_json_has_every_field(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("GPT_TUI_HOME", str(home))
    assert main(["runs", "--json", "--filter", "lr=0.01"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    expected = row_record(run_row(home / "data/runs/lr-1e-2"))
    assert record == expected
    assert set(record) == {
        "path", "name", "model", "corpus", "steps", "total_steps", "tokens_seen",
        "best_val", "last_train", "state", "started", "config", "problem", "disk_bytes",
    }  # fmt: skip
    assert record["state"] == "finished" and record["config"]["lr"] == 0.01
    on_disk = sum(p.stat().st_size for p in Path(record["path"]).rglob("*") if p.is_file())
    assert record["disk_bytes"] == on_disk > 0


def test_gpt_tui_runs_prints_a_table_in_80_columns(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("GPT_TUI_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "80")
    long = copy_run(home / "data/runs/lr-1e-3", tmp_path / ("a-long-run-name-" * 4 + "end"))
    assert main(["runs", str(long)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert lines[1].split() == [
        "name", "model", "corpus", "steps", "tokens", "val", "train", "state", "started",
    ]  # fmt: skip
    assert lines[0].split() == ["best", "last"]
    body = {line.split()[0]: line for line in lines[2:]}
    assert set(body) >= set(LRS)
    assert "a-long-r…-name-end" in body  # clipped in the middle, both ends kept
    assert " 1x16 ctx16 " in body["lr-1e-3"] and " finished " in body["lr-1e-3"]
    # Wider, each run's disk use joins (its files, checkpoints mostly).
    monkeypatch.setenv("COLUMNS", "160")
    assert main(["runs", str(long)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "disk" in lines[1].split()
    size = format_bytes(folder_size(home / "data/runs/lr-1e-3"))
    assert f" {size} " in next(line for line in lines if line.startswith("lr-1e-3 "))


def test_gpt_tui_runs_refuses_a_folder_that_is_no_run(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["runs", str(tmp_path)]) == 2
    assert f"{tmp_path} is not a run folder" in capsys.readouterr().err


def test_series_match_metrics_jsonl(runs: Path) -> None:
    run = runs / "lr-3e-3"
    follower = SeriesFollower(run)
    assert follower.update() is True
    assert follower.update() is False  # nothing new
    s = follower.series
    steps = [r for r in records(run) if r["event"] == "step"]
    evals = [r for r in records(run) if r["event"] == "eval"]
    assert len(steps) == STEPS and len(evals) == 2
    assert s.step_steps == [r["step"] for r in steps] == [0, 1, 2, 3]
    assert s.step_tokens == [r["tokens_seen"] for r in steps]
    assert s.step_times == [r["elapsed_s"] for r in steps]
    assert s.step_loss == [r["loss"] for r in steps]
    assert s.lr == [0.003] * STEPS
    assert s.grad_norm == [r["grad_norm"] for r in steps]
    assert s.tokens_per_s == [r["tokens_per_s"] for r in steps]
    assert s.eval_steps == [r["step"] for r in evals] == [0, 2]
    assert s.eval_tokens == [r["tokens_seen"] for r in evals]
    assert s.train_loss == [r["train_loss"] for r in evals]
    assert s.val_loss == [r["val_loss"] for r in evals]
    assert s.eval_times == [s.step_times[0], s.step_times[2]]  # the time of the step evaluated
    assert s.marks == []


def test_series_follower_reads_appended_lines(runs: Path, tmp_path: Path) -> None:
    src = runs / "lr-1e-3"
    run = copy_run(src, tmp_path / "live", keep_lines=4)
    follower = SeriesFollower(run)
    assert follower.update() is True
    assert len(follower.series.step_steps) < STEPS
    (run / "metrics.jsonl").write_text((src / "metrics.jsonl").read_text())  # the rest arrives
    assert follower.update() is True
    full = SeriesFollower(src)
    full.update()
    assert follower.series == full.series


def test_a_resumed_session_replaces_the_steps_it_redoes_and_failures_are_marks(
    tmp_path: Path,
) -> None:
    run = tmp_path / "resumed"
    run.mkdir()

    def step(i: int, elapsed: float) -> dict:
        return {"event": "step", "step": i, "epoch": 0, "loss": 5.0 - i, "lr": 1e-3,
                "tokens_seen": 8 * (i + 1), "tokens_per_s": 10.0, "grad_norm": None,
                "elapsed_s": elapsed, "time": 100.0 + i}  # fmt: skip

    started = {"event": "started", "run_dir": str(run), "device": "cpu", "precision": "fp32",
               "total_steps": 4, "parameters": 1, "epoch": 0, "time": 100.0}  # fmt: skip
    lines = [{**started, "step": 0}, step(0, 1.0), step(1, 2.0), step(2, 3.0)]
    lines += [{"event": "failed", "step": 3, "epoch": 0, "error": "boom", "time": 104.0}]
    lines += [{**started, "step": 2, "time": 200.0}, step(2, 0.5), step(3, 1.5)]  # resumed at 2
    lines += [{"event": "spike", "step": 3, "epoch": 0, "kind": "loss", "value": 9.0,
               "z": 7.5, "skipped": True, "time": 201.0}]  # fmt: skip
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    follower = SeriesFollower(run)
    follower.update()
    s = follower.series
    assert s.step_steps == [0, 1, 2, 3]
    assert s.step_loss == [5.0, 4.0, 3.0, 2.0]
    assert s.step_times == [1.0, 2.0, 2.5, 3.5]  # the second session continues the clock
    assert all(g != g for g in s.grad_norm)  # no grad norm: NaN
    assert [(m[0], m[1]) for m in s.marks] == [(3, "spike")]  # the failure was redone
    assert "update skipped" in s.marks[0][2]

    before_resume = SeriesFollower(run)
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines[:5]))
    before_resume.update()
    assert before_resume.series.marks == [(3, "failed", "boom")]
    assert run_row(run).state == "failed"


def test_a_crashed_run_is_stopped_and_a_live_one_running(runs: Path, tmp_path: Path) -> None:
    crashed = copy_run(runs / "lr-1e-3", tmp_path / "crashed", keep_lines=-1)  # no closing event
    assert run_row(crashed).state == "stopped"
    assert run_row(crashed).steps == STEPS

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    lock = crashed / ".lock"
    holder = {"pid": int(dead.stdout), "host": socket.gethostname(), "token": "t"}
    lock.write_text(json.dumps(holder))
    assert run_row(crashed).state == "stopped"  # its process is gone: a stale lock

    lock.write_text(json.dumps({**holder, "pid": os.getpid()}))
    assert run_row(crashed).state == "running"

    new = tmp_path / "new"
    new.mkdir()
    shutil.copy(crashed / "config.toml", new / "config.toml")
    assert run_row(new).state == "new" and run_row(new).steps is None


def test_a_damaged_run_still_lists(runs: Path, tmp_path: Path) -> None:
    run = copy_run(runs / "lr-1e-2", tmp_path / "damaged")
    good = records(run)
    lines = ["garbage{", json.dumps(good[0]), "[1, 2]", json.dumps({"event": "step"}), "\xff"]
    lines += [json.dumps(r) for r in good if r["event"] in ("step", "eval")] + ['{"event": "st']
    (run / "metrics.jsonl").write_text("\n".join(lines))
    (run / "config.toml").write_text("[model\nnot toml")
    (row,) = run_table(root=tmp_path)
    assert (row.name, row.model, row.corpus, row.config) == ("damaged", "?", None, {})
    assert row.steps == STEPS and row.state == "stopped"
    assert row.best_val == min(r["val_loss"] for r in good if r["event"] == "eval")
    json.dumps(row_record(row), allow_nan=False)

    foreign = tmp_path / "foreign"
    (foreign / "metrics.jsonl").mkdir(parents=True)  # not even a file
    (foreign / "config.toml").write_text(
        '[train]\nlr = "fast"\nnew_key = 1\n[model]\nn_layers = 2\n'
    )
    row = run_row(foreign)
    assert row.state == "new" and row.config["lr"] == "fast" and row.config["new_key"] == 1
    assert row.model == "2x768 ctx256"
