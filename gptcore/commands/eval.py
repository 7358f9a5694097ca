"""`gpt-tui eval`: train/val loss and perplexity of a model on a corpus."""

from __future__ import annotations

import argparse
import json

from gptcore.settings.declare import add_flags
from gptcore.settings.train import TrainConfig

from .flags import add_device_flag, settings_from_flags
from .model_args import add_model_arguments, load_from_args

# The corpus and batch settings eval takes, declared as training's own.
CORPUS = ["corpus", "batch_size", "train_ratio", "decode_errors"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="print train/val loss and perplexity on a corpus (book semantics)",
        description="Split the corpus by characters (90/10), cut windows of the context length "
        "with stride = context length, and print the mean loss over the batches. The model is "
        "a --preset (default book-124m, seeded), a trained --checkpoint (a checkpoint folder, "
        "a run = its latest, RUN:latest or RUN:best), or GPT-2 weights (--gpt2 / --weights).",
    )
    add_model_arguments(p, default_preset="book-124m")
    add_flags(p, TrainConfig, CORPUS)
    p.add_argument(
        "--max-batches",
        type=int,
        default=None,
        help="evaluate at most N batches per split (default: all)",
    )
    add_device_flag(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gptcore.data.tokens import prepare_corpus
    from gptcore.errors import ConfigError
    from gptcore.training.evaluate import evaluate_model
    from gptcore.util.progress import ProgressLine

    # Flag checks before the (possibly slow) load; evaluate_model checks them too.
    train = settings_from_flags(TrainConfig, args, CORPUS)
    if args.max_batches is not None and args.max_batches <= 0:
        raise ConfigError(f"--max-batches must be positive, got {args.max_batches}")
    loaded = load_from_args(args, args.device)
    bar = ProgressLine("tokenizing", "chars")
    corpus = prepare_corpus(train.corpus, train.train_ratio, train.decode_errors, bar.update)
    bar.close()
    result = evaluate_model(
        loaded.model,
        corpus,
        batch_size=train.batch_size,
        max_batches=args.max_batches,
        device=loaded.device,
    )
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    model = loaded.model
    print(f"corpus      {corpus.name}: {corpus.n_chars:,} characters, {corpus.n_tokens:,} tokens")
    print(f"model       {loaded.label} ({model.num_parameters():,} parameters) on {result.device}")
    print(
        f"batches     train {result.train_batches}, val {result.val_batches} "
        f"(batch size {result.batch_size})"
    )
    print(f"train loss  {result.train_loss:.4f}  (perplexity {result.train_perplexity:,.1f})")
    print(f"val loss    {result.val_loss:.4f}  (perplexity {result.val_perplexity:,.1f})")
    return 0
