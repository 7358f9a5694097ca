import hashlib
import shutil

import numpy as np
import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from gptcore.errors import TokenizerError
from gptcore.model.tokenizer import (
    END_OF_TEXT,
    END_OF_TEXT_ID,
    EXPECTED_SHA256,
    WHITESPACE,
    decode,
    encode,
    encode_to_uint16,
    get_tokenizer,
    load_ranks,
    packaged_bpe_dir,
)


def test_known_encoding_and_vocab():
    enc = get_tokenizer()
    assert enc.n_vocab == 50257
    assert encode("Every effort moves you") == [6109, 3626, 6100, 345]
    assert encode(END_OF_TEXT) == [END_OF_TEXT_ID]
    assert enc.eot_token == END_OF_TEXT_ID


def test_packaged_files_match_pinned_hashes():
    folder = packaged_bpe_dir()
    for name, expected in EXPECTED_SHA256.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == expected


def test_book_example_round_trip():
    text = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace."
    ids = encode(text)
    assert ids[:5] == [15496, 11, 466, 345, 588]
    assert END_OF_TEXT_ID in ids
    assert decode(ids) == text


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_round_trip_random_unicode(text):
    assert decode(get_tokenizer().encode_ordinary(text)) == text


def test_tampered_bpe_file_is_rejected(tmp_path):
    for name in EXPECTED_SHA256:
        shutil.copy(packaged_bpe_dir() / name, tmp_path / name)
    with open(tmp_path / "vocab.bpe", "a", encoding="utf-8") as f:
        f.write("x y\n")
    with pytest.raises(TokenizerError, match="vocab.bpe does not match"):
        load_ranks(tmp_path)


def test_missing_bpe_file_is_reported(tmp_path):
    with pytest.raises(TokenizerError, match="cannot read GPT-2 BPE file"):
        load_ranks(tmp_path)


def _reference_ids(text):
    return get_tokenizer().encode(text, allowed_special={END_OF_TEXT})


def test_whitespace_table_is_what_tiktoken_calls_whitespace():
    # A pattern of just `\s` keeps only the characters tiktoken's regex engine
    # counts as whitespace; with single-byte ranks, decoding gives them back.
    probe = tiktoken.Encoding(
        name="probe",
        pat_str=r"\s",
        mergeable_ranks={bytes([b]): b for b in range(256)},
        special_tokens={},
    )
    every_bmp_char = "".join(chr(c) for c in range(0x10000) if not 0xD800 <= c < 0xE000)
    kept = probe.decode(probe.encode_ordinary(every_bmp_char))
    assert {ord(c) for c in kept} == WHITESPACE


_CUT_PRONE = (
    [chr(c) for c in sorted(WHITESPACE)]
    + ["\x1c", "\x1f", "\u200b", "\u180e", "a", "Z", "é", "漢", "😀", "7", ".", "'", "'s", "-"]
    + [END_OF_TEXT, "<", "<|endoftext", "\x00"]
)


@given(st.lists(st.sampled_from(_CUT_PRONE), max_size=300))
@settings(max_examples=400)
def test_fast_encoding_equals_gpt2_on_whitespace_heavy_text(pieces):
    text = "".join(pieces)
    assert encode_to_uint16(text).tolist() == _reference_ids(text)


@given(st.text())
def test_fast_encoding_equals_gpt2_on_random_unicode(text):
    assert encode_to_uint16(text).tolist() == _reference_ids(text)


def test_fast_encoding_cuts_where_gpt2_splits_a_whitespace_run():
    # "\n\n  x": GPT-2 makes "\n\n " one piece and " x" the next.
    text = "a\n\n  x  <|endoftext|>\t\ty \u3000\u3000z"
    ids = encode_to_uint16(text)
    assert ids.dtype == np.uint16
    assert ids.tolist() == _reference_ids(text)
    assert decode(ids.tolist()) == text


def test_fast_encoding_on_the_help_topics():
    # The raw topics, not the folded built-in corpus: their indentation and alignment
    # runs are the whitespace cases the fast encoder cuts differently.
    from gptcore.data.corpus import raw_topics_text

    text = raw_topics_text()
    assert encode_to_uint16(text).tolist() == _reference_ids(text)
