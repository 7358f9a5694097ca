"""What the Train screen knows about one run, folded from its events.

Plain Python (no widgets), so the live dashboard, a watched metrics.jsonl and
the PNG export all read the same numbers, and tests can check them directly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from gptcore.events import (
    CheckpointSaved,
    EvalEnd,
    Event,
    Failed,
    Finished,
    RunStarted,
    Sample,
    StepEnd,
)

HISTORY = 2000  # step points kept for the sparklines

FINISH_WORDS = {
    "completed": "finished: all epochs done",
    "max_steps": "finished: reached max steps",
    "max_time": "finished: reached the time limit",
    "cancelled": "stopped by the user",
}


@dataclass
class RunState:
    started: RunStarted | None = None
    last_step: StepEnd | None = None
    step_losses: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    tokens_per_s: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    evals: list[EvalEnd] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    checkpoints: list[CheckpointSaved] = field(default_factory=list)
    # idle, starting, running, paused, finished, stopped, nan, error
    state: str = "idle"
    message: str = ""

    @property
    def active(self) -> bool:
        return self.state in ("starting", "running", "paused")

    def apply(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.started = event
            self.state = "running"
            self.message = f"running on {event.device} ({event.precision})"
        elif isinstance(event, StepEnd):
            self.last_step = event
            self.step_losses.append(event.loss)
            self.tokens_per_s.append(event.tokens_per_s)
            if self.state in ("idle", "starting"):
                self.state = "running"
        elif isinstance(event, EvalEnd):
            self.evals.append(event)
        elif isinstance(event, Sample):
            self.samples.append(event)
        elif isinstance(event, CheckpointSaved):
            self.checkpoints.append(event)
        elif isinstance(event, Finished):
            self.state = "stopped" if event.reason == "cancelled" else "finished"
            self.message = f"{FINISH_WORDS.get(event.reason, event.reason)} at step {event.step}"
        elif isinstance(event, Failed):
            if event.kind == "nan":
                self.state = "nan"
                self.message = f"NaN/inf loss detected at step {event.step}: {event.error}"
            else:
                self.state = "error"
                self.message = f"error at step {event.step}: {event.error}"

    def fail(self, error: str) -> None:
        """An error that escaped the trainer (the worker failed)."""
        if self.state not in ("nan", "error"):
            self.state = "error"
            self.message = f"error: {error}"

    def eta_s(self) -> float | None:
        step = self.last_step
        if step is None or not step.total_steps or step.elapsed_s <= 0:
            return None
        first = self.started.step if self.started else 0
        done = step.step + 1 - first
        if done <= 0:
            return None
        return step.elapsed_s / done * max(0, step.total_steps - step.step - 1)
