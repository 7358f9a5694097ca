"""The Trainer: the book's chapter-5 loop, plus what real runs need.

The book's semantics: epochs over a shuffled train loader (drop_last); per step
zero_grad -> loss -> backward -> optimizer step; `global_step` counted from 0;
after step g with g % eval_freq == 0 the mean loss over `eval_iter` batches of
train and of val; after every epoch a greedy sample of `start_context`.

The Trainer is the loop; its parts live beside it: the batch plan (plan.py),
the data order that reproduces the book's DataLoader draws (data_order.py), the
progress that checkpoints save (train_state.py), when to save and what to keep
(checkpoint_policy.py), and preparing or resuming a run (resume.py).

Events go to listeners (the CLI printer, metrics.jsonl, the TUI); `run()`
never raises for a user error: it ends with a Finished or Failed event.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gptcore.data.order import DataOrder, loader_pass_seed, shuffled_order
from gptcore.data.plan import BatchPlan, batch_plan
from gptcore.data.tokens import TokenizedCorpus, prepare_corpus
from gptcore.errors import CheckpointError, ConfigError, CorpusError, GptTuiError
from gptcore.hardware.device import pick_device
from gptcore.hardware.perf import (
    default_precision,
    enable_tf32,
    make_adamw,
    mfu,
    peak_flops,
    reuse_freed_memory,
)
from gptcore.hardware.sysinfo import CpuMeter, system_stats
from gptcore.model.dropout import fast_masks
from gptcore.model.gpt import GPTModel
from gptcore.runs.checkpoint import Checkpoint, decode_rng, load_weights_into, save_checkpoint
from gptcore.runs.checkpoints import best_checkpoint
from gptcore.runs.events import (
    CheckpointSaved,
    EvalEnd,
    Event,
    Failed,
    Finished,
    Listener,
    Overfitting,
    Phase,
    RunStarted,
    Sample,
    Spike,
    StepEnd,
    SystemSample,
)
from gptcore.runs.lock import RunLock, check_run_dir_unused
from gptcore.runs.metrics import MetricsWriter
from gptcore.runs.rundir import RunDir, new_run_dir, write_run_config
from gptcore.runs.train_state import TrainState
from gptcore.settings.model import PRESETS, GPTConfig
from gptcore.settings.train import TrainConfig, check_trainable
from gptcore.training.checkpoint_policy import CheckpointPolicy
from gptcore.training.evaluate import calc_loss_batch
from gptcore.training.health import OverfitDetector, SpikeDetector
from gptcore.training.resume import check_resume, check_schedule, open_checkpoint
from gptcore.util.paths import verdict_file

log = logging.getLogger(__name__)

# How often the training process reports its CPU, memory and GPU use (SystemSample):
# what `gpt-tui watch` shows of a run in another process.
SYSTEM_EVERY_S = 10.0

__all__ = [
    "Trainer",
    "eval_steps",
    "loader_pass_seed",
    "lr_at",
    "resolve_precision",
    "shuffled_order",
]


# ---------------------------------------------------------------- helpers


def resolve_precision(name: str, device: torch.device) -> tuple[str, torch.dtype | None]:
    """("bf16" | "fp16" | "fp32", autocast dtype or None) for a precision setting."""
    if name == "auto":
        name = default_precision(device)
    if name == "fp32":
        return "fp32", None
    if name == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError('this GPU does not support bf16; use precision = "fp16" or "fp32"')
        if device.type not in ("cuda", "cpu"):
            raise ConfigError(f"precision bf16 is not supported on {device.type}; use fp32")
        return "bf16", torch.bfloat16
    if name == "fp16":
        if device.type != "cuda":
            raise ConfigError(
                f"precision fp16 needs a CUDA GPU (the device is {device.type}); use bf16 or fp32"
            )
        return "fp16", torch.float16
    raise ConfigError(f"unknown precision {name!r}")


def lr_at(config: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup, then
    constant or cosine decay to min_lr at `total_steps`."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.lr_schedule == "constant":
        return config.lr
    span = max(1, total_steps - config.warmup_steps)
    progress = min(1.0, max(0.0, (step - config.warmup_steps) / span))
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * progress))


def eval_steps(total_steps: int, eval_freq: int) -> list[int]:
    """The global steps at which the book's loop evaluates."""
    return [g for g in range(total_steps) if g % eval_freq == 0]


