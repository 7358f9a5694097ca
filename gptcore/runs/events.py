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
from pathlib import Path
from typing import Any

import msgspec

from gptcore.errors import DamagedFile
from gptcore.util.typedfile import Count, Timestamp, convert, damage, decode_json


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class RunStarted:
    run_dir: str
    device: str
    precision: str
    total_steps: Count | None  # None when only a time limit bounds the run
    parameters: Count
    step: Count = 0  # the first step of this session (> 0 when resuming)
    epoch: Count = 0
    time: Timestamp = field(default_factory=_now)


@dataclass(frozen=True)
class StepEnd:
    step: Count  # global_step, counted from 0 like the book
    epoch: Count
    loss: float
    lr: float
    tokens_seen: Count
    tokens_per_s: float
    grad_norm: float | None
    mfu: float | None = None  # fraction of the device's peak; None: unknown peak
    elapsed_s: float = 0.0
    total_steps: Count | None = None
    time: Timestamp = field(default_factory=_now)


@dataclass(frozen=True)
class EvalEnd:
    step: Count
    epoch: Count
    train_loss: float
    val_loss: float
    tokens_seen: Count
    time: Timestamp = field(default_factory=_now)


@dataclass(frozen=True)
class Sample:
    step: Count
    epoch: Count
    text: str
    time: Timestamp = field(default_factory=_now)


@dataclass(frozen=True)
class Phase:
    """Slow work begins; the next event (RunStarted, EvalEnd, Sample, CheckpointSaved,
    Finished, Failed) ends it. Never emitted per step, so the hot loop stays cheap."""

    name: str  # one of PHASES
    step: Count
    epoch: Count = 0
    time: Timestamp = field(default_factory=_now)


# The Trainer's phases: two in setup (before RunStarted), three between steps.
PHASES = ("corpus", "model", "eval", "sample", "checkpoint")


@dataclass(frozen=True)
class CheckpointSaved:
    step: Count
    epoch: Count
    path: str
    reason: str  # "periodic", "epoch", "manual", "interrupt", "final"
    time: Timestamp = field(default_factory=_now)


@dataclass(frozen=True)
class Finished:
    step: Count
    epoch: Count
    reason: str  # "completed", "max_steps", "max_time", "cancelled", "pruned" (a sweep's)
    tokens_seen: Count
    elapsed_s: float
    time: Timestamp = field(default_factory=_now)
    # The stop signal behind a "cancelled" run ("SIGINT", "SIGTERM", "SIGHUP"); None:
    # stopped otherwise (the app's stop key), or an event written before it was recorded.
    signal: str | None = None


@dataclass(frozen=True)
class Failed:
    step: Count
    epoch: Count
    error: str
    kind: str = "error"  # "nan" (non-finite loss) or "error"
    time: Timestamp = field(default_factory=_now)


@dataclass(frozen=True)
class Overfitting:
    """Val loss rose while train loss fell for `evals` evaluations in a row (sent once,
    at the evaluation that completes the streak). `step` is that evaluation's."""

    step: Count
    epoch: Count
    evals: Count
    best_val: float  # the lowest val loss evaluated so far in this session
    best_step: Count  # the step of that evaluation
    best_checkpoint: str | None  # the run's best-val checkpoint (RUN:best), if any
    time: Timestamp = field(default_factory=_now)


@dataclass(frozen=True)
class Spike:
    """A step's loss or gradient norm far above its recent values (a z-score over
    the last train.spike_window steps); `skipped`: that update was not applied."""

    step: Count
    epoch: Count
    kind: str  # "loss" or "grad_norm"
    value: float
    z: float
    skipped: bool
    time: Timestamp = field(default_factory=_now)


@dataclass(frozen=True)
class SystemSample:
    """What the training process uses, every few seconds (train.SYSTEM_EVERY_S): a
    watcher elsewhere cannot measure it itself. A metric the platform lacks is None
    (gptcore.hardware.sysinfo); `step` is the last step's global_step."""

    step: Count
    epoch: Count
    cpu_percent: float | None = None  # of one core, since the previous sample
    rss_bytes: Count | None = None
    gpu_name: str | None = None
    gpu_mem_used: Count | None = None  # bytes, the whole device
    gpu_mem_total: Count | None = None
    gpu_util: float | None = None  # percent
    time: Timestamp = field(default_factory=_now)


