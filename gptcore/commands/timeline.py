"""`gpt-tui timeline`: one prompt generated from each checkpoint of a run."""

from __future__ import annotations

import argparse
import json

from gptcore.errors import GenerationError
from gptcore.runs.rundir import run_prompt
from gptcore.settings.declare import add_flags, flag_texts, flags_of
from gptcore.settings.sampling import GenerationSettings
from gptcore.settings.train import TrainConfig
from gptcore.util.fmt import MISSING, format_count
from gptcore.util.progress import ProgressLine
from gptcore.weights.spec import describe_spec

from .flags import add_device_flag, name_flags

# The sample timeline's defaults, without importing it (and torch) to build the parser.
DEFAULT_PROMPT, DEFAULT_SEED = TrainConfig.start_context, TrainConfig.seed

# The sampling settings this command takes, with generate's flags (--sample-seed S).
SAMPLING = ["seed", "max_new_tokens", "temperature", "top_k"]
# The flag behind each sampling setting, for error messages.
FLAGS = flags_of(GenerationSettings, SAMPLING)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "timeline",
        help="the same prompt and seed generated from each checkpoint of a run",
        description="Generates the same prompt with the same seed and settings from each "
        "checkpoint of RUN, oldest first, as `gpt-tui generate --checkpoint C --prompt P "
        "--sample-seed S` would; samples are cached in RUN/timeline.json.",
    )
    p.add_argument("run", metavar="RUN", help="a run folder or run name")
    p.add_argument(
        "--prompt",
        help=f"default: the run's own sample prompt (start_context), else {DEFAULT_PROMPT!r}",
    )
    add_flags(p, GenerationSettings, SAMPLING, {"seed": DEFAULT_SEED})
    p.add_argument(
        "--against",
        metavar="SPEC",
        help="a second model sampled with the same settings (RUN:best, a checkpoint, gpt2:124M)",
    )
    add_device_flag(p)
    p.add_argument("--json", action="store_true", help="print one JSON object per checkpoint")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gptcore.runs.checkpoints import find_run
    from gptcore.sampling.from_text import settings_from_text
    from gptcore.sampling.timeline import sample_timeline

    given = {"seed": str(DEFAULT_SEED), **flag_texts(args, SAMPLING)}
    # The same parser and defaults as `gpt-tui generate`'s flags.
    try:
        settings = settings_from_text(given)
    except GenerationError as exc:
        raise name_flags(exc, FLAGS) from None
    run_dir = find_run(args.run)
    if args.prompt is None:
        args.prompt = run_prompt(run_dir)

    bar = ProgressLine("sampling", "models")  # stderr, on a terminal only: with an ETA
    try:
        entries = sample_timeline(
            run_dir,
            args.prompt,
            settings.seed,
            settings,
            other=args.against,
            progress=bar.update,
            device=args.device,
        )
    except GenerationError as exc:
        raise name_flags(exc, FLAGS) from None
    finally:
        bar.close()
    if args.json:
        for entry in entries:
            print(json.dumps(entry.to_record(), ensure_ascii=False))
        return 0
    if not entries:
        print(f"run {run_dir} has no checkpoints yet")
        return 0
    if args.against is not None:
        # Sampled once: shown once, above the run's checkpoints.
        print(f"--- {describe_spec(args.against)} (against)")
        print(args.prompt + (entries[0].other_text or "") + "\n")
    for entry in entries:
        loss = MISSING if entry.val_loss is None else f"{entry.val_loss:.3f}"
        print(
            f"--- {entry.label}  step {format_count(entry.step)}  "
            f"tokens {format_count(entry.tokens_seen)}  val loss {loss}"
        )
        print(f"damaged: {entry.error}" if entry.error else args.prompt + (entry.text or ""))
        print()
    return 0
