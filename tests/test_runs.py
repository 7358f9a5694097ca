"""Run folders, the metrics.jsonl stream and its follower."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gptcore.runs.events import EvalEnd, Failed, Finished, Sample, StepEnd
from gptcore.runs.lock import RunLock
from gptcore.runs.metrics import MetricsFollower, MetricsWriter, read_metrics
from gptcore.runs.rundir import RunDir, checkpoint_label, new_run_dir, write_run_config
from gptcore.runs.table import run_state
from gptcore.settings.files import load_run_config
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from tui.screens.open_run import known_runs


def step(i: int) -> StepEnd:
    return StepEnd(
        step=i,
        epoch=0,
        loss=5.0 - i,
        lr=1e-3,
        tokens_seen=10 * i,
        tokens_per_s=1.0,
        grad_norm=0.5,
        time=1000.0 + i,
    )


def test_new_run_dirs_are_unique_under_the_home(isolated_home: Path) -> None:
    a = new_run_dir("book 124m!")
    b = new_run_dir("book 124m!")
    assert a != b and a.parent == b.parent == isolated_home / "data" / "runs"
    assert a.name.endswith("-book-124m") and a.is_dir() and b.is_dir()


def test_config_toml_round_trips(tmp_path: Path) -> None:
    model = GPTConfig(context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)
    train = TrainConfig(start_context='say "hi"\n\\ ok', max_steps=7, lr=3e-4, grad_clip=1.0)
    path = write_run_config(tmp_path, model, train)
    assert load_run_config(path) == (model, train)


def test_metrics_lines_have_the_documented_fields(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    writer = MetricsWriter(path)
    events = [
        step(0),
        EvalEnd(0, 0, 4.0, 4.5, 10),
        Sample(0, 0, "Every effort moves you"),
        Finished(1, 1, "completed", 10, 1.0),
    ]
    for e in events:
        writer(e)
        # Flushed at once: readable before the writer is closed.
        assert read_metrics(path)[-1] == e
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["event"] for r in records] == ["step", "eval", "sample", "finished"]
    assert all({"event", "time", "step", "epoch"} <= set(r) for r in records)
    assert {"loss", "lr", "tokens_seen", "tokens_per_s"} <= set(records[0])
    assert {"train_loss", "val_loss"} <= set(records[1]) and records[2]["text"]
    assert "Every effort moves you" in (tmp_path / "samples.txt").read_text()
    writer.close()


def test_follower_returns_complete_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    follower = MetricsFollower(path)
    assert follower.poll() == []  # no file yet
    line = json.dumps({"event": "step", **step(1).__dict__})
    with path.open("w") as f:
        f.write(line[:20])
        f.flush()
        assert follower.poll() == []  # half a line waits for its newline
        f.write(line[20:] + "\n" + "garbage\n" + '{"event": "nope"}\n')
        f.flush()
        assert follower.poll() == [step(1)]  # malformed and unknown lines are skipped
        assert follower.poll() == []
        f.write(
            json.dumps(
                {"event": "failed", "step": 2, "epoch": 0, "error": "x", "kind": "nan", "time": 1.0}
            )
            + "\n"
        )
    assert follower.poll() == [Failed(2, 0, "x", "nan", 1.0)]
    path.write_text("")  # rewritten: start again
    assert follower.poll() == []
    path.write_text(line + "\n")
    assert follower.poll() == [step(1)]


@pytest.mark.parametrize(
    ("last", "held", "state"),
    [
        (None, False, "new"),
        (None, True, "running"),
        (step(3), True, "running"),
        (step(3), False, "stopped"),  # no closing event and nobody holds the lock: it died
        (Finished(4, 1, "completed", 40, 1.0), False, "finished"),
        (Finished(4, 1, "max_steps", 40, 1.0), True, "finished"),  # closing, lock not yet let go
        (Finished(4, 1, "cancelled", 40, 1.0), False, "stopped"),
        (Failed(4, 1, "boom"), False, "failed"),
    ],
)
def test_one_run_state_machine(last: object, held: bool, state: str) -> None:
    assert run_state(last, held) == state


def test_the_watch_picker_lists_runs_as_the_run_table_does(isolated_home: Path) -> None:
    done, died, live = new_run_dir("a"), new_run_dir("b"), new_run_dir("c")
    for run, events in ((done, [step(0), Finished(1, 1, "cancelled", 10, 1.0)]),
                        (died, [step(3)]), (live, [step(5)])):  # fmt: skip
        writer = MetricsWriter(run / "metrics.jsonl")
        for event in events:
            writer(event)
        writer.close()
    with RunLock(live):  # this process trains there
        labels = dict(known_runs())
    # StepEnd 3 is the book's 0-based global step: 4 steps are done (as Finished counts).
    assert labels[died] == f"{died.name}  (stopped, step 4)"
    assert labels[done] == f"{done.name}  (stopped, step 1)"
    assert labels[live] == f"{live.name}  (running, step 6)"


# ---------------------------------------------------------------- RunDir


def test_run_dir_owns_every_path_inside_a_run(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "20250101-120000-book")
    root = tmp_path / "20250101-120000-book"
    assert run.path == root and run.name == "20250101-120000-book"
    assert run.config == root / "config.toml"
    assert run.metrics == root / "metrics.jsonl"
    assert run.samples == root / "samples.txt"
    assert run.checkpoints == root / "checkpoints"
    assert run.checkpoint(20) == root / "checkpoints" / "step-000020"
    assert run.exports == root / "exports"
    assert run.pth_export("step-000020") == root / "exports" / "step-000020.pth"
    assert run.hf_export("best") == root / "exports" / "best-hf"
    assert run.loss_plot == root / "loss.png"
    assert RunDir(str(root)) == run  # a str or a Path names the same run


def test_run_dir_from_a_checkpoint_path(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r1")
    assert RunDir.of_checkpoint(run.checkpoint(7)) == run
    assert RunDir.of_checkpoint(str(run.checkpoints / "pinned")) == run
    assert checkpoint_label(run.checkpoint(7)) == "r1/step-000007"
    # A checkpoint folder outside a run's checkpoints/ belongs to no run.
    loose = tmp_path / "somewhere" / "step-000007"
    assert RunDir.of_checkpoint(loose) is None
    assert checkpoint_label(loose) == str(loose)


def test_run_dir_lists_checkpoints_without_temporaries(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    assert run.checkpoint_dirs() == [] and not run.has_checkpoints() and not run.is_run()
    for name in ("step-000002", "step-000001", ".tmp-step-000003-1-2"):
        (run.checkpoints / name).mkdir(parents=True)
    assert run.checkpoint_dirs() == [run.checkpoint(1), run.checkpoint(2)]
    assert run.has_checkpoints() and not run.is_run()  # no config or metrics yet
    write_run_config(run.path, GPTConfig(), TrainConfig())
    assert run.is_run()


def test_metrics_writer_puts_samples_in_the_run_folder(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    writer = MetricsWriter(run.metrics)
    writer(Sample(0, 4, "Every effort moves you"))
    writer.close()
    assert "Every effort moves you" in run.samples.read_text(encoding="utf-8")


def test_run_config_keeps_text_toml_needs_to_escape(tmp_path: Path) -> None:
    # Emoji, quotes, a tab and a backslash: the config must still load back equal.
    train = TrainConfig(start_context='Every "effort" 😀\tmoves \\ you', lr=1e-5)
    path = write_run_config(tmp_path, GPTConfig(), train)
    assert path == RunDir(tmp_path).config
    assert path.read_text(encoding="utf-8").startswith("# written by gpt-tui")
    assert load_run_config(path) == (GPTConfig(), train)