def _dist() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _describe(config: GPTConfig) -> str:
    for name, preset in PRESETS.items():
        if preset == config:
            return name
    return "gpt"


class _Stop(Exception):
    """Internal: the run ends early with this Failed event."""

    def __init__(self, failed: Failed) -> None:
        super().__init__(failed.error)
        self.failed = failed


# ---------------------------------------------------------------- the trainer


class Trainer:
    """Pretrains a GPT; see the module docstring. Control methods are thread-safe.

    `resume` is a checkpoint (already loaded and verified, e.g. by
    resume.prepare_run) or a spec to load one from: a checkpoint folder, a run
    (its latest), `RUN:latest` or `RUN:best`.
    """

    def __init__(
        self,
        model_config: GPTConfig,
        train_config: TrainConfig,
        *,
        listeners: Sequence[Listener] = (),
        run_dir: Path | None = None,
        resume: Checkpoint | str | Path | None = None,
        cancel_event: threading.Event | None = None,
    ) -> None:
        self.model_config = model_config
        self.config = train_config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.resume = resume
        self._listeners: list[Listener] = list(listeners)
        self._broken_listeners: set[int] = set()
        # Set by cancel(), or by the caller through its own event (a front end that
        # may stop the run before it holds the Trainer).
        self._cancel = cancel_event if cancel_event is not None else threading.Event()
        self._paused = threading.Event()
        self.rank, self.world = _dist()
        self.is_main = self.rank == 0
        self.state = TrainState()
        self.policy = CheckpointPolicy(train_config.checkpoint_every, train_config.keep_last)
        self.result: Finished | Failed | None = None
        # Health signals (health.py). Every rank feeds them the same numbers (the mean
        # loss, the synced gradients), so all ranks skip the same updates.
        self._loss_spikes = SpikeDetector(train_config.spike_window, train_config.spike_z)
        self._grad_spikes = SpikeDetector(train_config.spike_window, train_config.spike_z)
        self._overfit = OverfitDetector(train_config.overfit_evals)
        self._step_spikes: list[tuple[str, float, float]] = []  # (kind, value, z) this step
        self._step_skipped = False
        self._cpu = CpuMeter()  # the training process's own CPU use, for SystemSample
        self._system_at = -math.inf  # perf_counter of the last SystemSample
        # Set up by _setup(), from the configs and the corpus:
        self.device = torch.device("cpu")
        self.precision = ""
        self.amp_dtype: torch.dtype | None = None
        self.corpus: TokenizedCorpus | None = None
        self.plan: BatchPlan | None = None
        self.data: DataOrder | None = None
        self.model: GPTModel | None = None
        self.train_model: nn.Module | None = None  # the model as trained: DDP / compiled
        self.optimizer: torch.optim.Optimizer | None = None
        self.adamw_impl = ""
        self.scaler: torch.amp.GradScaler | None = None
        self.peak_flops: float | None = None
        self._metrics: MetricsWriter | None = None
        self._lock: RunLock | None = None  # RUN/.lock while this Trainer writes there
        # Within one run() call:
        self._t0 = 0.0
        self._stop_requested = False
        self._train_time = 0.0
        self._session_tokens = 0
        self._paused_s = 0.0  # time spent paused: not part of elapsed_s (nor of the ETA)

    # -- control (any thread)

    def cancel(self) -> None:
        self._cancel.set()

    def pause(self) -> None:
        self._paused.set()

    def unpause(self) -> None:
        self._paused.clear()

    def request_checkpoint(self) -> None:
        self.policy.request()

    def add_listener(self, fn: Listener) -> None:
        self._listeners.append(fn)

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    # -- progress, read from the state and the plan

    @property
    def step(self) -> int:
        return self.state.step

    @property
    def steps_per_epoch(self) -> int:
        return self.plan.steps_per_epoch if self.plan else 0

    @property
    def total_steps(self) -> int:
        return self.plan.total_steps if self.plan else 0

    @property
    def n_train(self) -> int:
        return self.plan.train_windows if self.plan else 0

    @property
    def n_train_batches(self) -> int:
        return self.plan.train_batches if self.plan else 0

    @property
    def last_checkpoint(self) -> Path | None:
        return self.policy.last_path

    # -- events

    def _emit(self, event: Event) -> None:
        if not self.is_main:
            return
        for fn in list(self._listeners):
            try:
                fn(event)
            except GptTuiError as exc:
                # A metrics.jsonl that cannot be written (a full disk) ends the run: one line,
                # no traceback. The closing event itself is reported, not raised.
                if fn is self._metrics and not isinstance(event, Finished | Failed):
                    raise
                if id(fn) not in self._broken_listeners:
                    self._broken_listeners.add(id(fn))
                    log.error("%s", exc)
            except Exception:  # a broken listener must not stop training
                if id(fn) not in self._broken_listeners:
                    self._broken_listeners.add(id(fn))
                    log.exception("a training event listener failed; training goes on")

    def _phase(self, name: str) -> None:
        """Slow work begins (a front end shows it with its elapsed time)."""
        self._emit(Phase(name, self.state.step, self.state.epoch))

    def _active_s(self) -> float:
        """Seconds since this session's loop started, paused time left out."""
        return time.perf_counter() - self._t0 - self._paused_s

    def _fail(self, error: str, kind: str = "error") -> Failed:
        failed = Failed(step=self.state.step, epoch=self.state.epoch, error=error, kind=kind)
        self.result = failed
        self._emit(failed)
        return failed

    # -- the run

    def run(self) -> Finished | Failed:
        """Train until done, a limit, cancel() or an error; never raises for user errors."""
        try:
            try:
                with reuse_freed_memory():
                    self._setup()
                    return self._loop()
            except _Stop as stop:
                self.result = stop.failed
                self._emit(stop.failed)
                return stop.failed
            except GptTuiError as exc:
                return self._fail(str(exc))
            except Exception as exc:  # a bug or an environment problem: report, don't crash the UI
                log.debug("training failed", exc_info=True)
                return self._fail(f"{type(exc).__name__}: {exc}")
        finally:
            if self._metrics is not None:
                self._metrics.close()
            if self._lock is not None:  # after the closing event: the run is complete
                self._lock.release()
                self._lock = None

    # -- setup

    def _corpus_source(self) -> str:
        corpus = self.config.corpus
        if corpus == "verdict":
            path = verdict_file()
            if not path.exists():
                raise CorpusError(
                    f"the book's corpus (the-verdict.txt) is not at {path}; run "
                    "`gpt-tui download verdict` to fetch it, or pass --corpus PATH"
                )
            return str(path)
        return corpus

    def _load_resume(self) -> Checkpoint | None:
        if self.resume is None or isinstance(self.resume, Checkpoint):
            return self.resume
        return open_checkpoint(self.resume)

    def _setup(self) -> None:
        cfg = self.config
        check_trainable(self.model_config, cfg)  # before any slow work, and nothing written
        ckpt = self._load_resume()
        if ckpt is not None:
            check_resume(ckpt, self.model_config, cfg, self.world)
        # An earlier run's folder is reused only by resuming it. Every rank checks (before
        # DDP's first broadcast, so before rank 0 writes there): all refuse together.
        if self.run_dir is not None:
            check_run_dir_unused(self.run_dir, ckpt.path if ckpt is not None else None)
        self.device = self._pick_device()
        self.precision, self.amp_dtype = resolve_precision(cfg.precision, self.device)
        self._phase("corpus")
        corpus = prepare_corpus(self._corpus_source(), cfg.train_ratio, cfg.decode_errors)
        if ckpt is not None and ckpt.data.get("corpus_key") not in (None, corpus.key):
            raise CheckpointError(
                f"checkpoint {ckpt.path} was trained on a different corpus "
                f"({ckpt.data.get('corpus_name')}); resume it with the same corpus"
            )
        self.corpus = corpus

        self._phase("model")
        # The book's order: seed, build the model, (loaders), optimizer, loop.
        torch.manual_seed(cfg.seed)
        if ckpt is not None:
            model = GPTModel(ckpt.model_config)
        elif cfg.init:
            from gptcore.weights.layouts import with_vocab_multiple
            from gptcore.weights.modelspec import model_from_spec

            model = model_from_spec(cfg.init, "cpu")
            # The weights bring their shape; padding is the run's speed setting.
            model = with_vocab_multiple(model, self.model_config.vocab_multiple)
        else:
            model = GPTModel(self.model_config)
        self.model_config = model.config
        check_trainable(model.config, cfg)  # --init weights bring their own shape
        self.plan = batch_plan(
            len(corpus.train_tokens), len(corpus.val_tokens), model.config, cfg, self.world
        ).check()
        if ckpt is not None:
            check_schedule(ckpt, cfg, self.plan.steps_per_epoch)
        self.data = DataOrder(
            corpus, self.plan, cfg.shuffle, self.rank, pin_memory=self.device.type == "cuda"
        )
        if ckpt is not None:
            load_weights_into(model, ckpt)
        model.to(self.device)
        model.train()
        self.model = model
        enable_tf32(self.device)
        self.optimizer, self.adamw_impl = make_adamw(
            list(model.parameters()), cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2), cfg.adamw
        )
        self.peak_flops = peak_flops(self.device, self.precision)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        if ckpt is not None:
            self._restore(ckpt)
        self.train_model = model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(model, device_ids=ids)
        if cfg.compile:
            self.train_model = torch.compile(self.train_model)
        if self.is_main:
            self._open_run_dir(ckpt)

    def _pick_device(self) -> torch.device:
        device = pick_device(self.config.device)
        if self.world > 1 and device.type == "cuda" and device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", self.rank)))
        return device

    def _restore(self, ckpt: Checkpoint) -> None:
        opt = ckpt.optimizer_state()
        if opt is not None:
            try:
                self.optimizer.load_state_dict(opt["optimizer"])
                if self.scaler is not None and opt.get("scaler"):
                    self.scaler.load_state_dict(opt["scaler"])
            except (KeyError, ValueError, TypeError, RuntimeError) as exc:
                raise CheckpointError(
                    f"the optimizer state in {ckpt.path} does not fit this model: {exc}"
                ) from None
        self.state = TrainState.from_checkpoint(ckpt)
        self.policy.last_path, self.policy.last_step = ckpt.path, ckpt.step
        self.policy.last_reason = ckpt.reason
        rng = decode_rng(ckpt.rng)
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if rng.get("cuda") and torch.cuda.is_available():
            states = rng["cuda"]
            if len(states) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(states)
            elif self.device.type == "cuda":
                torch.cuda.set_rng_state(states[0], self.device)

    def _open_run_dir(self, ckpt: Checkpoint | None) -> None:
        if self.run_dir is None:
            run = RunDir.of_checkpoint(ckpt.path) if ckpt is not None else None
            self.run_dir = (
                run.path if run is not None else new_run_dir(_describe(self.model_config))
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # One process per run: a second resume of it is refused before writing anything.
        self._lock = RunLock(self.run_dir).acquire()
        write_run_config(self.run_dir, self.model_config, self.config)
        self._metrics = MetricsWriter(RunDir(self.run_dir).metrics)
        self._listeners.insert(0, self._metrics)

    # -- one step

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self._autocast(), fast_masks(self.config.dropout_masks == "fast"):
            return calc_loss_batch(x, y, model, self.device)

    def _train_step(self, order: Sequence[int]) -> tuple[float, float | None, int]:
        """zero_grad, loss and backward over grad_accum micro-batches, optimizer step:
        (mean loss, gradient norm or None, tokens in all processes)."""
        cfg, state = self.config, self.state
        accum = cfg.grad_accum
        lr = lr_at(cfg, state.step, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad()
        total = torch.zeros((), device=self.device)
        tokens = 0
        for micro in range(accum):
            x, y = self.data.step_batch(order, state.step_in_epoch, micro)
            tokens += x.numel() * self.world
            sync = micro == accum - 1 or self.world == 1
            ctx = contextlib.nullcontext() if sync else self.train_model.no_sync()
            with ctx:
                loss = self._loss(self.train_model, x, y)
                scaled = loss / accum if accum > 1 else loss
                if self.scaler is not None:
                    self.scaler.scale(scaled).backward()
                else:
                    scaled.backward()
            total += loss.detach()
        mean = total / accum
        stop = 1.0 if self._should_stop() else 0.0
        if self.world > 1:  # every rank stops at the same step
            packed = torch.stack([mean, torch.tensor(stop, device=self.device)])
            torch.distributed.all_reduce(packed)
            mean, stop = packed[0] / self.world, float(packed[1].item())
        loss_value = float(mean.item())
        self._stop_requested = stop > 0
        if not math.isfinite(loss_value):
            raise _Stop(self._nan_failure(loss_value))
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if cfg.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        else:
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            norm = torch.nn.utils.get_total_norm(grads)
        # A spike is judged before the update, so that it can be left out. A skipped
        # step still counts as a step (its batch is used, the schedule moves on), so
        # the data position and the learning rate stay what a resume expects.
        self._step_spikes = self._spikes(loss_value, norm) if cfg.spike_z > 0 else []
        self._step_skipped = bool(self._step_spikes) and cfg.skip_spikes
        if self._step_skipped:  # the weights and the optimizer's state stay as they were
            self.optimizer.zero_grad()
            if self.scaler is not None:
                self.scaler.update()  # ends the unscale_ above, as a scaler step would
        elif self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        grad_norm = float(norm.item())
        return loss_value, (grad_norm if math.isfinite(grad_norm) else None), tokens

    def _spikes(self, loss: float, norm: torch.Tensor) -> list[tuple[str, float, float]]:
        """(kind, value, z) for this step's loss and gradient norm, where they spike."""
        found = []
        grad_norm = float(norm.item())
        for kind, value, detector in (
            ("loss", loss, self._loss_spikes),
            ("grad_norm", grad_norm, self._grad_spikes),
        ):
            if math.isfinite(value) and (z := detector.check(value)) is not None:
                found.append((kind, value, z))
        return found

    def _nan_failure(self, loss: float) -> Failed:
        state = self.state
        where = self.policy.last_path or "none (no checkpoint was saved in this run)"
        return Failed(
            step=state.step,
            epoch=state.epoch,
            error=f"the loss became {loss} at step {state.step} (epoch {state.epoch + 1}); "
            f"training stopped before applying it. The last good checkpoint is {where}",
            kind="nan",
        )

    def _should_stop(self) -> bool:
        if self._cancel.is_set():
            return True
        limit = self.config.max_time_s
        return limit is not None and time.perf_counter() - self._t0 >= limit

    def _reached_max_steps(self) -> bool:
        return self.config.max_steps is not None and self.state.step >= self.config.max_steps

    # -- evaluation and samples

    def _overfitting(self, step: int) -> Overfitting:
        """The event for an overfitting onset, naming the run's best-val checkpoint."""
        best = None
        if self.is_main and self.run_dir is not None:
            with contextlib.suppress(CheckpointError):  # none saved with a val loss yet
                best = str(best_checkpoint(self.run_dir))
        o = self._overfit
        return Overfitting(step, self.state.epoch, o.evals, o.best_val, o.best_step, best)

    def _evaluate(self) -> tuple[float, float]:
        """The book's evaluate_model (see DataOrder.eval_batches); each rank computes
        the same numbers, so no rank waits for another."""
        model = self.model
        model.eval()
        try:
            with torch.no_grad():
                train, val = self.data.eval_batches(self.config.eval_iter)
                train_losses = [self._loss(model, x, y).item() for x, y in train]
                val_losses = [self._loss(model, x, y).item() for x, y in val]
        finally:
            model.train()
        return float(np.mean(train_losses)), float(np.mean(val_losses))

    def _sample(self) -> None:
        if not self.is_main or self.config.sample_tokens == 0:
            return
        from gptcore.sampling.stream import sample_text

        self._phase("sample")
        text = sample_text(self.model, self.config.start_context, self.config.sample_tokens)
        self.model.train()
        self._emit(Sample(step=self.state.step - 1, epoch=self.state.epoch, text=text))

    # -- checkpoints

    def _rng_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def _save(self, reason: str) -> Path | None:
        if not self.is_main or self.run_dir is None:
            return None
        state = self.state
        path = self.policy.reusable(state.step, reason)  # nothing changed since the last save
        if path is None:
            self._phase("checkpoint")
            fields = state.checkpoint_fields()
            fields["data"].update(
                world_size=self.world, corpus_key=self.corpus.key, corpus_name=self.corpus.name
            )
            path = save_checkpoint(
                RunDir(self.run_dir).checkpoint(state.step),
                self.model,
                train_config=self.config.to_dict(),
                optimizer=self.optimizer,
                scaler=self.scaler,
                rng=self._rng_state(),
                reason=reason,
                **fields,
            )
            self.policy.saved(self.run_dir, path, state.step, reason)
        self._emit(CheckpointSaved(state.step, state.epoch, str(path), reason))
        return path

    # -- the loop

    def _wait_while_paused(self) -> None:
        if not self._paused.is_set():
            return
        started = time.perf_counter()
        while self._paused.is_set() and not self._cancel.is_set():
            time.sleep(0.05)
        self._paused_s += time.perf_counter() - started

    def _loop(self) -> Finished | Failed:
        cfg, state = self.config, self.state
        self._t0 = time.perf_counter()
        self._stop_requested = False
        self._train_time, self._session_tokens, self._paused_s = 0.0, 0, 0.0
        self._emit(
            RunStarted(
                run_dir=str(self.run_dir or ""),
                device=str(self.device),
                precision=self.precision,
                total_steps=self.total_steps,
                parameters=self.model.num_parameters(),
                step=state.step,
                epoch=state.epoch,
            )
        )
        reason: str | None = None
        while state.epoch < cfg.epochs and reason is None:
            if not state.mid_epoch:  # a resumed epoch keeps its order and position
                state.start_epoch(self.data.new_pass())
            order = self.data.train_order(state.order_seed)
            while reason is None and state.step_in_epoch < self.steps_per_epoch:
                reason = self._step(order)
            if reason is None:
                self._sample()
                state.end_epoch()
                self._save("epoch")
        reason = reason or "completed"
        if self.policy.take_request():  # asked for after the last step's saves
            self._save("manual")
        self._save("interrupt" if reason == "cancelled" else "final")
        finished = Finished(
            step=state.step,
            epoch=state.epoch,
            reason=reason,
            tokens_seen=state.tokens_seen,
            elapsed_s=self._active_s(),
        )
        self.result = finished
        self._emit(finished)
        return finished

    def _step(self, order: Sequence[int]) -> str | None:
        """One optimizer step and what follows it (events, evaluation, checkpoint);
        returns why the run stops here, or None to go on."""
        cfg, state = self.config, self.state
        self._wait_while_paused()
        if self._reached_max_steps():
            return "max_steps"
        global_step = state.step  # the book's 0-based index of this step
        started = time.perf_counter()
        loss, grad_norm, tokens = self._train_step(order)
        self._train_time += time.perf_counter() - started
        self._session_tokens += tokens
        state.record_step(tokens)
        speed = self._session_tokens / self._train_time if self._train_time > 0 else 0.0
        self._emit(
            StepEnd(
                step=global_step,
                epoch=state.epoch,
                loss=loss,
                lr=self.optimizer.param_groups[0]["lr"],
                tokens_seen=state.tokens_seen,
                tokens_per_s=speed,
                grad_norm=grad_norm,
                mfu=mfu(speed, self.model_config, self.plan.length, self.peak_flops),
                elapsed_s=self._active_s(),
                total_steps=self.total_steps,
            )
        )
        for kind, value, z in self._step_spikes:
            self._emit(Spike(global_step, state.epoch, kind, value, z, self._step_skipped))
        if self.is_main and time.perf_counter() - self._system_at >= SYSTEM_EVERY_S:
            self._system_at = time.perf_counter()
            stats = system_stats(str(self.device), self._cpu)
            self._emit(SystemSample(global_step, state.epoch, **dataclasses.asdict(stats)))
        if self.world == 1 and self._should_stop():
            self._stop_requested = True  # set by a listener of this very step
        if global_step % cfg.eval_freq == 0:
            self._phase("eval")
            train_loss, val_loss = self._evaluate()
            state.record_eval(train_loss, val_loss)
            self._emit(EvalEnd(global_step, state.epoch, train_loss, val_loss, state.tokens_seen))
            if self._overfit.update(global_step, train_loss, val_loss):
                self._emit(self._overfitting(global_step))
        for reason in self.policy.due_after_step(state.step):
            self._save(reason)
        if self._stop_requested:
            limit = cfg.max_time_s
            timed_out = limit is not None and time.perf_counter() - self._t0 >= limit
            return "max_time" if timed_out and not self._cancel.is_set() else "cancelled"
        return "max_steps" if self._reached_max_steps() else None
