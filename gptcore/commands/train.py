"""`gpt-tui train`: pretrain from a TOML config, headless (SSH, tmux, torchrun).

Prints a line per evaluation and each epoch's sample; a progress bar on a
terminal. The first Ctrl-C, SIGTERM or SIGHUP stops after the current step,
saves a checkpoint, says how to resume and exits with 128 + the signal's number
(130, 143, 129); a second one aborts (see gptcore.stopsignals).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, TextIO

from gptcore.errors import ConfigError, GptTuiError
from gptcore.runs.events import (
    BatchChanged,
    CheckpointSaved,
    EvalEnd,
    Failed,
    Finished,
    Overfitting,
    RunStarted,
    Sample,
    Spike,
    StepEnd,
)
from gptcore.settings.declare import add_flags, flag_texts, flags_of, parse_text
from gptcore.settings.train import TrainConfig
from gptcore.training.health import health_text
from gptcore.training.stopsignals import StopSignals, exit_code, stop_message
from gptcore.util.fmt import format_duration
from gptcore.util.progress import ProgressLine
from gptcore.util.tomlwrite import toml_value

from .flags import add_set_flag

if TYPE_CHECKING:
    from gptcore.training.trainer import Trainer


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="run config TOML ([model] and [train] tables)")
    add_set_flag(
        p, "override a setting: `--set max_steps=20`, `--set model.n_layers=4` (repeatable)"
    )
    add_flags(p, TrainConfig, ["corpus", *CORPUS_FLAGS], dict.fromkeys(["corpus", *CORPUS_FLAGS]))
    p.add_argument(
        "--resume",
        metavar="RUN_OR_CHECKPOINT",
        help="continue from a checkpoint folder, a run (its latest), RUN:latest or RUN:best",
    )
    add_flags(p, TrainConfig, ["init"])
    p.add_argument(
        "--run-dir", metavar="DIR", help="write the run here (default: a new run folder)"
    )
    p.add_argument("--quiet", action="store_true", help="print only the final line")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="pretrain a GPT from a config file (headless)",
        description="Pretrain a GPT with the book's loop. Needs --config FILE or --resume RUN.",
    )
    add_arguments(p)
    p.set_defaults(func=run_command)


class ConsolePrinter:
    """A Trainer listener that prints the book's log lines (and a progress bar on a tty)."""

    def __init__(
        self, out: TextIO | None = None, err: TextIO | None = None, quiet: bool = False
    ) -> None:

        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.quiet = quiet
        self.bar = ProgressLine("training", "steps", stream=self.err)
        self.bar.enabled = self.bar.enabled and not quiet
        self.first_step = 0
        self.total: int | None = None
        self.started = time.perf_counter()
        self.last_step_event = None
        self.first_step_end: tuple[int, float] | None = None  # (global_step, when)

    def _line(self, text: str) -> None:
        if self.quiet:
            return
        if self.bar.enabled:
            self.err.write("\r\033[K")
        print(text, file=self.out, flush=True)

    def eta(self, step: int) -> str:
        # Measured from the end of the session's first step: that step includes the
        # warm-up (kernels chosen, memory touched), which made step 0's ETA hours long.
        if self.first_step_end is None:
            return "?"
        since, at = self.first_step_end
        done = step - since
        if not self.total or done <= 0:
            return "?"
        rate = done / max(time.perf_counter() - at, 1e-9)
        return format_duration((self.total - step - 1) / rate)

    def __call__(self, event: object) -> None:
        try:
            self._print(event)
        except OSError:  # the terminal or pipe is gone (SIGHUP, a closed pager): go quiet
            self.quiet, self.bar.enabled = True, False

    def _print(self, event: object) -> None:

        if isinstance(event, RunStarted):
            self.first_step, self.total = event.step, event.total_steps
            self.started = time.perf_counter()
            self.first_step_end = None
            what = "resuming at step" if event.step else "starting"
            self._line(
                f"run {event.run_dir}: {event.parameters:,} parameters on {event.device} "
                f"({event.precision}), {what} {event.step or ''}".rstrip()
                + f", {event.total_steps} steps in all"
            )
        elif isinstance(event, StepEnd):
            self.last_step_event = event
            if self.first_step_end is None:
                self.first_step_end = (event.step, time.perf_counter())
            if self.total:
                self.bar.update(event.step + 1 - self.first_step, self.total - self.first_step)
        elif isinstance(event, EvalEnd):
            s = self.last_step_event
            extra = ""
            if s is not None and s.step == event.step:
                extra = f" | lr {s.lr:.1e} | {s.tokens_per_s:,.0f} tok/s | ETA {self.eta(s.step)}"
            self._line(
                f"Ep {event.epoch + 1} (Step {event.step:06d}): "
                f"Train loss {event.train_loss:.3f}, Val loss {event.val_loss:.3f}{extra}"
            )
        elif isinstance(event, Sample):
            self._line(event.text.replace("\n", " "))
        elif isinstance(event, CheckpointSaved):
            self._line(f"checkpoint ({event.reason}): {event.path}")
        elif isinstance(event, BatchChanged):
            self._line(("warning: " if event.reason == "out_of_memory" else "") + event.detail)
        elif isinstance(event, Overfitting | Spike):
            self._line(f"warning: {health_text(event)}")
        elif isinstance(event, Finished):
            if self.bar.enabled:
                self.err.write("\r\033[K")
                self.err.flush()
            print(
                f"{event.reason}: {event.step} steps, {event.epoch} epochs, "
                f"{event.tokens_seen:,} tokens seen in {format_duration(event.elapsed_s)}",
                file=self.out,
                flush=True,
            )


