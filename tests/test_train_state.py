"""The Trainer's progress value (gptcore.runs.train_state): advancing it, saving it in a
checkpoint and what a resume restores from one."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gptcore.model.gpt import GPTModel
from gptcore.runs.checkpoint import META, load_checkpoint, save_checkpoint
from gptcore.runs.checkpoints import list_checkpoints
from gptcore.runs.train_state import TrainState, epoch_number
from gptcore.settings.model import GPTConfig
from gptcore.util.paths import runs_dir

MODEL = GPTConfig(context_length=8, emb_dim=8, n_heads=1, n_layers=1, drop_rate=0.0)


@pytest.fixture(scope="module")
def model() -> GPTModel:
    torch.manual_seed(0)
    return GPTModel(MODEL)


def save_state(folder: Path, model: GPTModel, state: TrainState) -> Path:
    """A checkpoint of `state`, saved the way the Trainer saves one."""
    return save_checkpoint(folder, model, train_config={}, **state.checkpoint_fields())


def simulate(epochs: list[list[tuple[int, float | None]]]) -> TrainState:
    """Drive a TrainState as the Trainer's loop does: each epoch draws its order, then
    each step records its tokens and (where given) an evaluation's val loss."""
    state = TrainState()
    for n, steps in enumerate(epochs):
        state.start_epoch(1000 + n)
        for tokens, val_loss in steps:
            state.record_step(tokens)
            if val_loss is not None:
                state.record_eval(val_loss + 1.0, val_loss)
        state.end_epoch()
    return state


losses = st.one_of(st.none(), st.floats(0.0, 20.0, allow_nan=False))
run_shapes = st.lists(
    st.lists(st.tuples(st.integers(1, 4096), losses), min_size=1, max_size=6),
    min_size=1,
    max_size=4,
)


@settings(max_examples=60, deadline=None)
@given(run_shapes)
def test_advancing_counts_steps_epochs_tokens_and_keeps_the_best_loss(epochs) -> None:
    state = simulate(epochs)
    steps = [s for epoch in epochs for s in epoch]
    vals = [v for _, v in steps if v is not None]
    assert state.step == len(steps)
    assert state.epoch == len(epochs)
    assert state.tokens_seen == sum(tokens for tokens, _ in steps)
    # An epoch boundary: no position and no order inside an epoch.
    assert state.step_in_epoch == 0 and state.order_seed is None and not state.mid_epoch
    assert state.best_val_loss == (min(vals) if vals else None)
    assert state.last_val_loss == (vals[-1] if vals else None)
    assert state.last_train_loss == (vals[-1] + 1.0 if vals else None)


def test_a_started_epoch_keeps_its_order_and_position() -> None:
    state = TrainState()
    state.start_epoch(42)
    assert not state.mid_epoch  # drawn, but no step taken: a resume may draw it again
    state.record_step(64)
    state.record_step(64)
    assert state.mid_epoch and (state.step_in_epoch, state.order_seed) == (2, 42)
    state.record_eval(3.0, 2.5)
    state.record_eval(2.0, 2.7)  # worse: the best stays, the last follows
    assert (state.best_val_loss, state.last_val_loss, state.last_train_loss) == (2.5, 2.7, 2.0)
    state.end_epoch()
    assert (state.epoch, state.step_in_epoch, state.order_seed, state.step) == (1, 0, None, 2)


counts = st.integers(0, 2**53)
finite = st.one_of(st.none(), st.floats(0.0, 1e6, allow_nan=False))
states = st.builds(
    TrainState,
    step=counts,
    epoch=counts,
    step_in_epoch=counts,
    tokens_seen=counts,
    # draw_seed: torch's int64 random_(), so up to 2**63 - 1 (beyond a float's exactness)
    order_seed=st.one_of(st.none(), st.integers(0, 2**63 - 1)),
    best_val_loss=finite,
    last_val_loss=finite,
    last_train_loss=finite,
)


