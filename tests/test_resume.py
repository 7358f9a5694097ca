"""Preparing a run (gptcore.training.resume): configs from a file and overrides, the
checkpoint a resume spec names, the fallback past a damaged latest checkpoint, and the
checks that refuse a resume that would not continue the same run."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gptcore.errors import CheckpointError, ConfigError, GptTuiError
from gptcore.model.gpt import GPTModel
from gptcore.runs.checkpoint import META, WEIGHTS, Checkpoint, save_checkpoint
from gptcore.runs.rundir import RunDir
from gptcore.settings.files import load_run_config
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.training.resume import (
    DATA_KEYS,
    check_resume,
    check_schedule,
    open_checkpoint,
    open_resume,
    prepare_run,
)
from gptcore.util.paths import runs_dir

from .run_helpers import write_tiny_run_config


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A run config file: a 1-layer model of width 16 on 1,600 characters."""
    return write_tiny_run_config(tmp_path / "tiny.toml")


def save(run: str | Path, step: int, model: GPTConfig, train: TrainConfig, **kw) -> Path:
    """A checkpoint of `run` (a name under the runs folder, or a folder) after `step` steps."""
    folder = RunDir(runs_dir() / run if isinstance(run, str) else run).checkpoint(step)
    torch.manual_seed(step)
    return save_checkpoint(
        folder, GPTModel(model), train_config=train.to_dict(), step=step, epoch=0,
        tokens_seen=step * 32, **kw,
    )  # fmt: skip


def damage_weights(ckpt: Path) -> None:
    data = bytearray((ckpt / WEIGHTS).read_bytes())
    data[-1] ^= 0xFF
    (ckpt / WEIGHTS).write_bytes(bytes(data))


# ------------------------------------------------------------------ new runs


def test_a_new_run_reads_its_config_and_applies_overrides_in_order(config: Path) -> None:
    model, train = load_run_config(config)
    prepared = prepare_run(config, ["batch_size=4", "model.emb_dim=32", "batch_size=3"])
    assert prepared.checkpoint is None and prepared.notice is None
    assert prepared.model_config == dataclasses.replace(model, emb_dim=32)
    assert prepared.train_config == dataclasses.replace(train, batch_size=3)  # the last wins


@pytest.mark.parametrize(
    "corpus", ['my "quoted" corpus.txt', "C:\\texts\\verdict.txt", "emoji 😀.txt", "a=b.txt"]
)
def test_the_corpus_and_init_shorthands_keep_odd_paths_exactly(config: Path, corpus: str) -> None:
    prepared = prepare_run(config, corpus=corpus, init=f"weights:{corpus}")
    assert prepared.train_config.corpus == corpus
    assert prepared.train_config.init == f"weights:{corpus}"


def test_a_shipped_preset_is_a_config() -> None:
    assert prepare_run("tiny").train_config == load_run_config("tiny")[1]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({}, "give a run config with --config FILE"),
        ({"overrides": ["batch_size=0"]}, "train.batch_size must be positive"),
        ({"overrides": ["no_such_key=1"]}, "no_such_key"),
        ({"config": "no-such-preset"}, "no-such-preset"),
    ],
)
def test_a_config_that_cannot_run_is_a_one_line_config_error(
    config: Path, args: dict, words: str
) -> None:
    if "config" not in args and args:
        args = {**args, "config": config}
    with pytest.raises(ConfigError, match=words) as info:
        prepare_run(**args)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ a front end's own configs


def test_a_front_ends_configs_are_a_source_like_a_file(config: Path) -> None:
    """The app's Train form hands over its (model, train): decoded and checked as a
    file's would be, with overrides and the corpus shorthand on top."""
    model, train = load_run_config(config)
    assert prepare_run(configs=(model, train)) == prepare_run(config)
    prepared = prepare_run(overrides=["lr=0.01"], configs=(model, train), corpus="other.txt")
    assert prepared.train_config == dataclasses.replace(train, lr=0.01, corpus="other.txt")
    assert prepared.model_config == model and prepared.checkpoint is None


