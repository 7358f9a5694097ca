"""The Corpus screen reads the new corpus kinds: a Parquet shard folder and a JSONL
file show their documents and lengths; a bad record says which line."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from textual.widgets import Input

from .test_tui_app import SIZE, text_of
from .tui_helpers import make_app, run_async, settle

DOCS = [
    f"Story {i}: the cat sat on the mat and looked at the moon. " * (i % 5 + 1) for i in range(60)
]


async def _load_path(pilot, path: Path) -> None:
    await pilot.press("f")
    pilot.app.query_one("#corpus-path", Input).value = str(path)
    await pilot.press("enter")
    await settle(pilot, "corpus")


@run_async
async def test_a_parquet_folder_and_a_jsonl_file_show_their_documents(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    pq.write_table(pa.table({"text": DOCS[:30]}), shards / "a.parquet", row_group_size=8)
    pq.write_table(pa.table({"text": DOCS[30:]}), shards / "b.parquet", row_group_size=8)
    jsonl = tmp_path / "stories.jsonl"
    jsonl.write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS), encoding="utf-8")
    lengths = sorted(len(d) for d in DOCS)
    app = make_app("builtin")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, "corpus")
        await _load_path(pilot, shards)
        assert text_of(app, "#corpus-name") == "Corpus: shards, 60 documents"
        stats = text_of(app, "#corpus-stats")
        assert f"documents 60: shortest {lengths[0]:,}, median {lengths[30]:,}" in stats
        assert f"longest {lengths[-1]:,} chars" in stats
        assert app.state.corpus_source == str(shards)
        parquet_tokens = app.state.corpus_tokens

        await _load_path(pilot, jsonl)
        assert text_of(app, "#corpus-name") == "Corpus: stories.jsonl, 60 documents"
        assert app.state.corpus_tokens == parquet_tokens  # the same documents, the same tokens

        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"text": "ok"}\n{"body": "no text"}\n', encoding="utf-8")
        await _load_path(pilot, bad)
        assert "bad.jsonl line 2 has no field 'text'" in text_of(app, "#corpus-error")
        assert app.state.corpus_source == str(jsonl)
