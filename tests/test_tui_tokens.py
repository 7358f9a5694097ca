"""The tokenizer view on the Corpus screen (`k`): tokens, ids, specials, bytes, round trip."""

from __future__ import annotations

from pathlib import Path

from rich.style import Style
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Input, Static

from gptcore.model.tokenview import view_tokens
from tui.widgets.token_view import (
    MAX_CHARS,
    TokenStyles,
    TokenViewer,
    render_tokens,
    round_trip_line,
)

from .tui_helpers import make_app, run_async, settle, write_corpus

BOOK_IDS = [6109, 3626, 6100, 345]  # "Every effort moves you", as the chapter prints them
STYLES = TokenStyles(
    even=Style(bgcolor="blue"),
    odd=Style(bgcolor="green"),
    special=Style(bgcolor="red"),
    partial=Style(italic=True),
    id=Style(dim=True),
)


def plain(app: object, selector: str) -> str:
    return str(app.query_one(selector, Static).render())  # type: ignore[attr-defined]


def styles_of(text: Text, piece: str) -> list[Style]:
    """The styles of the spans that cover exactly `piece` in `text`."""
    return [
        text.get_style_at_offset(_console(), span.start)
        for span in text.spans
        if text.plain[span.start : span.end] == piece
    ]


def _console():  # a style lookup needs a console; any will do
    from rich.console import Console

    return Console()


async def type_text(pilot: Pilot, text: str) -> TokenViewer:
    """Set the view's input and wait until its tokens are drawn."""
    viewer = pilot.app.query_one(TokenViewer)
    viewer.query_one("#token-input", Input).value = text
    await settle(pilot, "tokens")
    assert viewer.view is not None and viewer.view.text == (text or viewer.source_text)
    return viewer


# ---------------------------------------------------------------- drawing


def test_render_alternates_marks_specials_and_shows_partial_bytes() -> None:
    view = view_tokens("Every effort moves you<|endoftext|>🙂")
    text = render_tokens(view, show_ids=False, styles=STYLES)
    labels = [p.label for p in view.pieces]
    assert text.plain == "".join(labels)  # verbatim, nothing added without ids
    assert [styles_of(text, label)[0].bgcolor.name for label in labels[:4]] == [
        "blue",
        "green",
        "blue",
        "green",
    ]
    assert styles_of(text, "<|endoftext|>")[0].bgcolor.name == "red"
    partial = [p for p in view.pieces if p.text is None]
    assert partial and b"".join(p.data for p in partial) == "🙂".encode()
    for piece in partial:
        assert piece.label.startswith("<") and styles_of(text, piece.label)[0].italic

    with_ids = render_tokens(view_tokens("Every effort moves you"), show_ids=True, styles=STYLES)
    assert with_ids.plain == "Every·6109  effort·3626  moves·6100  you·345 "


def test_newline_tokens_are_visible_and_break_the_line() -> None:
    text = render_tokens(view_tokens("one\ntwo"), show_ids=False).plain
    assert text == "one⏎\ntwo"


def test_a_failed_round_trip_is_said_not_hidden() -> None:
    view = view_tokens("a\ud800b")  # a lone surrogate (from a bad paste) cannot round-trip
    assert round_trip_line(view).startswith("round trip: the ids decode to different text ✗")
    assert "same" in round_trip_line(view_tokens("a b"))


# ---------------------------------------------------------------- the screen


