import json
import random
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gptcore.data import corpus as corpus_module
from gptcore.data import tokens
from gptcore.data.corpus import BUILTIN, builtin_text, fold_layout, raw_topics_text, read_corpus
from gptcore.data.plan import count_batches, count_windows
from gptcore.data.tokens import LOCK_FILE, prepare_corpus, split_for_tokenizing, tokenize
from gptcore.data.windows import RandomWindowSampler, WindowDataset, make_loader, require_windows
from gptcore.errors import CorpusError
from gptcore.model.tokenizer import encode_to_uint16, get_tokenizer
from gptcore.util.paths import token_cache_dir


def test_verdict_split_and_book_batch_counts(verdict_path):
    corpus = prepare_corpus(verdict_path)
    assert corpus.n_chars == 20_479
    assert len(get_tokenizer().encode(verdict_path.read_text())) == 5145
    train = make_loader(corpus.train_tokens, 2, 256, 256, shuffle=True, drop_last=True)
    val = make_loader(corpus.val_tokens, 2, 256, 256, shuffle=False, drop_last=False)
    assert (len(train), len(val)) == (9, 1)
    inputs, targets = next(iter(val))
    assert inputs.shape == (2, 256) and inputs.dtype == torch.long
    assert torch.equal(inputs[:, 1:], targets[:, :-1])


def test_windows_follow_the_book_formula():
    tokens = np.arange(20, dtype=np.uint16)
    ds = WindowDataset(tokens, max_length=4, stride=3)
    starts = list(range(0, 20 - 4, 3))
    assert len(ds) == len(starts) == count_windows(20, 4, 3)
    x, y = ds[2]
    assert x.tolist() == [6, 7, 8, 9] and y.tolist() == [7, 8, 9, 10]
    assert count_batches(len(ds), 4, drop_last=True) == 1
    assert count_batches(len(ds), 4, drop_last=False) == 2


def test_builtin_corpus_works_offline():
    corpus = read_corpus(BUILTIN)
    assert 400_000 < len(corpus.text) < 600_000
    assert "print" in corpus.text
    assert read_corpus(BUILTIN).text == corpus.text  # deterministic


def test_fold_layout_keeps_words_and_drops_terminal_layout():
    text = (
        "Title\n*****\n\n   Indented   code   line\n   and more\n\n"
        "A paragraph  wrapped\nat seventy columns.\n\n\n\nLast.\n"
    )
    assert fold_layout(text) == (
        "Title\nIndented code line and more\nA paragraph wrapped at seventy columns.\nLast.\n"
    )


def test_builtin_corpus_is_text_not_indentation():
    # Raw, a sixth of the help topics' tokens are single spaces: a small model's greedy
    # samples were whitespace. Folded, spaces are rare and a newline never follows one.
    ids = get_tokenizer().encode(builtin_text())
    space, newline = get_tokenizer().encode(" ")[0], get_tokenizer().encode("\n")[0]
    assert ids.count(space) / len(ids) < 0.01
    assert not any(a == b == newline for a, b in zip(ids, ids[1:], strict=False))
    raw = get_tokenizer().encode(raw_topics_text())
    assert raw.count(space) / len(raw) > 0.1


