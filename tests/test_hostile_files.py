"""Hostile files (issue 25): every file gpt-tui reads back goes through one typed reader
(gptcore.util.typedfile). Wrong types, NaN / infinite / huge numbers, huge or negative
timestamps, deep nesting, FIFOs and devices in a file's place, unreadable folders and
oversize files become a damaged entry or a one-line message naming the file (and the
field), in `runs`, `runs --json`, `timeline`, `checkpoints list/show`, `generate`,
`speedlab --list`, the Runs tab and watch mode: never a traceback, a hang or a crash.

Reads that could hang (a FIFO opened for reading) run under `guarded`, a thread joined
with a generous limit: only a guard against a hang, never a timing assertion."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gptcore.cli import main
from gptcore.errors import CheckpointError, ConfigError, DamagedFile
from gptcore.runs.checkpoint import checkpoint_summary, load_checkpoint
from gptcore.runs.checkpoints import list_checkpoints
from gptcore.runs.events import (
    EVENT_NAMES,
    Finished,
    RunStarted,
    StepEnd,
    decode_line,
    to_record,
)
from gptcore.runs.metrics import MAX_LINE, MetricsFollower, MetricsWriter
from gptcore.runs.rundir import write_run_config
from gptcore.runs.table import SeriesFollower, row_record, run_row, run_table
from gptcore.runs.train_state import TrainState
from gptcore.sampling.timeline import SampleCache, sample_timeline
from gptcore.settings.files import load_run_config
from gptcore.settings.sampling import GenerationSettings
from gptcore.settings.train import TrainConfig
from gptcore.speedlab.results import RungResult, SpeedReport, results_dir, save_report
from gptcore.util.hashcache import HashCache
from gptcore.util.paths import runs_dir
from gptcore.util.typedfile import LAST_TIME, MAX_COUNT, read_json, read_toml
from tests.tui_helpers import (
    GUARD_S,
    TINY,
    host_app,
    make_app,
    make_checkpoint,
    run_async,
    settle,
    train_state,
    wait_for,
    write_corpus,
)
from tui.screens.runs import RunsPane

T = TypeVar("T")
ROOT = os.geteuid() == 0  # root reads a chmod 000 folder anyway
HYPOTHESIS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SHORT = GenerationSettings(max_new_tokens=2)
NESTED = "[" * 100_000 + "]" * 100_000  # msgspec, json and tomllib all recurse on it


def guarded(work: Callable[[], T]) -> T:
    """`work()` in a thread; fails (instead of hanging the suite) if it never returns."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = work()
        except BaseException as exc:  # re-raised in the test's thread
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(GUARD_S)
    assert not thread.is_alive(), f"{work} hung (a FIFO or device read blocking?)"
    if "error" in out:
        raise out["error"]
    return out["value"]


