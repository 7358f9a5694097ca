"""The run time shown before a run starts, so a long run is never a surprise.

It is measured, not guessed: gptcore.planner.timing times a few real training steps
of the run's own model in its own precision on its device (plus an evaluation batch,
a few sampled tokens and a small checkpoint-sized write) and adds up the run's parts.
`run_flops` stays for FLOPs-based figures (a GPU that is not here, MFU).
"""

from __future__ import annotations

from gptcore.data.plan import BatchPlan
from gptcore.hardware.perf import flops_per_token
from gptcore.planner.timing import StepTiming, TimeEstimate, run_time
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig


def run_flops(model: GPTConfig, train: TrainConfig, plan: BatchPlan) -> float:
    """Training FLOPs of the whole run: its steps plus its evaluations' forwards."""
    per_token = flops_per_token(model, plan.length)
    tokens_per_step = plan.global_batch * plan.grad_accum * plan.length
    steps = plan.total_steps  # max_steps already applied
    evals = len(range(0, steps, train.eval_freq))  # the steps the Trainer evaluates after
    eval_batches = min(train.eval_iter, plan.train_batches) + min(train.eval_iter, plan.val_batches)
    eval_tokens = evals * eval_batches * plan.global_batch * plan.length
    return steps * tokens_per_step * per_token + eval_tokens * per_token / 3


def estimate_run(
    model: GPTConfig, train: TrainConfig, plan: BatchPlan, timing: StepTiming
) -> TimeEstimate:
    """The run's wall time (likely figure and range) from a probe's timing."""
    return run_time(model, train, plan, timing)


def estimate_seconds(
    model: GPTConfig, train: TrainConfig, plan: BatchPlan, timing: StepTiming
) -> float:
    """Seconds the run should take (the likely figure of estimate_run)."""
    return run_time(model, train, plan, timing).mid