@dataclass(frozen=True)
class Pruned:
    """A sweep's pruner stopped this trial's run at an evaluation (gptcore.sweep): its
    val loss there and, in words, why (how it compared with the other trials)."""

    step: Count  # the evaluation's global_step
    epoch: Count
    val_loss: float
    pruner: str  # "median", "successive-halving", "hyperband"
    reason: str
    sweep: str | None = None
    trial: Count | None = None
    time: Timestamp = field(default_factory=_now)


@dataclass(frozen=True)
class BatchChanged:
    """The micro-batch changed: chosen for `batch_size = "auto"` before the first
    step (reason "auto"), or halved after the device ran out of memory on a step
    (reason "out_of_memory"; that step is taken again). `effective_batch` (windows
    per optimizer step) stays what it was; `detail` says it in words."""

    step: Count  # steps completed when it changed
    epoch: Count
    batch_size: Count
    grad_accum: Count
    effective_batch: Count
    reason: str  # "auto" or "out_of_memory"
    detail: str = ""
    time: Timestamp = field(default_factory=_now)


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
    | Pruned
    | BatchChanged
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
    Pruned: "pruned",
    BatchChanged: "batch",
}
EVENT_TYPES = {name: cls for cls, name in EVENT_NAMES.items()}


def to_record(event: Event) -> dict[str, Any]:
    """One metrics.jsonl object: {"event": name, "time", "step", "epoch", ...fields}."""
    return {"event": EVENT_NAMES[type(event)], **dataclasses.asdict(event)}


# The float fields the writer may have written as null (a NaN or infinite value, kept
# strict JSON): read back as NaN. An optional field's null stays None.
_NAN_FIELDS = {
    cls: frozenset(f.name for f in dataclasses.fields(cls) if f.type == "float")
    for cls in EVENT_NAMES
}
# One typed decoder per event: the line's bytes go straight into the dataclass, its
# types and ranges (Count, Timestamp) checked in C. The trainer's lines start with
# their name, so the decoder is picked without decoding anything else first.
_DECODERS = {name.encode(): msgspec.json.Decoder(cls) for cls, name in EVENT_NAMES.items()}
_HEAD = b'{"event": "'


def decode_record(record: Any, where: str | Path = "metrics.jsonl") -> Event | None:
    """The event a metrics.jsonl object describes, checked against its schema; None for
    an event name this version does not know (a newer gpt-tui's). DamagedFile, naming
    `where` and the field, for anything else: a wrong type, a count or time out of range."""
    if not isinstance(record, dict):
        raise DamagedFile(where, f"is damaged: not a JSON object ({type(record).__name__})")
    name = record.get("event")
    if not isinstance(name, str):
        raise DamagedFile(where, f"must be a string, got {type(name).__name__}", "event")
    cls = EVENT_TYPES.get(name)
    if cls is None:
        return None
    nan_fields = _NAN_FIELDS[cls]
    if any(record.get(k, 0) is None for k in nan_fields):
        record = {k: math.nan if v is None and k in nan_fields else v for k, v in record.items()}
    return convert(record, cls, where)


def decode_line(line: bytes, where: str | Path = "metrics.jsonl") -> Event | None:
    """The event on one metrics.jsonl line (see decode_record); None for a blank line
    or an unknown event."""
    typed_error = None
    if line.startswith(_HEAD):
        decoder = _DECODERS.get(line[len(_HEAD) : line.find(b'"', len(_HEAD))])
        if decoder is not None:
            try:
                return decoder.decode(line)
            except (msgspec.MsgspecError, RecursionError) as exc:
                typed_error = exc  # a NaN written as null, or damage: see below
    if not line.strip():
        return None
    try:
        return decode_record(decode_json(line, Any, where), where)
    except DamagedFile as exc:
        # Decoded untyped, a number out of range has no field; the typed decoder named it.
        if exc.field is None and isinstance(typed_error, msgspec.ValidationError):
            raise damage(where, typed_error) from None
        raise


def from_record(record: dict[str, Any]) -> Event | None:
    """The event a metrics.jsonl object describes; None for unknown or malformed ones."""
    try:
        return decode_record(record)
    except DamagedFile:
        return None


def steps_done(event: Event) -> int:
    """Optimizer steps completed at this event, whatever its kind."""
    per_step = StepEnd | EvalEnd | Sample | Overfitting | Spike | SystemSample | Pruned
    return event.step + 1 if isinstance(event, per_step) else event.step
