"""The corpus a run trains on, from its settings: one workflow for the Trainer, the
CLI and the app's Corpus screen.

`run_corpus` resolves the corpus setting ("verdict" is the book's file, a mixture
is several sources), reads it with the run's text field, decode errors and split,
and, with `val_corpus`, trains on the whole corpus and validates on the other one.
"""

from __future__ import annotations

import dataclasses

from gptcore.data.corpus import ProgressFn
from gptcore.data.mixture import is_mixture, parse_mixture
from gptcore.data.shards import joined
from gptcore.data.tokens import TokenizedCorpus, prepare_corpus
from gptcore.errors import CorpusError
from gptcore.settings.train import TrainConfig
from gptcore.util.paths import verdict_file


def corpus_source(corpus: str) -> str:
    """The file a corpus setting names ("verdict" is the book's, once downloaded)."""
    if corpus != "verdict":
        return corpus
    path = verdict_file()
    if not path.exists():
        raise CorpusError(
            f"the book's corpus (the-verdict.txt) is not at {path}; run "
            "`gpt-tui download verdict` to fetch it, or pass --corpus PATH"
        )
    return str(path)


def _prepare(
    source: str, cfg: TrainConfig, progress: ProgressFn | None, whole: bool = False
) -> TokenizedCorpus:
    return prepare_corpus(
        corpus_source(source),
        cfg.train_ratio,
        cfg.decode_errors,
        progress,
        text_field=cfg.text_field,
        split="all" if whole else cfg.split,
        split_seed=cfg.split_seed,
    )


def _single(source: str, cfg: TrainConfig, progress: ProgressFn | None) -> TokenizedCorpus:
    """One source, split by the settings, or whole with the val_corpus as validation."""
    if not cfg.val_corpus:
        return _prepare(source, cfg, progress)
    train = _prepare(source, cfg, progress, whole=True)
    val = _prepare(cfg.val_corpus, cfg, progress, whole=True)
    return dataclasses.replace(
        train,
        val_tokens=val.train_tokens,
        val_chars=val.n_chars,
        n_tokens=train.n_tokens + val.n_tokens,
        key=f"{train.key}+val:{val.key}",
        split="val_corpus",
    )


def run_corpus(cfg: TrainConfig, progress: ProgressFn | None = None) -> TokenizedCorpus:
    """The run's corpus, tokenized (or read from its cache) and split."""
    if not is_mixture(cfg.corpus):
        return _single(cfg.corpus, cfg, progress)
    parts = parse_mixture(cfg.corpus)
    loaded = [_single(part.source, cfg, progress) for part in parts]
    dtype = loaded[0].train_tokens.dtype
    trains = [_arrays(c.train_tokens) for c in loaded]
    vals = [_arrays(c.val_tokens) for c in loaded]
    return TokenizedCorpus(
        name=" + ".join(c.name for c in loaded),
        n_chars=sum(c.n_chars for c in loaded),
        files=sum(c.files for c in loaded),
        train_tokens=joined([a for arrays in trains for a in arrays], dtype),
        val_tokens=joined([a for arrays in vals for a in arrays], dtype),
        train_chars=sum(c.train_chars for c in loaded),
        val_chars=sum(c.val_chars for c in loaded),
        key="mix:" + ";".join(f"{p.weight:g}*{c.key}" for p, c in zip(parts, loaded, strict=True)),
        n_tokens=sum(c.n_tokens for c in loaded),
        split=loaded[0].split,
        sources=tuple(
            (c.name, len(c.train_tokens), p.weight) for p, c in zip(parts, loaded, strict=True)
        ),
    )


def _arrays(tokens: object) -> list:
    """A token array's shards (one array, or a ShardedTokens' list)."""
    return list(getattr(tokens, "arrays", [tokens]))


def mixture_shares(corpus: TokenizedCorpus) -> list[tuple[str, float, float]]:
    """(name, share of the train tokens, share of the windows a run draws) per source."""
    total = sum(n for _, n, _ in corpus.sources) or 1
    weights = sum(w for *_, w in corpus.sources) or 1.0
    return [(name, n / total, w / weights) for name, n, w in corpus.sources]


def documents_line(corpus: TokenizedCorpus) -> str:
    """The documents and their lengths, or "" for a corpus of one document."""
    stats = corpus.doc_stats
    if stats is None or stats.documents < 2:
        return ""
    return (
        f"documents {stats.documents:,}: shortest {stats.shortest:,}, median "
        f"{stats.median:,}, longest {stats.longest:,} chars"
    )


def shares_lines(corpus: TokenizedCorpus) -> list[str]:
    """A mixture's sources: their share of the tokens and of what a run draws."""
    return [
        f"  {name}: {tokens:.1%} of tokens, {seen:.1%} of windows"
        for name, tokens, seen in mixture_shares(corpus)
    ]


def corpus_summary(corpus: TokenizedCorpus) -> str:
    """Lines for a terminal: characters, tokens, documents, the split, and each
    source's share for a mixture."""
    lines = [f"characters {corpus.n_chars:,}  tokens {corpus.n_tokens:,}"]
    lines += [line for line in [documents_line(corpus)] if line]
    lines.append(
        f"train {corpus.train_chars:,} chars, {len(corpus.train_tokens):,} tokens "
        f"(split: {corpus.split})"
    )
    lines.append(f"val   {corpus.val_chars:,} chars, {len(corpus.val_tokens):,} tokens")
    return "\n".join(lines + shares_lines(corpus))