@pytest.mark.parametrize(
    ("args", "words"),
    [
        # Across model and train, for every source: what the Trainer checks before it writes.
        ({"overrides": ["model.vocab_size=100"]}, "vocab_size must be at least"),
        ({"configs": (GPTConfig(vocab_size=100), TrainConfig())}, "vocab_size must be at least"),
        ({"configs": (GPTConfig(), TrainConfig()), "overrides": ["lr=-1"]}, "train.lr"),
        ({"configs": (GPTConfig(), TrainConfig()), "config": "tiny"}, "not both"),
    ],
)
def test_every_source_is_checked_the_same_way(config: Path, args: dict, words: str) -> None:
    if "configs" not in args:
        args = {**args, "config": config}
    with pytest.raises(ConfigError, match=words):
        prepare_run(**args)


def test_trainer_for_builds_what_was_prepared(run, tmp_path: Path) -> None:
    """`gpt-tui train` and the app both build their Trainer with trainer_for."""
    from gptcore.training.trainer import trainer_for

    prepared = prepare_run(resume="r", run_dir=tmp_path / "out")
    stop = threading.Event()
    trainer = trainer_for(prepared, listeners=[print], cancel_event=stop)
    assert (trainer.model_config, trainer.config) == (prepared.model_config, prepared.train_config)
    assert trainer.resume is prepared.checkpoint and trainer.run_dir == tmp_path / "out"
    trainer.cancel()
    assert stop.is_set()  # the front end's own stop event is the Trainer's


# ------------------------------------------------------------------ resuming


@pytest.fixture
def run(config: Path) -> tuple[GPTConfig, TrainConfig]:
    """Run "r" with checkpoints at steps 3 (val 2.0, the best), 6 (val 2.5) and 9 (no val)."""
    model, train = load_run_config(config)
    save("r", 3, model, train, val_loss=2.0)
    save("r", 6, model, train, val_loss=2.5)
    save("r", 9, model, train)
    return model, train


@pytest.mark.parametrize(
    ("spec", "step"),
    [
        ("r", 9),  # a run name: its latest
        ("{runs}/r", 9),  # a run folder
        ("r:latest", 9),
        ("r:best", 3),  # the lowest val loss, not the newest
        ("{runs}/r:best", 3),
        ("{runs}/r/checkpoints/step-000006", 6),  # a checkpoint folder
        ("ckpt:r", 9),  # the app's older prefixed form
    ],
)
def test_a_resume_spec_names_one_checkpoint(run, spec: str, step: int) -> None:
    text = spec.format(runs=runs_dir())
    ckpt, notice = open_resume(text)
    assert (ckpt.step, notice) == (step, None)
    assert open_checkpoint(text).path == ckpt.path


def test_resuming_without_a_config_reuses_the_checkpoints_settings(run) -> None:
    model, train = run
    prepared = prepare_run(resume="r", overrides=["max_steps=20", "eval_freq=2"])
    assert prepared.checkpoint is not None and prepared.checkpoint.step == 9
    assert prepared.model_config == model
    assert prepared.train_config == dataclasses.replace(train, max_steps=20, eval_freq=2)
    check_resume(prepared.checkpoint, prepared.model_config, prepared.train_config)


def test_resuming_with_a_config_takes_the_config_and_overrides(run, config: Path) -> None:
    prepared = prepare_run(config, ["lr=0.01"], resume="r:best")
    assert prepared.checkpoint.step == 3 and prepared.train_config.lr == 0.01


def test_init_cannot_go_with_resume(run) -> None:
    with pytest.raises(ConfigError, match="--init .* cannot go with --resume"):
        prepare_run(resume="r", init="gpt2:124M")


def test_a_resume_spec_that_names_nothing_is_a_one_line_error(run) -> None:
    for spec in ("nosuchrun", "nosuchrun:best", "gpt2:124M", "preset:tiny"):
        with pytest.raises(GptTuiError) as info:
            prepare_run(resume=spec)
        assert "\n" not in str(info.value), spec


def test_best_with_no_evaluated_checkpoint_is_refused(config: Path) -> None:
    model, train = load_run_config(config)
    save("noval", 2, model, train)
    with pytest.raises(CheckpointError, match="no checkpoint with a validation loss"):
        open_resume("noval:best")


# ------------------------------------------------------------------ damaged checkpoints


