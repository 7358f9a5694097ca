"""Hostile checkpoint files (issue 14): hand-edited meta.json, corrupted weights, resuming
past a damaged latest checkpoint, NaN in metrics.jsonl, a full disk, stale temp files."""

from __future__ import annotations

import errno
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gptcore.cli import main
from gptcore.errors import CheckpointError, DiskFullError
from gptcore.runs.checkpoint import load_checkpoint, save_checkpoint
from gptcore.runs.checkpoints import list_checkpoints, run_picks
from gptcore.runs.events import StepEnd
from gptcore.runs.metrics import MetricsWriter, read_metrics
from gptcore.settings.train import TrainConfig
from gptcore.training.resume import prepare_run
from gptcore.util.fsutil import atomic_write_text
from gptcore.util.paths import runs_dir
from gptcore.weights.modelspec import checkpoint_path
from tests.run_helpers import write_tiny_run_config
from tests.tui_helpers import host_app, run_async, tiny_model, wait_for
from tui.runstate import RunState

SHA = "0" * 64

# (field, raw JSON text): each one crashed a listing or was taken at face value.
BAD_FIELDS = [
    ("val_loss", '"low"'),
    ("created", "1e20"),
    ("step", "1e400"),  # json reads it as inf
    ("step", "-3"),
    ("epoch", "2.5"),
    ("tokens_seen", "true"),
    ("train_loss", "NaN"),
    ("best_val_loss", "-Infinity"),
    ("model_config", "[1]"),
    ("train_config", '"x"'),
    ("data", "[]"),
    ("files", '{"weights.safetensors": "not a digest"}'),
    ("files", '{"weights.safetensors": "' + SHA + '", "../../etc/passwd": "' + SHA + '"}'),
]


def save(run: Path, step: int, **kw) -> Path:
    train = TrainConfig(batch_size=2, max_length=16).to_dict()
    return save_checkpoint(
        run / "checkpoints" / f"step-{step:06d}",
        tiny_model(),
        train_config=train,
        step=step,
        epoch=0,
        tokens_seen=step * 32,
        val_loss=7.0,
        train_loss=7.5,
        **kw,
    )


def edit_meta(ckpt: Path, field: str, raw: str) -> None:
    """Set one meta.json field to a raw JSON text (so 1e400 and NaN stay as written)."""
    meta = json.loads((ckpt / "meta.json").read_text())
    meta[field] = "@RAW@"
    (ckpt / "meta.json").write_text(json.dumps(meta).replace('"@RAW@"', raw))


def flip_bytes(file: Path) -> None:
    """Change bytes in the middle of a file, keeping its size (a bit rot / an edit)."""
    data = bytearray(file.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 8] = bytes(b ^ 0xFF for b in data[mid : mid + 8])
    file.write_bytes(bytes(data))


def age(file: Path, seconds: float = 3600) -> None:
    """Make a file look written `seconds` ago (so a hash cache may remember it)."""
    past = os.stat(file).st_mtime - seconds
    os.utime(file, (past, past))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------- meta.json, field by field


