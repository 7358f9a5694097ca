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


# ---------------------------------------------------------------- the book's story (v)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_v_fetches_the_books_story_with_a_progress_bar_then_loads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, verdict_path: Path
) -> None:
    from gptcore.data.verdict import VERDICT_URL_ENV

    from .test_download import Server

    server = Server()
    try:
        server.files["/the-verdict.txt"] = verdict_path.read_bytes()
        monkeypatch.setenv(VERDICT_URL_ENV, server.url + "/the-verdict.txt")
        _fetch_and_load(write_corpus(tmp_path), monkeypatch)
        assert [path for path, _range in server.requests] == ["/the-verdict.txt"]
    finally:
        server.close()


@run_async
async def _fetch_and_load(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gptcore.data.verdict import VERDICT_BYTES, VERDICT_URL_ENV
    from gptcore.util.paths import verdict_file
    from tui.screens.corpus.pane import CorpusProgress

    fetched: list[tuple[int, int, str, bool]] = []  # each with the heading and bar shown
    seen: list[object] = []  # kept alive, so identity tells a message apart

    def record(message: object) -> None:
        # Once per message: where it arrives first (the pane), not again as it bubbles up.
        if not isinstance(message, CorpusProgress) or any(m is message for m in seen):
            return
        seen.append(message)
        if message.fetching:
            shown = app.query_one("#corpus-progress").display
            fetched.append((message.done, message.total, text_of(app, "#corpus-name"), shown))

    app = make_app(corpus)
    async with app.run_test(size=SIZE, message_hook=record) as pilot:
        await settle(pilot, "corpus")
        await pilot.press("v")
        await settle(pilot, "corpus")
        assert fetched[-1] == (VERDICT_BYTES, VERDICT_BYTES, "Fetching the book's story …", True)
        assert text_of(app, "#corpus-name") == "Corpus: the-verdict.txt"
        assert text_of(app, "#corpus-stats").startswith("characters 20,479  tokens 5,145")
        assert app.state.corpus_source == str(verdict_file())
        assert not app.query_one("#corpus-progress").display
        # On disk now: v loads it again without the network.
        monkeypatch.setenv(VERDICT_URL_ENV, f"http://127.0.0.1:{_closed_port()}/x")
        await pilot.press("b")
        await settle(pilot, "corpus")
        fetched.clear()
        await pilot.press("v")
        await settle(pilot, "corpus")
        assert text_of(app, "#corpus-name") == "Corpus: the-verdict.txt"
        assert fetched[-1][2] == "Loading the book's story …"  # no fetching this time


@run_async
async def test_v_offline_says_so_and_keeps_the_corpus_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gptcore.data.verdict import VERDICT_URL_ENV
    from gptcore.util.paths import verdict_file

    monkeypatch.setenv(VERDICT_URL_ENV, f"http://127.0.0.1:{_closed_port()}/the-verdict.txt")
    good = write_corpus(tmp_path)
    app = make_app(good)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, "corpus")
        await pilot.press("v")
        await settle(pilot, "corpus")
        note = next(n for n in app._notifications if n.title == "No network?")
        assert "could not be fetched" in note.message and "b for the built-in" in note.message
        assert text_of(app, "#corpus-name") == "Not loaded: the book's story"
        error = text_of(app, "#corpus-error")
        assert f"save the file as {verdict_file()}" in error
        assert text_of(app, "#corpus-stats").startswith("Still using: small.txt")
        assert app.state.corpus_source == str(good) and not verdict_file().exists()


@run_async
async def test_the_palette_offers_the_books_story(tmp_path: Path) -> None:
    from tui.screens.corpus import CorpusPane

    app = make_app(write_corpus(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, "corpus")
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        pane = app.query_one(CorpusPane)
        assert commands["Use the book's story"].callback == pane.action_use_verdict
        help_keys = {b.id: b.key for b in CorpusPane.BINDINGS}
        assert help_keys["corpus-verdict"] == "v"
