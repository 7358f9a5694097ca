"""How long a run takes, measured before it starts.

The probe times a few real training steps (zero_grad, forward and backward over the
run's micro-batches under its autocast, the AdamW update make_adamw picks for the
run) of the run's own model shape, batch, window and precision on the run's device,
one evaluation batch's forward, a few generated tokens (the per-epoch sample) and a
small written and fsync'ed file (checkpoint saves). The run's wall time is then

    setup + steps x step + evaluations x eval batches x forward
          + epochs x sample tokens x token + saves x checkpoint bytes / write speed

where step is the mean probe step (the run's wall time is a sum of steps, so a slow
outlier counts in full), with a range from the fastest and the slowest third of the
probe's steps (a busy machine widens it). The probe steps for at least PROBE_SECONDS:
on a busy machine one step varies several-fold, and a few steps say little.

A large model on a CPU (a full step over PROBE_FULL_FLOPS) is probed shortened: the
same width, vocabulary, batch, window and precision with 1 and with 3 blocks. The two
differ by exactly two blocks, so a block costs half their difference and the rest
(embeddings, output head and loss, the update) is what the 1-block model spends
beyond one block; the full step is rest + n_layers x block. It never holds the full
model in memory, but its noise is multiplied by (n_layers - 1) / 2: it is kept for
models whose whole step would take many seconds.

A device that is not this one cannot be measured: `flops_timing` estimates from the
run's FLOPs over the card's bf16 (or TF32) peak at an assumed utilisation, and says so.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass

import torch

from gptcore.data.plan import BatchPlan
from gptcore.hardware.perf import flops_per_token, make_adamw, reuse_freed_memory
from gptcore.hardware.precision import autocast, resolve_precision
from gptcore.model.dropout import fast_masks
from gptcore.model.gpt import GPTModel, KVCache
from gptcore.planner.memory import parameter_count
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.util.fmt import format_duration
from gptcore.util.paths import runs_dir

PROBE_STEPS = 3  # timed steps at least, after one warm-up step
# ... and at least this many seconds of them (at most PROBE_MAX_STEPS). Measured on this
# 2-core machine with two numpy matmul loops alongside: quick's step took 0.46-3.9 s
# (0.13 s idle), and three steps were 2.4x the run's mean once.
PROBE_SECONDS = 4.0
PROBE_MAX_STEPS = 40
# A CPU step above this (~10 s on 2 cores: gpt2-medium and up at a 1024 window) is
# probed shortened. Book-124m (0.5 TFLOP a step at batch 2) is probed whole: on a busy
# 2-core machine the 1- and 3-block steps varied by ±40% between rounds, and their
# difference, scaled up by 5.5 blocks, overestimated the run 4-fold once.
PROBE_FULL_FLOPS = 1.5e12
SHORT_LAYERS = (1, 3)
SAMPLE_PROBE_TOKENS = 8
WRITE_PROBE_BYTES = 16 * 2**20
# Assumed share of a GPU's peak a step reaches, for devices that are not here:
# nanoGPT-sized models reach 30-50% in bf16; the range is what the estimate shows.
ASSUMED_MFU = (0.25, 0.35, 0.5)


@dataclass(frozen=True)
class StepTiming:
    """Seconds of a run's parts on one device (see the module doc)."""

    step_s: tuple[float, ...]  # per optimizer step (all micro-batches), in probe order
    eval_batch_s: float  # one evaluation batch's forward
    sample_token_s: float  # one token of the per-epoch greedy sample
    save_bytes_per_s: float | None  # None: not measured (saves not counted)
    setup_s: float  # building the model and the first step's extra time (warm-up)
    how: str  # how the step time was found, for people
    measured: bool  # False: estimated from FLOPs (a device that is not here)
    precision: str
    device: str


@dataclass(frozen=True)
class TimeEstimate:
    """A run's wall time: the likely figure, a range, and what it is made of."""

    low: float
    mid: float
    high: float
    parts: dict[str, float]
    measured: bool
    how: str

    def text(self) -> str:
        """'4m10s (3m50s-4m40s)', plus ', estimated, not measured' for a FLOPs estimate."""
        span = f"{format_duration(self.mid)} ({format_duration(self.low)}-{format_duration(self.high)})"
        return span if self.measured else f"{span}, estimated, not measured"


def _checkpoint_bytes(model: GPTConfig) -> int:
    """What one save writes: fp32 weights and AdamW's two moments."""
    return 3 * 4 * parameter_count(model)


