"""The run-time estimate shown before Start: the run's parts from a probe's timings."""

import pytest

from gptcore.data.plan import batch_plan
from gptcore.planner.timing import StepTiming, probe, run_time
from gptcore.settings.model import PRESETS
from gptcore.settings.train import TrainConfig

TINY = PRESETS["tiny"]


def plan_for(train: TrainConfig, train_tokens: int = 20_000, val_tokens: int = 2_000):
    return batch_plan(train_tokens, val_tokens, TINY, train, 1).check()


def estimate_seconds(model, train, plan, given: StepTiming) -> float:
    return run_time(model, train, plan, given).mid


def timing(step: float = 0.1, spread: float = 0.0) -> StepTiming:
    return StepTiming(
        step_s=(step - spread, step, step + spread),
        eval_batch_s=0.01,
        sample_token_s=0.001,
        save_bytes_per_s=1e8,
        setup_s=0.5,
        how="given",
        measured=True,
        precision="fp32",
        device="cpu",
    )


def test_estimate_scales_with_the_run_and_respects_its_limits():
    short = TrainConfig(batch_size=4, max_length=32, stride=32, epochs=1)
    long = TrainConfig(batch_size=4, max_length=32, stride=32, epochs=10)
    one = estimate_seconds(TINY, short, plan_for(short), timing())
    ten = estimate_seconds(TINY, long, plan_for(long), timing())
    assert ten - 0.5 == pytest.approx(10 * (one - 0.5), rel=0.02)  # setup once a run
    capped = TrainConfig(batch_size=4, max_length=32, stride=32, epochs=10, max_time_s=5.0)
    assert estimate_seconds(TINY, capped, plan_for(capped), timing()) == 5.0
    stepped = TrainConfig(batch_size=4, max_length=32, stride=32, epochs=10, max_steps=3)
    assert estimate_seconds(TINY, stepped, plan_for(stepped), timing()) < one


def test_the_run_time_adds_its_parts_and_the_range_is_the_probe_spread():
    train = TrainConfig(batch_size=4, max_length=32, stride=32, epochs=2, eval_freq=5, eval_iter=2)
    plan = plan_for(train)
    est = run_time(TINY, train, plan, timing(step=0.2, spread=0.05))
    assert est.parts["training steps"] == pytest.approx(plan.total_steps * 0.2)
    evals = len(range(0, plan.total_steps, 5))
    assert est.parts["evaluation"] == pytest.approx(evals * 4 * 0.01)
    assert est.parts["samples"] == pytest.approx(2 * train.sample_tokens * 0.001)
    assert est.mid == pytest.approx(sum(est.parts.values()))
    assert est.low == pytest.approx(est.mid - plan.total_steps * 0.05)
    assert est.high == pytest.approx(est.mid + plan.total_steps * 0.05)


def test_the_probe_times_real_steps_of_the_run_in_its_precision(monkeypatch):
    import torch

    import gptcore.planner.timing as timing_module

    # Steps go on until they add up to PROBE_SECONDS, at most PROBE_MAX_STEPS: a
    # budget no step reaches takes the most; none, the least (whatever the load).
    monkeypatch.setattr(timing_module, "PROBE_SECONDS", 1000.0)
    monkeypatch.setattr(timing_module, "PROBE_MAX_STEPS", 6)
    train = TrainConfig(batch_size=2, max_length=32, precision="fp32", grad_accum=2)
    measured = probe(TINY, train, torch.device("cpu"))
    assert len(measured.step_s) == 6 and min(measured.step_s) > 0
    assert "6 training steps" in measured.how
    monkeypatch.setattr(timing_module, "PROBE_SECONDS", 0.0)
    assert len(probe(TINY, train, torch.device("cpu")).step_s) == timing_module.PROBE_STEPS
    assert measured.eval_batch_s > 0 and measured.sample_token_s > 0
    assert measured.measured and measured.precision == "fp32"
    assert "training steps of the run's model" in measured.how


def test_a_slow_stretch_counts_in_full_and_widens_the_range():
    """The run's wall time is a sum of steps: the estimate uses the probe's mean step,
    and its range the fastest and slowest third of the probe, in order."""
    train = TrainConfig(batch_size=4, max_length=32, stride=32, epochs=2, eval_freq=1000)
    plan = plan_for(train)
    steps = (0.1, 0.1, 0.1, 0.1, 0.4, 0.4)  # the machine got busy halfway
    given = StepTiming(**{**timing().__dict__, "step_s": steps})
    est = run_time(TINY, train, plan, given)
    assert est.parts["training steps"] == pytest.approx(plan.total_steps * 0.2)
    rest = est.mid - est.parts["training steps"]
    assert est.low == pytest.approx(plan.total_steps * 0.1 + rest)
    assert est.high == pytest.approx(plan.total_steps * 0.4 + rest)


def test_a_large_model_on_a_cpu_is_probed_shortened_and_scaled(monkeypatch):
    import torch

    import gptcore.planner.timing as timing_module

    built: list[int] = []

    def fake_time_model(model, train, device, rounds, min_seconds=0.0):
        built.append(model.n_layers)
        per_block = 0.1
        step = 0.5 + per_block * model.n_layers
        return [step] * rounds, step / 3, 0.01, 0.1

    monkeypatch.setattr(timing_module, "time_model", fake_time_model)
    medium = PRESETS["gpt2-medium"]
    measured = probe(medium, TrainConfig(batch_size=2, max_length=1024), torch.device("cpu"))
    assert built == [1, 3]  # never the 24-block model
    assert measured.step_s[0] == pytest.approx(0.5 + 0.1 * 24)
    assert "scaled to 24 blocks" in measured.how
