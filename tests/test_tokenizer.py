import hashlib
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gptcore.errors import TokenizerError
from gptcore.tokenizer import (
    END_OF_TEXT,
    END_OF_TEXT_ID,
    EXPECTED_SHA256,
    build_encoding,
    decode,
    encode,
    get_tokenizer,
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
        build_encoding(tmp_path)


def test_missing_bpe_file_is_reported(tmp_path):
    with pytest.raises(TokenizerError, match="cannot read GPT-2 BPE file"):
        build_encoding(tmp_path)