def test_token_cache_is_reused_and_memory_mapped(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("hello world, " * 500)
    calls = []
    first = prepare_corpus(path, progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1][0] == calls[-1][1] == first.n_chars
    folder = token_cache_dir() / first.key
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sum(shard["tokens"] for shard in manifest["train"]) == len(first.train_tokens)
    second = prepare_corpus(path)
    assert isinstance(second.train_tokens, np.memmap)
    assert np.array_equal(first.train_tokens, second.train_tokens)
    assert np.array_equal(first.val_tokens, second.val_tokens)


def test_damaged_cache_is_rebuilt(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("some text to tokenize " * 100)
    first = prepare_corpus(path)
    expected = np.array(first.train_tokens)
    del first
    train_bin = token_cache_dir() / prepare_corpus(path).key / "train-00000.bin"
    train_bin.write_bytes(train_bin.read_bytes()[:10])
    again = prepare_corpus(path)
    assert np.array_equal(np.asarray(again.train_tokens), expected)


def test_split_by_characters_matches_the_book(tmp_path):
    text = "".join(random.Random(0).choice("abc def\n") for _ in range(5000))
    path = tmp_path / "c.txt"
    path.write_text(text)
    corpus = prepare_corpus(path, train_ratio=0.9)
    split = int(0.9 * len(text))
    enc = get_tokenizer()
    assert corpus.train_tokens.tolist() == enc.encode(text[:split])
    assert corpus.val_tokens.tolist() == enc.encode(text[split:])


_alphabet = st.sampled_from(list("ab xy\n\t  .,'é漢😀0123") + ["'s", "<|endoftext|>"])


@settings(max_examples=150, deadline=None)
@given(st.lists(_alphabet, max_size=400), st.integers(min_value=1, max_value=40))
def test_chunked_tokenizing_equals_whole_text(pieces, chunk):
    text = "".join(pieces)
    chunks = split_for_tokenizing(text, chunk_chars=chunk)
    assert "".join(chunks) == text
    enc = get_tokenizer()
    joined = [i for c in chunks for i in enc.encode(c, allowed_special="all")]
    assert joined == enc.encode(text, allowed_special="all")


def test_parallel_tokenize_equals_serial(verdict_path):
    text = verdict_path.read_text() * 3
    ids = tokenize(text, threads=2)
    assert ids.dtype == np.uint16
    assert ids.tolist() == get_tokenizer().encode(text)


def test_folder_corpus_joins_documents_with_end_of_text(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("first doc")
    (tmp_path / "sub" / "b.md").write_text("second doc")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\x00\x00")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.txt").write_text("hidden")
    corpus = read_corpus(tmp_path)
    assert corpus.text == "first doc<|endoftext|>second doc"
    assert corpus.files == 2


def test_random_window_sampler_is_seeded_and_in_range():
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = list(RandomWindowSampler(1000, 64, 50, g1))
    b = list(RandomWindowSampler(1000, 64, 50, g2))
    assert a == b and len(a) == 50
    assert all(0 <= s < 1000 - 64 for s in a)


# ---------------------------------------------------------------- bad input


def test_missing_path(tmp_path):
    with pytest.raises(CorpusError, match="corpus not found"):
        read_corpus(tmp_path / "nope.txt")


def test_empty_file(tmp_path):
    (tmp_path / "e.txt").write_text("  \n")
    with pytest.raises(CorpusError, match="is empty"):
        read_corpus(tmp_path / "e.txt")


def test_binary_file(tmp_path):
    (tmp_path / "b.txt").write_bytes(b"\x00\x01\x02PK" * 100)
    with pytest.raises(CorpusError, match="binary"):
        read_corpus(tmp_path / "b.txt")


def test_non_utf8_file_and_replace_option(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("café au lait".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"not valid UTF-8 \(bad byte at offset 3\)"):
        read_corpus(tmp_path / "latin1.txt")
    assert read_corpus(tmp_path / "latin1.txt", errors="replace").text == "caf\ufffd au lait"


def test_folder_without_text_files(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"\x00")
    with pytest.raises(CorpusError, match="holds no text files"):
        read_corpus(tmp_path)


def test_corpus_too_short_for_one_window_says_how_many_tokens(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("Only a few words here.")
    corpus = prepare_corpus(path)
    with pytest.raises(
        CorpusError,
        match=r"has \d+ tokens, but one window of context length 256 needs at least 257",
    ):
        require_windows(corpus.train_tokens, 256, "training")


# ---------------------------------------------------------------- streaming (large corpora)


def _awkward_text(seed: int, n: int = 3000) -> str:
    """Words, runs of spaces, multibyte characters and special tokens, in random order."""
    pieces = ["ab", " xy", "  ", "\n", "\t ", ".", "'s", "é", "漢", "😀", " 123", "<|endoftext|>"]
    rng = random.Random(seed)
    return "".join(rng.choice(pieces) for _ in range(n))


@pytest.mark.parametrize("seed, read_bytes, chunk", [(0, 5, 1), (1, 7, 3), (2, 64, 17)])
def test_streamed_cache_equals_one_shot_tokenizing(tmp_path, monkeypatch, seed, read_bytes, chunk):
    # Tiny read blocks cut multibyte characters; tiny chunks cut everywhere a cut is safe.
    monkeypatch.setattr(corpus_module, "READ_BYTES", read_bytes)
    monkeypatch.setattr(tokens, "READ_BYTES", read_bytes)
    monkeypatch.setattr(tokens, "CHUNK_CHARS", chunk)
    text = _awkward_text(seed)
    path = tmp_path / "c.txt"
    path.write_text(text, encoding="utf-8")
    corpus = prepare_corpus(path, train_ratio=0.7)
    split = int(0.7 * len(text))
    enc = get_tokenizer()
    assert corpus.n_chars == len(text) and corpus.train_chars == split
    assert corpus.train_tokens.tolist() == enc.encode(text[:split], allowed_special="all")
    assert corpus.val_tokens.tolist() == enc.encode(text[split:], allowed_special="all")
    assert corpus.n_tokens == len(enc.encode(text, allowed_special="all"))
    # Training reads windows from the mapped file, not from a copy in memory.
    assert isinstance(corpus.train_tokens, np.memmap)
    assert isinstance(corpus.val_tokens, np.memmap)


def test_streamed_folder_and_bad_bytes_match_whole_reads(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_module, "READ_BYTES", 3)
    monkeypatch.setattr(tokens, "READ_BYTES", 3)
    (tmp_path / "a.txt").write_bytes("café 漢字 ".encode() * 20)
    (tmp_path / "b.txt").write_bytes(b" \n ")  # blank: skipped, as a whole read skips it
    (tmp_path / "c.txt").write_bytes(b"ok \xe6\xbc x \xff\xfe end " * 10)
    streamed = corpus_module.open_corpus(tmp_path, errors="replace")
    expected = "<|endoftext|>".join(
        (tmp_path / n).read_bytes().decode("utf-8", "replace") for n in ("a.txt", "c.txt")
    )
    assert "".join(streamed.blocks()) == expected
    assert streamed.n_chars == len(expected) and streamed.files == 2
    with pytest.raises(CorpusError, match=r"c.txt is not valid UTF-8 \(bad byte at offset 3\)"):
        corpus_module.open_corpus(tmp_path)


def test_cancel_while_tokenizing_leaves_no_cache_file(tmp_path, monkeypatch):
    monkeypatch.setattr(tokens, "CHUNK_CHARS", 50)
    path = tmp_path / "c.txt"
    path.write_text("some words to tokenize here " * 100)

    class Cancelled(Exception):
        pass

    def cancel_in_validation_part(done: int, total: int) -> None:
        if done > 0.95 * total:  # the train part is already complete by now
            raise Cancelled

    cache = tmp_path / "cache"
    with pytest.raises(Cancelled):
        prepare_corpus(path, progress=cancel_in_validation_part, cache_dir=cache)
    # Nothing but the builder's (empty) lock file: no shard, no manifest.
    assert [p.name for p in cache.rglob("*") if p.is_file()] in ([], [LOCK_FILE])
    corpus = prepare_corpus(path, cache_dir=cache)  # the next try builds it whole
    assert sorted(p.name for p in (cache / corpus.key).iterdir()) == [
        LOCK_FILE,
        "manifest.json",
        "train-00000.bin",
        "val-00000.bin",
    ]


def test_prepare_corpus_never_holds_the_whole_text(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_module, "READ_BYTES", 1 << 16)
    monkeypatch.setattr(tokens, "READ_BYTES", 1 << 16)
    monkeypatch.setattr(tokens, "CHUNK_CHARS", 1 << 12)
    path = tmp_path / "big.txt"
    path.write_text(_awkward_text(3, 40_000) * 60, encoding="utf-8")  # ~8 MB
    size = path.stat().st_size
    encode_to_uint16("warm up  the tokenizer's tables")  # built once per process: not counted
    tracemalloc.start()
    try:
        corpus = prepare_corpus(path, cache_dir=tmp_path / "cache")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert corpus.n_tokens > 0
    # A whole read holds the bytes and the decoded text at once (> 2 x size); a
    # streamed one about a block and the chunks in flight, whatever the size.
    assert peak < size / 2, (peak, size)
