"""`gpt-tui sweep`: search a run config's settings under a budget (on Optuna).

    gpt-tui sweep SWEEP.toml [--dir DIR] [--storage URL]   start (or join) a sweep
    gpt-tui sweep --resume DIR                             go on with one
    gpt-tui sweep show DIR [--json | --csv] [--best-config OUT.toml]

The sweep file is checked whole before any trial starts. Ctrl-C, SIGTERM or SIGHUP
stop the current trial's run as `gpt-tui train` stops (a checkpoint is saved),
leave that trial to resume, and exit with 128 + the signal's number.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from gptcore.commands.train import ConsolePrinter
from gptcore.errors import ConfigError, GptTuiError
from gptcore.sweep.folder import SweepFolder
from gptcore.sweep.leaderboard import (
    best_config_toml,
    board_csv,
    format_board,
    row_record,
    sweep_status,
)
from gptcore.sweep.runner import Runner
from gptcore.sweep.spec import load_sweep, resolve_sweep_path
from gptcore.sweep.study import require_optuna
from gptcore.training.stopsignals import StopSignals, signal_name
from gptcore.util.fsutil import atomic_write_text

SHOW = "show"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="search settings over many runs (Optuna; grid, random, TPE; pruning)",
        description="Run a sweep file's trials as normal runs, or show a sweep's leaderboard "
        "(`gpt-tui sweep show DIR`). docs/sweeps.md describes the file.",
    )
    p.add_argument("target", metavar="SWEEP.toml | show", nargs="?", help="a sweep file, or show")
    p.add_argument("folder", metavar="DIR", nargs="?", help="with show: the sweep's folder")
    p.add_argument("--dir", metavar="DIR", help="the sweep's folder (default: DATA/sweeps/NAME)")
    p.add_argument(
        "--storage",
        metavar="URL",
        help="the study's database (default: sqlite study.db in the sweep's folder); "
        "processes sharing one URL share the study",
    )
    p.add_argument("--resume", metavar="DIR", help="go on with the sweep in DIR (or join it)")
    p.add_argument("--verbose", action="store_true", help="print every run's evaluations")
    p.add_argument("--json", action="store_true", help="show: the leaderboard as JSON")
    p.add_argument("--csv", action="store_true", help="show: the leaderboard as CSV")
    p.add_argument(
        "--best-config", metavar="OUT.toml", help="show: write the best trial's run config"
    )
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    if args.target == SHOW:
        if not args.folder:
            raise ConfigError("gpt-tui sweep show DIR: give the sweep's folder")
        return show(args)
    if args.folder:
        raise ConfigError(f"unexpected argument {args.folder!r} (did you mean `sweep show`?)")

    require_optuna()
    if args.resume:
        if args.target or args.storage or args.dir:
            raise ConfigError("--resume DIR takes the sweep's own file, folder and storage")
        folder = SweepFolder(args.resume)
        folder.spec()  # checked before anything runs
    elif args.target:
        folder = _start(Path(args.target), args.dir, args.storage)
    else:
        raise ConfigError("give a sweep file (gpt-tui sweep SWEEP.toml) or --resume DIR")
    return _run(folder, args.verbose)


def _start(path: Path, folder_dir: str | None, storage: str | None) -> SweepFolder:

    path = resolve_sweep_path(path)
    spec = load_sweep(path)
    storage = storage or spec.options.storage
    folder = SweepFolder(folder_dir) if folder_dir else SweepFolder.default_for(spec.name)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    folder.create(spec, text, storage)
    return folder


def _run(folder: SweepFolder, verbose: bool) -> int:

    def say(text: str) -> None:
        with contextlib.suppress(OSError):  # after SIGHUP nobody reads this
            print(text, flush=True)

    runner = Runner(
        folder,
        notify=say,
        listeners=lambda job: [ConsolePrinter(quiet=not verbose)],
    )
    say(f"sweep {runner.spec.name}: folder {folder.path}, study {folder.storage_url()}")

    def on_stop(signum: int) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            print(
                f"\n{signal_name(signum)}: stopping this trial's run after its step "
                "(checkpoint saved); the sweep can be resumed",
                file=sys.stderr,
                flush=True,
            )
        runner.stop()

    signals = StopSignals(on_stop)
    with signals:
        summary = runner.run()
    where = folder.path
    if summary.reason == "interrupted":
        with contextlib.suppress(OSError):
            print(
                f"sweep interrupted; resume with:\n  gpt-tui sweep --resume {where}",
                file=sys.stderr,
            )
        return signals.exit_code or 130
    say(f"sweep {runner.spec.name}: done ({summary.reason}); gpt-tui sweep show {where}")
    return 0


def show(args: argparse.Namespace) -> int:

    if args.json and args.csv:
        raise ConfigError("give --json or --csv, not both")
    folder = SweepFolder(args.folder)
    status = sweep_status(folder, with_importance=not (args.json or args.csv))
    if args.best_config:
        best = status.best
        if best is None:
            raise GptTuiError(f"sweep {status.name} has no complete trial yet")
        try:
            atomic_write_text(args.best_config, best_config_toml(status.spec, best))
        except OSError as exc:
            raise GptTuiError(f"cannot write {args.best_config}: {exc.strerror or exc}") from None
    if args.json:
        print(json.dumps([row_record(r) for r in status.rows]))
    elif args.csv:
        sys.stdout.write(board_csv(status.rows, [p.name for p in status.spec.space]))
    else:
        best = status.best
        print(f"sweep {status.name}: " + "; ".join(status.budget_lines()))
        if best is not None:
            print(f"best: trial {best.number}, val loss {best.value:.4f} ({best.params})")
        print(format_board(status) if status.rows else "no trials yet")
        if status.importance:
            shown = ", ".join(f"{k} {v:.2f}" for k, v in status.importance.items())
            print(f"importance: {shown}")
    if args.best_config:
        print(f"best config written to {args.best_config}", file=sys.stderr)
    return 0