@run_async
async def test_token_view_shows_counts_ids_specials_bytes_and_round_trip(tmp_path: Path) -> None:
    app = make_app(write_corpus(tmp_path))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, "corpus")
        pane = app.query_one("#corpus-pane")
        assert not pane.showing_tokens
        await pilot.press("k")
        await settle(pilot, "tokens")
        viewer = app.query_one(TokenViewer)
        assert viewer.display and not app.query_one("#corpus-main").display
        # First the loaded corpus's preview, bounded.
        preview = pane.info.preview
        assert viewer.view.text == preview[:MAX_CHARS]
        assert "small.txt" in plain(app, "#token-source")
        expected = view_tokens(preview[:MAX_CHARS])
        assert f"{len(expected.pieces):,} tokens" in plain(app, "#token-counts")
        # Corpus keys step aside while the tokens show; the token keys appear.
        assert app.active_bindings["i"].enabled and "b" not in app.active_bindings

        # Typing live: `/` focuses the input.
        await pilot.press("slash")
        assert app.focused is viewer.query_one("#token-input")
        await pilot.press(*"Every effort moves you")
        await settle(pilot, "tokens")
        assert [p.id for p in viewer.view.pieces] == BOOK_IDS
        assert plain(app, "#token-source") == "Tokens of your text"
        assert plain(app, "#token-counts").startswith("22 characters · 4 tokens")
        assert "·6109" not in plain(app, "#token-pieces")
        await pilot.press("escape", "i")  # leave the input, then ids on
        pieces = plain(app, "#token-pieces")
        assert pieces == "Every·6109  effort·3626  moves·6100  you·345 "
        assert "same 22 characters ✓" in plain(app, "#token-roundtrip")

        # A special token is marked; markup-like text stays verbatim.
        viewer = await type_text(pilot, "[/b] the end<|endoftext|>")
        special = [p for p in viewer.view.pieces if p.special]
        assert [(p.id, p.label) for p in special] == [(50256, "<|endoftext|>")]
        assert plain(app, "#token-pieces").startswith("[/·13412 b·65 ]·60")
        await pilot.press("i")  # ids off again: the text is exactly the tokens, verbatim
        assert plain(app, "#token-pieces") == "[/b] the end<|endoftext|>"
        special_style = viewer.styles_for_tokens().special
        assert special_style != viewer.styles_for_tokens().even
        assert styles_of(viewer.rendered, "<|endoftext|>") == [special_style]
        assert "1 special" in plain(app, "#token-counts")

        # An emoji is split inside its bytes: shown as bytes, and it still round-trips.
        viewer = await type_text(pilot, "I 😀 you")
        partial = [p for p in viewer.view.pieces if p.text is None]
        assert [p.label for p in partial] == ["<20 f0 9f 98>", "<80>"]
        assert b"".join(p.data for p in partial) == " 😀".encode()
        for piece in partial:
            assert piece.label in plain(app, "#token-pieces")
        assert "partial-character (shown as bytes)" in plain(app, "#token-counts")
        assert "�" not in plain(app, "#token-pieces")
        assert "same 7 characters ✓" in plain(app, "#token-roundtrip")

        # Emptying the input goes back to the corpus text; k goes back to the corpus.
        viewer = await type_text(pilot, "")
        assert viewer.view.text == preview[:MAX_CHARS]
        await pilot.press("k")
        assert not viewer.display and app.query_one("#corpus-main").display
        assert "b" in app.active_bindings and "i" not in app.active_bindings


@run_async
async def test_token_view_shows_the_pasted_text_and_follows_a_new_corpus(tmp_path: Path) -> None:
    app = make_app(write_corpus(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, "corpus")
        await pilot.press("t")
        pasted = "Pasted words [b]bold?[/b] " * 200  # longer than the view's bound
        app.query_one("#corpus-paste-text").text = pasted
        app.query_one("#corpus-pane").focus()
        await pilot.press("k")
        await settle(pilot, "tokens")
        viewer = app.query_one(TokenViewer)
        assert viewer.view.text == pasted[:MAX_CHARS]
        assert plain(app, "#token-source") == (
            f"Tokens of the pasted text, first {MAX_CHARS:,} characters"
        )
        assert "[b]bold?[/b]" in plain(app, "#token-pieces")  # verbatim, not markup
        # A corpus loaded while the view is open (palette command) replaces its text.
        app.query_one("#corpus-pane").action_use_builtin()
        await settle(pilot, "corpus")
        await settle(pilot, "tokens")
        assert "builtin" in plain(app, "#token-source")
        assert viewer.view.text == app.query_one("#corpus-pane").info.preview[:MAX_CHARS]


def test_token_view_snapshot(snap_compare, tmp_path: Path) -> None:
    async def before(pilot: Pilot) -> None:
        await settle(pilot, "corpus")
        await pilot.press("k")
        await settle(pilot, "tokens")
        await type_text(pilot, "Every effort moves you [/b] <|endoftext|> café I 😀 you")
        await pilot.press("escape", "i")
        await pilot.pause()

    app = make_app(write_corpus(tmp_path))
    assert snap_compare(app, terminal_size=(80, 24), run_before=before)
