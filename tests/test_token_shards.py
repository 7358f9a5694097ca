"""Sharded token caches: bounded shards, a manifest written last (a killed writer's
shards are never used), uint32 ids for large vocabularies, and windows read across
shard boundaries without loading the shards."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gptcore.data import shards
from gptcore.data.shards import CacheWriter, Manifest, ShardedTokens, open_part, read_manifest
from gptcore.data.tokens import prepare_corpus
from gptcore.data.windows import WindowDataset
from gptcore.util.paths import token_cache_dir

TEXT = "Every effort moves you, and the story goes on for a while longer. " * 400


def manifest(**kw) -> Manifest:
    base = dict(
        format=3,
        name="t",
        documents=1,
        chars=10,
        train_chars=9,
        tokens=0,
        split="position",
        dtype="uint16",
        train=[],
        val=[],
    )
    return Manifest(**{**base, **kw})


def test_a_corpus_larger_than_a_shard_spans_several_and_reads_the_same(tmp_path, monkeypatch):
    path = tmp_path / "c.txt"
    path.write_text(TEXT, encoding="utf-8")
    whole = prepare_corpus(path, cache_dir=tmp_path / "one")
    monkeypatch.setattr(shards, "SHARD_BYTES", 1000)  # 500 ids a shard
    sharded = prepare_corpus(path, cache_dir=tmp_path / "many")
    folder = tmp_path / "many" / sharded.key
    listed = json.loads((folder / "manifest.json").read_text())
    assert len(listed["train"]) > 5 and all(s["tokens"] <= 500 for s in listed["train"])
    assert isinstance(sharded.train_tokens, ShardedTokens)
    assert all(isinstance(a, np.memmap) for a in sharded.train_tokens.arrays)
    assert np.array_equal(np.asarray(sharded.train_tokens), whole.train_tokens)
    # Windows that straddle a shard boundary are the windows of the whole array.
    a, b = WindowDataset(whole.train_tokens, 64, 37), WindowDataset(sharded.train_tokens, 64, 37)
    assert len(a) == len(b)
    for i in range(len(a)):
        assert all(np.array_equal(x, y) for x, y in zip(a[i], b[i], strict=True))


def test_sharded_tokens_slices_and_indexes_like_one_array():
    parts = [np.arange(0, 7), np.arange(7, 8), np.arange(8, 20)]
    joined, whole = ShardedTokens(parts), np.arange(20)
    assert len(joined) == 20
    for start in range(0, 21):
        for stop in range(start, 22):
            assert np.array_equal(joined[start:stop], whole[start:stop]), (start, stop)
    assert joined[7] == 7 and joined[-1] == 19 and np.array_equal(joined[::3], whole[::3])
    with pytest.raises(IndexError):
        joined[20]


def test_shards_of_a_killed_writer_are_never_used(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(TEXT, encoding="utf-8")
    corpus = prepare_corpus(path)
    folder = token_cache_dir() / corpus.key
    expected = np.array(corpus.train_tokens)
    del corpus
    # As a kill between the last shard and the manifest leaves it: shards, no manifest.
    (folder / "manifest.json").unlink()
    (folder / "train-00000.bin").write_bytes(b"\x01\x00" * 10)  # and one of them wrong
    assert read_manifest(folder) is None
    again = prepare_corpus(path)
    assert np.array_equal(np.asarray(again.train_tokens), expected)
    # A manifest that lists a shard of the wrong size is not trusted either.
    listed = json.loads((folder / "manifest.json").read_text())
    listed["train"][0]["tokens"] += 1
    (folder / "manifest.json").write_text(json.dumps(listed))
    assert open_part(folder, read_manifest(folder), "train") is None
    # Nor one naming a file outside its folder.
    listed["train"][0] = {"file": "../../etc/passwd", "tokens": 1}
    (folder / "manifest.json").write_text(json.dumps(listed))
    assert open_part(folder, read_manifest(folder), "train") is None


def test_uint32_ids_for_a_vocabulary_beyond_65536(tmp_path):
    assert shards.token_dtype(50_257) == np.uint16 and shards.token_dtype(65_536) == np.uint16
    assert shards.token_dtype(100_277) == np.uint32
    ids = np.array([0, 65_535, 65_536, 100_000, 100_276], dtype=np.uint32)
    with CacheWriter(tmp_path, np.dtype(np.uint32), shard_bytes=8) as writer:
        writer.write(0, ids)
        writer.write(1, ids[:2])
        writer.commit(manifest(tokens=7))
    loaded = read_manifest(tmp_path)
    assert loaded.dtype == "uint32" and [s.tokens for s in loaded.train] == [2, 2, 1]
    assert np.asarray(open_part(tmp_path, loaded, "train")).tolist() == ids.tolist()


def test_an_aborted_writer_removes_every_shard(tmp_path):
    with (
        pytest.raises(RuntimeError),
        CacheWriter(tmp_path, np.dtype(np.uint16), shard_bytes=4) as w,
    ):
        w.write(0, np.arange(10, dtype=np.uint16))
        raise RuntimeError("cancelled")
    assert [p.name for p in tmp_path.iterdir()] == []


def test_two_builders_of_one_cache_take_turns(tmp_path, monkeypatch) -> None:
    """DDP ranks build the same cache at once: the second waits for the first and
    reads its cache, instead of rewriting the shards the first is reading."""
    import threading

    from gptcore.data import tokens

    corpus = tmp_path / "c.txt"
    corpus.write_text("Every effort moves you forward. " * 200)
    first_writing, release = threading.Event(), threading.Event()
    real_write, writes = tokens._write_token_cache, []

    def slow_write(*args, **kwargs):
        writes.append(threading.current_thread().name)
        first_writing.set()
        release.wait(10)
        return real_write(*args, **kwargs)

    monkeypatch.setattr(tokens, "_write_token_cache", slow_write)
    results = {}

    def build(name: str) -> None:
        results[name] = tokens.prepare_corpus(corpus, cache_dir=tmp_path / "cache")

    a = threading.Thread(target=build, args=("a",), name="a")
    a.start()
    assert first_writing.wait(10)
    b = threading.Thread(target=build, args=("b",), name="b")
    b.start()
    b.join(0.5)
    assert b.is_alive()  # waiting for a's lock, not writing beside it
    release.set()
    a.join(10), b.join(10)
    assert writes == ["a"]  # b found a's finished cache
    assert list(results["a"].train_tokens) == list(results["b"].train_tokens)
