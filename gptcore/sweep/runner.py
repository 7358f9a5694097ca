"""Running a sweep: each trial's runs are normal gpt-tui runs, one per seed.

A trial is one configuration from the sampler. Its runs live in the runs folder
(NAME-tNNN, with -sK per seed when seeds > 1), tagged with the sweep and trial,
and train like any run (`prepare_run` + `trainer_for`). The first seed's run
reports its val loss at each evaluation to the pruner (gptcore.sweep.prune); the
trial's value is the mean over its seeds of each run's best val loss.

Nothing is lost when a sweep stops:
- stop() (SIGTERM, SIGHUP, Ctrl-C, the app's stop key) stops the current run as any
  run stops (an interrupt checkpoint) and leaves its trial RUNNING, marked
  interrupted;
- a process killed outright (kill -9) leaves its trial RUNNING too; Optuna's
  database commits each change in one transaction, so it is never half-written;
- a process that runs the sweep (`--resume`) first claims the RUNNING trials this
  host left behind (their claim lock, claims/trial-N/.lock, is free: its process is
  gone) and resumes each run from its checkpoint; finished runs are never rerun.
Several processes can share one study: Optuna numbers trials in the database, and
each trial is claimed by one process (a claim lock on one host, the trial's `host`
attribute across hosts).
"""

from __future__ import annotations

import math
import os
import socket
import statistics
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptcore.errors import CheckpointError, GptTuiError, RunBusyError
from gptcore.runs.events import Failed, Listener
from gptcore.runs.lock import RunLock
from gptcore.runs.rundir import RunDir
from gptcore.runs.table import run_row
from gptcore.runs.tags import RunTags, write_tags
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.sweep.folder import SweepFolder
from gptcore.sweep.prune import PruneCheck
from gptcore.sweep.spec import SweepSpec
from gptcore.sweep.study import open_study, require_optuna
from gptcore.util.paths import runs_dir

# Trial user attributes (what `sweep show` and the app read back).
HOST, PID, RUN_DIRS = "host", "pid", "run_dirs"
TOKENS, STEPS, ELAPSED = "tokens", "steps", "elapsed_s"
SEED_VALUES, INTERRUPTED, PRUNED_STEP, PRUNED_REASON, ERROR = (
    "seed_values",
    "interrupted_at_step",
    "pruned_step",
    "pruned_reason",
    "error",
)
DONE_STATES = ("finished", "pruned")  # a run in one of these is never trained again


@dataclass(frozen=True)
class SeedJob:
    """One run of a trial: its configs, its folder and whether it resumes there."""

    sweep: str
    trial: int
    seed_index: int
    model_config: GPTConfig
    train_config: TrainConfig
    run_dir: Path
    resume: bool


@dataclass(frozen=True)
class SeedResult:
    """How one run of a trial ended, and what it used (over all its sessions)."""

    reason: str  # "completed" (any natural end), "pruned", "cancelled" or "failed"
    best_val: float | None
    tokens: int = 0
    steps: int = 0
    elapsed_s: float = 0.0
    error: str | None = None


# Trains one run: (job, the pruner's check or None, the stop event) -> its result.
SeedTrainer = Callable[[SeedJob, PruneCheck | None, threading.Event], SeedResult]


@dataclass(frozen=True)
class SweepSummary:
    """Why `Runner.run` returned, and how many trials this process ran."""

    reason: str  # "interrupted", "budget", "grid", "no trials left"
    trials_run: int
    interrupted_run: Path | None = None


def train_seed(
    job: SeedJob,
    prune: PruneCheck | None,
    cancel: threading.Event,
    listeners: Sequence[Listener] = (),
) -> SeedResult:
    """Train one run of a trial as `gpt-tui train` would (resuming from its latest
    healthy checkpoint when `job.resume`)."""
    from gptcore.training.resume import prepare_run
    from gptcore.training.trainer import trainer_for

    run = prepare_run(
        configs=(job.model_config, job.train_config),
        resume=str(job.run_dir) if job.resume else None,
        run_dir=job.run_dir,
    )
    trainer = trainer_for(run, listeners=list(listeners), cancel_event=cancel)
    if prune is not None:
        trainer.add_listener(prune.listener_for(trainer))
    result = trainer.run()
    row = run_row(job.run_dir)
    common = {
        "best_val": row.best_val,
        "tokens": row.tokens_seen or 0,
        "steps": row.steps or 0,
        "elapsed_s": result.elapsed_s if not isinstance(result, Failed) else 0.0,
    }
    if isinstance(result, Failed):
        return SeedResult("failed", error=result.error, **common)
    reason = result.reason if result.reason in ("pruned", "cancelled") else "completed"
    return SeedResult(reason, **common)


