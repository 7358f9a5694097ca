"""Preparing Project Gutenberg books from the Corpus screen (g): the dialog asks for
the folders and English-only, the preparation runs with a progress line, its report
says what was kept and dropped, and the prepared folder loads as the corpus."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import Checkbox, Input, Static

from tui.screens.corpus.gutenberg import GutenbergDialog, GutenbergRunScreen, progress_text

from .test_gutenberg import write_fixture
from .test_tui_app import SIZE, text_of
from .tui_helpers import make_app, run_async, settle, wait_for


def screen_text(app, selector: str) -> str:
    renderable = app.screen.query_one(selector, Static).render()
    return renderable.plain if isinstance(renderable, Text) else str(renderable)


def test_progress_text_counts_books_and_estimates_the_rest():
    assert progress_text(30, 120, 10.0) == "30/120 books · 10s elapsed · ETA 30s"
    assert progress_text(0, 120, 2.0) == "0/120 books · 2s elapsed · ETA –"  # no rate yet


@run_async
async def test_prepare_gutenberg_from_the_corpus_screen_and_load_it(tmp_path: Path) -> None:
    books, out = write_fixture(tmp_path / "books"), tmp_path / "prepared"
    app = make_app("builtin")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, "corpus")
        await pilot.press("g")
        await wait_for(pilot, lambda: isinstance(app.screen, GutenbergDialog))
        dialog = app.screen
        await pilot.press("enter")  # nothing typed: the dialog says what is missing
        assert screen_text(app, "#gutenberg-error") == "type the books folder"
        dialog.query_one("#gutenberg-folder", Input).value = str(books)
        dialog.query_one("#gutenberg-out", Input).value = str(out)
        dialog.query_one("#gutenberg-english", Checkbox).value = True
        dialog.query_one("#gutenberg-folder", Input).focus()
        await pilot.press("enter")

        await wait_for(pilot, lambda: isinstance(app.screen, GutenbergRunScreen))
        run = app.screen
        await settle(pilot, "gutenberg")
        await wait_for(pilot, lambda: run.finished)
        assert screen_text(app, "#gutenberg-status").startswith("Done in ")
        report = screen_text(app, "#gutenberg-report")
        # 6 books: the French one, the duplicate and the empty one dropped.
        assert "books    6 (0 done before this run)" in report
        assert "kept     3 (1 without Gutenberg markers" in report
        assert "1 duplicate, 1 empty, 1 not English" in report
        assert sorted(p.name for p in out.glob("*.txt")) == ["101.txt", "104.txt", "105.txt"]

        await pilot.press("enter")  # the focused button: load it as the corpus
        await wait_for(pilot, lambda: not isinstance(app.screen, GutenbergRunScreen))
        await settle(pilot, "corpus")
        assert text_of(app, "#corpus-name") == "Corpus: prepared, 3 documents"
        assert app.state.corpus_source == str(out)

        # Asked again, the dialog keeps what was typed; a missing folder is one line.
        await pilot.press("g")
        await wait_for(pilot, lambda: isinstance(app.screen, GutenbergDialog))
        assert app.screen.query_one("#gutenberg-out", Input).value == str(out)
        app.screen.query_one("#gutenberg-folder", Input).value = str(tmp_path / "nowhere")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GutenbergRunScreen))
        run = app.screen
        await settle(pilot, "gutenberg")
        await wait_for(pilot, lambda: run.finished)
        status = screen_text(app, "#gutenberg-status")
        assert status.startswith("Not prepared: Gutenberg folder not found") and "\n" not in status
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, GutenbergRunScreen))
        assert app.state.corpus_source == str(out)  # nothing changed
