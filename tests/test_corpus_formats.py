"""Corpus sources beyond plain text: JSON Lines, JSON, Parquet, compressed files and
Hugging Face datasets, each through the same streamed, cached tokenization; and the
ways such input is broken, each a one-line message with nothing half-written."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from gptcore.data import corpus as corpus_module
from gptcore.data import tokens
from gptcore.data.corpus import open_corpus
from gptcore.data.tokens import LOCK_FILE, prepare_corpus
from gptcore.errors import CorpusError
from gptcore.model.tokenizer import END_OF_TEXT, get_tokenizer
from gptcore.util.paths import token_cache_dir

DOCS = [
    "The first document: cats sit on mats.\n",
    "Second, with  two spaces and an é and 漢字 and 😀.",
    "  A third one\nover two lines  ",
    "Fourth <|endoftext|> holds the marker as text.",
] * 12


def write_jsonl(path: Path, docs: list[str], field: str = "text", extra: bool = True) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for i, doc in enumerate(docs):
            record = {"id": i, field: doc} if extra else {field: doc}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def write_parquet(path: Path, docs: list[str], column: str = "text", rows: int = 5) -> Path:
    table = pa.table({"id": list(range(len(docs))), column: docs})
    pq.write_table(table, path, row_group_size=rows)
    return path


def cache_files(key: str) -> list[str]:
    return sorted(p.name for p in (token_cache_dir() / key).iterdir())


def expected_tokens(docs: list[str]) -> list[int]:
    return get_tokenizer().encode(END_OF_TEXT.join(docs), allowed_special="all")


def test_same_text_as_txt_jsonl_and_parquet_gives_identical_token_caches(tmp_path):
    txt = tmp_path / "c.txt"
    txt.write_text(END_OF_TEXT.join(DOCS), encoding="utf-8")
    sources = [
        txt,
        write_jsonl(tmp_path / "c.jsonl", DOCS),
        write_parquet(tmp_path / "c.parquet", DOCS),
    ]
    prepared = [prepare_corpus(s, train_ratio=0.8) for s in sources]
    whole = expected_tokens(DOCS)
    for corpus in prepared:
        assert len(corpus.train_tokens) + len(corpus.val_tokens) >= len(whole) - 1
        assert corpus.n_tokens == len(whole)
        assert corpus.n_chars == len(END_OF_TEXT.join(DOCS))
    for corpus in prepared[1:]:
        assert np.array_equal(corpus.train_tokens, prepared[0].train_tokens)
        assert np.array_equal(corpus.val_tokens, prepared[0].val_tokens)
        # The bytes on disk too, shard for shard.
        first = token_cache_dir() / prepared[0].key
        for name in ("train-00000.bin", "val-00000.bin"):
            assert (token_cache_dir() / corpus.key / name).read_bytes() == (
                first / name
            ).read_bytes()
    # Records are documents: the text file is one, the others count them.
    assert [c.files for c in prepared] == [1, len(DOCS), len(DOCS)]


def test_jsonl_with_a_custom_field_and_document_statistics(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", DOCS, field="content")
    corpus = prepare_corpus(path, text_field="content")
    assert corpus.files == len(DOCS)
    lengths = sorted(len(d) for d in DOCS)
    stats = corpus.doc_stats
    assert (stats.documents, stats.shortest, stats.longest) == (len(DOCS), lengths[0], lengths[-1])
    assert stats.median == lengths[len(lengths) // 2]
    assert corpus.n_tokens == len(expected_tokens(DOCS))
    # Another field is other text: its own cache, not this one's.
    other = write_jsonl(tmp_path / "d.jsonl", DOCS, field="text")
    assert prepare_corpus(other).key.split("-")[0] != corpus.key.split("-")[0]


def test_json_array_and_ndjson(tmp_path):
    array = tmp_path / "c.json"
    array.write_text(json.dumps([{"text": d} for d in DOCS]), encoding="utf-8")
    lines = write_jsonl(tmp_path / "d.json", DOCS)  # a .json file of lines
    a, b = prepare_corpus(array), prepare_corpus(lines)
    assert a.n_tokens == b.n_tokens == len(expected_tokens(DOCS))
    assert np.array_equal(a.train_tokens, b.train_tokens)


def test_parquet_shard_folder_reads_every_row_group(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    write_parquet(folder / "part-000.parquet", DOCS[:20], rows=3)
    write_parquet(folder / "part-001.parquet", DOCS[20:], rows=7)
    corpus = prepare_corpus(folder)
    assert corpus.files == len(DOCS)
    assert corpus.n_tokens == len(expected_tokens(DOCS))


@pytest.mark.parametrize(
    "suffix, compress",
    [
        (".gz", gzip.compress),
        (".zst", lambda b: zstandard.ZstdCompressor().compress(b)),
        (".bz2", bz2.compress),
        (".xz", lzma.compress),
    ],
)
def test_compressed_jsonl_and_text_stream_like_the_plain_files(
    tmp_path, monkeypatch, suffix, compress
):
    monkeypatch.setattr(corpus_module, "READ_BYTES", 64)  # many blocks, cut mid-character
    plain = write_jsonl(tmp_path / "c.jsonl", DOCS)
    packed = tmp_path / f"c.jsonl{suffix}"
    packed.write_bytes(compress(plain.read_bytes()))
    text = tmp_path / f"t.txt{suffix}"
    text.write_bytes(compress(END_OF_TEXT.join(DOCS).encode()))
    reference = prepare_corpus(plain)
    for source in (packed, text):
        corpus = prepare_corpus(source)
        assert np.array_equal(corpus.train_tokens, reference.train_tokens)
        assert np.array_equal(corpus.val_tokens, reference.val_tokens)


def test_a_save_to_disk_dataset_and_local_data_files(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")  # the test extra installs it
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"body": DOCS, "n": list(range(len(DOCS)))}).save_to_disk(saved)
    corpus = prepare_corpus(saved, text_field="body")
    assert corpus.files == len(DOCS) and corpus.n_tokens == len(expected_tokens(DOCS))
    # A DatasetDict: its train split.
    both = tmp_path / "dict"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": DOCS}),
            "validation": datasets.Dataset.from_dict({"text": DOCS[:3]}),
        }
    ).save_to_disk(both)
    assert prepare_corpus(both).files == len(DOCS)
    # hf:FOLDER: load_dataset over local data files (what a hub name resolves to).
    files = tmp_path / "files"
    files.mkdir()
    write_parquet(files / "train-0.parquet", DOCS)
    hub = prepare_corpus(f"hf:{files}@train")
    assert hub.files == len(DOCS)
    assert np.array_equal(hub.train_tokens, corpus.train_tokens)


def test_a_hub_name_streams_through_load_dataset_with_config_and_split(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(name, config=None, split=None, streaming=False):
        calls.append((name, config, split, streaming))
        return datasets.Dataset.from_dict({"text": DOCS}).to_iterable_dataset()

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    corpus = prepare_corpus("hf:someone/tiny-stories:en@validation")
    assert calls == [("someone/tiny-stories", "en", "validation", True)] * 2  # measure, tokenize
    assert corpus.name == "hf:someone/tiny-stories:en@validation"
    assert corpus.n_tokens == len(expected_tokens(DOCS))
    prepare_corpus("hf:someone/tiny-stories:en@validation")
    assert len(calls) == 2  # cached by name: no third read


def test_a_missing_datasets_package_names_the_extra(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("No module named 'datasets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(CorpusError) as info:
        prepare_corpus("hf:someone/data")
    assert "pip install 'gpt-tui[corpora]'" in str(info.value)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- broken input


def assert_nothing_cached() -> None:
    cache = token_cache_dir()
    left = [p for p in cache.rglob("*") if p.is_file() and p.name != LOCK_FILE]
    assert left == [], left


def one_line_error(source, **kwargs) -> str:
    with pytest.raises(CorpusError) as info:
        prepare_corpus(source, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    assert_nothing_cached()
    return message


def test_a_missing_field_names_the_file_and_line(tmp_path):
    path = tmp_path / "c.jsonl"
    write_jsonl(path, DOCS[:3])
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"body": "no text field here"}) + "\n")
    message = one_line_error(path)
    assert "c.jsonl line 4 has no field 'text'" in message and "body" in message


def test_a_line_that_is_not_json_and_a_field_that_is_not_text(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": "cut off\n', encoding="utf-8")
    assert "bad.jsonl line 2 is not valid JSON" in one_line_error(bad)
    number = tmp_path / "num.jsonl"
    number.write_text('{"text": 12}\n', encoding="utf-8")
    assert "num.jsonl line 1: field 'text' holds int, not text" in one_line_error(number)


def test_a_missing_column_lists_the_columns(tmp_path):
    path = write_parquet(tmp_path / "c.parquet", DOCS, column="body")
    message = one_line_error(path)
    assert "c.parquet has no column 'text'" in message and "body" in message
    assert prepare_corpus(path, text_field="body").files == len(DOCS)


def test_a_corrupt_parquet_shard_stops_the_folder_and_caches_nothing(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    write_parquet(folder / "a.parquet", DOCS)
    data = write_parquet(folder / "b.parquet", DOCS).read_bytes()
    (folder / "b.parquet").write_bytes(data[: len(data) // 2])  # a shard cut short
    assert "b.parquet is not a readable Parquet file" in one_line_error(folder)
    garbage = folder / "b.parquet"
    garbage.write_bytes(b"PAR1" + os.urandom(500) + b"PAR1")
    assert "b.parquet is not a readable Parquet file" in one_line_error(folder)


def test_a_compressed_file_truncated_mid_stream(tmp_path):
    whole = gzip.compress(write_jsonl(tmp_path / "c.jsonl", DOCS * 20).read_bytes())
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    assert "cut.jsonl.gz is truncated" in one_line_error(cut)
    frame = zstandard.ZstdCompressor().compress((tmp_path / "c.jsonl").read_bytes())
    zcut = tmp_path / "cut.txt.zst"
    zcut.write_bytes(frame[: len(frame) // 2])
    assert "cut.txt.zst is truncated" in one_line_error(zcut)


def test_mixed_encodings_stop_or_are_replaced(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(
        b'{"text": "utf-8 caf\xc3\xa9"}\n{"text": "latin-1 caf\xe9"}\n{"text": "more"}\n'
    )
    message = one_line_error(path)
    assert "c.jsonl line 2 is not valid UTF-8" in message
    # A folder mixing a UTF-8 file with a Latin-1 one names the Latin-1 one.
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a.txt").write_text("plain café", encoding="utf-8")
    (folder / "b.txt").write_bytes("latin café".encode("latin-1"))
    assert "b.txt is not valid UTF-8" in one_line_error(folder)
    # decode_errors = replace: they train, the bad byte as U+FFFD.
    corpus = prepare_corpus(path, errors="replace")
    ids = np.concatenate([corpus.train_tokens, corpus.val_tokens]).tolist()
    text = get_tokenizer().decode(ids)
    assert "caf\ufffd" in text and "café" in text


def test_empty_records_are_skipped_and_an_all_empty_file_is_refused(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(
        '{"text": "one"}\n\n{"text": ""}\n{"text": "   "}\n{"text": null}\n{"text": "two"}\n',
        encoding="utf-8",
    )
    corpus = open_corpus(path)
    assert corpus.files == 2 and "".join(corpus.blocks()) == f"one{END_OF_TEXT}two"
    empty = tmp_path / "e.jsonl"
    empty.write_text('{"text": ""}\n\n', encoding="utf-8")
    assert "e.jsonl is empty" in one_line_error(empty)


def test_an_error_while_tokenizing_leaves_no_shard_behind(tmp_path, monkeypatch):
    # The measuring pass reads the file whole, then the file changes under the writer.
    path = write_jsonl(tmp_path / "c.jsonl", DOCS * 50)
    monkeypatch.setattr(tokens, "CHUNK_CHARS", 200)
    real = tokens._write_token_cache

    def break_the_file_then_write(corpus, *args, **kwargs):
        with open(path, "a", encoding="utf-8") as f:
            f.write('{"nope": 1}\n')
        return real(corpus, *args, **kwargs)

    monkeypatch.setattr(tokens, "_write_token_cache", break_the_file_then_write)
    with pytest.raises(CorpusError, match="has no field 'text'"):
        prepare_corpus(path)
    assert_nothing_cached()


def test_parquet_is_measured_in_arrow_as_python_would_measure_it(tmp_path):
    # Blank by Python's isspace (nulls, empty, exotic spaces) is blank to the measure
    # too, and lengths are characters, not bytes: the split point depends on them.
    docs = ["a", "", None, "\u3000 \x1c\n", "x\u2028y é 漢字 😀", "\u200b", " two words "]
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"text": docs}), path, row_group_size=3)
    kept = [d for d in docs if d and not d.isspace()]
    corpus = open_corpus(path)
    assert corpus.doc_chars.tolist() == [len(d) for d in kept]
    assert corpus.n_chars == len(END_OF_TEXT.join(kept)) == len("".join(corpus.blocks()))


def test_a_parquet_column_that_is_not_utf8(tmp_path):
    raw = pa.array([b"caf\xe9", b"ok"], type=pa.binary())
    text = pa.Array.from_buffers(pa.string(), len(raw), raw.buffers())  # unchecked bytes
    pq.write_table(pa.table({"text": text}), tmp_path / "c.parquet")
    message = one_line_error(tmp_path / "c.parquet")
    assert "c.parquet: column 'text' holds text that is not UTF-8" in message
