"""Training events: small frozen dataclasses of plain values (never tensors).

The Trainer emits them to any number of listeners; the CLI printer, the
metrics.jsonl writer and the TUI all consume the same stream. `to_record` /
`from_record` convert to and from one metrics.jsonl line, so a run started
elsewhere can be watched by following its file.

`step` follows the book where the book prints it: StepEnd, EvalEnd, Sample and
the health signals (Overfitting, Spike; see health.py) carry the 0-based
`global_step` of the step just taken; RunStarted, Phase, CheckpointSaved,
Finished and Failed carry the number of steps completed.
`steps_done(event)` reads either as steps completed (see train_state.py).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class RunStarted:
    run_dir: str
    device: str
    precision: str
    total_steps: int | None  # None when only a time limit bounds the run
    parameters: int
    step: int = 0  # the first step of this session (> 0 when resuming)
    epoch: int = 0
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class StepEnd:
    step: int  # global_step, counted from 0 like the book
    epoch: int
    loss: float
    lr: float
    tokens_seen: int
    tokens_per_s: float
    grad_norm: float | None
    mfu: float | None = None  # fraction of the device's peak; None: unknown peak
    elapsed_s: float = 0.0
    total_steps: int | None = None
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class EvalEnd:
    step: int
    epoch: int
    train_loss: float
    val_loss: float
    tokens_seen: int
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class Sample:
    step: int
    epoch: int
    text: str
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class Phase:
    """Slow work begins; the next event (RunStarted, EvalEnd, Sample, CheckpointSaved,
    Finished, Failed) ends it. Never emitted per step, so the hot loop stays cheap."""

    name: str  # one of PHASES
    step: int
    epoch: int = 0
    time: float = field(default_factory=_now)


# The Trainer's phases: two in setup (before RunStarted), three between steps.
PHASES = ("corpus", "model", "eval", "sample", "checkpoint")


@dataclass(frozen=True)
class CheckpointSaved:
    step: int
    epoch: int
    path: str
    reason: str  # "periodic", "epoch", "manual", "interrupt", "final"
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class Finished:
    step: int
    epoch: int
    reason: str  # "completed", "max_steps", "max_time", "cancelled"
    tokens_seen: int
    elapsed_s: float
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class Failed:
    step: int
    epoch: int
    error: str
    kind: str = "error"  # "nan" (non-finite loss) or "error"
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class Overfitting:
    """Val loss rose while train loss fell for `evals` evaluations in a row (sent once,
    at the evaluation that completes the streak). `step` is that evaluation's."""

    step: int
    epoch: int
    evals: int
    best_val: float  # the lowest val loss evaluated so far in this session
    best_step: int  # the step of that evaluation
    best_checkpoint: str | None  # the run's best-val checkpoint (RUN:best), if any
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class Spike:
    """A step's loss or gradient norm far above its recent values (a z-score over
    the last train.spike_window steps); `skipped`: that update was not applied."""

    step: int
    epoch: int
    kind: str  # "loss" or "grad_norm"
    value: float
    z: float
    skipped: bool
    time: float = field(default_factory=_now)


@dataclass(frozen=True)
class SystemSample:
    """What the training process uses, every few seconds (train.SYSTEM_EVERY_S): a
    watcher elsewhere cannot measure it itself. A metric the platform lacks is None
    (gptcore.hardware.sysinfo); `step` is the last step's global_step."""

    step: int
    epoch: int
    cpu_percent: float | None = None  # of one core, since the previous sample
    rss_bytes: int | None = None
    gpu_name: str | None = None
    gpu_mem_used: int | None = None  # bytes, the whole device
    gpu_mem_total: int | None = None
    gpu_util: float | None = None  # percent
    time: float = field(default_factory=_now)


Event = (
    RunStarted
    | StepEnd
    | EvalEnd
    | Sample
    | Phase
    | CheckpointSaved
    | Finished
    | Failed
    | Overfitting
    | Spike
    | SystemSample
)
Listener = Callable[[Event], None]

EVENT_NAMES: dict[type, str] = {
    RunStarted: "started",
    StepEnd: "step",
    EvalEnd: "eval",
    Sample: "sample",
    Phase: "phase",
    CheckpointSaved: "checkpoint",
    Finished: "finished",
    Failed: "failed",
    # Added later: older readers skip these lines (from_record gives None for a name
    # it does not know), so a new run stays readable by an older gpt-tui.
    Overfitting: "overfitting",
    Spike: "spike",
    SystemSample: "system",
}
EVENT_TYPES = {name: cls for cls, name in EVENT_NAMES.items()}


def to_record(event: Event) -> dict[str, Any]:
    """One metrics.jsonl object: {"event": name, "time", "step", "epoch", ...fields}."""
    return {"event": EVENT_NAMES[type(event)], **dataclasses.asdict(event)}


def from_record(record: dict[str, Any]) -> Event | None:
    """The event a metrics.jsonl object describes; None for unknown or malformed lines."""
    cls = EVENT_TYPES.get(record.get("event", ""))
    if cls is None:
        return None
    fields = {f.name: f.type for f in dataclasses.fields(cls)}
    # The writer stores a non-finite number as null (strict JSON): a float field
    # that is null was NaN or infinite. Older files hold bare NaN, which json reads.
    values = {
        k: math.nan if v is None and fields[k] == "float" else v
        for k, v in record.items()
        if k in fields
    }
    try:
        return cls(**values)
    except TypeError:
        return None


def steps_done(event: Event) -> int:
    """Optimizer steps completed at this event, whatever its kind."""
    per_step = StepEnd | EvalEnd | Sample | Overfitting | Spike | SystemSample
    return event.step + 1 if isinstance(event, per_step) else event.step