def _random_batches(model: GPTConfig, batch: int, length: int, count: int, device: torch.device):
    gen = torch.Generator().manual_seed(0)
    shape = (batch, length)
    out = []
    for _ in range(count):
        x = torch.randint(0, model.vocab_size, shape, generator=gen)
        y = torch.randint(0, model.vocab_size, shape, generator=gen)
        out.append((x.to(device), y.to(device)))
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_model(
    model_cfg: GPTConfig,
    train: TrainConfig,
    device: torch.device,
    rounds: int,
    min_seconds: float = 0.0,
    max_rounds: int | None = None,
) -> tuple[list[float], float, float, float]:
    """(step seconds per round, eval batch seconds, sample token seconds, setup
    seconds: building the model and the first step's extra time) for `model_cfg`
    under `train`'s batch, window, precision and AdamW. It times `rounds` steps, and
    more (up to `max_rounds`, PROBE_MAX_STEPS by default) until they add up to
    `min_seconds`."""
    import torch.nn.functional as F

    _, amp_dtype = resolve_precision(train.precision, device)
    length = train.max_length or model_cfg.context_length
    batch = train.batch_size if isinstance(train.batch_size, int) else 1
    batches = _random_batches(model_cfg, batch, length, train.grad_accum, device)
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model = GPTModel(model_cfg).to(device)
    build_s = time.perf_counter() - started
    model.train()
    optimizer, _ = make_adamw(list(model.parameters()), 1e-4, 0.1, (0.9, 0.999), train.adamw)

    def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast(device, amp_dtype), fast_masks(train.dropout_masks == "fast"):
            logits = model(x)
            return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())

    def step() -> float:
        _sync(device)
        start = time.perf_counter()
        optimizer.zero_grad()
        for x, y in batches:
            (loss_of(x, y) / len(batches)).backward()
        params = [p for p in model.parameters() if p.grad is not None]
        if train.grad_clip is not None:  # the Trainer measures the norm every step
            torch.nn.utils.clip_grad_norm_(params, train.grad_clip).item()
        else:
            torch.nn.utils.get_total_norm([p.grad for p in params]).item()
        optimizer.step()
        _sync(device)
        return time.perf_counter() - start

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        warmup = step()  # kernels chosen, memory touched, AdamW's state created
        steps = [step() for _ in range(rounds)]
        most = PROBE_MAX_STEPS if max_rounds is None else max_rounds
        while sum(steps) < min_seconds and len(steps) < most:
            steps.append(step())
        model.eval()
        with torch.no_grad():
            x, y = batches[0]
            loss_of(x, y)
            _sync(device)
            start = time.perf_counter()
            loss_of(x, y).item()
            eval_s = time.perf_counter() - start
            cache = KVCache(model_cfg, 1, device)
            model(x[:1, :4], cache)
            _sync(device)
            start = time.perf_counter()
            for _ in range(SAMPLE_PROBE_TOKENS):
                model(x[:1, :1], cache, last_only=True)
            _sync(device)
            token_s = (time.perf_counter() - start) / SAMPLE_PROBE_TOKENS
    return steps, eval_s, token_s, build_s + max(0.0, warmup - statistics.median(steps))


def write_speed(folder: str | os.PathLike | None = None) -> float | None:
    """Bytes per second of a small written and fsync'ed file where runs are saved."""
    try:
        target = runs_dir() if folder is None else folder
        os.makedirs(target, exist_ok=True)
        data = os.urandom(WRITE_PROBE_BYTES)
        with tempfile.NamedTemporaryFile(dir=target, prefix=".write-probe-") as f:
            start = time.perf_counter()
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            elapsed = time.perf_counter() - start
    except OSError:
        return None
    return WRITE_PROBE_BYTES / max(elapsed, 1e-6)


def step_flops(model: GPTConfig, train: TrainConfig) -> float:
    length = train.max_length or model.context_length
    batch = train.batch_size if isinstance(train.batch_size, int) else 1
    return flops_per_token(model, length) * batch * length * train.grad_accum


