"""The run table and run series: what the runs view and `gpt-tui runs` show.

`run_row(path)` sums up one run folder (its config.toml, metrics.jsonl and
lock) in a `RunRow`; `run_table()` lists every run, newest first;
`filter_rows` keeps the rows a query names. `SeriesFollower` turns a run's
metrics.jsonl into plottable lists (`RunSeries`), reading only the lines
added since its last update, so a run training elsewhere updates live.

Plain files and JSON only: no torch, so listing runs stays fast.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptcore.errors import ConfigError, GptTuiError
from gptcore.runs.events import (
    EVENT_NAMES,
    EvalEnd,
    Event,
    Failed,
    Finished,
    RunStarted,
    StepEnd,
    steps_done,
    to_record,
)
from gptcore.runs.lock import lock_holder
from gptcore.runs.metrics import MetricsFollower
from gptcore.runs.rundir import RunDir
from gptcore.runs.tags import tag_settings
from gptcore.settings.declare import from_mapping, parse_override
from gptcore.settings.files import load_toml
from gptcore.settings.model import describe_model, model_config_from
from gptcore.settings.train import TrainConfig
from gptcore.util.paths import folder_size, runs_dir
from gptcore.util.typedfile import check_regular

# "damaged": nothing of the run could be read (no permission, a FIFO in a file's place).
STATES = ("running", "finished", "failed", "stopped", "new", "pruned", "damaged")
MARK_EVENTS = ("failed", "overfitting", "spike", "pruned")


@dataclass(frozen=True)
class RunRow:
    """One run as the table shows it. Numbers a run has not produced yet are None."""

    path: Path
    name: str
    model: str  # preset name, else e.g. "4x128 ctx128"; "?" when config.toml is unreadable
    corpus: str | None  # as the config names it
    steps: int | None  # optimizer steps done
    total_steps: int | None
    tokens_seen: int | None
    best_val: float | None  # the lowest val loss evaluated
    last_train: float | None  # the last evaluation's train loss (before one: the last step's)
    state: str  # one of STATES
    started: float | None  # epoch seconds of the first event
    config: dict[str, Any] = field(default_factory=dict)  # "lr", ..., "model.emb_dim", ...
    problem: str | None = None  # what could not be read (names the file and field), if any
    disk_bytes: int | None = None  # the run folder's files (checkpoints, mostly)


def _plain(value: Any) -> Any:
    """A hand-written config's value as the table can show and compare it: numbers a
    float holds, strings, booleans; anything else (a date, a list) as short text."""
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int | float):
        try:
            float(value)  # an int too large for a float cannot be compared or charted
        except OverflowError:
            return str(value)[:40]
        return value
    return type(value).__name__ if isinstance(value, list | dict) else str(value)[:80]


def _flat_config(run: RunDir) -> tuple[str, str | None, dict[str, Any], str | None]:
    """(model label, corpus, flat settings, problem) from config.toml; what it can of
    a damaged one (settings this version does not accept keep the file's own values,
    as text where they are no plain number). `problem` names what could not be read;
    a run without a config.toml (only its metrics) has none."""
    try:
        check_regular(run.config)  # a folder we may not look into says so here
        data = load_toml(run.config)
    except FileNotFoundError:
        return "?", None, tag_settings(run.path), None
    except GptTuiError as exc:  # DamagedFile, ConfigError
        return "?", None, tag_settings(run.path), str(exc)
    raw_model = data.get("model", "book-124m")
    raw_train = data.get("train") if isinstance(data.get("train"), dict) else {}
    try:
        model = model_config_from(raw_model)
        label, model_flat = describe_model(model), model.to_dict()
    except (GptTuiError, TypeError, ValueError, ArithmeticError):
        label, model_flat = "?", raw_model if isinstance(raw_model, dict) else {}
    try:
        train_flat = from_mapping(TrainConfig, raw_train).to_dict()
    except (GptTuiError, TypeError, ValueError, ArithmeticError):
        train_flat = dict(raw_train)
    corpus = train_flat.get("corpus")
    flat = {**train_flat, **{f"model.{k}": v for k, v in model_flat.items()}}
    flat = {str(k): _plain(v) for k, v in flat.items()}
    flat.update(tag_settings(run.path))  # sweep=NAME, trial=N: what --filter matches
    return label, corpus if isinstance(corpus, str) else None, flat, None


def run_state(last: Event | None, held: bool) -> str:
    """A run's state (one of STATES) from its last event and whether a process held
    its lock (runs.lock) just before or just after that event was read. A closing
    event says how the run ended; without one, a lock holder means it is still
    training, and no holder means its process died (killed, crashed). The one
    run-state machine: the run table, `gpt-tui runs`, the watch picker and a watched
    run all decide with it."""
    if isinstance(last, Failed):
        return "failed"
    if isinstance(last, Finished):
        if last.reason == "pruned":  # a sweep's pruner ended it (gptcore.sweep)
            return "pruned"
        return "stopped" if last.reason == "cancelled" else "finished"
    if held:
        return "running"
    return "new" if last is None else "stopped"


def run_row(path: str | Path) -> RunRow:
    """What a run folder's files say about it. Never raises: a damaged or foreign
    folder gives a row with what could be read (unknown numbers are None) and its
    `problem`; a run of which nothing can be read is in state "damaged"."""
    run = RunDir(path)
    # Before the events: a run that closes meanwhile is then seen closed, not dead.
    held = lock_holder(run.path) is not None
    model, corpus, config, config_problem = _flat_config(run)
    started = total = tokens = best = last_eval_train = last_step_loss = None
    last: Event | None = None
    follower = MetricsFollower(run.metrics)
    events = follower.poll()  # typed: every field has its declared type and range
    problem = config_problem or follower.report()
    for event in events:
        if started is None:
            started = event.time
        if isinstance(event, RunStarted):
            total = event.total_steps
        elif isinstance(event, StepEnd):
            tokens, last_step_loss = event.tokens_seen, event.loss
            total = event.total_steps if event.total_steps is not None else total
        elif isinstance(event, EvalEnd):
            tokens, last_eval_train = event.tokens_seen, event.train_loss
            if math.isfinite(event.val_loss) and (best is None or event.val_loss < best):
                best = event.val_loss
        elif isinstance(event, Finished):
            tokens = event.tokens_seen
        last = event
    # And after: a run that (re)starts meanwhile is seen running, not dead.
    held = held or lock_holder(run.path) is not None
    steps = steps_done(last) if last is not None else None
    state = run_state(last, held)
    if state == "new" and problem is not None and config_problem is not None:
        state = "damaged"  # neither its config nor its metrics could be read
    return RunRow(
        path=run.path,
        name=run.name,
        model=model,
        corpus=corpus,
        steps=steps,
        total_steps=total,
        tokens_seen=tokens,
        best_val=best,
        last_train=last_eval_train if last_eval_train is not None else last_step_loss,
        state=state,
        started=started,
        config=config,
        problem=problem,
        disk_bytes=folder_size(run.path),
    )


def _newest_first(row: RunRow) -> float:
    if row.started is not None:
        return row.started
    try:
        return row.path.stat().st_mtime
    except OSError:
        return 0.0


def run_table(root: str | Path | None = None, extra: Iterable[str | Path] = ()) -> list[RunRow]:
    """Every run under the runs folder (or `root`) plus the `extra` run folders,
    each once, newest first. An extra path that is not a run folder is a GptTuiError."""
    folders: list[Path] = []
    for path in map(Path, extra):
        if not RunDir(path).is_run():
            raise GptTuiError(
                f"{path} is not a run folder (it has no config.toml or metrics.jsonl)"
            )
        folders.append(path)
    root = Path(root) if root is not None else runs_dir()
    if root.is_dir():
        try:
            entries = sorted(root.iterdir())
        except OSError as exc:
            raise GptTuiError(f"cannot list the runs in {root}: {exc.strerror or exc}") from None
        folders += [p for p in entries if RunDir(p).is_run()]
    seen: set[str] = set()
    rows = []
    for path in folders:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            rows.append(run_row(path))
    return sorted(rows, key=_newest_first, reverse=True)


def _matches_value(have: Any, want: Any) -> bool:
    if isinstance(have, bool) or isinstance(want, bool):
        return str(have).lower() == str(want).lower()
    if isinstance(have, int | float) and isinstance(want, int | float):
        try:
            return math.isclose(have, want, rel_tol=1e-9, abs_tol=0.0)
        except OverflowError:  # an int too large for a float: equal only if the same
            return have == want
    return str(have) == str(want)


def _matches(row: RunRow, term: str) -> bool:
    if "=" not in term:
        word = term.lower()
        return any(word in (text or "").lower() for text in (row.name, row.model, row.corpus))
    try:
        key, want = parse_override(term)
    except ConfigError:
        return False
    key = key.removeprefix("train.")
    return key in row.config and _matches_value(row.config[key], want)


def filter_rows(rows: Sequence[RunRow], query: str) -> list[RunRow]:
    """The rows matching every term of `query` (space-separated): a plain word is a
    case-insensitive substring of the name, model or corpus; `key=value` compares a
    setting (`lr=0.003`, `model.n_layers=4`; numbers as numbers)."""
    terms = query.split()
    return [row for row in rows if all(_matches(row, term) for term in terms)]


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)  # a TOML date or an odd value in a hand-written config


def row_record(row: RunRow) -> dict[str, Any]:
    """The row as a JSON-safe dict (`gpt-tui runs --json`; the README lists the fields)."""
    return {
        "path": str(row.path),
        "name": row.name,
        "model": row.model,
        "corpus": row.corpus,
        "steps": row.steps,
        "total_steps": row.total_steps,
        "tokens_seen": row.tokens_seen,
        "best_val": _json_value(row.best_val),
        "last_train": _json_value(row.last_train),
        "state": row.state,
        "started": _json_value(row.started),
        "config": {k: _json_value(v) for k, v in row.config.items()},
        "problem": row.problem,
        "disk_bytes": row.disk_bytes,
    }


@dataclass
class RunSeries:
    """A run's curves as parallel lists. x values are metrics.jsonl's `step` (the
    book's 0-based global_step), `tokens_seen` and wall time (seconds of training,
    summed over resumed sessions). A missing number (a NaN loss, no grad norm) is NaN."""

    step_steps: list[int] = field(default_factory=list)
    step_tokens: list[int] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    tokens_per_s: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    eval_tokens: list[int] = field(default_factory=list)
    eval_times: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    marks: list[tuple[int, str, str]] = field(default_factory=list)  # (step, kind, text)

    def drop_from(self, step: int) -> None:
        """Forget the points at `step` and later: a resumed session redoes them."""
        keep = sum(1 for s in self.step_steps if s < step)
        for name in ("step_steps", "step_tokens", "step_times", "step_loss", "lr"):
            del getattr(self, name)[keep:]
        del self.grad_norm[keep:], self.tokens_per_s[keep:]
        keep = sum(1 for s in self.eval_steps if s < step)
        for name in ("eval_steps", "eval_tokens", "eval_times", "train_loss", "val_loss"):
            del getattr(self, name)[keep:]
        self.marks[:] = [m for m in self.marks if m[0] < step]


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def _mark_text(record: dict[str, Any]) -> str:
    kind = record.get("event")
    if kind == "failed":
        return str(record.get("error", "failed"))
    if kind == "overfitting":
        return (
            f"val loss rising for {record.get('evals')} evals; best val "
            f"{_number(record.get('best_val')):.3f} at step {record.get('best_step')}"
        )
    if kind == "pruned":
        return str(record.get("reason", "pruned"))
    if kind == "spike":
        skipped = ", update skipped" if record.get("skipped") else ""
        return (
            f"{record.get('kind')} spike {_number(record.get('value')):.3g} "
            f"(z {_number(record.get('z')):.1f}){skipped}"
        )
    return str(kind)


class SeriesFollower:
    """Keeps `.series` up to date with a run's metrics.jsonl: `update()` reads only the
    lines added since the last call and says whether anything changed."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.series = RunSeries()
        self._follower = MetricsFollower(RunDir(self.path).metrics)
        self._time_offset = 0.0  # training seconds of earlier sessions (a resumed run)

    @property
    def problem(self) -> str | None:
        """What could not be read of the metrics (the file, or its damaged lines)."""
        return self._follower.report()

    def update(self) -> bool:
        before = self._follower.offset
        events = self._follower.poll()  # never raises: an unreadable file gives none
        restarted = self._follower.offset < before  # the file shrank: read it anew
        if restarted:
            self.series, self._time_offset = RunSeries(), 0.0
        for event in events:
            self._add(event)
        return restarted or bool(events)

    def _add(self, event: Event) -> None:
        s = self.series
        if isinstance(event, RunStarted):
            s.drop_from(event.step)
            self._time_offset = s.step_times[-1] if s.step_times else 0.0
        elif isinstance(event, StepEnd):
            s.step_steps.append(event.step)
            s.step_tokens.append(event.tokens_seen)
            s.step_times.append(self._time_offset + _number(event.elapsed_s))
            s.step_loss.append(_number(event.loss))
            s.lr.append(_number(event.lr))
            s.grad_norm.append(_number(event.grad_norm))
            s.tokens_per_s.append(_number(event.tokens_per_s))
        elif isinstance(event, EvalEnd):
            s.eval_steps.append(event.step)
            s.eval_tokens.append(event.tokens_seen)
            s.eval_times.append(s.step_times[-1] if s.step_times else self._time_offset)
            s.train_loss.append(_number(event.train_loss))
            s.val_loss.append(_number(event.val_loss))
        elif EVENT_NAMES.get(type(event)) in MARK_EVENTS:
            record = to_record(event)
            s.marks.append((event.step, record["event"], _mark_text(record)))