def test_an_unreadable_newer_checkpoint_is_passed_over_with_a_notice(run) -> None:
    newest = runs_dir() / "r" / "checkpoints" / "step-000012"
    newest.mkdir()
    (newest / META).write_text("{truncated", encoding="utf-8")  # written after step 9
    for spec in ("r", "r:latest"):
        ckpt, notice = open_resume(spec)
        assert ckpt.step == 9
        assert notice is not None and "step-000012" in notice
        assert notice.endswith("resuming from step-000009 (step 9)")


def test_only_damaged_checkpoints_newer_than_the_one_used_are_named(run) -> None:
    checkpoints = runs_dir() / "r" / "checkpoints"
    damage_weights(checkpoints / "step-000009")
    damage_weights(checkpoints / "step-000006")
    ckpt, notice = open_resume("r")
    assert ckpt.step == 3
    assert "step-000009" in notice and "step-000006" in notice
    best, best_notice = open_resume("r:best")  # named explicitly, and healthy: no notice
    assert best.path == ckpt.path and best_notice is None


def test_a_run_whose_every_checkpoint_is_damaged_is_refused(run) -> None:
    for step in (3, 6, 9):
        damage_weights(runs_dir() / "r" / "checkpoints" / f"step-{step:06d}")
    with pytest.raises(CheckpointError, match="every one is damaged"):
        prepare_run(resume="r")


def test_a_damaged_best_is_an_error_not_a_fallback(run) -> None:
    damage_weights(runs_dir() / "r" / "checkpoints" / "step-000003")
    with pytest.raises(CheckpointError, match="sha256"):
        open_resume("r:best")
    assert open_resume("r")[0].step == 9  # the latest is fine


def test_a_checkpoint_outside_a_run_is_opened_as_it_is(config: Path, tmp_path: Path) -> None:
    model, train = load_run_config(config)
    loose = save(tmp_path / "loose", 4, model, train)
    moved = tmp_path / "elsewhere"
    loose.rename(moved)  # not in a run's checkpoints/ folder any more
    ckpt, notice = open_resume(moved)
    assert (ckpt.step, notice) == (4, None)
    damage_weights(moved)
    with pytest.raises(CheckpointError, match="sha256"):
        open_resume(moved)


# ------------------------------------------------------------------ check_resume


def loaded(model: GPTConfig, train: TrainConfig, tmp_path: Path, **kw) -> Checkpoint:
    return open_checkpoint(save(tmp_path / "run", 5, model, train, **kw))


def test_a_resume_with_another_model_names_every_difference(config: Path, tmp_path: Path) -> None:
    model, train = load_run_config(config)
    ckpt = loaded(model, train, tmp_path)
    other = dataclasses.replace(model, emb_dim=32, n_layers=2)
    with pytest.raises(CheckpointError) as info:
        check_resume(ckpt, other, train)
    message = str(info.value)
    assert "emb_dim 16 vs 32" in message and "n_layers 1 vs 2" in message
    assert "context_length" not in message  # only what differs
    # The init scheme only chose the starting weights: it may differ.
    check_resume(ckpt, dataclasses.replace(model, init="gpt2"), train)


OTHER_VALUES = {
    "train_ratio": 0.8,
    "decode_errors": "replace",
    "batch_size": 3,
    "max_length": 8,
    "stride": 4,
    "shuffle": False,
    "drop_last": False,
    "sampler": "random",
    "samples_per_epoch": 50,
    "grad_accum": 2,
}


def test_every_data_setting_is_covered() -> None:
    assert set(OTHER_VALUES) == set(DATA_KEYS)


@pytest.mark.parametrize("key", sorted(OTHER_VALUES))
def test_a_data_setting_cannot_change_on_resume(config: Path, tmp_path: Path, key: str) -> None:
    model, train = load_run_config(config)
    ckpt = loaded(model, train, tmp_path)
    changed = dataclasses.replace(train, **{key: OTHER_VALUES[key]})
    with pytest.raises(CheckpointError, match=f"different train.{key} .*data position"):
        check_resume(ckpt, model, changed)
    # The same change made through --set on a resume is refused the same way.
    value = json.dumps(OTHER_VALUES[key])
    prepared = prepare_run(resume=ckpt.path, overrides=[f"{key}={value}"])
    with pytest.raises(CheckpointError, match=f"train.{key}"):
        check_resume(prepared.checkpoint, prepared.model_config, prepared.train_config)


