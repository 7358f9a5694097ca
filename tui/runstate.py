"""What the Train screen knows about one run, folded from its events.

Plain Python (no widgets), so the live dashboard, a watched metrics.jsonl and
the PNG export all read the same numbers, and tests can check them directly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from gptcore.runs.events import (
    CheckpointSaved,
    EvalEnd,
    Event,
    Failed,
    Finished,
    Overfitting,
    Phase,
    RunStarted,
    Sample,
    Spike,
    StepEnd,
    SystemSample,
)
from gptcore.util.fmt import format_duration

HISTORY = 2000  # step points kept for the sparklines

# How a run ended, after the state word: (wide, narrow). The narrow words fit the
# status line at 60x20 (26 columns); the step is on the stats line below anyway.
FINISH_WORDS = {
    "completed": ("all epochs done, step {step:,}", "all epochs done"),
    "max_steps": ("max steps reached, step {step:,}", "max steps"),
    "max_time": ("time limit reached, step {step:,}", "time limit"),
    "cancelled": ("by the user at step {step:,}", "by the user"),
    "pruned": ("by the sweep's pruner at step {step:,}", "by the pruner"),
}
# A run's end by its reason: a person's or a signal's stop, a sweep's pruner, or done.
END_STATES = {"cancelled": "stopped", "pruned": "pruned"}
# What the trainer is doing (a Phase name, "first" or "step"): (wide, narrow).
ACTIVITY_WORDS = {
    "corpus": ("loading the corpus …", "corpus"),
    "model": ("building the model …", "model"),
    "eval": ("evaluating …", "evaluating"),
    "sample": ("generating a sample …", "sampling"),
    "checkpoint": ("saving a checkpoint …", "saving"),
    "first": ("first step …", "1st step"),
    "step": ("step {n:,} …", "step {n:,}"),
}
STOPPING_WORDS = ("after the current step …", "this step")
SHOW_AFTER_S = 1.0  # work shorter than this is not worth a flickering word


@dataclass
class RunState:
    started: RunStarted | None = None
    last_step: StepEnd | None = None
    step_losses: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    tokens_per_s: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    evals: list[EvalEnd] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    checkpoints: list[CheckpointSaved] = field(default_factory=list)
    # Health signals (overfitting, spikes), in order: notified, and marked on the curves.
    health: list[Overfitting | Spike] = field(default_factory=list)
    system: SystemSample | None = None  # what the training process last reported using
    # idle, starting, running, paused, stopping, finished, stopped, pruned, nan, error
    state: str = "idle"
    message: str = ""  # the words after the state; `short` when the line is narrow
    short: str = ""
    # What the trainer is doing since when (Unix time, like the events' `time`):
    # a Phase name, "step" (between steps; "first" before this session's first) or "".
    activity: str = ""
    activity_since: float | None = None
    stop_since: float | None = None

    @property
    def active(self) -> bool:
        return self.state in ("starting", "running", "paused", "stopping")

    def apply(self, event: Event) -> None:
        if isinstance(event, Phase):
            self._doing(event.name, event.time)
        elif isinstance(event, RunStarted):
            self.started = event
            if self.state != "stopping":
                self.state = "running"
                self.message, self.short = f"on {event.device} ({event.precision})", ""
            self._doing("first", event.time)
        elif isinstance(event, StepEnd):
            self.last_step = event
            self.step_losses.append(event.loss)
            self.tokens_per_s.append(event.tokens_per_s)
            if self.state in ("idle", "starting"):
                self.state = "running"
            self._doing("step", event.time)
        elif isinstance(event, EvalEnd):
            self.evals.append(event)
            self._doing("step", event.time)
        elif isinstance(event, Sample):
            self.samples.append(event)
            self._doing("step", event.time)
        elif isinstance(event, CheckpointSaved):
            self.checkpoints.append(event)
            self._doing("step", event.time)
        elif isinstance(event, Overfitting | Spike):
            self.health.append(event)
        elif isinstance(event, SystemSample):
            self.system = event
        elif isinstance(event, Finished):
            self.state = END_STATES.get(event.reason, "finished")
            wide, narrow = FINISH_WORDS.get(event.reason, (f"{event.reason}, step {{step:,}}", ""))
            if event.reason == "cancelled" and event.signal:  # not a person's stop key
                wide, narrow = f"by {event.signal} at step {{step:,}}", f"by {event.signal}"
            self.message, self.short = wide.format(step=event.step), narrow
        elif isinstance(event, Failed):
            if event.kind == "nan":
                self.state = "nan"
                self.message = f"NaN/inf loss detected at step {event.step}: {event.error}"
            else:
                self.state = "error"
                self.message = f"error at step {event.step}: {event.error}"

    def _doing(self, activity: str, since: float) -> None:
        self.activity, self.activity_since = activity, since

    def set_paused(self, paused: bool, now: float) -> None:
        """The user paused or resumed: paused time is not the current step's."""
        if self.state == "stopping":
            return  # the stop wins: the trainer does not wait while it stops
        if paused:
            self.state, self.message, self.short = "paused", "press p to resume", ""
        else:
            self.state, self.message, self.short = "running", "resumed", ""
            if self.activity_since is not None:
                self.activity_since = now

    def request_stop(self, now: float) -> None:
        """The user asked to stop: the trainer stops after the step it is in."""
        if self.active:
            self.state, self.stop_since = "stopping", now
            self.message, self.short = STOPPING_WORDS

    def detail(self, now: float, width: int | None = None) -> str:
        """The words after the state word: what the run does now, with its elapsed
        time once it takes a while, else `message`. With `width` (the line's columns),
        narrow words where the wide ones would wrap."""
        wide, narrow = self._words(now)
        head = len(self.state) + 3  # "STATE · "
        return narrow if width and narrow and head + len(wide) > width else wide

    def _words(self, now: float) -> tuple[str, str]:
        if self.state in ("starting", "running", "stopping") and self.activity_since is not None:
            elapsed = now - self.activity_since
            if self.state == "stopping" and self.activity in ("first", "step"):
                elapsed = now - (self.stop_since or now)  # waiting for the step to end
                wide, narrow = STOPPING_WORDS
            elif elapsed >= SHOW_AFTER_S or self.state == "starting":
                n = (self.last_step.step + 2) if self.last_step else 1  # 1-based, like the stats
                words = ACTIVITY_WORDS.get(self.activity, (self.activity, self.activity))
                wide, narrow = (w.format(n=n) for w in words)
            else:
                return self.message, self.short
            if elapsed >= SHOW_AFTER_S:
                took = format_duration(elapsed)
                return f"{wide} {took}", f"{narrow} {took}"
            return wide, narrow
        return self.message, self.short

    def process_gone(self) -> None:
        """A watched run's process ended without writing its closing event (killed,
        crashed): the run table calls such a run stopped, and so does this state."""
        if self.active:
            self.state = "stopped"
            # "died" fits the watched status line at 60x20 (26 columns).
            self.message, self.short = "its process died (killed or crashed)", "died"

    def fail(self, error: str) -> None:
        """An error that escaped the trainer (the worker failed)."""
        if self.state not in ("nan", "error"):
            self.state = "error"
            self.message = f"error: {error}"

    def eta_s(self) -> float | None:
        """Time left at this session's pace; None once the run is over."""
        step = self.last_step
        if not self.active or step is None or not step.total_steps or step.elapsed_s <= 0:
            return None
        first = self.started.step if self.started else 0
        done = step.step + 1 - first
        if done <= 0:
            return None
        return step.elapsed_s / done * max(0, step.total_steps - step.step - 1)
