"""The tokenizer view: text split into its GPT-2 tokens, shown honestly.

Neighbouring tokens get alternating backgrounds, `<|endoftext|>` is marked as
special, and each token shows by the engine's one label (gptcore.model.tokenview.
token_label, spaces kept as spaces: the backgrounds show the edges): a newline as
`⏎`, a token that holds only part of a multibyte character as its bytes (`<f0 9f>`),
never as a replacement character. Ids are shown on
demand. Tokenizing runs in a thread worker (the first call loads the BPE
tables); the worker only posts a message. Everything is drawn as Text, never
markup, so a token such as `[/b]` shows as typed.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, Static
from textual.worker import Worker, WorkerState, get_current_worker

from gptcore.model.tokenview import TokenView, view_tokens

MAX_CHARS = 2000  # the corpus preview is cut here: the view stays quick and readable


@dataclass(frozen=True)
class TokenStyles:
    """Rich styles for the pieces (from the widget's component classes)."""

    even: Style = Style()
    odd: Style = Style()
    special: Style = Style(bold=True, reverse=True)
    partial: Style = Style(italic=True)
    id: Style = Style(dim=True)


def render_tokens(view: TokenView, show_ids: bool, styles: TokenStyles | None = None) -> Text:
    """The pieces as one Text: alternating styles, specials marked, ids optional."""
    styles = styles or TokenStyles()
    out = Text(no_wrap=False, end="")
    for n, piece in enumerate(view.pieces):
        if piece.special:
            style = styles.special
        else:
            style = styles.even if n % 2 == 0 else styles.odd
            if piece.text is None:
                style = style + styles.partial
        out.append(piece.label, style)
        if show_ids:
            out.append(f"·{piece.id}", styles.id)
            out.append(" ")
        if piece.text is not None and "\n" in piece.text:
            out.append("\n")  # the label shows ⏎; the break keeps lines readable
    return out


def counts_line(view: TokenView) -> str:
    """Characters, tokens, and how many are special or partial characters."""
    n_chars, n_tokens = len(view.text), len(view.pieces)
    parts = [f"{n_chars:,} characters", f"{n_tokens:,} tokens"]
    if n_tokens:
        parts.append(f"{n_chars / n_tokens:.2f} characters a token")
    specials = sum(p.special for p in view.pieces)
    partial = sum(p.text is None for p in view.pieces)
    if specials:
        parts.append(f"{specials} special")
    if partial:
        parts.append(f"{partial} partial-character (shown as bytes)")
    return " · ".join(parts)


def round_trip_line(view: TokenView) -> str:
    if view.round_trip_ok:
        return f"round trip: the ids decode back to the same {len(view.text):,} characters ✓"
    shown = view.round_trip[:200]
    return f"round trip: the ids decode to different text ✗: {shown!r}"


class TokenViewer(Vertical):
    """Type text (or show the corpus preview) and see its tokens."""

    COMPONENT_CLASSES = {
        "token-viewer--even",
        "token-viewer--odd",
        "token-viewer--special",
        "token-viewer--partial",
        "token-viewer--id",
    }

    DEFAULT_CSS = """
    TokenViewer { height: 1fr; padding: 0 1; }
    TokenViewer > .token-viewer--even { background: $primary 30%; }
    TokenViewer > .token-viewer--odd { background: $secondary 30%; }
    TokenViewer > .token-viewer--special { background: $error; color: $text; text-style: bold; }
    TokenViewer > .token-viewer--partial { color: $warning; text-style: italic; }
    TokenViewer > .token-viewer--id { color: $text-muted; }
    TokenViewer #token-source { height: auto; text-style: bold; }
    TokenViewer #token-input { margin-bottom: 1; }
    TokenViewer #token-counts { height: auto; }
    TokenViewer #token-scroll { height: 1fr; border-top: hkey $foreground 20%; }
    TokenViewer #token-roundtrip { height: auto; color: $text-muted; }
    TokenViewer #token-roundtrip.-bad { color: $error; }
    """

    show_ids: reactive[bool] = reactive(False, init=False)

    class Tokenized(Message):
        """Posted by the worker: the view of `text` (stale ones are dropped)."""

        def __init__(self, view: TokenView) -> None:
            super().__init__()
            self.view = view

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.source_text = ""
        self.source_label = "no corpus loaded yet"
        self.view: TokenView | None = None
        self.rendered = Text()  # the pieces as last drawn (styles included)

    def compose(self) -> ComposeResult:
        yield Static("", id="token-source")
        yield Input(
            placeholder="type text to tokenize (empty: the corpus preview)",
            id="token-input",
            compact=True,
        )
        yield Static("", id="token-counts")
        with VerticalScroll(id="token-scroll"):
            yield Static("", id="token-pieces")
        yield Static("", id="token-roundtrip")

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._draw())

    # ------------------------------------------------------------ the text

    @property
    def typed(self) -> str:
        return self.query_one("#token-input", Input).value

    @property
    def current_text(self) -> str:
        """What is tokenized: the typed text, else the (bounded) source text."""
        return self.typed or self.source_text

    def set_source(self, text: str, label: str) -> None:
        """The text shown while nothing is typed (cut to MAX_CHARS characters)."""
        cut = len(text) > MAX_CHARS
        self.source_text = text[:MAX_CHARS]
        self.source_label = f"{label}, first {MAX_CHARS:,} characters" if cut else label
        if not self.typed:
            self.tokenize()

    def focus_input(self) -> None:
        self.query_one("#token-input", Input).focus()

    @on(Input.Changed, "#token-input")
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        self.tokenize()

    def tokenize(self) -> None:
        label = "your text" if self.typed else self.source_label
        self.query_one("#token-source", Static).update(Text(f"Tokens of {label}"))
        self._tokenize_worker(self.current_text)

    @work(thread=True, exclusive=True, exit_on_error=False, group="tokens")
    def _tokenize_worker(self, text: str) -> None:
        view = view_tokens(text)
        if not get_current_worker().is_cancelled:
            self.post_message(self.Tokenized(view))

    def on_token_viewer_tokenized(self, message: TokenViewer.Tokenized) -> None:
        message.stop()
        if message.view.text != self.current_text:
            return  # typed over: a newer worker brings the current text
        self.view = message.view
        self._draw()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "tokens" and event.state == WorkerState.ERROR:
            line = self.query_one("#token-roundtrip", Static)
            line.update(Text(f"could not tokenize this text: {event.worker.error}"))
            line.add_class("-bad")

    # ------------------------------------------------------------ drawing

    def watch_show_ids(self) -> None:
        self._draw()

    def styles_for_tokens(self) -> TokenStyles:
        def get(name: str) -> Style:
            return self.get_component_rich_style(f"token-viewer--{name}", partial=True)

        return TokenStyles(get("even"), get("odd"), get("special"), get("partial"), get("id"))

    def _draw(self) -> None:
        view = self.view
        if view is None or not self.is_mounted:
            return
        self.query_one("#token-counts", Static).update(Text(counts_line(view)))
        self.rendered = render_tokens(view, self.show_ids, self.styles_for_tokens())
        self.query_one("#token-pieces", Static).update(self.rendered)
        line = self.query_one("#token-roundtrip", Static)
        line.update(Text(round_trip_line(view)))
        line.set_class(not view.round_trip_ok, "-bad")
