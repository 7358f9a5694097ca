"""Pilot tests of the Corpus screen's states: one corpus shown at a time, named after
its own source, and errors that say what can be done in the app."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, TextArea

from gptcore.data.corpus import read_corpus
from gptcore.errors import CorpusError

from .test_tui_app import SIZE, text_of
from .tui_helpers import TEXT, make_app, run_async, settle, write_corpus

BAD_PATHS = [
    ("missing.txt", None, "corpus not found"),
    ("binary.txt", b"\x00\x01binary\xff" * 50, "looks like a binary file"),
    ("empty.txt", b"", "is empty"),
    ("latin1.txt", "Caf\u00e9 au lait. ".encode("latin-1") * 50, "is not valid UTF-8"),
]


async def _load_path(pilot, path: Path) -> None:
    app = pilot.app
    await pilot.press("f")
    app.query_one("#corpus-path", Input).value = str(path)
    await pilot.press("enter")
    await settle(pilot, "corpus")


@run_async
async def test_a_bad_path_never_shows_as_the_loaded_corpus(tmp_path: Path) -> None:
    good = write_corpus(tmp_path)
    app = make_app(good)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, "corpus")
        assert text_of(app, "#corpus-name") == "Corpus: small.txt"
        tokens = app.state.corpus_tokens
        assert tokens is not None
        for name, content, words in BAD_PATHS:
            bad = tmp_path / name
            if content is not None:
                bad.write_bytes(content)
            await _load_path(pilot, bad)
            assert words in text_of(app, "#corpus-error"), name
            # The heading names the failed path as not loaded, and the numbers below
            # are labelled as the corpus still in use, which the app still trains on.
            assert text_of(app, "#corpus-name") == f"Not loaded: {bad}", name
            stats = text_of(app, "#corpus-stats")
            assert stats.startswith("Still using: small.txt (loaded before"), name
            assert app.state.corpus_source == str(good) and app.state.corpus_tokens == tokens


@run_async
async def test_a_good_load_after_a_bad_path_shows_only_the_new_corpus(tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"
    app = make_app(missing)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, "corpus")
        assert "corpus not found" in text_of(app, "#corpus-error")
        assert text_of(app, "#corpus-name") == f"Not loaded: {missing}"
        assert text_of(app, "#corpus-stats") == ""  # nothing loaded: no numbers
        assert app.state.corpus_tokens is None

        await _load_path(pilot, write_corpus(tmp_path))
        assert text_of(app, "#corpus-name") == "Corpus: small.txt"
        assert text_of(app, "#corpus-error") == ""
        assert text_of(app, "#corpus-stats").startswith("characters ")
        assert not app.query_one("#corpus-info").has_class("-previous")

        await _load_path(pilot, missing)  # then good again: the label goes away
        assert app.query_one("#corpus-info").has_class("-previous")
        await pilot.press("escape", "b")
        await settle(pilot, "corpus")
        assert text_of(app, "#corpus-name") == "Corpus: builtin (Python help topics)"
        assert text_of(app, "#corpus-error") == ""
        assert not text_of(app, "#corpus-stats").startswith("Still using")


@run_async
async def test_a_file_is_named_after_itself_even_if_it_was_pasted_before(tmp_path: Path) -> None:
    text = TEXT * 30
    app = make_app(write_corpus(tmp_path, repeats=5))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, "corpus")
        await pilot.press("t")
        app.query_one("#corpus-paste-text", TextArea).text = text
        await pilot.press("ctrl+r")
        await settle(pilot, "corpus")
        assert text_of(app, "#corpus-name").startswith("Corpus: pasted-")

        same = tmp_path / "my [book].txt"  # the same content, cached under the paste
        same.write_text(text, encoding="utf-8")
        await pilot.press("escape")
        await _load_path(pilot, same)
        assert text_of(app, "#corpus-name") == "Corpus: my [book].txt"


@run_async
async def test_non_utf8_error_says_what_to_do_in_the_app(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("Caf\u00e9. ".encode("latin-1") * 50)
    app = make_app(bad)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, "corpus")
        error = text_of(app, "#corpus-error")
        assert "latin1.txt is not valid UTF-8 (bad byte at offset 3)" in error
        assert "--decode-errors" not in error  # a CLI flag: nothing to press here
        assert "iconv -f latin1 -t utf-8" in error and "load the converted file" in error
    # The same error from the engine, as the CLI prints it, keeps the CLI's flag.
    with pytest.raises(CorpusError, match=r"offset 3\); .*\(--decode-errors replace\)$"):
        read_corpus(bad)
