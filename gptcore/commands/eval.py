"""`gpt-tui eval`: train/val loss and perplexity of a model on a corpus.

By default the first DEFAULT_EVAL_BATCHES batches of each split (a whole corpus can
take many minutes on a CPU); `--all` evaluates everything. On a terminal, stderr
says what is being evaluated at once, then shows the tokenizing and the batches."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from gptcore.errors import ConfigError
from gptcore.settings.declare import add_flags, flags_of
from gptcore.settings.train import TrainConfig
from gptcore.util.progress import ProgressLine

from .flags import add_device_flag, settings_from_flags
from .model_args import add_model_arguments, load_from_args

if TYPE_CHECKING:
    from gptcore.training.evaluate import Evaluation

# Batches per split evaluated unless --all: on a CPU the book's 124M model takes about
# a second a batch, and a whole corpus ran 17 minutes without a word.
DEFAULT_EVAL_BATCHES = 10
# The corpus and batch settings eval takes, declared as training's own.
CORPUS = [
    "corpus",
    "batch_size",
    "train_ratio",
    "decode_errors",
    "text_field",
    "split",
    "split_seed",
    "val_corpus",
]
# Those a checkpoint brings itself: it is evaluated on the split its run trained with.
CHECKPOINT_OWN = CORPUS[1:]  # all but the corpus: a checkpoint brings its own


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="print train/val loss and perplexity on a corpus (book semantics)",
        description="Split the corpus by characters (90/10), cut windows of the context length "
        "with stride = context length, and print the mean loss over the batches. The model is "
        "a --preset (default book-124m, seeded), a trained --checkpoint (a checkpoint folder, "
        "a run = its latest, RUN:latest or RUN:best), or GPT-2 weights (--gpt2 / --weights). "
        "A --checkpoint is evaluated on the split its run trained with (train ratio, bad "
        "UTF-8 handling, windows and batch size from its meta.json), by default on its own "
        "corpus, so its val loss is over its own validation split.",
    )
    add_model_arguments(p, default_preset="book-124m")
    add_flags(p, TrainConfig, CORPUS)
    amount = p.add_mutually_exclusive_group()
    amount.add_argument(
        "--max-batches",
        type=int,
        default=DEFAULT_EVAL_BATCHES,
        help=f"evaluate the first N batches per split (default: {DEFAULT_EVAL_BATCHES})",
    )
    amount.add_argument(
        "--all",
        dest="max_batches",
        action="store_const",
        const=None,
        help="evaluate every batch of the corpus (slow for a large corpus on a CPU)",
    )
    add_device_flag(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    # Flag checks before the (possibly slow) load; the engine checks them too.
    train = settings_from_flags(TrainConfig, args, CORPUS)
    if args.max_batches is not None and args.max_batches <= 0:
        raise ConfigError(f"--max-batches must be positive, got {args.max_batches}")
    _say_what_runs(args)
    if args.checkpoint:
        return _checkpoint(args)
    from gptcore.data.runcorpus import run_corpus
    from gptcore.training.evaluate import evaluate_model

    loaded = load_from_args(args, args.device)
    bar = ProgressLine("tokenizing", "chars")
    corpus = run_corpus(train, bar.update)
    bar.close()
    batches = ProgressLine("evaluating", "batches")
    try:
        result = evaluate_model(
            loaded.model,
            corpus,
            batch_size=train.batch_size,
            max_batches=args.max_batches,
            device=loaded.device,
            train_ratio=train.train_ratio,
            progress=batches.update,
        )
    finally:
        batches.close()
    model = f"{loaded.label} ({loaded.model.num_parameters():,} parameters)"
    _report(args, result, corpus.n_chars, corpus.n_tokens, model, "")
    return 0


def _checkpoint(args: argparse.Namespace) -> int:
    """`--checkpoint C`: gptcore's evaluate_checkpoint, on the checkpoint's own split."""
    from gptcore.training.evaluate import evaluate_checkpoint

    flags = flags_of(TrainConfig, CHECKPOINT_OWN)
    given = [flags[name] for name in CHECKPOINT_OWN if getattr(args, name) is not None]
    if given:
        raise ConfigError(
            f"{given[0]} applies to --preset, --gpt2 and --weights: a --checkpoint is "
            "evaluated on the split its run trained with (its meta.json's train_config)"
        )
    bar = ProgressLine("tokenizing", "chars")
    batches = ProgressLine("evaluating", "batches")

    def on_batches(done: int, total: int) -> None:
        bar.close()  # the tokenizing line ends where the batches begin
        batches.update(done, total)

    try:
        done = evaluate_checkpoint(
            args.checkpoint,
            args.corpus,  # None: the corpus its run trained on
            max_batches=args.max_batches,
            device=args.device,
            progress=bar.update,
            on_batches=on_batches,
        )
    finally:
        bar.close()
        batches.close()
    model = f"{done.label} ({done.parameters:,} parameters)"
    _report(
        args, done.evaluation, done.corpus_chars, done.corpus_tokens, model, " as its run trained"
    )
    return 0


def _say_what_runs(args: argparse.Namespace) -> None:
    """One line on a terminal's stderr before torch loads (seconds): what is
    evaluated and how much of the corpus."""
    if not sys.stderr.isatty():
        return
    model = (
        args.checkpoint
        or (args.gpt2 and f"gpt2:{args.gpt2}")
        or args.weights
        or f"preset {args.preset}"
    )
    amount = "every batch" if args.max_batches is None else f"{args.max_batches} batches per split"
    more = "" if args.max_batches is None else "; --all for the whole corpus"
    print(f"evaluating {model}: {amount}{more} …", file=sys.stderr, flush=True)


def _report(
    args: argparse.Namespace, result: Evaluation, chars: int, tokens: int, model: str, whose: str
) -> None:
    if args.json:
        print(json.dumps(result.to_dict()))
        return
    print(f"corpus      {result.corpus}: {chars:,} characters, {tokens:,} tokens")
    print(
        f"split       train {result.train_ratio:g}{whose}: {result.train_tokens:,} tokens, "
        f"val {result.val_tokens:,}; windows of {result.window}, stride {result.stride}"
    )
    print(f"model       {model} on {result.device}")
    print(
        f"batches     train {result.train_batches}, val {result.val_batches} "
        f"(batch size {result.batch_size})"
    )
    print(f"train loss  {result.train_loss:.4f}  (perplexity {result.train_perplexity:,.1f})")
    print(f"val loss    {result.val_loss:.4f}  (perplexity {result.val_perplexity:,.1f})")
