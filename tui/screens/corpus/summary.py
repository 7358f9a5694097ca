"""The Corpus screen's right column: the loaded corpus's name, numbers, batch plan
and preview, and the progress of loading a new one.

While a new corpus loads, or after it failed, the numbers shown are labelled as
the corpus still in use (the app keeps training on it), never as the new one.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import ProgressBar, Static

from .info import CorpusInfo, window_report


class CorpusSummary(Vertical):
    """Shows one corpus at a time: `loaded`, or `loading` / `failed` over the last one."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.info: CorpusInfo | None = None  # the corpus in use (the last loaded)
        # Set while the numbers shown belong to the corpus loaded before: says so above them.
        self._previous_note: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="corpus-name")
        yield ProgressBar(id="corpus-progress", show_eta=False)
        yield Static("", id="corpus-error")
        yield Static("", id="corpus-stats")
        with VerticalScroll(id="corpus-preview-box"):
            yield Static("", id="corpus-preview")

    def on_mount(self) -> None:
        self.query_one(ProgressBar).display = False

    def loading(self, heading: str) -> None:
        """A new corpus is on its way: `heading` ("Loading X …"), an empty progress bar."""
        self.query_one("#corpus-name", Static).update(Text(heading))
        self.query_one("#corpus-error", Static).update("")
        self._show_previous("until the new one loads")
        bar = self.query_one(ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True

    def progress(self, done: int, total: int | None) -> None:
        self.query_one(ProgressBar).update(total=total or None, progress=done)

    def loaded(self, info: CorpusInfo) -> None:
        self.info = info
        self._show_previous(None)
        self.query_one(ProgressBar).display = False
        files = f", {info.files:,} documents" if info.files > 1 else ""
        self.query_one("#corpus-name", Static).update(Text(f"Corpus: {info.name}{files}"))
        self.query_one("#corpus-preview", Static).update(Text(info.preview))
        self.render_stats()

    def failed(self, source: str, error: str) -> None:
        """The new source failed: say so; the last corpus's numbers stay, labelled."""
        self.query_one(ProgressBar).display = False
        self.query_one("#corpus-name", Static).update(
            Text(f"Not loaded: {source}" if source else "Not loaded")
        )
        self._show_previous("(loaded before)")
        self.query_one("#corpus-error", Static).update(Text(error))

    def _show_previous(self, note: str | None) -> None:
        """Mark the stats and preview as the previous corpus's (note), or as current (None)."""
        self._previous_note = note if self.info is not None else None
        self.set_class(self._previous_note is not None, "-previous")
        self.render_stats()

    def render_stats(self) -> None:
        """The numbers, and the batch plan of the Train form's config (app.state) with
        what stops it, if anything."""
        info = self.info
        if info is None:
            return
        heading = ""
        if self._previous_note is not None:
            heading = f"Still using: {info.name} {self._previous_note}\n"
        stats = heading + info.stats()
        problem = None
        config = self.app.state.run_config
        if config is not None:
            lines, problem = window_report(info, *config)
            stats += "\n" + lines
        self.query_one("#corpus-stats", Static).update(Text(stats))
        if self._previous_note is None:  # else the error shown is the new source's
            self.query_one("#corpus-error", Static).update(Text(problem or ""))
