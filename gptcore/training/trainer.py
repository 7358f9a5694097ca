"""The Trainer: the book's chapter-5 loop, plus what real runs need.

The book's semantics: epochs over a shuffled train loader (drop_last); per step
zero_grad -> loss -> backward -> optimizer step; `global_step` counted from 0;
after step g with g % eval_freq == 0 the mean loss over `eval_iter` batches of
train and of val; after every epoch a greedy sample of `start_context`.

The Trainer is the loop; its parts live beside it: setting a run up (setup.py),
one optimizer step and the evaluation (step.py), the precision (precision.py),
the listeners (listeners.py), the RNG state a checkpoint keeps (rng.py), when to
save and what to keep (checkpoint_policy.py), and preparing or resuming a run
(resume.py). The batch plan (data/plan.py), the data order that reproduces the
book's DataLoader draws (data/order.py) and the progress checkpoints save
(runs/train_state.py) live with the data and the runs.

Events go to listeners (the CLI printer, metrics.jsonl, the TUI); `run()`
never raises for a user error: it ends with a Finished or Failed event.
Front ends start a run the same way: `trainer_for(prepare_run(...))`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from gptcore.errors import CheckpointError, GptTuiError
from gptcore.hardware.perf import mfu, reuse_freed_memory
from gptcore.hardware.sysinfo import CpuMeter, system_stats
from gptcore.planner.autobatch import resolve_run_batch
from gptcore.runs.checkpoint import Checkpoint, save_checkpoint
from gptcore.runs.checkpoints import best_checkpoint
from gptcore.runs.events import (
    BatchChanged,
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
from gptcore.runs.lock import RunLock
from gptcore.runs.metrics import MetricsWriter
from gptcore.runs.rundir import RunDir, write_run_config
from gptcore.runs.train_state import TrainState
from gptcore.sampling.stream import sample_text
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.training.checkpoint_policy import CheckpointPolicy
from gptcore.training.health import OverfitDetector
from gptcore.training.listeners import Listeners
from gptcore.training.resume import PreparedRun
from gptcore.training.rng import rng_state
from gptcore.training.setup import RunParts, RunSetup, run_folder
from gptcore.training.step import LossNotFinite, TrainStep
from gptcore.training.stopsignals import StopRequest

log = logging.getLogger(__name__)

# How often the training process reports its CPU, memory and GPU use (SystemSample):
# what `gpt-tui watch` shows of a run in another process.
SYSTEM_EVERY_S = 10.0


def _dist() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _from_parts(name: str) -> property:
    """A read-only Trainer attribute: the field `name` of its RunParts (None before
    run() has set them up)."""
    return property(lambda trainer: getattr(trainer.parts, name, None))


class RunClock:
    """The time of one run() call: elapsed without pauses (what the ETA divides),
    the time inside optimizer steps (what the speed divides) and the time limit."""

    def __init__(self, max_time_s: float | None) -> None:
        self.started = time.perf_counter()
        self.max_time_s = max_time_s
        self.paused_s = 0.0
        self.step_s = 0.0
        self.step_tokens = 0  # trained on in this call's steps, all processes together

    def active_s(self) -> float:
        return time.perf_counter() - self.started - self.paused_s

    def timed_out(self) -> bool:
        limit = self.max_time_s
        return limit is not None and time.perf_counter() - self.started >= limit

    def wait_while_paused(
        self,
        paused: threading.Event,
        cancel: threading.Event,
        meanwhile: Callable[[], None] | None = None,
    ) -> None:
        """Wait until unpaused or cancelled, calling `meanwhile` (if any) as it waits."""
        if not paused.is_set():
            return
        started = time.perf_counter()
        while paused.is_set() and not cancel.is_set():
            if meanwhile is not None:
                meanwhile()
            time.sleep(0.05)
        self.paused_s += time.perf_counter() - started

    def count_step(self, seconds: float, tokens: int) -> float:
        """Add one step; returns the tokens per second of the steps so far."""
        self.step_s += seconds
        self.step_tokens += tokens
        return self.step_tokens / self.step_s if self.step_s > 0 else 0.0


class Trainer:
    """Pretrains a GPT; see the module docstring. Control methods are thread-safe.

    `resume` is a checkpoint (already loaded and verified, e.g. by
    resume.prepare_run) or a spec to load one from: a checkpoint folder, a run
    (its latest), `RUN:latest` or `RUN:best`.

    Once run() has set up, `parts` holds what the run trains with (RunParts);
    `trainer.model`, `trainer.device` etc. read its fields.
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
        self._listeners = Listeners(listeners)
        # Set by cancel(), or by the caller through its own event (a front end that
        # may stop the run before it holds the Trainer).
        # A StopRequest also says which stop signal set it (Finished.signal).
        self._cancel = cancel_event if cancel_event is not None else StopRequest()
        self._paused = threading.Event()
        self.rank, self.world = _dist()
        self.is_main = self.rank == 0
        self.state = TrainState()
        self.policy = CheckpointPolicy(
            train_config.checkpoint_every, train_config.keep_last, train_config.keep_optimizer
        )
        # The step whose weights state.last_*_loss were measured on (None: not yet).
        self._losses_step: int | None = None
        # Every rank feeds it the same numbers, so all ranks see the same onset.
        self._overfit = OverfitDetector(train_config.overfit_evals)
        self._cpu = CpuMeter()  # the training process's own CPU use, for SystemSample
        self._system_at = -math.inf  # perf_counter of the last SystemSample
        self.parts: RunParts | None = None  # set up by run()
        self._steps: TrainStep | None = None
        self._metrics: MetricsWriter | None = None
        self._lock: RunLock | None = None  # RUN/.lock while this Trainer writes there
        # Within one run() call (the loop starts a new clock):
        self._clock = RunClock(train_config.max_time_s)
        self._stop_requested = False
        self._stop_reason = "cancelled"  # what Finished says after a stop (see stop())

    # -- control (any thread)

    def cancel(self, signum: int | None = None) -> None:
        """Stop after the current step (a checkpoint is saved); `signum` is the stop
        signal that asked for it, which the closing event then names."""
        if signum is not None and isinstance(self._cancel, StopRequest):
            self._cancel.set_for_signal(signum)
        self._cancel.set()

    def stop(self, reason: str) -> None:
        """Stop like cancel(), the closing Finished event giving `reason` ("pruned":
        a sweep's pruner ended the run; it is complete, not interrupted)."""
        self._stop_reason = reason
        self._cancel.set()

    def emit(self, event: Event) -> None:
        """Send a listener's own event (a sweep's Pruned) to this run's listeners and
        its metrics.jsonl, in order with the Trainer's."""
        self._emit(event)

    def pause(self) -> None:
        """Wait before the next step until unpause() or cancel()."""
        self._paused.set()

    def unpause(self) -> None:
        self._paused.clear()

    def request_checkpoint(self) -> None:
        """Save a checkpoint after the current step."""
        self.policy.request()

    def add_listener(self, fn: Listener) -> None:
        """Also call `fn` with this run's events. For a listener that needs the Trainer
        itself (one that pauses or cancels it on an event), which cannot be passed as
        `listeners` to the constructor."""
        self._listeners.add(fn)

    @property
    def paused(self) -> bool:
        """Whether pause() holds the run (until unpause()): a front end's pause key
        can show the Trainer's own state rather than keep a copy."""
        return self._paused.is_set()

    # -- what set-up built, read by front ends, benchmarks and tests (None before)

    device = _from_parts("device")
    precision = _from_parts("precision")
    plan = _from_parts("plan")
    model = _from_parts("model")
    train_model = _from_parts("train_model")
    optimizer = _from_parts("optimizer")
    adamw_impl = _from_parts("adamw_impl")
    scaler = _from_parts("scaler")
    peak_flops = _from_parts("peak_flops")

    # -- events

    def _emit(self, event: Event) -> None:
        if self.is_main:
            self._listeners.emit(event)

    def _phase(self, name: str) -> None:
        """Slow work begins (a front end shows it with its elapsed time)."""
        self._emit(Phase(name, self.state.step, self.state.epoch))

    def _fail(self, error: str, kind: str = "error") -> Failed:
        failed = Failed(step=self.state.step, epoch=self.state.epoch, error=error, kind=kind)
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
            except LossNotFinite as exc:
                return self._fail(self._nan_message(exc.loss), kind="nan")
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

    def _nan_message(self, loss: float) -> str:
        state = self.state
        where = self.policy.last_path or "none (no checkpoint was saved in this run)"
        return (
            f"the loss became {loss} at step {state.step} (epoch {state.epoch + 1}); "
            f"training stopped before applying it. The last good checkpoint is {where}"
        )

    # -- setup

    def _setup(self) -> None:
        # batch_size = "auto" becomes a number first: everything after plans with it.
        self.config, batch_note = resolve_run_batch(
            self.model_config, self.config, self.world, self.rank
        )
        setup = RunSetup(
            self.model_config, self.config, rank=self.rank, world=self.world, phase=self._phase
        )
        ckpt = setup.check(self.resume, self.run_dir)
        self.parts = setup.build(ckpt)
        self.model_config = self.parts.model.config
        if ckpt is not None:  # the progress and the checkpoints it goes on from
            self.state = TrainState.from_checkpoint(ckpt)
            self.policy.resumed_from(ckpt)
            loss_step = ckpt.meta.get("loss_step")
            self._losses_step = loss_step if isinstance(loss_step, int) else None
        self._steps = TrainStep(self.config, self.parts, self.world, self._should_stop)
        if self.is_main:
            self._open_run_dir(ckpt)
        if batch_note is not None:
            self._emit(self._batch_changed(self._steps.micro_batch(), "auto", batch_note))

    def _batch_changed(self, micro: tuple[int, int], reason: str, detail: str) -> BatchChanged:
        batch, accum = micro
        effective = int(self.config.batch_size) * self.config.grad_accum
        state = self.state
        return BatchChanged(state.step, state.epoch, batch, accum, effective, reason, detail)

    def _open_run_dir(self, ckpt: Checkpoint | None) -> None:
        self.run_dir = run_folder(self.run_dir, ckpt, self.model_config)
        # One process per run: a second resume of it is refused before writing anything.
        self._lock = RunLock(self.run_dir).acquire()
        write_run_config(self.run_dir, self.model_config, self.config)
        self._metrics = MetricsWriter(RunDir(self.run_dir).metrics)
        self._listeners.add_required(self._metrics)

    # -- evaluation, samples and checkpoints

    def _overfitting(self, step: int) -> Overfitting:
        """The event for an overfitting onset, naming the run's best-val checkpoint."""
        best = None
        if self.is_main and self.run_dir is not None:
            with contextlib.suppress(CheckpointError):  # none saved with a val loss yet
                best = str(best_checkpoint(self.run_dir))
        o = self._overfit
        return Overfitting(step, self.state.epoch, o.evals, o.best_val, o.best_step, best)

    def _sample(self) -> None:
        if not self.is_main or self.config.sample_tokens == 0:
            return
        self._phase("sample")
        model = self.parts.model
        text = sample_text(model, self.config.start_context, self.config.sample_tokens)
        model.train()
        self._emit(Sample(step=self.state.step - 1, epoch=self.state.epoch, text=text))

    def _save(self, reason: str) -> Path | None:
        if not self.is_main or self.run_dir is None:
            return None
        state = self.state
        path = self.policy.reusable(state.step, reason)  # nothing changed since the last save
        if path is None:
            self._phase("checkpoint")  # its evaluation included: one slow piece of work
            self._evaluate_for_save()
            parts = self.parts
            fields = state.checkpoint_fields()
            fields["data"].update(
                world_size=self.world, corpus_key=parts.corpus.key, corpus_name=parts.corpus.name
            )
            path = save_checkpoint(
                RunDir(self.run_dir).checkpoint(state.step),
                parts.model,
                train_config=self.config.to_dict(),
                optimizer=parts.optimizer,
                scaler=parts.scaler,
                rng=rng_state(),
                reason=reason,
                precision=parts.precision,
                loss_step=self._losses_step,
                **fields,
            )
            self.policy.saved(self.run_dir, path, state.step, reason)
        self._emit(CheckpointSaved(state.step, state.epoch, str(path), reason))
        return path

    def _evaluate_for_save(self) -> None:
        """Measure the losses a checkpoint records on its own weights, unless the last
        evaluation already was at this step. The batches are the book's evaluation's
        (a fresh shuffled pass), drawn on a forked RNG: the run's random stream, and
        so the book's numbers and resume, stay what they are without this evaluation."""
        state = self.state
        if self._losses_step == state.step or state.step == 0:
            return
        device = self.parts.device
        cuda = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            train_loss, val_loss = self._steps.evaluate(self.config.eval_iter)
        state.record_eval(train_loss, val_loss)
        self._losses_step = state.step

    # -- the loop

    def _should_stop(self) -> bool:
        return self._cancel.is_set() or self._clock.timed_out()

    def _reached_max_steps(self) -> bool:
        return self.config.max_steps is not None and self.state.step >= self.config.max_steps

    def _loop(self) -> Finished | Failed:
        cfg, state, parts = self.config, self.state, self.parts
        self._clock = RunClock(cfg.max_time_s)
        self._stop_requested = False
        self._emit(
            RunStarted(
                run_dir=str(self.run_dir or ""),
                device=str(parts.device),
                precision=parts.precision,
                total_steps=parts.plan.total_steps,
                parameters=parts.model.num_parameters(),
                step=state.step,
                epoch=state.epoch,
            )
        )
        reason: str | None = None
        while state.epoch < cfg.epochs and reason is None:
            if not state.mid_epoch:  # a resumed epoch keeps its order and position
                state.start_epoch(parts.data.new_pass())
            order = parts.data.train_order(state.order_seed)
            while reason is None and state.step_in_epoch < parts.plan.steps_per_epoch:
                reason = self._step(order)
            if reason is None:
                self._sample()
                state.end_epoch()
                self._save("epoch")
        reason = reason or "completed"
        if self.policy.take_request():  # asked for after the last step's saves
            self._save("manual")
        if reason == "cancelled":
            reason = self._stop_reason
        self._save("interrupt" if reason == "cancelled" else "final")
        finished = Finished(
            step=state.step,
            epoch=state.epoch,
            reason=reason,
            tokens_seen=state.tokens_seen,
            elapsed_s=self._clock.active_s(),
            signal=self._stop_signal(reason),
        )
        self._emit(finished)
        return finished

    def _stop_signal(self, reason: str) -> str | None:
        """The stop signal that ended the run ("SIGHUP"), when one did."""
        if reason != "cancelled" or not isinstance(self._cancel, StopRequest):
            return None
        return self._cancel.signal

    def _save_if_asked(self) -> None:
        """While paused, between two steps: a checkpoint asked for is saved at once,
        not one step after the resume (one process only: under DDP every rank would
        have to save together, so the request waits for the next step there)."""
        if self.world == 1 and self.policy.take_request():
            self._save("manual")

    def _step(self, order: Sequence[int]) -> str | None:
        """One optimizer step and what follows it (events, evaluation, checkpoint);
        returns why the run stops here, or None to go on."""
        cfg, state, parts = self.config, self.state, self.parts
        self._clock.wait_while_paused(self._paused, self._cancel, self._save_if_asked)
        if self._reached_max_steps():
            return "max_steps"
        global_step = state.step  # the book's 0-based index of this step
        started = time.perf_counter()
        done = self._steps.run(order, state)
        self._stop_requested = done.stop
        speed = self._clock.count_step(time.perf_counter() - started, done.tokens)
        state.record_step(done.tokens)
        self._emit(
            StepEnd(
                step=global_step,
                epoch=state.epoch,
                loss=done.loss,
                lr=parts.optimizer.param_groups[0]["lr"],
                tokens_seen=state.tokens_seen,
                tokens_per_s=speed,
                grad_norm=done.grad_norm,
                mfu=mfu(speed, self.model_config, parts.plan.length, parts.peak_flops),
                elapsed_s=self._clock.active_s(),
                total_steps=parts.plan.total_steps,
            )
        )
        for kind, value, z in done.spikes:
            self._emit(Spike(global_step, state.epoch, kind, value, z, done.skipped))
        if done.halved_to is not None:
            batch, accum = done.halved_to
            detail = (
                f"out of memory at step {global_step}: micro-batch halved to {batch} with "
                f"grad_accum {accum}; the step was taken again"
            )
            self._emit(self._batch_changed(done.halved_to, "out_of_memory", detail))
        if self.is_main and time.perf_counter() - self._system_at >= SYSTEM_EVERY_S:
            self._system_at = time.perf_counter()
            stats = system_stats(str(parts.device), self._cpu)
            self._emit(SystemSample(global_step, state.epoch, **dataclasses.asdict(stats)))
        if global_step % cfg.eval_freq == 0:
            self._phase("eval")
            train_loss, val_loss = self._steps.evaluate(cfg.eval_iter)
            state.record_eval(train_loss, val_loss)
            self._losses_step = state.step
            self._emit(EvalEnd(global_step, state.epoch, train_loss, val_loss, state.tokens_seen))
            if self._overfit.update(global_step, train_loss, val_loss):
                self._emit(self._overfitting(global_step))
        if self.world == 1 and self._should_stop():
            # set by a listener of this very step (a sweep's pruner, on its EvalEnd)
            self._stop_requested = True
        for reason in self.policy.due_after_step(state.step):
            self._save(reason)
        if self._stop_requested:
            timed_out = self._clock.timed_out() and not self._cancel.is_set()
            return "max_time" if timed_out else "cancelled"
        return "max_steps" if self._reached_max_steps() else None


def trainer_for(
    run: PreparedRun,
    *,
    listeners: Sequence[Listener] = (),
    cancel_event: threading.Event | None = None,
) -> Trainer:
    """The Trainer of a run prepare_run made ready (a new run or a resumed one): how
    `gpt-tui train` and the app's Train screen both start training. `cancel_event`
    is the front end's own stop, which counts even before it holds the Trainer."""
    return Trainer(
        run.model_config,
        run.train_config,
        listeners=listeners,
        run_dir=run.run_dir,
        resume=run.checkpoint,
        cancel_event=cancel_event,
    )