@pytest.mark.parametrize(("field", "raw"), BAD_FIELDS)
def test_a_bad_meta_field_is_listed_damaged_and_named(
    field: str, raw: str, capsys: pytest.CaptureFixture
) -> None:
    run = runs_dir() / "hostile"
    good = save(run, 1)
    bad = save(run, 2)
    edit_meta(bad, field, raw)

    with pytest.raises(CheckpointError, match=f"field '{field}'"):
        load_checkpoint(bad, verify=False)
    infos = {i.name: i for i in list_checkpoints()}
    assert infos["step-000001"].error is None
    assert f"field '{field}'" in infos["step-000002"].error
    # The run's latest usable checkpoint is the good one, for every command.
    assert run_picks(infos.values())["hostile"].latest.path == good
    assert checkpoint_path(run) == good

    capsys.readouterr()
    assert main(["checkpoints", "list"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "step-000002" in x)
    assert "BROKEN" in line and f"field '{field}'" in line
    assert main(["checkpoints", "list", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["error"] is not None for r in rows] == [False, True]

    assert main(["checkpoints", "show", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("gpt-tui: error: ")
    assert f"field '{field}'" in captured.err


def test_good_meta_still_loads_and_old_checkpoints_without_sizes_too(tmp_path: Path) -> None:
    ckpt = save(tmp_path / "run", 3)
    meta = json.loads((ckpt / "meta.json").read_text())
    assert meta["sizes"]["weights.safetensors"] == (ckpt / "weights.safetensors").stat().st_size
    del meta["sizes"]  # as written before sizes were recorded
    (ckpt / "meta.json").write_text(json.dumps(meta))
    loaded = load_checkpoint(ckpt)
    assert (loaded.step, loaded.val_loss, loaded.train_loss) == (3, 7.0, 7.5)


@run_async
async def test_the_checkpoints_screen_opens_with_hostile_meta_and_shows_warnings():
    from textual.widgets import DataTable

    from tui.screens.checkpoints import CheckpointsPane

    run = runs_dir() / "hostile"
    save(run, 1)
    for step, (field, raw) in enumerate(
        [("val_loss", '"low"'), ("created", "1e20"), ("step", "1e400")], start=2
    ):
        edit_meta(save(run, step), field, raw)
    app = host_app(CheckpointsPane)
    async with app.run_test(size=(160, 30)) as pilot:
        pane = app.query_one(CheckpointsPane)
        await wait_for(pilot, lambda: pane.loaded)
        table = pane.query_one(DataTable)
        assert table.row_count == 4
        rows = {str(table.get_row(k)[2]): [str(c) for c in table.get_row(k)] for k in table.rows}
        for name, field in (
            ("step-000002", "val_loss"),
            ("step-000003", "created"),
            ("step-000004", "step"),
        ):
            assert rows[name][0] == "⚠" and rows[name][3] == "damaged"
            assert f"field '{field}'" in rows[name][-1]
        assert rows["step-000001"][0] != "⚠"


# ---------------------------------------------------------------- corrupted weights


def test_corrupted_weights_are_flagged_in_the_listing(capsys: pytest.CaptureFixture) -> None:
    run = runs_dir() / "rot"
    older = save(run, 1)
    latest = save(run, 2)
    for ckpt in (older, latest):
        for f in ckpt.iterdir():
            age(f)
    assert all(i.error is None for i in list_checkpoints())  # hashed once and remembered
    flip_bytes(latest / "weights.safetensors")
    infos = {i.name: i for i in list_checkpoints()}
    assert "weights.safetensors does not match its recorded sha256" in infos["step-000002"].error
    assert run_picks(infos.values())["rot"].latest.path == older
    capsys.readouterr()
    assert main(["checkpoints", "list"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "step-000002" in x)
    assert "BROKEN" in line and "sha256" in line


def test_a_truncated_file_is_caught_by_its_size_without_hashing(tmp_path: Path) -> None:
    ckpt = save(tmp_path / "run", 1, optimizer=torch.optim.AdamW(tiny_model().parameters()))
    opt = ckpt / "optimizer.pt"
    opt.write_bytes(opt.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="optimizer.pt has .* bytes, .* recorded"):
        load_checkpoint(ckpt, verify=False)


def test_listing_hashes_an_unchanged_file_only_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import gptcore.util.hashcache as hashcache

    ckpt = save(runs_dir() / "cached", 1)
    age(ckpt / "weights.safetensors")
    hashed: list[Path] = []
    real = hashcache.sha256_file
    monkeypatch.setattr(hashcache, "sha256_file", lambda p: hashed.append(Path(p)) or real(p))
    list_checkpoints()
    list_checkpoints()
    assert hashed == [ckpt / "weights.safetensors"]
    # A file written just now is hashed again next time (its mtime may not move yet).
    fresh = save(runs_dir() / "cached", 2)
    hashed.clear()
    list_checkpoints()
    list_checkpoints()
    assert hashed == [fresh / "weights.safetensors"] * 2


# ---------------------------------------------------------------- resume falls back


def test_resume_falls_back_past_a_corrupted_latest_with_a_notice(tmp_path: Path) -> None:
    run = runs_dir() / "fallback"
    older = save(run, 1)
    latest = save(run, 2)
    flip_bytes(latest / "weights.safetensors")
    for spec in (str(run), "fallback", "fallback:latest"):
        prepared = prepare_run(resume=spec)
        assert prepared.checkpoint is not None and prepared.checkpoint.path == older
        assert "step-000002" in prepared.notice and "sha256" in prepared.notice
        assert "resuming from step-000001 (step 1)" in prepared.notice
    # A checkpoint named explicitly never silently becomes another one.
    with pytest.raises(CheckpointError, match="does not match its recorded sha256"):
        prepare_run(resume=str(latest))
    # A healthy latest gives no fallback notice (only that it holds weights, no AdamW).
    healthy = runs_dir() / "healthy"
    save(healthy, 1)
    notice = prepare_run(resume=str(healthy)).notice
    assert "resuming from" not in notice and "sha256" not in notice
    assert notice.startswith("step-000001 holds weights only (no optimizer state)")


def test_cli_resume_of_a_run_whose_latest_is_corrupted(
    tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture
) -> None:
    config = write_tiny_run_config(tmp_path / "tiny.toml")
    assert main(["train", "--config", str(config), "--set", "max_steps=2", "--quiet"]) == 0
    (run,) = (isolated_home / "data" / "runs").iterdir()
    assert main(["train", "--resume", str(run), "--set", "max_steps=4", "--quiet"]) == 0
    flip_bytes(run / "checkpoints" / "step-000004" / "weights.safetensors")
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--set", "max_steps=3"]) == 0
    captured = capsys.readouterr()
    assert "skipping damaged checkpoint(s) (step-000004:" in captured.err
    assert "resuming from step-000002 (step 2)" in captured.err
    assert "resuming at step 2" in captured.out
    assert load_checkpoint(run / "checkpoints" / "step-000003").step == 3


# ---------------------------------------------------------------- metrics.jsonl


def _strict(text: str) -> dict:
    def refuse(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_a_nan_loss_is_written_as_strict_json_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    writer = MetricsWriter(path)
    step = dict(epoch=0, lr=1e-3, tokens_seen=64, tokens_per_s=10.0)
    writer(StepEnd(step=0, loss=7.0, grad_norm=1.0, **step))
    writer(StepEnd(step=1, loss=math.nan, grad_norm=math.inf, **step))
    writer.close()
    lines = path.read_text().splitlines()
    records = [_strict(line) for line in lines]
    assert records[1]["loss"] is None and records[1]["grad_norm"] is None
    events = read_metrics(path)
    assert events[0].loss == 7.0 and math.isnan(events[1].loss)
    state = RunState()
    for event in events:
        state.apply(event)
    assert state.last_step.step == 1 and math.isnan(state.step_losses[-1])
    # Files written before hold a bare NaN: they still read.
    path.write_text(
        '{"event": "step", "step": 0, "epoch": 0, "loss": NaN, "lr": 0.001, '
        '"tokens_seen": 64, "tokens_per_s": 10.0, "grad_norm": Infinity, "time": 1.0}\n'
    )
    (event,) = read_metrics(path)
    assert math.isnan(event.loss) and event.grad_norm == math.inf


# ---------------------------------------------------------------- a full disk


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _torch_full(*args, **kwargs):
    raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")


@pytest.mark.parametrize(
    ("target", "fail"),
    [("gptcore.runs.checkpoint.save_file", _enospc), ("torch.save", _torch_full)],
)
def test_a_full_disk_on_save_says_so_in_one_line(
    target: str, fail, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tiny_model()
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.zeros((1, 4), dtype=torch.long)).sum().backward()
    optimizer.step()  # the optimizer now holds two moments per parameter
    monkeypatch.setattr(target, fail)
    folder = tmp_path / "run" / "checkpoints"
    with pytest.raises(DiskFullError) as info:
        save_checkpoint(
            folder / "step-000001",
            model,
            train_config={},
            step=1,
            epoch=0,
            tokens_seen=1,
            optimizer=optimizer,
        )
    # The weights plus AdamW's two moments per parameter, all float32.
    expected = 3 * sum(p.numel() * 4 for p in model.parameters()) / 1e6
    message = str(info.value)
    prefix = f"no space left on {folder}: the checkpoint needs about "
    assert message.startswith(prefix) and message.endswith(" MB") and "\n" not in message
    assert abs(float(message[len(prefix) : -3].replace(",", "")) - expected) <= 1
    assert list(folder.iterdir()) == []  # no temporary folder, no half checkpoint


def test_cli_train_on_a_full_disk_ends_with_one_line(
    tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    config = write_tiny_run_config(tmp_path / "tiny.toml")
    monkeypatch.setattr("gptcore.runs.checkpoint.save_file", _enospc)
    assert main(["train", "--config", str(config), "--set", "max_steps=2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith("gpt-tui: error: no space left on ")
    assert line.endswith("MB")
    (run,) = (isolated_home / "data" / "runs").iterdir()
    assert [p.name for p in (run / "checkpoints").iterdir()] == []
    last = _strict((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "failed" and "no space left" in last["error"]


class _FullFile:
    """A metrics file on a full disk: every write fails."""

    def write(self, text: str) -> int:
        _enospc()
        return 0

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_metrics_on_a_full_disk_end_the_run_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    real_init = MetricsWriter.__init__

    def full_init(self, path) -> None:
        real_init(self, path)
        self._file.close()
        self._file = _FullFile()

    monkeypatch.setattr(MetricsWriter, "__init__", full_init)
    config = write_tiny_run_config(tmp_path / "tiny.toml")
    assert main(["train", "--config", str(config), "--set", "max_steps=2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith("gpt-tui: error: no space left on ")
    assert line.endswith(": cannot write metrics.jsonl")


# ---------------------------------------------------------------- stale temporary files


def test_stale_temp_files_are_swept_on_the_next_write(tmp_path: Path) -> None:
    dead, alive = dead_pid(), os.getppid()
    stale = tmp_path / f".config.toml.{dead}-0badc0de.tmp"
    in_progress = tmp_path / f".config.toml.{alive}-0badc0de.tmp"
    unrelated = tmp_path / ".notes.tmp"
    for f in (stale, in_progress, unrelated):
        f.write_text("partial")
    atomic_write_text(tmp_path / "config.toml", "x = 1\n")
    assert not stale.exists()
    assert in_progress.exists() and unrelated.exists()
    assert (tmp_path / "config.toml").read_text() == "x = 1\n"


def test_a_kill_during_tokenizing_leaves_nothing_after_the_next_tokenize(tmp_path: Path) -> None:
    from gptcore.data.tokens import prepare_corpus

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Every effort moves you forward. " * 50)
    cache = tmp_path / "tokens"
    prepare_corpus(corpus, cache_dir=cache)
    (folder,) = cache.iterdir()
    complete = sorted(p.name for p in folder.iterdir())
    assert "manifest.json" in complete
    # As a kill mid-tokenizing leaves it: a temp file and no manifest (incomplete).
    (folder / "manifest.json").unlink()
    stale = folder / f".train.bin.{dead_pid()}-0123abcd.tmp"
    stale.write_bytes(b"\x00" * 100)
    prepare_corpus(corpus, cache_dir=cache)
    assert sorted(p.name for p in folder.iterdir()) == complete
