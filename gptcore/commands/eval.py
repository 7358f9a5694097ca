"""`gpt-tui eval`: train/val loss and perplexity of a model on a corpus."""

from __future__ import annotations

import argparse
import json

from ..config import PRESETS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="print train/val loss and perplexity on a corpus (book semantics)",
        description="Split the corpus by characters (90/10), cut windows of the context length "
        "with stride = context length, and print the mean loss over the batches.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--preset",
        default="book-124m",
        choices=sorted(PRESETS),
        help="model preset (default: book-124m)",
    )
    src.add_argument(
        "--checkpoint",
        metavar="SPEC",
        help="evaluate a trained checkpoint: a checkpoint folder, a run (its latest), "
        "RUN:latest or RUN:best (instead of --preset)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=123,
        help="torch.manual_seed before building the model (default: 123)",
    )
    p.add_argument("--corpus", default="builtin", help="text file, folder, or 'builtin' (default)")
    p.add_argument("--batch-size", type=int, default=2, help="windows per batch (default: 2)")
    p.add_argument(
        "--max-batches",
        type=int,
        default=None,
        help="evaluate at most N batches per split (default: all)",
    )
    p.add_argument("--train-ratio", type=float, default=0.9)
    p.add_argument(
        "--decode-errors",
        choices=["strict", "replace"],
        default="strict",
        help="how to treat invalid UTF-8",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run, source_group=src)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..config import get_preset
    from ..data import count_batches, make_loader, prepare_corpus, require_windows
    from ..device import pick_device
    from ..errors import ConfigError
    from ..evaluate import calc_loss_loader, perplexity
    from ..model import GPTModel
    from ..progress import ProgressLine

    if args.batch_size <= 0:
        raise ConfigError(f"--batch-size must be positive, got {args.batch_size}")
    device = pick_device(args.device)
    if args.checkpoint:
        from ..checkpoint import load_model

        model, ckpt = load_model(args.checkpoint, device)
        label = f"checkpoint {ckpt.path} (step {ckpt.step})"
    else:
        torch.manual_seed(args.seed)
        model = GPTModel(get_preset(args.preset))
        label = args.preset
    config = model.config
    model.to(device).eval()

    bar = ProgressLine("tokenizing", "chars")
    corpus = prepare_corpus(args.corpus, args.train_ratio, args.decode_errors, bar.update)
    bar.close()
    length = config.context_length
    require_windows(corpus.train_tokens, length, "training")
    require_windows(corpus.val_tokens, length, "validation")
    train_loader = make_loader(corpus.train_tokens, args.batch_size, length, length, False, True)
    val_loader = make_loader(corpus.val_tokens, args.batch_size, length, length, False, False)
    if count_batches(len(train_loader.dataset), args.batch_size, True) == 0:
        raise ConfigError(
            f"the training split has {len(train_loader.dataset)} windows, fewer than one batch of "
            f"{args.batch_size}; use a smaller --batch-size or a larger corpus"
        )
    train_loss = calc_loss_loader(train_loader, model, device, args.max_batches)
    val_loss = calc_loss_loader(val_loader, model, device, args.max_batches)
    result = {
        "train_loss": train_loss,
        "val_loss": val_loss,
        "train_perplexity": perplexity(train_loss),
        "val_perplexity": perplexity(val_loss),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"corpus      {corpus.name}: {corpus.n_chars:,} characters, {corpus.n_tokens:,} tokens"
        )
        print(f"model       {label} ({model.num_parameters():,} parameters) on {device}")
        print(
            f"batches     train {len(train_loader)}, val {len(val_loader)} (batch size {args.batch_size})"
        )
        print(f"train loss  {train_loss:.4f}  (perplexity {result['train_perplexity']:,.1f})")
        print(f"val loss    {val_loss:.4f}  (perplexity {result['val_perplexity']:,.1f})")
    return 0
