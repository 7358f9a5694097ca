"""The Trainer: the book's chapter-5 loop, plus what real runs need.

The book's semantics: epochs over a shuffled train loader (drop_last); per step
zero_grad -> loss -> backward -> optimizer step; `global_step` counted from 0;
after step g with g % eval_freq == 0 the mean loss over `eval_iter` batches of
train and of val; after every epoch a greedy sample of `start_context`.

Data order reproduces the book's DataLoader draw for draw: every pass over a
loader takes a base seed from torch's global RNG (unused with num_workers=0),
and a shuffled pass then takes a second draw that seeds a private generator
for `randperm`. Doing that here explicitly (instead of through DataLoader)
keeps the book's RNG stream and lets a checkpoint record the epoch's seed and
position, so resume is exact. Under torchrun each rank takes its slice of
every global batch (batch_size x world_size windows).

Events go to listeners (the CLI printer, metrics.jsonl, the TUI); `run()`
never raises for a user error: it ends with a Finished or Failed event.

`python -m gptcore.train` takes the same arguments as `gpt-tui train`, so
`torchrun --nproc_per_node=N -m gptcore.train --config ...` runs DDP.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoint import (
    CHECKPOINTS,
    Checkpoint,
    decode_rng,
    load_checkpoint,
    load_weights_into,
    prune_checkpoints,
    resolve_checkpoint,
    save_checkpoint,
)
from .config import PRESETS, GPTConfig, TrainConfig
from .data import (
    OffsetWindowDataset,
    RandomWindowSampler,
    TokenizedCorpus,
    WindowDataset,
    count_batches,
    prepare_corpus,
    require_windows,
)
from .device import pick_device
from .errors import CheckpointError, ConfigError, CorpusError, GptTuiError
from .evaluate import calc_loss_batch
from .events import (
    CheckpointSaved,
    EvalEnd,
    Event,
    Failed,
    Finished,
    Listener,
    RunStarted,
    Sample,
    StepEnd,
)
from .model import GPTModel
from .paths import verdict_file
from .perf import default_precision, enable_tf32, make_adamw, mfu, peak_flops
from .runs import METRICS_FILE, MetricsWriter, new_run_dir, write_run_config

log = logging.getLogger(__name__)

# Settings that fix what a data position means: changing them on resume is refused.
DATA_KEYS = (
    "train_ratio",
    "decode_errors",
    "batch_size",
    "max_length",
    "stride",
    "shuffle",
    "drop_last",
    "sampler",
    "samples_per_epoch",
    "grad_accum",
)


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


def _draw_seed() -> int:
    # Exactly the draw DataLoader / RandomSampler make from the global RNG.
    return int(torch.empty((), dtype=torch.int64).random_().item())


def loader_pass_seed(shuffled: bool) -> int | None:
    """The RNG draws one pass over the book's DataLoader makes: the iterator's base
    seed (unused without worker processes), then, when shuffled, the seed of the
    sampler's private generator, which is returned."""
    _draw_seed()
    return _draw_seed() if shuffled else None


def shuffled_order(n: int, seed: int | None) -> list[int]:
    """The order RandomSampler yields for `seed` (None: in order)."""
    if seed is None:
        return list(range(n))
    g = torch.Generator()
    g.manual_seed(seed)
    return torch.randperm(n, generator=g).tolist()


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


def _config_diff(a: GPTConfig, b: GPTConfig) -> str:
    da, db = a.to_dict(), b.to_dict()
    return ", ".join(f"{k} {da[k]!r} vs {db[k]!r}" for k in da if da[k] != db[k])


class _Stop(Exception):
    """Internal: the run ends early with this Failed event."""

    def __init__(self, failed: Failed) -> None:
        super().__init__(failed.error)
        self.failed = failed


# ---------------------------------------------------------------- the trainer