@settings(max_examples=25, deadline=None)
@given(state=states)
def test_a_checkpoint_restores_the_state_it_saved(
    state: TrainState, model: GPTModel, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("ckpt") / "step"
    ckpt = load_checkpoint(save_state(folder, model, state))
    assert TrainState.from_checkpoint(ckpt) == state
    assert ckpt.step_in_epoch == state.step_in_epoch


def test_a_loss_that_is_not_finite_is_saved_as_unknown(model: GPTModel, tmp_path: Path) -> None:
    """meta.json holds JSON numbers: a NaN or infinite loss comes back as None, so a
    resumed run's first evaluation becomes its best rather than comparing with NaN."""
    state = TrainState(step=3, best_val_loss=float("inf"), last_val_loss=float("nan"))
    restored = TrainState.from_checkpoint(load_checkpoint(save_state(tmp_path / "c", model, state)))
    assert restored == replace(state, best_val_loss=None, last_val_loss=None)
    restored.record_eval(9.0, 8.0)
    assert restored.best_val_loss == 8.0


def test_a_checkpoint_without_a_data_position_resumes_at_an_epoch_start(
    model: GPTModel, tmp_path: Path
) -> None:
    """Checkpoints from before the data position was saved (or imported ones) have no
    step_in_epoch / order_seed: resuming starts the epoch afresh."""
    path = save_state(tmp_path / "c", model, TrainState(step=7, epoch=2, tokens_seen=448))
    meta = json.loads((path / META).read_text())
    meta["data"] = {}
    (path / META).write_text(json.dumps(meta))
    restored = TrainState.from_checkpoint(load_checkpoint(path))
    assert restored == TrainState(step=7, epoch=2, tokens_seen=448)
    assert not restored.mid_epoch


@pytest.mark.parametrize(
    ("epoch", "step_in_epoch", "shown"),
    [
        (0, 0, 1),  # the start of a run: epoch 1
        (0, 5, 1),  # inside the first epoch
        (1, 0, 1),  # the first epoch just completed: still 1, not 2
        (1, 3, 2),  # inside the second
        (3, 0, 3),  # the end of a 3-epoch run
    ],
)
def test_epoch_number_is_the_epoch_in_progress_or_just_done(
    epoch: int, step_in_epoch: int, shown: int
) -> None:
    assert epoch_number(epoch, step_in_epoch) == shown


@settings(max_examples=60, deadline=None)
@given(run_shapes, st.integers(0, 5))
def test_epoch_number_follows_a_run(epochs, extra_steps: int) -> None:
    """Along a run, the shown epoch never goes down, is 1 at the start and equals the
    number of completed epochs at each boundary."""
    state, shown = TrainState(), [epoch_number(0, 0)]
    for steps in epochs:
        state.start_epoch(None)
        for tokens, _ in steps:
            state.record_step(tokens)
            shown.append(epoch_number(state.epoch, state.step_in_epoch))
        assert shown[-1] == state.epoch + 1  # the epoch's last step is still inside it
        state.end_epoch()
        assert epoch_number(state.epoch, state.step_in_epoch) == state.epoch
    state.start_epoch(None)
    for _ in range(extra_steps):  # a partial epoch after them
        state.record_step(1)
    shown.append(epoch_number(state.epoch, state.step_in_epoch))
    assert shown[0] == 1 and shown == sorted(shown)
    assert shown[-1] == len(epochs) + (1 if extra_steps else 0)


def test_the_checkpoint_list_shows_the_saved_states_epoch(model: GPTModel) -> None:
    """The Checkpoints screen's epoch column comes from the saved state."""
    run = runs_dir() / "shown" / "checkpoints"
    save_state(run / "step-000004", model, TrainState(step=4, epoch=1, step_in_epoch=0))
    save_state(run / "step-000006", model, TrainState(step=6, epoch=1, step_in_epoch=2))
    shown = {info.name: info.epoch for info in list_checkpoints()}
    assert shown == {"step-000004": 1, "step-000006": 2}
