"""Training health signals: the detectors on constructed streams, their events in
metrics.jsonl and the CLI, and for real: a tiny model that overfits, and a spike
whose update is skipped."""

from __future__ import annotations

import io
import math
import statistics
from pathlib import Path

import pytest
import torch

from gptcore.commands.train import ConsolePrinter
from gptcore.errors import ConfigError
from gptcore.runs.checkpoint import load_checkpoint
from gptcore.runs.checkpoints import best_checkpoint
from gptcore.runs.events import (
    EvalEnd,
    Finished,
    Overfitting,
    Spike,
    StepEnd,
    from_record,
    steps_done,
    to_record,
)
from gptcore.runs.metrics import MetricsWriter, parse_line, read_metrics
from gptcore.runs.rundir import RunDir
from gptcore.settings.declare import from_mapping
from gptcore.settings.train import TrainConfig
from gptcore.training.health import (
    GRAD_NORM_SPIKE_RATIO,
    LOSS_SPIKE_RATIO,
    OverfitDetector,
    SpikeDetector,
    health_text,
    z_score,
)
from gptcore.training.step import TrainStep
from gptcore.training.trainer import Trainer
from tui.settings import Settings, load_settings, save_settings

from .tui_helpers import FAST_MODEL, write_corpus

# ---------------------------------------------------------------- overfitting


def test_overfitting_after_exactly_n_diverging_evals() -> None:
    detector = OverfitDetector(3)
    # (train, val): val falls to its best at step 20, then rises while train falls.
    stream = [(5.0, 5.5), (4.0, 5.0), (3.0, 4.8), (2.5, 4.9), (2.0, 5.1), (1.5, 5.3), (1.0, 5.6)]
    onsets = [detector.update(10 * i, t, v) for i, (t, v) in enumerate(stream)]
    # The 3rd diverging eval (step 50) is the onset; the 1st and 2nd are not, nor the 4th.
    assert onsets == [False, False, False, False, False, True, False]
    assert detector.streak == 4
    assert (detector.best_val, detector.best_step) == (4.8, 20)


def test_a_break_in_the_streak_rearms_the_detector() -> None:
    detector = OverfitDetector(2)
    stream = [(3.0, 4.0), (2.0, 4.5), (1.9, 4.2), (1.8, 4.6), (1.7, 4.7), (1.75, 4.8), (1.6, 4.9)]
    onsets = [detector.update(i, t, v) for i, (t, v) in enumerate(stream)]
    # (1) rises: streak 1; (2) val falls: reset; (3),(4) rise: onset at 4; (5) train
    # rose: reset; (6) rises: streak 1 only.
    assert onsets == [False, False, False, False, True, False, False]


def test_overfitting_is_off_at_zero() -> None:
    detector = OverfitDetector(0)
    assert not any(detector.update(i, 5.0 - i, 1.0 + i) for i in range(10))


# ---------------------------------------------------------------- spikes