class Trainer:
    """Pretrains a GPT; see the module docstring. Control methods are thread-safe."""

    def __init__(
        self,
        model_config: GPTConfig,
        train_config: TrainConfig,
        *,
        listeners: Sequence[Listener] = (),
        run_dir: Path | None = None,
        resume: str | Path | None = None,
    ) -> None:
        self.model_config = model_config
        self.config = train_config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.resume = resume
        self._listeners: list[Listener] = list(listeners)
        self._broken_listeners: set[int] = set()
        self._cancel = threading.Event()
        self._paused = threading.Event()
        self._ckpt_request = threading.Event()
        self.rank, self.world = _dist()
        self.is_main = self.rank == 0
        # Progress, all plain numbers: `step` counts completed optimizer steps.
        self.step = 0
        self.epoch = 0
        self.step_in_epoch = 0
        self.tokens_seen = 0
        self.best_val_loss: float | None = None
        self.last_val_loss: float | None = None
        self.last_train_loss: float | None = None
        self.last_checkpoint: Path | None = None
        self._last_ckpt_step: int | None = None
        self.model: GPTModel | None = None
        self.result: Finished | Failed | None = None
        self._metrics: MetricsWriter | None = None

    # -- control (any thread)

    def cancel(self) -> None:
        self._cancel.set()

    def pause(self) -> None:
        self._paused.set()

    def unpause(self) -> None:
        self._paused.clear()

    def request_checkpoint(self) -> None:
        self._ckpt_request.set()

    def add_listener(self, fn: Listener) -> None:
        self._listeners.append(fn)

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    # -- events

    def _emit(self, event: Event) -> None:
        if not self.is_main:
            return
        for fn in list(self._listeners):
            try:
                fn(event)
            except Exception:  # a broken listener must not stop training
                if id(fn) not in self._broken_listeners:
                    self._broken_listeners.add(id(fn))
                    log.exception("a training event listener failed; training goes on")

    def _fail(self, error: str, kind: str = "error") -> Failed:
        failed = Failed(step=self.step, epoch=self.epoch, error=error, kind=kind)
        self.result = failed
        self._emit(failed)
        return failed

    # -- the run

    def run(self) -> Finished | Failed:
        """Train until done, a limit, cancel() or an error; never raises for user errors."""
        try:
            try:
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

    def _setup(self) -> None:
        cfg = self.config
        ckpt: Checkpoint | None = None
        if self.resume is not None:
            ckpt = load_checkpoint(resolve_checkpoint(self.resume))
            self._check_resume(ckpt)
        self.device = self._pick_device()
        self.precision, self.amp_dtype = resolve_precision(cfg.precision, self.device)
        corpus = prepare_corpus(self._corpus_source(), cfg.train_ratio, cfg.decode_errors)
        if ckpt is not None and ckpt.data.get("corpus_key") not in (None, corpus.key):
            raise CheckpointError(
                f"checkpoint {ckpt.path} was trained on a different corpus "
                f"({ckpt.data.get('corpus_name')}); resume it with the same corpus"
            )
        self.corpus = corpus

        # The book's order: seed, build the model, (loaders), optimizer, loop.
        torch.manual_seed(cfg.seed)
        if ckpt is not None:
            model = GPTModel(ckpt.model_config)
        elif cfg.init:
            from .pretrained import model_from_spec

            model = model_from_spec(cfg.init, "cpu")
        else:
            model = GPTModel(self.model_config)
        self.model_config = model.config
        self._setup_data(corpus)
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
        self.train_model: nn.Module = model
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

    def _check_resume(self, ckpt: Checkpoint) -> None:
        if not self.config.init and ckpt.model_config != self.model_config:
            raise CheckpointError(
                f"checkpoint {ckpt.path} does not match the model configuration "
                f"(checkpoint vs config: {_config_diff(ckpt.model_config, self.model_config)})"
            )
        theirs = ckpt.train_config
        mine = self.config.to_dict()
        changed = [k for k in DATA_KEYS if k in theirs and theirs[k] != mine[k]]
        if changed:
            k = changed[0]
            raise CheckpointError(
                f"cannot resume {ckpt.path} with a different train.{k} "
                f"({theirs[k]!r} in the checkpoint, {mine[k]!r} now): the data position "
                "would not mean the same thing"
            )
        world = ckpt.data.get("world_size", 1)
        if world != self.world:
            raise CheckpointError(
                f"checkpoint {ckpt.path} was trained with {world} process(es); "
                f"resume it with the same number (now {self.world})"
            )

    def _setup_data(self, corpus: TokenizedCorpus) -> None:
        cfg = self.config
        ctx = self.model_config.context_length
        length = cfg.max_length or ctx
        if length > ctx:
            raise ConfigError(
                f"train.max_length ({length}) exceeds the model's context length ({ctx})"
            )
        stride = cfg.stride or length
        require_windows(corpus.train_tokens, length, "training")
        require_windows(corpus.val_tokens, length, "validation")
        self.length = length
        if cfg.sampler == "random":
            self.train_data: Any = OffsetWindowDataset(corpus.train_tokens, length)
            self.n_train = cfg.samples_per_epoch or max(1, len(corpus.train_tokens) // length)
        else:
            self.train_data = WindowDataset(corpus.train_tokens, length, stride)
            self.n_train = len(self.train_data)
        self.val_data = WindowDataset(corpus.val_tokens, length, stride)
        self.global_batch = cfg.batch_size * self.world
        self.n_train_batches = count_batches(self.n_train, self.global_batch, cfg.drop_last)
        self.n_val_batches = count_batches(len(self.val_data), self.global_batch, False)
        self.steps_per_epoch = self.n_train_batches // cfg.grad_accum
        if self.steps_per_epoch == 0:
            procs = f" x {self.world} processes" if self.world > 1 else ""
            raise ConfigError(
                f"the corpus is too small for this configuration: the training split has "
                f"{self.n_train} windows of {length} tokens, fewer than one step's "
                f"batch_size {cfg.batch_size} x grad_accum {cfg.grad_accum}{procs}; use a "
                "smaller batch_size, max_length or stride, or a larger corpus"
            )
        total = cfg.epochs * self.steps_per_epoch
        self.total_steps = min(total, cfg.max_steps) if cfg.max_steps else total

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
        self.step, self.epoch, self.tokens_seen = ckpt.step, ckpt.epoch, ckpt.tokens_seen
        self.best_val_loss, self.last_val_loss = ckpt.best_val_loss, ckpt.val_loss
        self.last_train_loss = ckpt.train_loss
        self.step_in_epoch = int(ckpt.data.get("step_in_epoch", 0))
        self._resume_seed = ckpt.data.get("order_seed")
        self._resume_position = self.step_in_epoch > 0
        self._last_ckpt_step = ckpt.step
        self.last_checkpoint = ckpt.path
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
            if ckpt is not None and ckpt.path.parent.name == CHECKPOINTS:
                self.run_dir = ckpt.path.parent.parent
            else:
                self.run_dir = new_run_dir(_describe(self.model_config))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_run_config(self.run_dir, self.model_config, self.config)
        self._metrics = MetricsWriter(self.run_dir / METRICS_FILE)
        self._listeners.insert(0, self._metrics)

    # -- data

    def _new_order(self) -> int | None:
        """Draw a pass over the train loader as DataLoader would; return its seed."""
        return loader_pass_seed(self.config.sampler == "random" or self.config.shuffle)

    def _order(self, seed: int | None) -> list[int]:
        if self.config.sampler == "random":
            g = torch.Generator()
            g.manual_seed(seed)
            high = len(self.corpus.train_tokens)
            return list(RandomWindowSampler(high, self.length, self.n_train, g))
        return shuffled_order(self.n_train, seed)

    def _batch(
        self, data: Any, order: Sequence[int], index: int, size: int, offset: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        start = index * self.global_batch + offset
        ids = order[start : start + size]
        pairs = [data[i] for i in ids]
        x, y = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
        if self.device.type == "cuda":  # page-locked, so the copy to the GPU is asynchronous
            x, y = x.pin_memory(), y.pin_memory()
        return x, y

    # -- one step

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return calc_loss_batch(x, y, model, self.device)

    def _train_step(self, order: Sequence[int], s: int) -> tuple[float, float | None, int]:
        cfg = self.config
        accum = cfg.grad_accum
        lr = lr_at(cfg, self.step, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad()
        total = torch.zeros((), device=self.device)
        tokens = 0
        for a in range(accum):
            x, y = self._batch(
                self.train_data, order, s * accum + a, cfg.batch_size, self.rank * cfg.batch_size
            )
            tokens += x.numel() * self.world
            sync = a == accum - 1 or self.world == 1
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
        if self.world > 1:
            packed = torch.stack([mean, torch.tensor(stop, device=self.device)])
            torch.distributed.all_reduce(packed)
            mean, stop = packed[0] / self.world, float(packed[1].item())
        loss_value = float(mean.item())
        self._stop_requested = stop > 0
        if not math.isfinite(loss_value):
            where = self.last_checkpoint or "none (no checkpoint was saved in this run)"
            raise _Stop(
                Failed(
                    step=self.step,
                    epoch=self.epoch,
                    error=f"the loss became {loss_value} at step {self.step} (epoch "
                    f"{self.epoch + 1}); training stopped before applying it. "
                    f"The last good checkpoint is {where}",
                    kind="nan",
                )
            )
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if cfg.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        else:
            norm = torch.nn.utils.get_total_norm(grads)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        grad_norm = float(norm.item())
        return loss_value, (grad_norm if math.isfinite(grad_norm) else None), tokens

    def _should_stop(self) -> bool:
        if self._cancel.is_set():
            return True
        limit = self.config.max_time_s
        return limit is not None and time.perf_counter() - self._t0 >= limit

    # -- evaluation and samples

    def _evaluate(self) -> tuple[float, float]:
        """The book's evaluate_model: eval_iter batches of a fresh pass over the
        shuffled train loader, and of the (unshuffled) val loader; each rank
        computes the same numbers, so no rank waits for another."""
        model = self.model
        model.eval()
        try:
            with torch.no_grad():
                order = self._order(self._new_order())
                n = min(self.config.eval_iter, self.n_train_batches)
                train = [
                    self._loss(model, *self._batch(self.train_data, order, i, self.global_batch))
                    for i in range(n)
                ]
                loader_pass_seed(False)  # the val loader's pass draws its base seed too
                val_order = list(range(len(self.val_data)))
                n = min(self.config.eval_iter, self.n_val_batches)
                val = [
                    self._loss(model, *self._batch(self.val_data, val_order, i, self.global_batch))
                    for i in range(n)
                ]
        finally:
            model.train()
        return (
            float(np.mean([t.item() for t in train])),
            float(np.mean([v.item() for v in val])),
        )

    def _sample(self) -> None:
        if not self.is_main or self.config.sample_tokens == 0:
            return
        from .generate import sample_text

        text = sample_text(self.model, self.config.start_context, self.config.sample_tokens)
        self.model.train()
        self._emit(Sample(step=self.step - 1, epoch=self.epoch, text=text))

    # -- checkpoints

    def _rng_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def _save(self, reason: str) -> Path | None:
        if not self.is_main or self.run_dir is None:
            return None
        if self._last_ckpt_step == self.step and self.last_checkpoint is not None:
            path = self.last_checkpoint  # nothing changed since: reuse it
            if path.exists():
                self._emit(CheckpointSaved(self.step, self.epoch, str(path), reason))
                return path
        data = {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "order_seed": self._epoch_seed,
            "world_size": self.world,
            "corpus_key": self.corpus.key,
            "corpus_name": self.corpus.name,
        }
        path = save_checkpoint(
            self.run_dir / CHECKPOINTS / f"step-{self.step:06d}",
            self.model,
            train_config=self.config.to_dict(),
            step=self.step,
            epoch=self.epoch,
            tokens_seen=self.tokens_seen,
            optimizer=self.optimizer,
            scaler=self.scaler,
            best_val_loss=self.best_val_loss,
            val_loss=self.last_val_loss,
            train_loss=self.last_train_loss,
            rng=self._rng_state(),
            data=data,
            reason=reason,
        )
        self.last_checkpoint, self._last_ckpt_step = path, self.step
        prune_checkpoints(self.run_dir, self.config.keep_last, protect=path)
        self._emit(CheckpointSaved(self.step, self.epoch, str(path), reason))
        return path

    # -- the loop

    def _wait_while_paused(self) -> None:
        while self._paused.is_set() and not self._cancel.is_set():
            time.sleep(0.05)

    def _loop(self) -> Finished | Failed:
        cfg = self.config
        self._t0 = time.perf_counter()
        self._stop_requested = False
        self._epoch_seed: int | None = getattr(self, "_resume_seed", None)
        self._emit(
            RunStarted(
                run_dir=str(self.run_dir or ""),
                device=str(self.device),
                precision=self.precision,
                total_steps=self.total_steps,
                parameters=self.model.num_parameters(),
                step=self.step,
                epoch=self.epoch,
            )
        )
        train_time, session_tokens = 0.0, 0
        reason: str | None = None
        resumed_mid_epoch = getattr(self, "_resume_position", False)
        while self.epoch < cfg.epochs and reason is None:
            if resumed_mid_epoch:
                resumed_mid_epoch = False  # keep the saved seed and position
            else:
                self._epoch_seed = self._new_order()
                self.step_in_epoch = 0
            order = self._order(self._epoch_seed)
            while self.step_in_epoch < self.steps_per_epoch:
                self._wait_while_paused()
                if cfg.max_steps is not None and self.step >= cfg.max_steps:
                    reason = "max_steps"
                    break
                started = time.perf_counter()
                loss, grad_norm, tokens = self._train_step(order, self.step_in_epoch)
                train_time += time.perf_counter() - started
                global_step = self.step
                self.step += 1
                self.step_in_epoch += 1
                self.tokens_seen += tokens
                session_tokens += tokens
                speed = session_tokens / train_time if train_time > 0 else 0.0
                self._emit(
                    StepEnd(
                        step=global_step,
                        epoch=self.epoch,
                        loss=loss,
                        lr=self.optimizer.param_groups[0]["lr"],
                        tokens_seen=self.tokens_seen,
                        tokens_per_s=speed,
                        grad_norm=grad_norm,
                        mfu=mfu(speed, self.model_config, self.length, self.peak_flops),
                        elapsed_s=time.perf_counter() - self._t0,
                        total_steps=self.total_steps,
                    )
                )
                if self.world == 1 and self._should_stop():
                    self._stop_requested = True  # set by a listener of this very step
                if global_step % cfg.eval_freq == 0:
                    train_loss, val_loss = self._evaluate()
                    self.last_train_loss, self.last_val_loss = train_loss, val_loss
                    if self.best_val_loss is None or val_loss < self.best_val_loss:
                        self.best_val_loss = val_loss
                    self._emit(
                        EvalEnd(global_step, self.epoch, train_loss, val_loss, self.tokens_seen)
                    )
                if self._ckpt_request.is_set():
                    self._ckpt_request.clear()
                    self._save("manual")
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self._save("periodic")
                if self._stop_requested:
                    limit = cfg.max_time_s
                    timed_out = limit is not None and time.perf_counter() - self._t0 >= limit
                    reason = "max_time" if timed_out and not self._cancel.is_set() else "cancelled"
                    break
                if cfg.max_steps is not None and self.step >= cfg.max_steps:
                    reason = "max_steps"
                    break
            if reason is not None:
                break
            self._sample()
            self.epoch += 1
            self.step_in_epoch = 0
            self._epoch_seed = None
            self._save("epoch")
        reason = reason or "completed"
        self._save("interrupt" if reason == "cancelled" else "final")
        finished = Finished(
            step=self.step,
            epoch=self.epoch,
            reason=reason,
            tokens_seen=self.tokens_seen,
            elapsed_s=time.perf_counter() - self._t0,
        )
        self.result = finished
        self._emit(finished)
        return finished


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m gptcore.train`: the same arguments as `gpt-tui train` (torchrun-friendly)."""
    import argparse

    from .commands.train import add_arguments, run_command
    from .paths import HOME_ENV

    parser = argparse.ArgumentParser(
        prog="python -m gptcore.train",
        description="Train a GPT (the same options as `gpt-tui train`); works under torchrun.",
    )
    parser.add_argument("--home", metavar="DIR", help=f"data folder (also: ${HOME_ENV})")
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.home:
        os.environ[HOME_ENV] = args.home
    try:
        return run_command(args)
    except GptTuiError as exc:
        print(f"gpt-tui: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
