"""A sweep's trials ranked (`gpt-tui sweep show`, the app's Sweeps view): best val
loss, settings, state, tokens used; the budget used and left; the parameters'
importance; the best trial's config as a TOML one can train with.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from gptcore.runs.lock import lock_holder
from gptcore.runs.rundir import config_toml
from gptcore.sweep import runner as attrs
from gptcore.sweep.folder import SweepFolder
from gptcore.sweep.runner import BudgetUse, budget_used
from gptcore.sweep.spec import SweepSpec
from gptcore.sweep.study import open_study, require_optuna

IMPORTANCE_MIN_TRIALS = 5  # fewer complete trials say nothing about importance
STATE_ORDER = ("complete", "pruned", "running", "interrupted", "failed")


@dataclass(frozen=True)
class TrialRow:
    """One trial as the leaderboard shows it."""

    number: int
    state: str  # one of STATE_ORDER
    value: float | None  # complete: mean best val loss over seeds; else its best report
    spread: float | None  # the standard deviation over seeds (None with one seed)
    seed_values: tuple[float, ...]
    params: dict[str, Any]
    tokens: int
    steps: int
    elapsed_s: float
    runs: tuple[str, ...]
    note: str = ""  # why it was pruned, how it failed, where it was interrupted


@dataclass(frozen=True)
class SweepStatus:
    """Everything the leaderboard shows of one sweep."""

    name: str
    spec: SweepSpec
    rows: list[TrialRow]
    used: BudgetUse
    grid_size: int | None
    importance: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> TrialRow | None:
        done = [r for r in self.rows if r.state == "complete" and r.value is not None]
        return done[0] if done else None

    def budget_lines(self) -> list[str]:
        """Used / left of each budget the sweep has."""
        b, u = self.spec.budget, self.used
        lines = []
        total_trials = b.trials or self.grid_size
        left = (
            f" of {total_trials} ({max(0, total_trials - u.trials)} left)" if total_trials else ""
        )
        lines.append(f"trials {u.trials}{left}")
        if b.tokens:
            lines.append(f"tokens {u.tokens:,} of {b.tokens:,} ({u.tokens / b.tokens:.0%})")
        else:
            lines.append(f"tokens {u.tokens:,}")
        if b.wall_time_s:
            lines.append(f"time {u.elapsed_s:,.0f} s of {b.wall_time_s:,.0f} s")
        else:
            lines.append(f"time {u.elapsed_s:,.0f} s")
        return lines


def sweep_status(folder: SweepFolder, with_importance: bool = True) -> SweepStatus:
    spec = folder.spec()
    study = open_study(spec, folder.storage_url(), create=False)
    rows = trial_rows(study, folder)
    importance = None
    complete = sum(1 for r in rows if r.state == "complete")
    if with_importance and complete >= IMPORTANCE_MIN_TRIALS and len(spec.space) > 1:
        importance = param_importance(study)
    return SweepStatus(spec.name, spec, rows, budget_used(study), spec.grid_size, importance)


def param_importance(study: Any) -> dict[str, float] | None:
    """Optuna's PED-ANOVA importance of each parameter (None when it cannot say)."""
    optuna = require_optuna()
    try:
        # PED-ANOVA (Optuna's default): no random forest, so no scikit-learn and the
        # same trials always give the same figures.
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
    except (ValueError, RuntimeError, ImportError):  # too few or identical trials
        return None


