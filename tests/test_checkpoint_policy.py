"""Checkpoint retention (gptcore.training.checkpoint_policy): which saves a run makes,
which of its checkpoints retention may delete, and that it deletes nothing else."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gptcore.model.gpt import GPTModel
from gptcore.runs.checkpoint import META, load_checkpoint, save_checkpoint
from gptcore.settings.model import GPTConfig
from gptcore.training.checkpoint_policy import (
    AUTOMATIC,
    CheckpointPolicy,
    prunable,
    prune_checkpoints,
)

MODEL = GPTConfig(context_length=8, emb_dim=8, n_heads=1, n_layers=1, drop_rate=0.0)
OWN_REASONS = ("manual", "imported")  # saves a person asked for, or brought in


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real checkpoint; the others are copies with their meta.json rewritten."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("template") / "ckpt"
    return save_checkpoint(folder, GPTModel(MODEL), train_config={}, step=0, epoch=0, tokens_seen=0)


def place(
    template: Path,
    run: Path,
    name: str,
    step: int,
    reason: str = "periodic",
    val_loss: float | None = None,
    created: float | None = None,
) -> Path:
    """A checkpoint `name` in `run` as a Trainer would have saved it."""
    path = run / "checkpoints" / name
    shutil.copytree(template, path)
    meta = json.loads((path / META).read_text())
    meta.update(step=step, reason=reason, val_loss=val_loss)
    meta["created"] = created if created is not None else 1_700_000_000.0 + step
    (path / META).write_text(json.dumps(meta))
    return path


def names(run: Path) -> set[str]:
    return {p.name for p in (run / "checkpoints").iterdir()}


# ------------------------------------------------------------------ what is prunable


@pytest.mark.parametrize(
    ("name", "reason", "expected"),
    [
        *[("step-000012", reason, True) for reason in AUTOMATIC],
        ("step-000012-2", "periodic", True),  # a second save at one step keeps the pattern
        ("step-000012", "manual", False),  # asked for with `k`
        ("step-000000", "imported", False),  # a book .pth brought in
        ("before-lr-change", "periodic", False),  # renamed by its owner
        ("step-12", "epoch", True),
        ("step-000012-final", "final", False),
        ("xstep-000012", "epoch", False),
    ],
)
def test_prunable_only_automatic_saves_under_their_own_name(
    template: Path, tmp_path: Path, name: str, reason: str, expected: bool
) -> None:
    path = place(template, tmp_path / "run", name, 12, reason)
    assert prunable(load_checkpoint(path, verify=False)) is expected


# ------------------------------------------------------------------ what retention keeps

checkpoint_sets = st.lists(
    st.tuples(
        st.sampled_from((*AUTOMATIC, *OWN_REASONS)),
        st.one_of(st.none(), st.sampled_from((1.0, 2.0, 3.0, 4.0))),  # ties on purpose
        st.booleans(),  # renamed by its owner
    ),
    min_size=1,
    max_size=7,
)


@settings(max_examples=30, deadline=None)
@given(checkpoint_sets, st.integers(1, 4), st.data())
def test_retention_keeps_the_newest_the_best_the_protected_and_everything_not_automatic(
    template: Path,
    tmp_path_factory: pytest.TempPathFactory,
    saves: list[tuple[str, float | None, bool]],
    keep_last: int,
    data: st.DataObject,
) -> None:
    run = tmp_path_factory.mktemp("run")
    made = {}
    for step, (reason, val_loss, renamed) in enumerate(saves, start=1):
        name = f"mine-{step}" if renamed else f"step-{step:06d}"
        made[name] = (step, reason, val_loss, renamed)
        place(template, run, name, step, reason, val_loss)
    protect = data.draw(st.one_of(st.none(), st.sampled_from(sorted(made))))

    removed = prune_checkpoints(
        run, keep_last, protect=run / "checkpoints" / protect if protect else None
    )

    auto = sorted(
        (step for step, reason, _, renamed in made.values() if reason in AUTOMATIC and not renamed),
        reverse=True,
    )
    scored = [(loss, -step) for step, _, loss, _ in made.values() if loss is not None]
    best_step = -min(scored)[1] if scored else None
    must_keep = set(auto[:keep_last]) | {best_step}
    if protect:
        must_keep.add(made[protect][0])
    expected_gone = {step for step in auto if step not in must_keep}

    assert {p.name for p in removed} == {n for n, m in made.items() if m[0] in expected_gone}
    assert names(run) == {n for n, m in made.items() if m[0] not in expected_gone}


def test_a_second_save_at_one_step_is_ordered_by_its_time(template: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    place(template, run, "step-000005", 5, "periodic", created=1_700_000_100.0)
    place(template, run, "step-000005-2", 5, "epoch", created=1_700_000_200.0)
    place(template, run, "step-000003", 3, "periodic")
    assert {p.name for p in prune_checkpoints(run, keep_last=1)} == {"step-000005", "step-000003"}
    assert names(run) == {"step-000005-2"}


def test_retention_leaves_damaged_and_foreign_entries_alone(template: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    for step in (1, 2, 3):
        place(template, run, f"step-{step:06d}", step)
    damaged = run / "checkpoints" / "step-000000"
    damaged.mkdir()
    (damaged / META).write_text("{not json")
    # A link to a checkpoint elsewhere: loadable and automatic, but not ours to delete.
    elsewhere = place(template, tmp_path / "other", "step-000001", 1)
    (run / "checkpoints" / "step-000004").symlink_to(elsewhere, target_is_directory=True)
    (run / "checkpoints" / "notes.txt").write_text("mine")

    removed = prune_checkpoints(run, keep_last=1)

    assert {p.name for p in removed} == {"step-000001", "step-000002"}
    assert names(run) == {"step-000000", "step-000003", "step-000004", "notes.txt"}
    assert (elsewhere / META).is_file() and (damaged / META).read_text() == "{not json"


def test_a_run_without_checkpoints_prunes_nothing(tmp_path: Path) -> None:
    assert prune_checkpoints(tmp_path / "no-run", keep_last=1) == []


# ------------------------------------------------------------------ when a run saves


@pytest.mark.parametrize(
    ("every", "due"),
    [(None, []), (1, [1, 2, 3, 4, 5, 6, 7, 8, 9]), (3, [3, 6, 9]), (4, [4, 8]), (20, [])],
)
def test_periodic_saves_fall_on_multiples_of_checkpoint_every(
    every: int | None, due: list[int]
) -> None:
    policy = CheckpointPolicy(every, keep_last=3)
    assert [s for s in range(1, 10) if policy.due_after_step(s) == ["periodic"]] == due
    assert all(policy.due_after_step(s) in ([], ["periodic"]) for s in range(1, 10))


def test_a_requested_save_comes_once_and_first() -> None:
    policy = CheckpointPolicy(every=2, keep_last=3)
    policy.request()
    policy.request()  # asked twice before the step ends: one save
    assert policy.due_after_step(1) == ["manual"]
    assert policy.due_after_step(2) == ["periodic"]
    policy.request()
    assert policy.due_after_step(4) == ["manual", "periodic"]  # both: manual is kept by retention
    assert not policy.take_request()


def test_a_request_from_another_thread_is_seen_by_the_next_step() -> None:
    policy = CheckpointPolicy(every=None, keep_last=3)
    asker = threading.Thread(target=policy.request)
    asker.start()
    asker.join()
    assert policy.take_request() and not policy.take_request()


def test_a_save_reuses_the_checkpoint_of_its_step_unless_retention_could_delete_it(
    tmp_path: Path,
) -> None:
    policy = CheckpointPolicy(every=1, keep_last=1)
    assert policy.reusable(3, "epoch") is None  # nothing saved yet
    auto = tmp_path / "step-000003"
    auto.mkdir()
    policy.last_path, policy.last_step, policy.last_reason = auto, 3, "periodic"
    assert policy.reusable(3, "epoch") == auto  # the epoch's end at a periodic save
    assert policy.reusable(3, "final") == auto
    assert policy.reusable(4, "epoch") is None  # another step
    assert policy.reusable(3, "manual") is None  # an automatic one may be pruned later
    manual = tmp_path / "step-000003-2"
    manual.mkdir()
    policy.last_path, policy.last_reason = manual, "manual"
    assert policy.reusable(3, "periodic") == manual  # a kept one stands for any save
    assert policy.reusable(3, "manual") == manual
    shutil.rmtree(manual)
    assert policy.reusable(3, "periodic") is None  # deleted (or renamed) since


def test_saved_records_the_checkpoint_and_prunes_all_but_keep_last(
    template: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    policy = CheckpointPolicy(every=1, keep_last=2)
    for step in range(1, 5):
        path = place(template, run, f"step-{step:06d}", step, "periodic", val_loss=5.0 - step)
        policy.saved(run, path, step, "periodic")
        assert (policy.last_path, policy.last_step, policy.last_reason) == (path, step, "periodic")
        assert policy.reusable(step, "epoch") == path
    assert names(run) == {"step-000003", "step-000004"}
    # The newest is kept even when keep_last is reached by older steps (a resumed run
    # may save below its old checkpoints' steps).
    low = place(template, run, "step-000002", 2, "interrupt", val_loss=9.0)
    policy.saved(run, low, 2, "interrupt")
    assert low.exists() and policy.reusable(2, "final") == low