def maybe_init_distributed(device: str) -> bool:
    """Under torchrun (WORLD_SIZE > 1) start the process group: NCCL on CUDA, gloo on CPU."""
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return False
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return True


# How the corpus is read and split: flags of their own (any other setting: --set).
CORPUS_FLAGS = ["text_field", "split", "split_seed", "val_corpus"]


def corpus_overrides(args: argparse.Namespace) -> list[str]:
    """The corpus flags given, as `--set` overrides (a config's values otherwise)."""
    values, errors = parse_text(TrainConfig, flag_texts(args, CORPUS_FLAGS))
    if errors:
        raise ConfigError(f"{flags_of(TrainConfig)[errors[0].field]}: {errors[0].message}")
    return [f"{name}={toml_value(value)}" for name, value in values.items()]


def run_command(args: argparse.Namespace) -> int:
    from gptcore.training.resume import prepare_run
    from gptcore.training.trainer import trainer_for

    run = prepare_run(
        args.config,
        [*args.overrides, *corpus_overrides(args)],
        corpus=args.corpus,
        init=args.init,
        resume=args.resume,
        run_dir=args.run_dir,
        refuse_finished=True,  # a finished run needs more epochs/steps, said in one line
    )
    started_dist = maybe_init_distributed(run.train_config.device)
    try:
        rank = int(os.environ.get("RANK", "0")) if started_dist else 0
        printer = ConsolePrinter(quiet=args.quiet or rank != 0)
        if run.notice and rank == 0:  # e.g. the latest checkpoint was damaged
            print(f"gpt-tui: {run.notice}", file=sys.stderr, flush=True)
        trainer = trainer_for(run, listeners=[printer])
        signals = StopSignals(lambda signum: _stop_after_this_step(trainer, signum))
        with signals:
            result = trainer.run()
    finally:
        if started_dist:
            import torch.distributed as dist

            dist.destroy_process_group()
    if isinstance(result, Failed):
        if result.kind == "nan":
            print(f"gpt-tui: error: {result.error}", file=sys.stderr)
            return 1
        raise GptTuiError(result.error)
    if result.reason == "cancelled":
        with contextlib.suppress(OSError):  # stderr may be a closed pipe
            if rank == 0:  # torchrun: one line, not one per rank
                print(
                    f"interrupted at step {result.step}; checkpoint saved. Resume with:\n"
                    f"  gpt-tui train --resume {trainer.run_dir}",
                    file=sys.stderr,
                )
        return signals.exit_code or exit_code(signal.SIGINT)
    return 0


def _stop_after_this_step(trainer: Trainer, signum: int) -> None:
    """The first stop signal: the trainer stops after this step and saves."""
    # OSError: after SIGHUP nobody reads this; RuntimeError: a print was interrupted.
    with contextlib.suppress(OSError, RuntimeError):
        print(f"\n{stop_message(signum)}", file=sys.stderr, flush=True)
    trainer.cancel(signum)