def strict_json(text: str) -> Any:
    """json.loads that refuses bare NaN / Infinity (not JSON)."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"bare {constant} in JSON output")

    return json.loads(text, parse_constant=refuse)


# ---------------------------------------------------------------- hostile values

# Raw JSON texts: wrong types, non-finite and huge numbers, timestamps, deep nesting.
RAW = st.one_of(
    st.text(max_size=8).map(json.dumps),
    st.lists(st.integers(-3, 3), max_size=3).map(json.dumps),
    st.dictionaries(st.text(max_size=3), st.integers(-3, 3), max_size=2).map(json.dumps),
    st.booleans().map(json.dumps),
    st.just("null"),
    st.sampled_from(
        [
            "NaN",
            "Infinity",
            "-Infinity",
            "1e308",
            "-1e308",
            "1e400",
            "-1e400",
            "1" + "0" * 400,
            "-1" + "0" * 400,
            str(2**63),
            str(2**64),
            str(2**53 + 1),
            "-1",
            "-1.5",
            "0",
            "0.5",
            "1e20",
            "5e9",
            "4102444801",
            "-1700000000",
        ]
    ),  # fmt: skip
    st.integers().map(str),
    st.floats().map(json.dumps),  # NaN / Infinity as Python's json writes them
    st.integers(1, 3000).map(lambda d: "[" * d + "]" * d),
    st.just(NESTED),
)

START = RunStarted("/r", "cpu", "fp32", 100, 12_345, time=1_700_000_000.0)
STEP = StepEnd(3, 0, 5.25, 4e-4, 512, 900.0, 1.0, None, 0.5, 100, time=1_700_000_001.0)
FINISH = Finished(4, 1, "completed", 640, 2.0, time=1_700_000_002.0)
PLAIN = {"Count": 7, "int": 7, "float": 2.5, "str": "x", "bool": True}


def sample_event(cls: type) -> Any:
    """An event of `cls` with a plain value in every field (None where it may be)."""
    values = {}
    for f in dataclasses.fields(cls):
        annotation = str(f.type)
        if annotation == "Timestamp":
            values[f.name] = 1_700_000_003.0
        else:
            values[f.name] = None if "None" in annotation else PLAIN.get(annotation, "x")
    return cls(**values)


SAMPLE_EVENTS = [START, STEP, FINISH, *(sample_event(cls) for cls in EVENT_NAMES)]


def with_raw(record: dict[str, Any], key: str, raw: str) -> bytes:
    """`record` as a metrics.jsonl line with `key` set to the raw JSON text `raw`."""
    record = {**record, key: "@RAW@"}
    return json.dumps(record).replace('"@RAW@"', raw).encode()


def check_types(event: Any) -> None:
    """Every field of a decoded event has its declared type and range."""
    for name, annotation in {f: event.__dataclass_fields__[f].type for f in vars(event)}.items():
        value = getattr(event, name)
        if value is None:
            assert "None" in annotation, (name, annotation)
            continue
        if annotation.startswith("Count"):
            assert type(value) is int and 0 <= value <= MAX_COUNT, (name, value)
        elif annotation.startswith("int"):
            assert type(value) is int, (name, value)
        elif annotation.startswith("Timestamp"):
            assert type(value) is float and 0 <= value <= LAST_TIME, (name, value)
        elif annotation.startswith("float"):
            assert type(value) is float, (name, value)
        elif annotation.startswith("str"):
            assert type(value) is str, (name, value)
        elif annotation.startswith("bool"):
            assert type(value) is bool, (name, value)


@HYPOTHESIS
@given(data=st.data(), raw=RAW)
def test_any_value_in_any_event_field_is_typed_or_a_damaged_line_naming_it(
    data: st.DataObject, raw: str
) -> None:
    event = data.draw(st.sampled_from(SAMPLE_EVENTS))
    record = to_record(event)
    key = data.draw(st.sampled_from(sorted(record)))
    line = with_raw(record, key, raw)
    try:
        decoded = decode_line(line, "RUN/metrics.jsonl")
    except DamagedFile as exc:
        assert str(exc).startswith("RUN/metrics.jsonl "), exc
        assert "\n" not in str(exc)
        if key != "event":  # a wrong event name may fail on another event's fields
            assert exc.field == key or (exc.field is None and "nested too deeply" in str(exc))
    else:
        if key == "event":
            assert decoded is None or type(decoded) in EVENT_NAMES
        else:
            assert type(decoded) is type(event)
        if decoded is not None:
            check_types(decoded)


def test_the_writers_null_for_nan_and_older_bare_nan_both_read_as_nan() -> None:
    event = StepEnd(3, 0, math.nan, 4e-4, 512, 900.0, math.nan, None, time=1_700_000_000.0)
    bare = json.dumps(to_record(event)).encode()  # NaN, as json.dumps writes it
    assert b"NaN" in bare
    for line in (bare, bare.replace(b"NaN", b"null")):
        decoded = decode_line(line)
        assert isinstance(decoded, StepEnd) and math.isnan(decoded.loss)
    assert decode_line(bare.replace(b"NaN", b"null")).grad_norm is None  # optional stays None


# ---------------------------------------------------------------- the run table


def hostile_run(name: str, lines: list[bytes], root: Path | None = None) -> Path:
    """A run folder under the runs folder (or `root`) whose metrics.jsonl has these
    lines after a good start and step and before a good finish."""
    run = (root or runs_dir()) / name
    run.mkdir(parents=True)
    good = [json.dumps(to_record(e)).encode() for e in (START, STEP, FINISH)]
    (run / "metrics.jsonl").write_bytes(b"\n".join([good[0], good[1], *lines, good[2]]) + b"\n")
    return run


@HYPOTHESIS
@given(data=st.data(), raws=st.lists(RAW, min_size=1, max_size=4))
def test_runs_and_runs_json_read_any_metrics_lines(
    data: st.DataObject, raws: list[str], capsys: pytest.CaptureFixture
) -> None:
    step = to_record(STEP)
    lines = [with_raw(step, data.draw(st.sampled_from(sorted(step))), raw) for raw in raws]
    with tempfile.TemporaryDirectory() as tmp:
        check_runs_read(hostile_run("hostile", lines, Path(tmp)), capsys)


def check_runs_read(run: Path, capsys: pytest.CaptureFixture) -> None:
    row = run_row(run)
    assert row.steps == 4 and row.state == "finished"  # the good lines still count
    if row.problem is not None:
        assert f"{run / 'metrics.jsonl'} line " in row.problem and "\n" not in row.problem
    strict_json(json.dumps(row_record(row)))
    follower = SeriesFollower(run)
    follower.update()
    assert all(isinstance(v, float) for v in follower.series.step_loss)
    capsys.readouterr()
    assert main(["runs", str(run)]) == 0
    assert main(["runs", "--json", str(run)]) == 0
    (record,) = strict_json(capsys.readouterr().out.splitlines()[-1])
    assert record["problem"] == row.problem


def test_each_kind_of_damage_is_a_row_naming_the_file_and_field(
    capsys: pytest.CaptureFixture,
) -> None:
    step = to_record(STEP)
    cases = {
        "string-loss": (with_raw(step, "loss", '"low"'), "field 'loss'"),
        "list-event": (with_raw(step, "event", '["step"]'), "field 'event'"),
        "nan-time": (with_raw(step, "time", "NaN"), "field 'time'"),
        "huge-time": (with_raw(step, "time", "1e300"), "field 'time'"),
        "negative-time": (with_raw(step, "time", "-5"), "field 'time'"),
        "int-too-big": (with_raw(step, "lr", "1" + "0" * 400), "field 'lr'"),
        "deep": (NESTED.encode(), "nested too deeply"),
        "deep-field": (with_raw(step, "loss", NESTED), "field 'loss' must be float, got array"),
    }
    for name, (line, _) in cases.items():
        hostile_run(name, [line])
    rows = {row.name: row for row in guarded(run_table)}
    for name, (_, named) in cases.items():
        problem = rows[name].problem
        assert problem is not None and "metrics.jsonl line 3" in problem and named in problem
        assert rows[name].state == "finished" and rows[name].started == 1_700_000_000.0
    capsys.readouterr()
    assert guarded(lambda: main(["runs"])) == 0
    out = capsys.readouterr().out
    assert "string-loss: 1 damaged line skipped" in out and "field 'loss'" in out
    assert guarded(lambda: main(["runs", "--json"])) == 0
    assert len(strict_json(capsys.readouterr().out)) == len(cases)


def special_files(run: Path, name: str) -> dict[str, Path]:
    """Three runs with a FIFO, /dev/zero and a folder in place of `name`."""
    made = {}
    for kind in ("fifo", "device", "folder"):
        folder = run.parent / f"{run.name}-{kind}"
        folder.mkdir(parents=True)
        target = folder / name
        if kind == "fifo":
            os.mkfifo(target)
        elif kind == "device":
            os.symlink("/dev/zero", target)
        else:
            target.mkdir()
        made[kind] = folder
    return made


@pytest.mark.parametrize("name", ["config.toml", "metrics.jsonl", ".lock"])
def test_a_fifo_or_device_in_a_run_is_named_never_opened(
    name: str, capsys: pytest.CaptureFixture
) -> None:
    runs = special_files(runs_dir() / "special", name)
    for folder in runs.values():
        if name != "config.toml":
            write_run_config(folder, TINY, TrainConfig(batch_size=2))
        if name != "metrics.jsonl":
            (folder / "metrics.jsonl").write_text(json.dumps(to_record(START)) + "\n")
    rows = {row.name: row for row in guarded(run_table)}
    assert len(rows) == 3
    words = {"fifo": "a FIFO", "device": "a character device", "folder": "a folder"}
    for kind, folder in runs.items():
        row = rows[folder.name]
        if name == ".lock":  # a lock nobody can have written: not held, not a hang
            assert row.problem is None and row.state == "stopped"
            continue
        assert row.problem == f"{folder / name} is {words[kind]}" + (
            " (named pipe), not a regular file" if kind == "fifo" else ", not a regular file"
        )
        # The metrics, readable, say how the run went; without them it is "new".
        assert row.state == ("stopped" if name == "config.toml" else "new")
    capsys.readouterr()
    assert guarded(lambda: main(["runs", "--json"])) == 0
    strict_json(capsys.readouterr().out)


def test_an_unreadable_run_folder_is_a_damaged_row(capsys: pytest.CaptureFixture) -> None:
    run = hostile_run("locked", [])
    write_run_config(run, TINY, TrainConfig(batch_size=2))
    run.chmod(0)
    try:
        (row,) = guarded(run_table)
        capsys.readouterr()
        assert guarded(lambda: main(["runs"])) == 0
        assert guarded(lambda: main(["runs", "--json"])) == 0
        out = capsys.readouterr().out
        infos = guarded(list_checkpoints)
    finally:
        run.chmod(0o755)
    if ROOT:  # permissions do not stop root: the run reads as any other
        assert row.problem is None and row.state == "finished" and infos == []
    else:
        assert row.state == "damaged" and row.problem is not None
        assert f"{run / 'config.toml'} cannot be read (Permission denied)" == row.problem
        assert f"locked: {row.problem}" in out
        (info,) = infos
        assert info.error is not None and "cannot be read" in info.error


def test_an_overlong_line_is_one_damaged_line_and_the_rest_is_read(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    good = json.dumps(to_record(STEP)).encode()
    with path.open("wb") as f:
        f.write(good + b"\n" + b"x" * (MAX_LINE + 10) + b"\n" + good + b"\n")
    follower = MetricsFollower(path)
    events = follower.poll()
    assert len(events) == 2 and follower.damaged == 1
    assert follower.first_damage == f"{path} line 2 is longer than {MAX_LINE:,} bytes"


# ---------------------------------------------------------------- config files


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[train]\nlr = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("# " + "x" * (2 << 20) + "\n", "is too large"),
        ("[model\nnot toml", "invalid TOML in"),
    ],
)
def test_a_damaged_config_is_one_config_error(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem) as info:
        load_run_config(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_the_reader_refuses_special_and_oversize_files(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.toml"
    zero.symlink_to("/dev/zero")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2048)
    with pytest.raises(DamagedFile, match=r"fifo.json is a FIFO \(named pipe\), not a regular"):
        guarded(lambda: read_json(fifo, dict))
    with pytest.raises(DamagedFile, match="zero.toml is a character device, not a regular"):
        guarded(lambda: read_toml(zero, dict))
    with pytest.raises(DamagedFile, match=r"big.json is too large \(2,048 bytes; at most 1,024"):
        read_json(big, dict, limit=1024)
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "missing.json", dict)


# ---------------------------------------------------------------- checkpoints

META_FIELDS = [
    "step", "epoch", "tokens_seen", "created", "reason", "best_val_loss", "val_loss",
    "train_loss", "loss_step", "precision", "model_config", "train_config", "rng", "data",
    "files", "sizes",
]  # fmt: skip


@pytest.fixture
def checkpoint() -> Path:
    return make_checkpoint("ckpt-run", "step-000005", 5)


@HYPOTHESIS
@given(data=st.data(), raw=RAW)
def test_any_value_in_any_meta_field_loads_typed_or_is_damaged_naming_it(
    checkpoint: Path, data: st.DataObject, raw: str
) -> None:
    key = data.draw(st.sampled_from(META_FIELDS))
    meta_path = checkpoint / "meta.json"
    good = meta_path.read_bytes()
    try:
        meta_path.write_bytes(with_raw(json.loads(good), key, raw))
        try:
            ckpt = load_checkpoint(checkpoint, verify=False)
        except CheckpointError as exc:
            assert "\n" not in str(exc) and str(meta_path) in str(exc)
            assert f"field '{key}" in str(exc) or "nested too deeply" in str(exc), exc
        else:
            summary = checkpoint_summary(ckpt)
            strict_json(json.dumps(summary))
            assert all(type(summary[k]) is int for k in ("step", "tokens_seen", "epoch"))
            assert 0 <= summary["created"] <= LAST_TIME
            TrainState.from_checkpoint(ckpt)
        (info,) = list_checkpoints()
        assert info.error is None or str(meta_path) in info.error
    finally:
        meta_path.write_bytes(good)


def test_a_bad_order_seed_is_a_damaged_field_not_a_value_error(checkpoint: Path) -> None:
    meta_path = checkpoint / "meta.json"
    meta = json.loads(meta_path.read_text())
    for seed in ('"x"', "-1", "1e400", "[1]", "true"):
        meta_path.write_bytes(with_raw(meta, "data", '{"order_seed": ' + seed + "}"))
        with pytest.raises(CheckpointError, match="field 'data.order_seed'"):
            load_checkpoint(checkpoint, verify=False)


def test_later_optional_fields_may_be_absent_and_unknown_ones_are_ignored(
    checkpoint: Path,
) -> None:
    meta_path = checkpoint / "meta.json"
    meta = json.loads(meta_path.read_text())
    for key in ("precision", "loss_step", "sizes", "created", "reason", "rng", "data"):
        meta.pop(key, None)
    meta["from_the_future"] = {"anything": [1, 2, 3]}
    meta_path.write_text(json.dumps(meta))
    ckpt = load_checkpoint(checkpoint)
    assert (ckpt.step, ckpt.precision, ckpt.step_in_epoch) == (5, None, 0)
    assert ckpt.meta["from_the_future"] == {"anything": [1, 2, 3]}


@pytest.mark.parametrize("kind", ["fifo", "device", "deep", "huge"])
def test_checkpoints_list_show_and_generate_name_a_damaged_meta(
    checkpoint: Path, kind: str, capsys: pytest.CaptureFixture
) -> None:
    bad = make_checkpoint("ckpt-run", "step-000009", 9)
    meta = bad / "meta.json"
    meta.unlink()
    if kind == "fifo":
        os.mkfifo(meta)
    elif kind == "device":
        meta.symlink_to("/dev/zero")
    elif kind == "deep":
        meta.write_text(
            '{"format": "gpt-tui-checkpoint", "format_version": 1, "x": ' + NESTED + "}"
        )
    else:
        meta.write_bytes(b" " * (17 << 20))
    words = {
        "fifo": "is a FIFO",
        "device": "is a character device",
        "deep": "is nested too deeply",
        "huge": "is too large",
    }[kind]
    capsys.readouterr()
    assert guarded(lambda: main(["checkpoints", "list"])) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "step-000009" in x)
    assert "BROKEN" in line and f"{meta} {words}" in line
    assert guarded(lambda: main(["checkpoints", "show", str(bad)])) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpt-tui: error: ") and err.count("\n") == 1 and str(meta) in err
    # A run's latest is its newest usable checkpoint: generate still works from the run.
    (checkpoint.parent.parent / "config.toml").symlink_to("/dev/zero")
    args = ["generate", "--checkpoint", "ckpt-run", "--max-new-tokens", "2", "--prompt", "Hi"]
    assert guarded(lambda: main(args)) == 0
    assert capsys.readouterr().out.startswith("Hi")
    args[2] = str(bad)
    assert guarded(lambda: main(args)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{meta} {words}" in err


# ---------------------------------------------------------------- caches and saved results


@pytest.mark.parametrize("kind", ["fifo", "device", "deep", "wrong", "huge"])
def test_the_timeline_sets_a_damaged_cache_aside(
    checkpoint: Path, kind: str, capsys: pytest.CaptureFixture
) -> None:
    run = checkpoint.parent.parent
    cache = run / "timeline.json"
    if kind == "fifo":
        os.mkfifo(cache)
    elif kind == "device":
        cache.symlink_to("/dev/zero")
    elif kind == "deep":
        cache.write_text('{"format": "gpt-tui-timeline", "version": 1, "samples": ' + NESTED + "}")
    elif kind == "wrong":
        cache.write_text('{"format": "gpt-tui-timeline", "version": 1, "samples": [{"text": 5}]}')
    else:
        cache.write_bytes(b" " * (65 << 20))
    assert guarded(lambda: SampleCache(cache)).problem.startswith(str(cache))
    fifo_meta = make_checkpoint("ckpt-run", "step-000009", 9) / "meta.json"
    fifo_meta.unlink()
    os.mkfifo(fifo_meta)
    entry, damaged = guarded(lambda: sample_timeline(run, "Hi", 1, SHORT, device="cpu"))
    assert entry.error is None and entry.text is not None
    assert damaged.error == f"{fifo_meta} is a FIFO (named pipe), not a regular file"
    capsys.readouterr()
    assert guarded(lambda: main(["timeline", str(run), "--max-new-tokens", "2"])) == 0
    out = capsys.readouterr().out
    assert "step 5" in out and f"damaged: {damaged.error}" in out


def saved_report() -> Path:
    report = SpeedReport(
        "cpu", "Test CPU", "2.5", "tiny", 32, 2, 3, "2026-01-01T00:00:00Z", "peak RSS rise",
        [RungResult(0, "book", "the book's model", 1000.0, 0.1, 10**6, 2)],
    )  # fmt: skip
    return save_report(report)


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("fifo", "is a FIFO"),
        ("device", "is a character device"),
        ("deep", "is nested too deeply"),
        ("string-rate", "field 'rungs[0].tokens_per_s'"),
        ("nan-rate", "field 'rungs[0].tokens_per_s'"),
        ("huge-int", "field 'context'"),
        ("bool-count", "field 'steps'"),
        ("huge", "is too large"),
    ],
)
def test_speedlab_lists_damaged_results_by_name(
    kind: str, words: str, capsys: pytest.CaptureFixture
) -> None:
    good = saved_report()
    bad = results_dir() / f"zzz-{kind}.json"
    data = json.loads(good.read_text())
    if kind == "fifo":
        os.mkfifo(bad)
    elif kind == "device":
        bad.symlink_to("/dev/zero")
    elif kind == "deep":  # in a field this version does not know (and skips)
        bad.write_text(json.dumps({"notes": "@RAW@", **data}).replace('"@RAW@"', NESTED))
    elif kind == "huge":
        bad.write_bytes(b" " * (2 << 20))
    else:
        text = {"string-rate": '"fast"', "nan-rate": "NaN"}.get(kind)
        if text is not None:
            data["rungs"][0]["tokens_per_s"] = "@RAW@"
        elif kind == "huge-int":
            data["context"], text = "@RAW@", "1" + "0" * 400
        else:
            data["steps"], text = "@RAW@", "true"
        bad.write_text(json.dumps(data).replace('"@RAW@"', text))
    capsys.readouterr()
    assert guarded(lambda: main(["speedlab", "--list"])) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("damaged: "))
    assert str(bad) in line and words in line
    assert str(good) in out  # the good result is still listed
    assert guarded(lambda: main(["speedlab", "--list", "--json"])) == 0
    rows = strict_json(capsys.readouterr().out)
    assert [r["path"] for r in rows if "error" in r] == [str(bad)]


@pytest.mark.parametrize("content", ["fifo", NESTED, '{"/x": [1, 2, "three", 4]}', "[1]"])
def test_a_damaged_hash_cache_is_forgotten(tmp_path: Path, content: str) -> None:
    path = tmp_path / "sha256.json"
    if content == "fifo":
        os.mkfifo(path)
    else:
        path.write_text(content)
    cache = guarded(lambda: HashCache(path))
    file = tmp_path / "f"
    file.write_bytes(b"abc")
    assert cache.sha256(file).startswith("ba7816bf")


@pytest.mark.parametrize(
    "content", ["fifo", NESTED, '{"key": {}, "train_loss": "x", "val_loss": NaN}']
)
def test_a_damaged_reference_cache_is_measured_again(tmp_path: Path, content: str) -> None:
    from gptcore.training.reference import _read_cached

    path = tmp_path / "ref.json"
    if content == "fifo":
        os.mkfifo(path)
    else:
        path.write_text(content)
    assert guarded(lambda: _read_cached(path, {})) is None
    path.unlink()
    path.write_text('{"key": {"a": 1}, "train_loss": 3.5, "val_loss": 4.0}')
    assert _read_cached(path, {"a": 1}) == (3.5, 4.0)


def test_a_damaged_app_settings_file_gives_the_defaults() -> None:
    from tui.settings import Settings, load_settings, settings_path

    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    for make in (lambda: os.mkfifo(path), lambda: path.write_text("a = " + NESTED)):
        make()
        assert guarded(load_settings) == Settings()
        path.unlink()


# ---------------------------------------------------------------- the app

SIZE = (100, 30)


@run_async
async def test_the_runs_tab_shows_damaged_runs_and_overlays_them() -> None:
    step = to_record(STEP)
    hostile_run("bad-lines", [with_raw(step, "loss", '"low"'), NESTED.encode()])
    fifo = runs_dir() / "fifo-config"
    fifo.mkdir()
    os.mkfifo(fifo / "config.toml")
    deep = runs_dir() / "deep-config"
    deep.mkdir()
    (deep / "config.toml").write_text("[train]\nlr = " + "[" * 5000 + "]" * 5000 + "\n")
    async with host_app(RunsPane).run_test(size=SIZE) as pilot:
        pane = pilot.app.query_one(RunsPane)
        await wait_for(pilot, lambda: pane.loaded)
        states = {row.name: row.state for row in pane.rows}
        assert states == {
            "bad-lines": "finished",
            "fifo-config": "damaged",
            "deep-config": "damaged",
        }
        messages = [n.message for n in pilot.app._notifications]
        assert any(f"{fifo / 'config.toml'} is a FIFO" in m for m in messages)
        assert any(f"{deep / 'config.toml'} is damaged: nested too deeply" in m for m in messages)
        assert any("bad-lines/metrics.jsonl line 3" in m and "field 'loss'" in m for m in messages)
        # Overlay every run, the damaged ones too: read and drawn, nothing crashes.
        pane.query_one("#runs-table").focus()
        for _ in pane.rows:
            await pilot.press("space")
            await pilot.press("down")
        await wait_for(pilot, lambda: len(pane.selected) == 3)
        await wait_for(pilot, lambda: set(pane.selected) <= set(pane.series) | {fifo, deep})
        await settle(pilot)
        assert pane.series[runs_dir() / "bad-lines"].step_loss == [5.25]
        assert pilot.app._exception is None


@run_async
async def test_watch_mode_skips_damaged_lines_says_which_and_keeps_following(
    tmp_path: Path,
) -> None:
    run = tmp_path / "watched"
    run.mkdir()
    writer = MetricsWriter(run / "metrics.jsonl")
    writer(RunStarted(str(run), "cpu", "fp32", 100, 10**6))
    writer.close()
    step = to_record(StepEnd(0, 0, 5.0, 4e-4, 64, 900.0, 1.0, None, 1.0, 100))
    with (run / "metrics.jsonl").open("ab") as f:
        f.write(with_raw(step, "time", "1e300") + b"\n" + NESTED.encode() + b"\n")
    app = make_app(write_corpus(tmp_path), watch_dir=run)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, "corpus")
        await wait_for(
            pilot,
            lambda: any(n.title == "Watch" and "line 2" in n.message for n in app._notifications),
        )
        note = next(n for n in app._notifications if n.title == "Watch" and "line 2" in n.message)
        assert note.message == (
            f"{run / 'metrics.jsonl'} line 2 is damaged: field 'time' must be float <= {LAST_TIME}"
        )
        writer = MetricsWriter(run / "metrics.jsonl")
        writer(StepEnd(0, 0, 4.5, 4e-4, 64, 900.0, 1.0, None, 1.0, 100))
        with (run / "metrics.jsonl").open("ab") as f:
            f.write(with_raw(step, "loss", "[1, 2]") + b"\n")
        writer(Finished(1, 0, "completed", 64, 1.0))
        writer.close()
        await wait_for(pilot, lambda: train_state(pilot).state == "finished")
        assert train_state(pilot).last_step.loss == 4.5
        assert app._exception is None


def test_a_fifo_given_as_a_pth_and_a_deep_set_value_are_one_line(tmp_path: Path) -> None:
    from gptcore.runs.checkpoint import safe_torch_load
    from gptcore.settings.declare import parse_override

    fifo = tmp_path / "book.pth"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match=r"book.pth is a FIFO \(named pipe\)"):
        guarded(lambda: safe_torch_load(fifo))
    with pytest.raises(ConfigError, match="--set lr: the value is nested too deeply"):
        parse_override("lr=" + "[" * 100_000)
