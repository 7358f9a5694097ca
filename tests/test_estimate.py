"""The run-time estimate shown before Start: FLOPs of the run over a measured rate."""

import pytest

from gptcore.data.plan import batch_plan
from gptcore.hardware.perf import flops_per_token
from gptcore.settings.model import PRESETS
from gptcore.settings.train import TrainConfig
from gptcore.training.estimate import effective_flops, estimate_seconds, run_flops

TINY = PRESETS["tiny"]


def plan_for(train: TrainConfig, train_tokens: int = 20_000, val_tokens: int = 2_000):
    return batch_plan(train_tokens, val_tokens, TINY, train, 1).check()


def test_run_flops_counts_steps_and_evaluation_forwards():
    train = TrainConfig(batch_size=4, max_length=32, stride=32, epochs=1, eval_freq=5, eval_iter=2)
    plan = plan_for(train)
    per_token = flops_per_token(TINY, 32)
    steps = plan.total_steps
    evals = len(range(0, steps, 5))
    expected = steps * 4 * 32 * per_token + evals * (2 + 2) * 4 * 32 * per_token / 3
    assert run_flops(TINY, train, plan) == pytest.approx(expected)


def test_estimate_scales_with_the_run_and_respects_its_limits():
    short = TrainConfig(batch_size=4, max_length=32, stride=32, epochs=1)
    long = TrainConfig(batch_size=4, max_length=32, stride=32, epochs=10)
    rate = 1e9
    one = estimate_seconds(TINY, short, plan_for(short), rate)
    ten = estimate_seconds(TINY, long, plan_for(long), rate)
    assert ten == pytest.approx(10 * one, rel=0.02)  # evaluations round per run
    capped = TrainConfig(batch_size=4, max_length=32, stride=32, epochs=10, max_time_s=5.0)
    assert estimate_seconds(TINY, capped, plan_for(capped), rate) == 5.0
    stepped = TrainConfig(batch_size=4, max_length=32, stride=32, epochs=10, max_steps=3)
    assert estimate_seconds(TINY, stepped, plan_for(stepped), rate) < one


def test_effective_flops_is_measured_once_and_positive():
    effective_flops.cache_clear()
    rate = effective_flops("cpu")
    assert rate > 1e8  # any CPU multiplies faster than 0.1 GFLOP/s
    assert effective_flops("cpu") == rate  # cached: the probe runs once per process
