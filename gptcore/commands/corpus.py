"""`gpt-tui corpus`: look at a corpus as a run would read it, and prepare raw
collections (Project Gutenberg) into a corpus."""

from __future__ import annotations

import argparse

from gptcore.data.gutenberg import prepare_gutenberg
from gptcore.settings.declare import add_flags
from gptcore.settings.train import TrainConfig
from gptcore.util.progress import ProgressLine

from .flags import settings_from_flags

# How a corpus is read and split, declared as training's own settings.
READ = ["corpus", "decode_errors", "train_ratio", "text_field", "split", "split_seed", "val_corpus"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "corpus",
        help="show a corpus's summary, or prepare Project Gutenberg books as a corpus",
        description="Corpora: text, JSON Lines, JSON, Parquet (each also compressed), folders "
        "of them, Hugging Face datasets (hf:NAME or a save_to_disk folder); see docs/corpora.md.",
    )
    what = p.add_subparsers(dest="what", metavar="ACTION", required=True)

    show = what.add_parser(
        "show", help="tokenize (or read the cache of) a corpus; print its summary"
    )
    add_flags(show, TrainConfig, READ)
    show.set_defaults(func=run_show)

    prep = what.add_parser("prepare", help="prepare a raw collection as a corpus")
    kinds = prep.add_subparsers(dest="kind", metavar="KIND", required=True)
    g = kinds.add_parser(
        "gutenberg",
        help="Project Gutenberg books: strip headers and licences, drop duplicates",
        description="Clean every .txt book under FOLDER into DIR (one file per book): "
        "Project Gutenberg's header and footer cut at their START/END markers, blank "
        "lines folded, exact duplicates dropped, optionally non-English books too. "
        "Resumable: run it again after an interruption.",
    )
    g.add_argument("folder", metavar="FOLDER", help="the downloaded books")
    g.add_argument("--out", metavar="DIR", required=True, help="where the cleaned books go")
    g.add_argument(
        "--english-only",
        action="store_true",
        help="drop books that fail the English test (mostly ASCII and English function words)",
    )
    g.set_defaults(func=run_gutenberg)


def run_show(args: argparse.Namespace) -> int:
    from gptcore.data.runcorpus import corpus_summary, run_corpus

    # The sampler does not change what is read; "random" lets a mixture through.
    train = settings_from_flags(TrainConfig, args, READ, TrainConfig(sampler="random"))
    bar = ProgressLine("tokenizing", "chars")
    try:
        corpus = run_corpus(train, bar.update)
    finally:
        bar.close()
    print(f"corpus {corpus.name}")
    print(corpus_summary(corpus))
    return 0


def run_gutenberg(args: argparse.Namespace) -> int:

    bar = ProgressLine("cleaning", "books")
    try:
        report = prepare_gutenberg(
            args.folder, args.out, english_only=args.english_only, progress=bar.update
        )
    finally:
        bar.close()
    print(report.lines())
    print(f"corpus: {args.out} (train on it with --corpus {args.out})")
    return 0