def test_settings_that_do_not_move_the_data_may_change(config: Path, tmp_path: Path) -> None:
    model, train = load_run_config(config)
    ckpt = loaded(model, train, tmp_path)
    free = dict(lr=0.01, epochs=5, max_steps=40, eval_freq=7, seed=9, keep_last=1, precision="fp32")
    check_resume(ckpt, model, dataclasses.replace(train, **free))


def test_a_setting_the_checkpoint_does_not_record_is_not_compared(
    config: Path, tmp_path: Path
) -> None:
    """A checkpoint written before a data setting existed resumes under any value of it."""
    model, train = load_run_config(config)
    path = save(tmp_path / "run", 5, model, train)
    meta = json.loads((path / META).read_text())
    del meta["train_config"]["grad_accum"]
    (path / META).write_text(json.dumps(meta))
    check_resume(open_checkpoint(path), model, dataclasses.replace(train, grad_accum=4))


def test_a_resume_keeps_the_number_of_processes(config: Path, tmp_path: Path) -> None:
    model, train = load_run_config(config)
    two = loaded(model, train, tmp_path, data={"world_size": 2})
    check_resume(two, model, train, processes=2)
    with pytest.raises(CheckpointError, match="trained with 2 process.*now 1"):
        check_resume(two, model, train)
    one = open_checkpoint(save(tmp_path / "one", 5, model, train))  # no world_size: 1
    with pytest.raises(CheckpointError, match="trained with 1 process.*now 4"):
        check_resume(one, model, train, processes=4)


# ------------------------------------------------------------------ check_schedule

schedules = st.sampled_from(("constant", "cosine"))
limits = st.one_of(st.none(), st.integers(1, 60))


@settings(max_examples=80, deadline=None)
@given(
    before=st.tuples(schedules, st.integers(1, 6), limits),
    now=st.tuples(schedules, st.integers(1, 6), limits),
    steps_per_epoch=st.integers(1, 12),
)
def test_a_cosine_schedule_refuses_a_resume_that_changes_its_length(
    before, now, steps_per_epoch: int
) -> None:
    def total(epochs: int, max_steps: int | None) -> int:
        return min(epochs * steps_per_epoch, max_steps or epochs * steps_per_epoch)

    (sched_a, epochs_a, max_a), (sched_b, epochs_b, max_b) = before, now
    saved = TrainConfig(lr_schedule=sched_a, epochs=epochs_a, max_steps=max_a)
    ckpt = Checkpoint(
        path=Path("run/checkpoints/step-000001"), model_config=GPTConfig(),
        train_config=saved.to_dict(), step=1, epoch=0, tokens_seen=0,
    )  # fmt: skip
    train = TrainConfig(lr_schedule=sched_b, epochs=epochs_b, max_steps=max_b)
    bent = "cosine" == sched_a == sched_b and total(epochs_a, max_a) != total(epochs_b, max_b)
    if bent:
        with pytest.raises(CheckpointError, match="cosine lr_schedule") as info:
            check_schedule(ckpt, train, steps_per_epoch)
        assert f"spans {total(epochs_a, max_a):,} steps in the checkpoint" in str(info.value)
    else:
        check_schedule(ckpt, train, steps_per_epoch)


def test_a_checkpoint_that_does_not_record_its_length_takes_the_current_one(
    tmp_path: Path,
) -> None:
    """Older checkpoints may lack max_steps / epochs: the current values stand in, so
    the schedule's length is unchanged and the resume goes ahead."""
    saved = TrainConfig(lr_schedule="cosine", epochs=2).to_dict()
    del saved["max_steps"], saved["epochs"]
    ckpt = Checkpoint(
        path=tmp_path, model_config=GPTConfig(), train_config=saved, step=1, epoch=0,
        tokens_seen=0,
    )  # fmt: skip
    check_schedule(ckpt, TrainConfig(lr_schedule="cosine", epochs=3, max_steps=10), 5)
