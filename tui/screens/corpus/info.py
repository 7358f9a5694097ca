"""What the Corpus screen shows about a loaded corpus, and loading one.

`load_corpus` runs on the pane's worker thread (gptcore.data loads numpy and tiktoken, so it
is imported there too) and returns plain values that the worker posts as a message.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gptcore.data.plan import batch_plan
from gptcore.data.records import NotUtf8Record
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.util.fsutil import atomic_write_text
from gptcore.util.paths import corpora_dir

if TYPE_CHECKING:  # gptcore.data.tokens: loaded by the worker, off the UI thread
    from gptcore.data.tokens import TokenizedCorpus

PREVIEW_TOKENS = 500
# The app has no decoding choice of its own: converting the file is what works here.
NOT_UTF8_HINT = (
    "convert it to UTF-8 first (for example: iconv -f latin1 -t utf-8 OLD.txt > NEW.txt), "
    "then load the converted file"
)


@dataclass(frozen=True)
class CorpusInfo:
    """What the screen shows about a loaded corpus (plain numbers, no arrays)."""

    source: str
    name: str
    files: int
    chars: int
    train_chars: int
    val_chars: int
    tokens: int  # of the whole text (the split may cut one token in two)
    train_tokens: int
    val_tokens: int
    preview: str
    train_ratio: float = 0.9  # the split these numbers are for
    documents: str = ""  # documents and their lengths (a corpus of several)
    shares: tuple[str, ...] = ()  # a mixture's sources and their shares
    # How the numbers were read (text field, split, seed, val corpus): others, other numbers.
    reading: tuple = ()

    @classmethod
    def of(
        cls, corpus: TokenizedCorpus, source: str, train_ratio: float = 0.9, reading: tuple = ()
    ) -> CorpusInfo:
        """The numbers of a tokenized corpus; the preview is decoded from the cached
        tokens, so a big corpus is not read a second time."""
        from gptcore.data.runcorpus import documents_line, shares_lines
        from gptcore.model.tokenizer import get_tokenizer

        head = corpus.train_tokens[:PREVIEW_TOKENS].tolist()
        return cls(
            source=source,
            name=corpus.name,
            files=corpus.files,
            chars=corpus.n_chars,
            train_chars=corpus.train_chars,
            val_chars=corpus.val_chars,
            tokens=corpus.n_tokens,
            train_tokens=len(corpus.train_tokens),
            val_tokens=len(corpus.val_tokens),
            preview=get_tokenizer().decode(head),
            train_ratio=train_ratio,
            documents=documents_line(corpus),
            shares=tuple(shares_lines(corpus)),
            reading=reading,
        )

    def stats(self) -> str:
        """Three lines: the whole corpus, then each split, in characters and tokens."""
        documents = f"{self.documents}\n" if self.documents else ""
        shares = "".join(f"\n{line}" for line in self.shares)
        return (
            f"characters {self.chars:,}  tokens {self.tokens:,}\n{documents}"
            f"train {self.train_chars:,} chars, {self.train_tokens:,} tokens\n"
            f"val   {self.val_chars:,} chars, {self.val_tokens:,} tokens{shares}"
        )


def pasted_corpus_path(text: str) -> Path:
    """Pasted text is kept as a file in the data dir, so runs can name it."""

    digest = hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()[:12]
    return corpora_dir() / f"pasted-{digest}.txt"


def window_report(info: CorpusInfo, model: GPTConfig, train: TrainConfig) -> tuple[str, str | None]:
    """The Trainer's own batch plan for this corpus and config, and what stops it, if anything."""

    plan = batch_plan(info.train_tokens, info.val_tokens, model, train)
    if plan.problem:  # no plan to show for a corpus that cannot train: only why
        return "batch plan: none, this corpus cannot train with this config", str(plan.problem)
    return plan.describe(), None


def reading_of(train: TrainConfig | None) -> tuple:
    """The settings besides train_ratio that change how a corpus is read and split."""
    train = train or TrainConfig()  # no form yet: the defaults, as load_corpus reads
    return (train.text_field, train.split, train.split_seed, train.val_corpus, train.decode_errors)


def load_corpus(
    source: str,
    pasted: str | None,
    train_ratio: float,
    progress: Callable[[int, int], None],
    train: TrainConfig | None = None,
) -> CorpusInfo:
    """Read, split and tokenize `source` (or the `pasted` text, kept as a file first)
    as the run config `train` would (its text field, split and val corpus), else by
    `train_ratio` alone. Raises GptTuiError saying what is wrong, in the app's words
    (no CLI flags)."""
    from gptcore.data.corpus import NotUtf8Error
    from gptcore.data.runcorpus import run_corpus

    if pasted is not None:
        path = pasted_corpus_path(pasted)
        if not path.exists():
            atomic_write_text(path, pasted)
        source = str(path)
    base = train or TrainConfig()
    sampler = "random" if source.startswith("mix:") else base.sampler  # a mixture draws so
    settings = dataclasses.replace(base, corpus=source, train_ratio=train_ratio, sampler=sampler)
    try:
        corpus = run_corpus(settings, progress)
    except (NotUtf8Error, NotUtf8Record) as exc:  # the CLI's flag does not exist here
        raise NotUtf8Error(exc.reason, NOT_UTF8_HINT) from None
    return CorpusInfo.of(corpus, source, train_ratio, reading_of(train))
