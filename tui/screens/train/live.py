"""Our own runs on the Train screen: start, resume, pause, stop, checkpoint, and the
thread the run trains in.

A run goes from what the user gave (the form's configs, or a checkpoint to resume)
to a Trainer through the engine's one workflow, as `gpt-tui train` does:
`gptcore.training.resume.prepare_run`, then `gptcore.training.trainer.trainer_for`.
It trains in a thread worker that never touches widgets: its events reach the screen
as throttled TrainEvents (tui.pump), its Trainer as TrainerReady, each carrying the
run's RunHandle.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.message_pump import MessagePump
from textual.worker import Worker, WorkerState

from gptcore.hardware.sysinfo import CpuMeter, describe, system_stats
from gptcore.runs.rundir import checkpoint_label
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig

from ...background import freeze_long_lived_objects, lower_thread_priority
from ...pump import EventPump
from ...runhandle import RunHandle
from ...runstate import RunState
from .messages import RunConfigRead, SystemRead, TrainerReady

if TYPE_CHECKING:
    from gptcore.training.trainer import Trainer

    from .form import TrainForm


def train_in_thread(
    target: MessagePump,
    handle: RunHandle,
    *,
    configs: tuple[GPTConfig, TrainConfig] | None = None,
    resume: str | None = None,
    overrides: tuple[str, ...] = (),
) -> None:
    """Prepare and train the run `handle` stands for, in the calling (worker) thread:
    a new run from `configs`, or the run checkpoint `resume` belongs to with its own
    settings (and `overrides`, `--set` strings). Messages go to `target`; `handle.ended` is set once the thread is done."""
    from gptcore.training.resume import prepare_run
    from gptcore.training.trainer import trainer_for

    lower_thread_priority()  # before torch starts its threads from this one
    pump = EventPump(target, handle)
    try:
        # The checkpoint is verified once; a finished run without more epochs is refused.
        run = prepare_run(configs=configs, overrides=overrides, resume=resume, refuse_finished=True)
        if run.checkpoint is not None:  # the form shows what trains (and `m` describes it)
            label = f"{checkpoint_label(run.checkpoint.path)} (resumed)"
            target.post_message(RunConfigRead(handle, label, (run.model_config, run.train_config)))
        if run.notice:  # e.g. the latest checkpoint was damaged (notify is thread-safe)
            target.app.notify(run.notice, title="Resume", severity="warning", markup=False)
        # The handle's cancel is the trainer's own stop: set before the screen holds the
        # Trainer, it still counts.
        trainer = trainer_for(run, listeners=(pump,), cancel_event=handle.cancel)
        freeze_long_lived_objects()  # torch and the engine are loaded by now
        target.post_message(TrainerReady(handle, trainer))
        trainer.run()
    finally:
        pump.flush()
        handle.ended.set()  # the checkpoint and the closing event are written


class LiveRunControl:
    """The TrainPane's control of its own runs. A mixin: TrainPane provides `handle`,
    `state`, `form`, `follow()`, `render_state()`, `ring()` and `_refused()`."""

    handle: RunHandle | None
    state: RunState
    form: TrainForm
    _cpu: CpuMeter | None = None  # the app's process, between two system-line reads

    @property
    def live(self) -> bool:
        """A run of ours (not a watched one) is in progress."""
        return self.handle is not None and self.handle.kind == "live" and self.state.active

    @property
    def trainer(self) -> Trainer | None:
        """The live run's Trainer, once its worker has built it (until the run ends)."""
        return self.handle.trainer if self.handle is not None else None

    @property
    def training(self) -> bool:
        """True while a run of ours is in progress (its thread is alive)."""
        return any(w.group == "train" and not w.is_finished for w in self.workers)

    def action_start(self) -> None:
        if self._refused("start"):
            return
        reason = self.form.blocking_reason()
        if reason:
            self.notify(reason, title="Can't start", severity="error", markup=False)
            return
        configs = self.form.configs()
        self._start(RunState(state="starting", message="building the model …"), configs=configs)

    def resume_from(self, path: Path | str, overrides: tuple[str, ...] = ()) -> None:
        """Continue the run that checkpoint `path` belongs to (Checkpoints screen, `t`),
        with `overrides` (`--set` strings) on its settings."""
        if self.live:
            self.notify(
                "a run is training: stop it first", title="Can't resume", severity="warning"
            )
            return
        state = RunState(state="starting", message=f"resuming from {path} …")
        self._start(state, resume=str(path), overrides=tuple(overrides))

    def _start(self, state: RunState, **source: object) -> None:
        """Follow a new live run and start its worker; `source` is what prepare_run takes."""
        handle = RunHandle("live")
        self.follow(handle, state)
        self._cpu = CpuMeter()
        handle.worker = self.run_worker(
            lambda: train_in_thread(self, handle, **source),
            name="train",
            group="train",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )
        self.refresh_bindings()

    def action_pause(self) -> None:
        if self._refused("pause"):
            return
        pause = self.state.state != "paused"
        if pause:
            self.trainer.pause()
        else:
            self.trainer.unpause()
        self.state.set_paused(pause, time.time())
        self.render_state()

    def action_stop(self) -> None:
        if self._refused("stop"):
            return
        self._stop_and_show()

    def _stop_and_show(self) -> None:
        """Stop our run; the status says so at once, not after the step (minutes on a CPU)."""
        if self.handle is not None and self.handle.kind == "live":
            self.handle.stop()
        self.state.request_stop(time.time())
        self.render_state()

    def action_checkpoint(self) -> None:
        if self._refused("checkpoint"):
            return
        self.trainer.request_checkpoint()
        if self.trainer.paused:  # the trainer saves while it waits between steps
            when = "now, while paused (once the step under way, if any, has ended)"
        else:
            when = "after this step"
        self.notify(f"a checkpoint will be saved {when}", title="Checkpoint")

    async def shutdown(self) -> None:
        """Stop our run and wait for its thread to end; the trainer saves an
        "interrupt" checkpoint when it is cancelled."""
        self._stop_and_show()
        for worker in list(self.workers):
            if worker.group == "train":
                with contextlib.suppress(Exception):  # a failed run is already reported
                    await worker.wait()

    def stop_and_wait(self, timeout: float | None = None, signum: int | None = None) -> bool:
        """Stop our live run and block until its thread has ended (the trainer
        saves an "interrupt" checkpoint and writes its closing event first);
        True once no run of ours is left. Thread-safe and needs no UI: the app's
        signal handling calls it, also after the app's loop has ended."""
        handle = self.handle
        if handle is None or handle.kind != "live":
            return True
        handle.stop(signum)
        return handle.ended.wait(timeout)

    def on_unmount(self) -> None:
        # Never leave a training thread behind the app.
        if self.handle is not None and self.handle.kind == "live":
            self.handle.stop()

    def on_trainer_ready(self, message: TrainerReady) -> None:
        if message.handle is self.handle:
            message.handle.trainer = message.trainer
            self.refresh_bindings()  # pause and checkpoint can act now

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        handle = self.handle
        if handle is None or event.worker is not handle.worker:
            return  # not the run we follow (an earlier one, or another kind of work)
        if event.state == WorkerState.ERROR:
            self.state.fail(str(event.worker.error))
            self.notify(self.state.message, title="Training stopped", severity="error")
            self.ring()
        elif event.state in (WorkerState.SUCCESS, WorkerState.CANCELLED) and self.state.active:
            self.state.state = "stopped" if handle.stop_requested else "finished"
            self.state.message = self.state.message or self.state.state
        if event.state in (WorkerState.ERROR, WorkerState.SUCCESS, WorkerState.CANCELLED):
            handle.trainer = None
            self.render_state()

    # ------------------------------------------------------------ the system line

    def read_system(self, handle: RunHandle) -> None:
        """Read the live run's system line off the UI thread (the 1 s timer calls this)."""
        started = self.state.started
        self._read_system(handle, started.device if started is not None else None)

    @work(thread=True, exclusive=True, exit_on_error=False, group="sysinfo")
    def _read_system(self, handle: RunHandle, device: str | None) -> None:
        # Off the UI thread: a CUDA query can wait on a device busy training.
        self.post_message(SystemRead(handle, describe(system_stats(device, self._cpu))))