def trial_rows(study: Any, folder: SweepFolder) -> list[TrialRow]:
    """The study's trials, best first (complete by value, then the others)."""
    optuna = require_optuna()
    states = optuna.trial.TrialState
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state == states.WAITING:
            continue
        a = t.user_attrs
        seed_values = tuple(float(v) for v in a.get(attrs.SEED_VALUES) or ())
        reported = [v for v in t.intermediate_values.values() if math.isfinite(v)]
        note = ""
        if t.state == states.COMPLETE:
            state, value = "complete", t.value
        elif t.state == states.PRUNED:
            state, value = "pruned", min(reported) if reported else None
            note = str(a.get(attrs.PRUNED_REASON, ""))
        elif t.state == states.RUNNING:
            held = lock_holder(folder.claim_dir(t.number)) is not None
            foreign = a.get(attrs.HOST) not in (None, _host())
            state = "running" if held or foreign else "interrupted"
            value = min(reported) if reported else None
            if state == "interrupted" and a.get(attrs.INTERRUPTED) is not None:
                note = f"interrupted at step {a[attrs.INTERRUPTED]}"
        else:
            state, value = "failed", None
            note = str(a.get(attrs.ERROR, ""))
        spread = statistics.stdev(seed_values) if len(seed_values) > 1 else None
        rows.append(
            TrialRow(
                number=t.number,
                state=state,
                value=value,
                spread=spread,
                seed_values=seed_values,
                params=dict(t.params),
                tokens=int(a.get(attrs.TOKENS) or 0),
                steps=int(a.get(attrs.STEPS) or 0),
                elapsed_s=float(a.get(attrs.ELAPSED) or 0.0),
                runs=tuple(str(r) for r in a.get(attrs.RUN_DIRS) or () if r),
                note=note,
            )
        )
    return sorted(rows, key=_rank)


def _host() -> str:
    import socket

    return socket.gethostname()


def _rank(row: TrialRow) -> tuple[int, float, int]:
    value = row.value if row.value is not None else math.inf
    return STATE_ORDER.index(row.state), value, row.number


def row_record(row: TrialRow) -> dict[str, Any]:
    """A JSON-safe dict of a row (`gpt-tui sweep show --json`)."""

    def finite(v: float | None) -> float | None:
        return v if v is not None and math.isfinite(v) else None

    return {
        "trial": row.number,
        "state": row.state,
        "val_loss": finite(row.value),
        "val_loss_std": finite(row.spread),
        "seed_val_losses": list(row.seed_values),
        "params": row.params,
        "tokens": row.tokens,
        "steps": row.steps,
        "elapsed_s": row.elapsed_s,
        "runs": list(row.runs),
        "note": row.note,
    }


def board_csv(rows: list[TrialRow], params: list[str]) -> str:
    """The leaderboard as CSV: one line per trial, one column per parameter."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    head = ["trial", "state", "val_loss", "val_loss_std", *params, "tokens", "steps"]
    writer.writerow([*head, "elapsed_s", "note"])
    for row in rows:
        record = row_record(row)
        writer.writerow(
            [row.number, row.state, _cell(record["val_loss"]), _cell(record["val_loss_std"])]
            + [_cell(row.params.get(p)) for p in params]
            + [row.tokens, row.steps, f"{row.elapsed_s:.1f}", row.note]
        )
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def best_config_toml(spec: SweepSpec, row: TrialRow) -> str:
    """The trial's settings (its first seed's) as a run config `gpt-tui train --config`
    reads."""
    model, train = spec.configs(row.params, 0)
    shown = ", ".join(f"{k} = {v!r}" for k, v in row.params.items())
    value = f"{row.value:.4f}" if row.value is not None else "?"
    comment = (
        f"the best trial of sweep {spec.name}: trial {row.number}, val loss {value}\n"
        f"searched settings: {shown}\n"
        f"train it with: gpt-tui train --config THIS_FILE"
    )
    return config_toml(model, train, comment=comment)


def format_board(status: SweepStatus, limit: int | None = None) -> str:
    """The leaderboard as text lines (best first) for the terminal."""
    names = [p.name for p in status.spec.space]
    head = ["#", "state", "val loss", *names, "tokens", "steps"]
    lines = [head]
    for row in status.rows[:limit]:
        value = "-" if row.value is None else f"{row.value:.4f}"
        if row.spread is not None:
            value += f"±{row.spread:.3f}"
        cells = [str(row.number), row.state, value]
        cells += [_short(row.params.get(n)) for n in names]
        cells += [f"{row.tokens:,}", str(row.steps)]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = [
        "  ".join(
            c.rjust(w) if i >= 2 else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    return "\n".join(t.rstrip() for t in text)


def _short(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def param_points(rows: list[TrialRow], param: str) -> list[tuple[Any, float]]:
    """(the parameter's value, val loss) of each trial with a val loss: what the
    per-parameter view plots."""
    return [
        (row.params[param], row.value)
        for row in rows
        if param in row.params and row.value is not None and math.isfinite(row.value)
    ]
