"""Run folders, the metrics.jsonl stream and its follower."""

from __future__ import annotations

import json
from pathlib import Path

from gptcore.config import GPTConfig, TrainConfig, load_run_config
from gptcore.events import EvalEnd, Failed, Finished, Sample, StepEnd
from gptcore.runs import (
    MetricsFollower,
    MetricsWriter,
    list_runs,
    new_run_dir,
    read_metrics,
    write_run_config,
)


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


def test_list_runs_reports_status(isolated_home: Path) -> None:
    done, running = new_run_dir("a"), new_run_dir("b")
    w = MetricsWriter(done / "metrics.jsonl")
    w(step(0))
    w(Finished(1, 1, "cancelled", 10, 1.0))
    w.close()
    w = MetricsWriter(running / "metrics.jsonl")
    w(step(3))
    w.close()
    info = {r.name: r for r in list_runs()}
    assert info[done.name].status == "cancelled"
    assert info[running.name].status == "running" and info[running.name].last_step == 3