def test_z_score_by_hand() -> None:
    history = [1.0, 2.0, 3.0, 4.0, 5.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    # mean 3, population variance (4+1+0+1+4)*2/10 = 2
    assert z_score(history, 3.0 + 6 * math.sqrt(2)) == pytest.approx(6.0)
    assert z_score(history, 1.0) == pytest.approx(-2 / math.sqrt(2))
    assert z_score(history[:9], 100.0) is None  # too short to judge
    assert z_score([2.0] * 10, 100.0) is None  # flat: no z


def test_spike_detector_flags_a_value_above_its_threshold() -> None:
    detector = SpikeDetector(window=10, z=6.0)
    for value in [1.0, 2.0, 3.0, 4.0, 5.0, 1.0, 2.0, 3.0, 4.0, 5.0]:
        assert detector.check(value) is None
    assert detector.check(3.0 + 5.9 * math.sqrt(2)) is None  # just under 6
    # The window moved on by one: recompute its mean and std by hand.
    window = [2.0, 3.0, 4.0, 5.0, 1.0, 2.0, 3.0, 4.0, 5.0, 3.0 + 5.9 * math.sqrt(2)]
    mean = sum(window) / 10
    std = math.sqrt(sum((x - mean) ** 2 for x in window) / 10)
    assert detector.check(mean + 7 * std) == pytest.approx(7.0)
    assert detector.check(-1000.0) is None  # a drop is no spike


def test_no_spike_during_the_warm_up() -> None:
    detector = SpikeDetector(window=50, z=6.0)
    # Wild values in the first ten steps: never judged.
    assert [detector.check(v) for v in [1, 1000, 1, 1, 5000, 1, 1, 1, 1, 1e6]] == [None] * 10
    # z = 0 switches the detector off altogether.
    off = SpikeDetector(window=10, z=0.0)
    assert [off.check(v) for v in [1.0, 2.0] * 5 + [1e9]] == [None] * 11


# ---------------------------------------------------------------- events and config


def test_health_events_round_trip_through_metrics_jsonl(tmp_path: Path) -> None:
    over = Overfitting(40, 3, 3, 4.25, 20, "/r/checkpoints/step-000020", time=1.0)
    spike = Spike(7, 0, "grad_norm", 12.5, 8.25, True, time=2.0)
    writer = MetricsWriter(tmp_path / "metrics.jsonl")
    writer(over)
    writer(spike)
    writer.close()
    assert read_metrics(tmp_path / "metrics.jsonl") == [over, spike]
    assert to_record(spike)["event"] == "spike" and to_record(over)["event"] == "overfitting"
    assert from_record(to_record(over)) == over
    assert steps_done(spike) == 8  # global_step 7: eight steps done
    # An event this version does not know is skipped, as older readers skip these.
    assert parse_line('{"event": "from-the-future", "step": 1, "epoch": 0}') is None


def test_health_settings_are_validated() -> None:
    cfg = TrainConfig()
    assert (cfg.overfit_evals, cfg.spike_window, cfg.spike_z, cfg.skip_spikes) == (
        3,
        50,
        6.0,
        False,
    )
    for bad in ({"spike_window": 9}, {"overfit_evals": -1}, {"spike_z": -0.5}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            TrainConfig(**bad)
    with pytest.raises(ConfigError, match="spike_window must be at most"):
        TrainConfig(spike_window=10**6)
    with pytest.raises(ConfigError, match="skip_spikes must be true or false"):
        from_mapping(TrainConfig, {"skip_spikes": 1})


def test_the_cli_prints_one_line_per_health_event() -> None:
    out = io.StringIO()
    printer = ConsolePrinter(out=out, err=io.StringIO())
    printer(Spike(7, 0, "loss", 42.0, 9.5, True))
    printer(Overfitting(40, 3, 3, 4.25, 20, None))
    lines = out.getvalue().splitlines()
    assert lines == [
        "warning: loss spike at step 7 (epoch 1): 42, z 9.5; update skipped",
        "warning: overfitting at step 40 (epoch 4): val loss rose while train loss fell "
        "for 3 evals; best val 4.250 at step 20 (no checkpoint holds it)",
    ]
    assert health_text(Spike(3, 1, "grad_norm", 2.5, 6.5, False)).startswith(
        "gradient norm spike at step 3 (epoch 2)"
    )


def test_the_bell_setting_is_saved_and_read_back() -> None:
    assert Settings().bell is True
    save_settings(Settings(bell=False, theme="x"))
    assert load_settings() == Settings(bell=False, theme="x")


# ---------------------------------------------------------------- for real


def test_a_tiny_model_overfits_and_the_trainer_names_the_best_checkpoint(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path, repeats=6)  # a few windows: memorised in a few epochs
    cfg = TrainConfig(
        corpus=str(corpus),
        batch_size=2,
        epochs=60,
        eval_freq=1,
        eval_iter=1,
        sample_tokens=0,
        lr=0.03,
    )
    events: list = []
    run = tmp_path / "run"
    trainer = Trainer(FAST_MODEL, cfg, run_dir=run)

    def listen(event: object) -> None:
        events.append(event)
        if isinstance(event, Overfitting):
            trainer.cancel()  # seen it: no need to train on

    trainer.add_listener(listen)
    result = trainer.run()
    assert isinstance(result, Finished) and result.reason == "cancelled"
    onsets = [e for e in events if isinstance(e, Overfitting)]
    assert len(onsets) == 1
    onset = onsets[0]
    evals = [e for e in events if isinstance(e, EvalEnd) and e.step <= onset.step]
    assert evals[-1].step == onset.step and onset.evals == 3
    # The last three evaluations each raised val loss and lowered train loss ...
    for before, after in zip(evals[-4:-1], evals[-3:], strict=True):
        assert after.val_loss > before.val_loss and after.train_loss < before.train_loss
    # ... and it is the first time three in a row did.
    streak, longest = 0, 0
    for before, after in zip(evals[:-2], evals[1:-1], strict=True):
        diverging = after.val_loss > before.val_loss and after.train_loss < before.train_loss
        streak = streak + 1 if diverging else 0
        longest = max(longest, streak)
    assert longest < 3
    best = min(evals, key=lambda e: e.val_loss)
    assert (onset.best_val, onset.best_step) == (best.val_loss, best.step)
    # The best-val checkpoint of the run, which RUN:best names, and one that exists.
    assert onset.best_checkpoint == str(best_checkpoint(run))
    named = load_checkpoint(onset.best_checkpoint)
    assert named.step <= onset.step + 1
    assert onset in read_metrics(RunDir(run).metrics)


def test_skip_spikes_leaves_the_weights_of_a_spiking_step_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spiking = 12  # the window (10) is full by then
    original = TrainStep.loss
    train_calls = []  # one training forward pass per step (no gradient accumulation)

    def loss(self: TrainStep, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):  # noqa: ANN202
        out = original(self, model, x, y)
        if not model.training:
            return out  # an evaluation
        train_calls.append(1)
        return out * 1000 if len(train_calls) == spiking + 1 else out

    monkeypatch.setattr(TrainStep, "loss", loss)
    cfg = TrainConfig(
        corpus=str(write_corpus(tmp_path, repeats=30)),
        batch_size=2,
        max_steps=spiking + 3,
        eval_freq=1000,
        eval_iter=1,
        sample_tokens=0,
        lr=0.004,
        spike_window=10,
        skip_spikes=True,
    )
    trainer = Trainer(FAST_MODEL, cfg, run_dir=tmp_path / "run")
    weights: dict[int, dict[str, torch.Tensor]] = {}
    spikes: list[Spike] = []

    def listen(event: object) -> None:
        if isinstance(event, StepEnd):  # the weights after this step's update (if any)
            weights[event.step] = {
                k: v.detach().clone() for k, v in trainer.model.state_dict().items()
            }
        elif isinstance(event, Spike):
            spikes.append(event)

    trainer.add_listener(listen)
    result = trainer.run()
    assert isinstance(result, Finished) and result.step == spiking + 3  # the run went on
    forced = [s for s in spikes if s.step == spiking]
    assert {s.kind for s in forced} == {"loss", "grad_norm"}
    assert all(s.skipped and s.z > cfg.spike_z for s in forced)
    before, after = weights[spiking - 1], weights[spiking]
    assert all(torch.equal(before[k], after[k]) for k in before)
    # The steps around it did learn.
    nxt = weights[spiking + 1]
    assert any(not torch.equal(after[k], nxt[k]) for k in after)
    assert any(not torch.equal(weights[spiking - 2][k], before[k]) for k in before)


def test_the_ratio_floor_keeps_ordinary_outliers_quiet_and_catches_a_real_spike() -> None:
    """The shapes measured on the shipped configs (benchmarks/spike_check.py): a batch
    whose gradient norm jumps ~150x while its loss barely moves is no spike; the loss
    going to 2x its median, or the gradient norm to 1000x, is."""
    grads = SpikeDetector(window=50, z=6.0, min_ratio=GRAD_NORM_SPIKE_RATIO)
    losses = SpikeDetector(window=50, z=6.0, min_ratio=LOSS_SPIKE_RATIO)
    for i in range(30):
        assert grads.check(0.6 + 0.01 * (i % 3)) is None
        assert losses.check(6.8 + 0.05 * (i % 3)) is None
    assert grads.check(0.6 * 150) is None  # z in the hundreds, ratio 150: ordinary here
    assert losses.check(6.8 * 1.3) is None  # an outlier batch's loss
    assert grads.check(0.6 * 2000) is not None
    assert losses.check(6.8 * 3) is not None


@pytest.mark.parametrize("seed", [2, 123])
def test_the_tiny_config_reports_no_spike(seed: int, tmp_path: Path, monkeypatch) -> None:
    """`gpt-tui train --config tiny` with the seeds whose runs hold the largest ordinary
    outliers measured (seed 2: a gradient norm 151x its median; seed 123: 54x)."""
    from gptcore.settings.files import load_run_config

    monkeypatch.setenv("GPT_TUI_HOME", str(tmp_path))
    model, train = load_run_config("tiny", [f"seed={seed}", "precision=fp32", "sample_tokens=0"])
    found: list[Spike] = []
    steps: list[StepEnd] = []

    def listen(event: object) -> None:
        if isinstance(event, Spike):
            found.append(event)
        elif isinstance(event, StepEnd):
            steps.append(event)

    result = Trainer(model, train, listeners=[listen], run_dir=tmp_path / "run").run()
    assert isinstance(result, Finished) and len(steps) == 60
    # The outlier is there (a gradient norm over 50x its window's median, z far above
    # spike_z), and it is no spike.
    norms = [s.grad_norm for s in steps]
    worst = max(norms[i] / statistics.median(norms[max(0, i - 50) : i]) for i in range(10, 60))
    assert worst > 50
    assert found == []
