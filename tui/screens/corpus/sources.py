"""The Corpus screen's left column: where the corpus comes from. One of four
sources shows at a time: the built-in corpus, a file or folder (typed, or picked
in a tree mounted on first use), pasted text, or the book's story."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import ContentSwitcher, DirectoryTree, Input, Static, TextArea

from gptcore.data.verdict import VERDICT_BYTES
from gptcore.util.paths import verdict_file

BUILTIN, PATH, PASTE, VERDICT = "src-builtin", "src-path", "src-paste", "src-verdict"


class TextTree(DirectoryTree):
    """A directory tree showing folders and the files gpt-tui reads as a corpus (text,
    JSON Lines, JSON, Parquet, compressed)."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        # Runs in the tree's loader thread, so importing the engine here is fine.
        from gptcore.data.corpus import is_corpus_file

        return [
            p for p in paths if not p.name.startswith(".") and (p.is_dir() or is_corpus_file(p))
        ]


def verdict_text() -> str:
    """What the book's-story source says: what the text is and where it is kept."""

    return (
        f'The book\'s corpus: "The Verdict", a short story by Edith Wharton '
        f"({VERDICT_BYTES:,} characters), the text chapter 5 trains on. It is fetched "
        f"once from the book's repository into {verdict_file()}; without a network, "
        "save the-verdict.txt there by hand."
    )


class SourcePicker(Vertical):
    """The hint line and the shown source; the pane's keys switch between them."""

    def compose(self) -> ComposeResult:
        yield Static(
            "Source: [b]b[/] built-in · [b]f[/] file/folder · [b]t[/] paste · "
            "[b]v[/] the book's story · [b]g[/] prepare Gutenberg books",
            id="corpus-hint",
        )
        with ContentSwitcher(initial=BUILTIN, id="source-switcher"):
            yield Static(
                "Built-in corpus: CPython's help topics (about 430 KB of English prose, "
                "one line per paragraph). It ships with Python, so it works offline.",
                id=BUILTIN,
            )
            with Vertical(id=PATH):
                yield Input(
                    placeholder="path to a text file or folder, then Enter",
                    id="corpus-path",
                    compact=True,
                )
                # The tree is mounted on first use (see show_tree).
            with Vertical(id=PASTE):
                yield TextArea(id="corpus-paste-text", soft_wrap=True)
                yield Static("ctrl+r uses the pasted text", classes="hint")
            yield Static(verdict_text(), id=VERDICT, markup=False)

    @property
    def current(self) -> str:
        """The source shown: BUILTIN, PATH, PASTE or VERDICT."""
        return self.query_one(ContentSwitcher).current or BUILTIN

    def show(self, source: str) -> None:
        self.query_one(ContentSwitcher).current = source

    def show_tree(self) -> None:
        """The file/folder source, with its tree (mounted the first time)."""
        self.show(PATH)
        if not self.query("#corpus-tree"):
            self.query_one(f"#{PATH}").mount(TextTree(Path.cwd(), id="corpus-tree"))

    @property
    def path_input(self) -> Input:
        return self.query_one("#corpus-path", Input)

    @property
    def pasted(self) -> TextArea:
        return self.query_one("#corpus-paste-text", TextArea)
