"""A rough run time before a run starts, so a long run is never a surprise.

The estimate is the run's training FLOPs (gptcore.hardware.perf's 6N + attention per token,
evaluation forwards included) over an effective FLOP rate: a short matmul probe on
the device, scaled by how much of that rate a whole training step reaches (the
softmax over 50,257 logits, the optimizer and the small matmuls of small models
keep it well below the probe). Calibrated on 2 CPU cores with the quick run, `tiny`
and book-124m; it is meant to tell minutes from hours, not to the minute. Once a run
starts, its measured tokens/s gives the real ETA.
"""

from __future__ import annotations

import time
from functools import cache

from gptcore.data.plan import BatchPlan
from gptcore.hardware.perf import flops_per_token
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig

# The share of the probe's matmul rate a whole run reaches, evaluations and saves
# included. Measured on 2 AMD EPYC cores (probe about 200 GFLOP/s): quick 0.31 (1,300 tok/s
# in the Trainer), tiny 0.23, book-124m 0.27 (about 50 tok/s at batch 2).
STEP_EFFICIENCY = 0.28
PROBE_SIZE = 512  # a 512^3 matmul: a few ms on a CPU core
PROBE_ROUNDS = 5


@cache
def effective_flops(device_name: str) -> float:
    """FLOP/s a training step reaches on this device (measured once per process).

    fp32 on every device: on a CPU, bf16 speeds the matmuls far more than the whole
    step (the probe would overstate it), and fp32 is the safe side of a guess.
    """
    import torch

    device = torch.device(device_name)
    a = torch.randn(PROBE_SIZE, PROBE_SIZE, device=device)
    b = torch.randn(PROBE_SIZE, PROBE_SIZE, device=device)
    (a @ b).sum().item()  # warm-up: kernels chosen, memory allocated
    best = float("inf")
    for _ in range(PROBE_ROUNDS):  # the fastest round: others may share the cores now
        start = time.perf_counter()
        for _ in range(3):
            (a @ b).sum().item()  # .item() waits for an asynchronous device
        best = min(best, (time.perf_counter() - start) / 3)
    return 2 * PROBE_SIZE**3 / best * STEP_EFFICIENCY


def run_flops(model: GPTConfig, train: TrainConfig, plan: BatchPlan) -> float:
    """Training FLOPs of the whole run: its steps plus its evaluations' forwards."""
    per_token = flops_per_token(model, plan.length)
    tokens_per_step = plan.global_batch * plan.grad_accum * plan.length
    steps = plan.total_steps  # max_steps already applied
    evals = len(range(0, steps, train.eval_freq))  # the steps the Trainer evaluates after
    eval_batches = min(train.eval_iter, plan.train_batches) + min(train.eval_iter, plan.val_batches)
    eval_tokens = evals * eval_batches * plan.global_batch * plan.length
    return steps * tokens_per_step * per_token + eval_tokens * per_token / 3


def estimate_seconds(model: GPTConfig, train: TrainConfig, plan: BatchPlan, rate: float) -> float:
    """Seconds the run should take at `rate` effective FLOP/s (see effective_flops)."""
    seconds = run_flops(model, train, plan) / rate
    if train.max_time_s:
        seconds = min(seconds, train.max_time_s)
    return seconds