def probe(model: GPTConfig, train: TrainConfig, device: torch.device) -> StepTiming:
    """Time the run's own steps on `device` (this machine's); see the module doc."""
    precision, _ = resolve_precision(train.precision, device)
    shortened = (
        device.type == "cpu"
        and model.n_layers > SHORT_LAYERS[1]
        and step_flops(model, train) > PROBE_FULL_FLOPS
    )
    with reuse_freed_memory():  # as the Trainer runs its steps
        if not shortened:
            steps, eval_s, token_s, build_s = time_model(
                model, train, device, PROBE_STEPS, PROBE_SECONDS
            )
            how = f"{len(steps)} training steps of the run's model, measured on {device}"
        else:
            one, three = (
                time_model(
                    dataclasses.replace(model, n_layers=n),
                    train,
                    device,
                    PROBE_STEPS - 1,
                    PROBE_SECONDS / 2,
                )
                for n in SHORT_LAYERS
            )
            blocks = model.n_layers - 1
            span = SHORT_LAYERS[1] - SHORT_LAYERS[0]

            def scaled(a: float, b: float) -> float:
                return a + blocks * max(0.0, b - a) / span

            rounds = min(len(one[0]), len(three[0]))  # each timed until its own budget
            steps = [scaled(a, b) for a, b in zip(one[0][:rounds], three[0][:rounds], strict=True)]
            eval_s, token_s = scaled(one[1], three[1]), scaled(one[2], three[2])
            build_s = scaled(one[3], three[3])
            how = (
                f"steps of {SHORT_LAYERS[0]}- and {SHORT_LAYERS[1]}-block models of the run's "
                f"width, measured on {device} and scaled to {model.n_layers} blocks"
            )
    return StepTiming(
        step_s=tuple(steps),
        eval_batch_s=eval_s,
        sample_token_s=token_s,
        save_bytes_per_s=write_speed(),
        setup_s=build_s,
        how=how,
        measured=True,
        precision=precision,
        device=str(device),
    )


def flops_timing(
    model: GPTConfig, train: TrainConfig, peak_bf16: float | None, precision: str, device: str
) -> StepTiming | None:
    """An estimate for a GPU that is not here, from FLOPs over its peak at the
    ASSUMED_MFU range; None when its peak is unknown."""
    if peak_bf16 is None:
        return None
    peak = peak_bf16 if precision in ("bf16", "fp16") else peak_bf16 / 2  # TF32
    flops = step_flops(model, train)
    steps = tuple(flops / (peak * share) for share in reversed(ASSUMED_MFU))
    length = train.max_length or model.context_length
    batch = train.batch_size if isinstance(train.batch_size, int) else 1
    forward = flops_per_token(model, length) / 3 * batch * length
    return StepTiming(
        step_s=steps,
        eval_batch_s=forward / (peak * ASSUMED_MFU[1]),
        sample_token_s=1e-3 * model.n_layers / 12,  # launch-bound: ~1 ms per 12 blocks
        save_bytes_per_s=1e9,  # a local NVMe disk
        setup_s=0.0,
        how=f"estimated from FLOPs at {ASSUMED_MFU[0]:.0%}-{ASSUMED_MFU[-1]:.0%} of {device}'s peak, not measured",
        measured=False,
        precision=precision,
        device=device,
    )


def step_spread(step_s: tuple[float, ...]) -> tuple[float, float]:
    """The mean step of the fastest and of the slowest third of the probe's steps, taken
    in order: how fast the machine ran in its best and worst stretch (with three steps,
    the fastest and the slowest step)."""
    thirds = [step_s[i * len(step_s) // 3 : (i + 1) * len(step_s) // 3] for i in range(3)]
    means = [statistics.fmean(t) for t in thirds if t] or [statistics.fmean(step_s)]
    return min(means), max(means)


def run_time(
    model: GPTConfig, train: TrainConfig, plan: BatchPlan, timing: StepTiming
) -> TimeEstimate:
    """The run's wall time from `timing` (see the module doc), capped by max_time_s."""
    steps = plan.total_steps
    evals = len(range(0, steps, train.eval_freq))
    eval_batches = min(train.eval_iter, plan.train_batches) + min(train.eval_iter, plan.val_batches)
    epochs_done = steps // plan.steps_per_epoch if plan.steps_per_epoch else 0
    saves = epochs_done + (1 if steps % max(plan.steps_per_epoch, 1) else 0)
    if train.checkpoint_every:
        saves += steps // train.checkpoint_every
    save_s = 0.0
    if timing.save_bytes_per_s:
        save_s = saves * _checkpoint_bytes(model) / timing.save_bytes_per_s
    fixed = {
        "setup": timing.setup_s,
        "evaluation": evals * eval_batches * timing.eval_batch_s,
        "samples": epochs_done * train.sample_tokens * timing.sample_token_s,
        "checkpoints": save_s,
    }
    middle = statistics.fmean(timing.step_s)
    parts = {"training steps": steps * middle, **fixed}
    rest = sum(fixed.values())

    def total(step_s: float) -> float:
        seconds = steps * step_s + rest
        return min(seconds, train.max_time_s) if train.max_time_s else seconds

    fastest, slowest = step_spread(timing.step_s)
    low, high = total(fastest), total(slowest)
    mid = total(middle)
    if not math.isfinite(mid):
        mid = low = high = float("inf")
    return TimeEstimate(low, mid, high, parts, timing.measured, timing.how)