def run_dir_for(spec: SweepSpec, trial: int, seed_index: int) -> Path:
    """A new run folder for a trial's run: NAME-tNNN[-sK], with -aN for a later attempt
    when that name already holds a run (one killed before its first checkpoint)."""
    stem = f"{spec.name}-t{trial:03d}" + (f"-s{seed_index}" if spec.options.seeds > 1 else "")
    root = runs_dir()
    for attempt in range(1, 1000):
        path = root / (stem if attempt == 1 else f"{stem}-a{attempt}")
        if not RunDir(path).holds_run():
            return path
    raise GptTuiError(f"too many attempts at {stem} in {root}")


class Runner:
    """Runs a sweep's trials until its budget or grid is spent, or stop()."""

    def __init__(
        self,
        folder: SweepFolder,
        *,
        seed_trainer: SeedTrainer | None = None,
        notify: Callable[[str], None] | None = None,
        listeners: Callable[[SeedJob], Sequence[Listener]] | None = None,
    ) -> None:
        self.folder = folder
        self.spec = folder.spec()
        self.optuna = require_optuna()
        self.study = open_study(self.spec, folder.storage_url(), create=True)
        self._listeners = listeners or (lambda job: [])
        self._train = seed_trainer or (
            lambda job, prune, cancel: train_seed(job, prune, cancel, self._listeners(job))
        )
        self._notify = notify or (lambda text: None)
        self._stop = threading.Event()
        self._run_stop = threading.Event()  # the current run's (a prune sets it too)
        self.host = socket.gethostname()

    def stop(self) -> None:
        """Stop the current run after its step (checkpoint saved) and start no other."""
        self._stop.set()
        self._run_stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- the loop

    def run(self) -> SweepSummary:
        ran = 0
        while not self._stop.is_set():
            claimed = self._claim_left_behind()
            if claimed is None:
                why_not = self._why_no_new_trial()
                if why_not is not None:
                    return SweepSummary(why_not, ran)
                claimed = self._new_trial()
            trial, lock = claimed
            try:
                interrupted = self._run_trial(trial)
            finally:
                lock.release()
            ran += 1
            if interrupted is not None:
                return SweepSummary("interrupted", ran, interrupted)
        return SweepSummary("interrupted", ran)

    def _why_no_new_trial(self) -> str | None:
        used = budget_used(self.study)
        budget = self.spec.budget
        if budget.trials is not None and used.trials >= budget.trials:
            return "budget"
        if budget.tokens is not None and used.tokens >= budget.tokens:
            return "budget"
        if budget.wall_time_s is not None and used.elapsed_s >= budget.wall_time_s:
            return "budget"
        sampler = self.study.sampler
        if isinstance(sampler, self.optuna.samplers.GridSampler) and sampler.is_exhausted(
            self.study
        ):
            return "grid"
        return None

    def _new_trial(self) -> tuple[Any, RunLock]:
        trial = self.study.ask()
        lock = RunLock(self._claim_dir(trial.number)).acquire()
        # Set after the claim: a process on this host that lists RUNNING trials takes
        # only those with this host's name whose claim is free.
        trial.set_user_attr(HOST, self.host)
        trial.set_user_attr(PID, os.getpid())
        return trial, lock

    def _claim_dir(self, number: int) -> Path:
        path = self.folder.claim_dir(number)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _claim_left_behind(self) -> tuple[Any, RunLock] | None:
        """A RUNNING trial this host left behind (its process stopped or died), claimed."""
        running = self.optuna.trial.TrialState.RUNNING
        for frozen in self.study.get_trials(deepcopy=False, states=(running,)):
            if frozen.user_attrs.get(HOST) != self.host:
                continue
            try:
                lock = RunLock(self._claim_dir(frozen.number)).acquire()
            except RunBusyError:
                continue  # a live process runs it
            storage = self.study._storage
            if storage.get_trial(frozen._trial_id).state != running:
                lock.release()  # finished meanwhile by the process that held it
                continue
            trial = self.optuna.trial.Trial(self.study, frozen._trial_id)
            trial.set_user_attr(PID, os.getpid())
            self._notify(f"trial {frozen.number}: resuming (left unfinished)")
            return trial, lock
        return None

    # -- one trial

    def _run_trial(self, trial: Any) -> Path | None:
        """Train the trial's runs and tell the study how it ended; returns the run
        folder of a run stopped by stop() (the trial stays RUNNING to be resumed)."""
        spec = self.spec
        params = {p.name: p.suggest(trial) for p in spec.space}
        shown = ", ".join(f"{k}={_short(v)}" for k, v in params.items())
        self._notify(f"trial {trial.number}: {shown}")
        run_dirs: list[str | None] = list(trial.user_attrs.get(RUN_DIRS) or [])
        run_dirs += [None] * (spec.options.seeds - len(run_dirs))
        results: list[SeedResult] = []
        for seed_index in range(spec.options.seeds):
            job = self._job(trial.number, seed_index, params, run_dirs[seed_index])
            if str(job.run_dir) != run_dirs[seed_index]:
                run_dirs[seed_index] = str(job.run_dir)
                trial.set_user_attr(RUN_DIRS, run_dirs)  # before training: a kill keeps it
            result = self._finished_run(job)
            if result is None:
                write_tags(job.run_dir, RunTags(spec.name, trial.number, seed_index))
                prune = None
                if seed_index == 0:  # reports (shown live) even when nothing prunes
                    prune = PruneCheck(
                        trial, spec.options.pruner, spec.name, spec.options.reduction_factor
                    )
                self._run_stop = threading.Event()
                if self._stop.is_set():  # stop() came between two runs
                    self._run_stop.set()
                result = self._train(job, prune, self._run_stop)
                if prune is not None and prune.pruned is not None:
                    trial.set_user_attr(PRUNED_STEP, prune.pruned.step)
                    trial.set_user_attr(PRUNED_REASON, prune.pruned.reason)
            results.append(result)
            self._record_use(trial, results)
            if result.reason == "cancelled":
                trial.set_user_attr(INTERRUPTED, result.steps)
                self._notify(f"trial {trial.number}: interrupted at step {result.steps}")
                return job.run_dir
            if result.reason == "failed":
                trial.set_user_attr(ERROR, result.error or "failed")
                self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
                self._notify(f"trial {trial.number}: failed: {result.error}")
                return None
            if result.reason == "pruned":
                self.study.tell(trial, state=self.optuna.trial.TrialState.PRUNED)
                why = trial.user_attrs.get(PRUNED_REASON, "pruned")
                self._notify(f"trial {trial.number}: {why}")
                return None
        values = [r.best_val for r in results]
        if any(v is None or not math.isfinite(v) for v in values):
            trial.set_user_attr(ERROR, "a run ended without a finite val loss")
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
            return None
        trial.set_user_attr(SEED_VALUES, values)
        value = statistics.fmean(values)
        self.study.tell(trial, value)
        self._notify(f"trial {trial.number}: best val loss {value:.4f}")
        return None

    def _job(
        self, trial: int, seed_index: int, params: dict[str, Any], recorded: str | None
    ) -> SeedJob:
        model, train = self.spec.configs(params, seed_index)
        run_dir = Path(recorded) if recorded else run_dir_for(self.spec, trial, seed_index)
        resume = _resumable(run_dir)
        if not resume and RunDir(run_dir).holds_run():
            run_dir = run_dir_for(self.spec, trial, seed_index)  # killed before a checkpoint
        return SeedJob(self.spec.name, trial, seed_index, model, train, run_dir, resume)

    def _finished_run(self, job: SeedJob) -> SeedResult | None:
        """The result of a run that already ended (a trial resumed after its process
        died between a run's end and the study being told): never trained again."""
        if not RunDir(job.run_dir).is_run():
            return None
        row = run_row(job.run_dir)
        if row.state not in DONE_STATES:
            return None
        reason = "pruned" if row.state == "pruned" else "completed"
        return SeedResult(reason, row.best_val, row.tokens_seen or 0, row.steps or 0)

    def _record_use(self, trial: Any, results: list[SeedResult]) -> None:
        trial.set_user_attr(TOKENS, sum(r.tokens for r in results))
        trial.set_user_attr(STEPS, sum(r.steps for r in results))
        before = float(trial.user_attrs.get(ELAPSED) or 0.0)
        trial.set_user_attr(ELAPSED, before + results[-1].elapsed_s)


@dataclass(frozen=True)
class BudgetUse:
    trials: int
    tokens: int
    elapsed_s: float


def budget_used(study: Any) -> BudgetUse:
    """What the study's trials have used so far (every state but WAITING)."""
    import optuna

    states = tuple(s for s in optuna.trial.TrialState if s != optuna.trial.TrialState.WAITING)
    trials = study.get_trials(deepcopy=False, states=states)
    return BudgetUse(
        trials=len(trials),
        tokens=sum(int(t.user_attrs.get(TOKENS) or 0) for t in trials),
        elapsed_s=sum(float(t.user_attrs.get(ELAPSED) or 0.0) for t in trials),
    )


def _resumable(run_dir: Path) -> bool:
    """Whether the run has a healthy checkpoint to go on from."""
    if not RunDir(run_dir).checkpoint_dirs():
        return False
    from gptcore.runs.checkpoints import newest_healthy

    try:
        newest_healthy(run_dir)
    except CheckpointError:
        return False
    return True


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
