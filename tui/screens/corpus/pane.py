"""The Corpus screen: pick the built-in corpus, a file or folder, pasted text or the
book's story (corpus.sources), and see its size, split, windows, batches and a
preview (corpus.info); `k` shows the text split into its tokens (the tokenizer
view), where you can also type your own.

Fetching, reading and tokenizing run in a thread worker; the worker only posts
messages, the UI draws them. The book's story is fetched once into the data dir
(gptcore.data.verdict) with a progress bar; offline, the screen says so.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal
from textual.message import Message
from textual.widgets import DirectoryTree, Input
from textual.worker import Worker, WorkerState

from gptcore.data.verdict import fetch_verdict
from gptcore.errors import DownloadError, GptTuiError
from gptcore.settings.train import TrainConfig
from gptcore.util.download import DownloadCancelled
from gptcore.util.paths import verdict_file
from gptcore.util.throttle import Throttle

from ...messages import CorpusChanged
from ...widgets.token_view import TokenViewer
from .gutenberg import GutenbergDialog, GutenbergRequest, GutenbergRunScreen
from .info import CorpusInfo, load_corpus, reading_of
from .sources import BUILTIN, PASTE, PATH, VERDICT, SourcePicker
from .summary import CorpusSummary

if TYPE_CHECKING:
    from gptcore.util.download import DownloadProgress

PROGRESS_INTERVAL_S = 0.1  # at most ~10 progress messages a second, plus the last
VERDICT_LABEL = "the book's story"


class CorpusProgress(Message):
    """Characters read so far, or bytes of the book's story fetched (`fetching`)."""

    def __init__(self, done: int, total: int, fetching: bool = False) -> None:
        super().__init__()
        self.done, self.total, self.fetching = done, total, fetching


class CorpusLoaded(Message):
    def __init__(self, info: CorpusInfo) -> None:
        super().__init__()
        self.info = info


class CorpusFailed(Message):
    """Loading `source` failed; `offline` when fetching the book's story found no server."""

    def __init__(self, source: str, error: str, offline: bool = False) -> None:
        super().__init__()
        self.source, self.error, self.offline = source, error, offline


class CorpusPane(Container, can_focus=True):
    """Choose and inspect the training corpus."""

    BINDINGS = [
        Binding("b", "use_builtin", "Built-in", id="corpus-builtin"),
        Binding("f", "pick_path", "File/folder", id="corpus-file"),
        Binding("t", "paste_text", "Paste", id="corpus-paste"),
        Binding("ctrl+r", "load", "Load", id="corpus-load"),
        Binding("k", "toggle_tokens", "Tokens", id="corpus-tokens"),
        Binding("i", "toggle_ids", "Ids", id="corpus-token-ids"),
        Binding("slash", "type_tokens", "Type text", id="corpus-token-type", key_display="/"),
        # In the source hint above, help (?) and the palette: the footer is full at 80 columns.
        Binding("v", "use_verdict", "The book's story", id="corpus-verdict", show=False),
        Binding("g", "prepare_gutenberg", "Prepare Gutenberg", id="corpus-gutenberg", show=False),
    ]
    # Keys of the corpus view (hidden while the tokens show) and of the tokens view.
    _CORPUS_ACTIONS = (
        "use_builtin",
        "pick_path",
        "paste_text",
        "use_verdict",
        "load",
        "prepare_gutenberg",
    )
    _TOKEN_ACTIONS = ("toggle_ids", "type_tokens")

    def compose(self) -> ComposeResult:
        viewer = TokenViewer(id="token-viewer")
        viewer.display = False
        yield viewer
        with Horizontal(id="corpus-main"):
            yield SourcePicker(id="corpus-source")
            yield CorpusSummary(id="corpus-info")

    def on_mount(self) -> None:
        self._fetch_cancel: threading.Event | None = None  # set: stop fetching the story
        self._gutenberg: GutenbergRequest | None = None  # the last one asked for: asked again

    @property
    def info(self) -> CorpusInfo | None:
        """The corpus in use: the last one loaded."""
        return self.query_one(CorpusSummary).info

    def start(self) -> None:
        """Load the last corpus; the app calls this once the first frame is on screen,
        because importing torch (in the worker) would otherwise delay that frame."""

        source = self.app.state.corpus_source
        sources = self.query_one(SourcePicker)
        if source == str(verdict_file()):
            sources.show(VERDICT)
        elif source != "builtin":
            sources.path_input.value = source
            sources.show(PATH)  # the tree waits for f
        self.load_source(source)

    # ------------------------------------------------------------ actions

    @property
    def showing_tokens(self) -> bool:
        return self.query_one(TokenViewer).display

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self._CORPUS_ACTIONS:
            return not self.showing_tokens
        if action in self._TOKEN_ACTIONS:
            return self.showing_tokens
        return True

    def action_toggle_tokens(self) -> None:
        viewer = self.query_one(TokenViewer)
        show = not viewer.display
        viewer.display = show
        self.query_one("#corpus-main").display = not show
        if show:
            viewer.set_source(*self._token_source())
        self.refresh_bindings()

    def action_toggle_ids(self) -> None:
        viewer = self.query_one(TokenViewer)
        viewer.show_ids = not viewer.show_ids

    def action_type_tokens(self) -> None:
        self.query_one(TokenViewer).focus_input()

    def _token_source(self) -> tuple[str, str]:
        """The text the tokenizer view shows: the pasted text, else the corpus preview."""
        sources = self.query_one(SourcePicker)
        if sources.current == PASTE and sources.pasted.text.strip():
            return sources.pasted.text, "the pasted text"
        if self.info is not None:
            return self.info.preview, f"the start of {self.info.name}"
        return "", "no corpus loaded yet: type some text"

    def action_use_builtin(self) -> None:
        self.query_one(SourcePicker).show(BUILTIN)
        self.load_source("builtin")

    def action_pick_path(self) -> None:
        sources = self.query_one(SourcePicker)
        sources.show_tree()
        sources.path_input.focus()

    def action_paste_text(self) -> None:
        sources = self.query_one(SourcePicker)
        sources.show(PASTE)
        sources.pasted.focus()

    def action_use_verdict(self) -> None:
        """Load the book's story, fetching it first (with a progress bar) when it is
        not in the data dir yet."""

        self.query_one(SourcePicker).show(VERDICT)
        fetching = not verdict_file().is_file()
        self._begin(VERDICT_LABEL, "Fetching" if fetching else "Loading")
        self._fetch_cancel = threading.Event()
        self._verdict_worker(self._train_ratio(), self._fetch_cancel, self._train_settings())

    def action_prepare_gutenberg(self) -> None:
        """Ask for a folder of Gutenberg books, clean them (gutenberg.py), then load the
        prepared folder as the corpus if the user says so."""

        def loaded(out: str | None) -> None:
            if out:
                sources = self.query_one(SourcePicker)
                sources.path_input.value = out
                sources.show(PATH)
                self.load_source(out)

        def asked(request: GutenbergRequest | None) -> None:
            if request is not None:
                self._gutenberg = request
                self.app.push_screen(GutenbergRunScreen(request), loaded)

        self.app.push_screen(GutenbergDialog(self._gutenberg), asked)

    def action_load(self) -> None:
        sources = self.query_one(SourcePicker)
        if sources.current == BUILTIN:
            self.load_source("builtin")
        elif sources.current == PATH:
            self._load_path(sources.path_input.value)
        elif sources.current == VERDICT:
            self.action_use_verdict()
        else:
            text = sources.pasted.text
            if not text.strip():
                self._show_error("pasted", "the pasted text is empty: paste some text first")
                return
            self.load_text(text)

    @on(Input.Submitted, "#corpus-path")
    def _path_submitted(self, event: Input.Submitted) -> None:
        self._load_path(event.value)

    @on(DirectoryTree.FileSelected)
    def _file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.query_one(SourcePicker).path_input.value = str(event.path)
        self.load_source(str(event.path))

    @on(DirectoryTree.DirectorySelected)
    def _dir_selected(self, event: DirectoryTree.DirectorySelected) -> None:
        # A folder is a corpus too: fill it in; ctrl+r or Enter in the input loads it.
        self.query_one(SourcePicker).path_input.value = str(event.path)

    def _load_path(self, value: str) -> None:
        if not value.strip():
            self._show_error("", "type a path to a text file or a folder of text files")
            return
        self.load_source(value.strip())

    # ------------------------------------------------------------ loading

    def load_source(self, source: str) -> None:
        self._begin(source)
        self._load_worker(source, None, self._train_ratio(), self._train_settings())

    def load_text(self, text: str) -> None:
        self._begin("pasted text")
        self._load_worker("", text, self._train_ratio(), self._train_settings())

    def _train_ratio(self) -> float:
        """The Train form's split (read here: the worker never reads the app's state)."""
        return self.app.state.train_ratio

    def _train_settings(self) -> TrainConfig | None:
        """The Train form's settings (text field, split, ...) a corpus is read with."""
        config = self.app.state.run_config
        return config[1] if config is not None else None

    def _begin(self, label: str, doing: str = "Loading") -> None:
        if self._fetch_cancel is not None:  # a new source replaces the story being fetched
            self._fetch_cancel.set()
            self._fetch_cancel = None
        self.post_message(CorpusChanged(None, None))  # no plan until the new counts are in
        self.query_one(CorpusSummary).loading(f"{doing} {label} …")

    @work(thread=True, exclusive=True, exit_on_error=False, group="corpus")
    def _load_worker(
        self, source: str, pasted: str | None, train_ratio: float, train: TrainConfig | None
    ) -> None:
        self._load(source or "pasted text", source, pasted, train_ratio, train)

    @work(thread=True, exclusive=True, exit_on_error=False, group="corpus")
    def _verdict_worker(
        self, train_ratio: float, cancel: threading.Event, train: TrainConfig | None
    ) -> None:

        updates = Throttle(PROGRESS_INTERVAL_S)

        def on_progress(p: DownloadProgress) -> None:
            if updates.ready(force=p.done == p.total):
                self.post_message(CorpusProgress(p.done, p.total or 0, fetching=True))

        try:
            path = fetch_verdict(cancel=cancel, on_progress=on_progress)
        except DownloadCancelled:
            return  # another source was chosen meanwhile
        except DownloadError as exc:
            self.post_message(CorpusFailed(VERDICT_LABEL, str(exc), exc.offline))
            return
        self._load(VERDICT_LABEL, str(path), None, train_ratio, train)

    def _load(
        self,
        label: str,
        source: str,
        pasted: str | None,
        train_ratio: float,
        train: TrainConfig | None = None,
    ) -> None:
        """On the worker thread: tokenize, then post what came of it."""
        updates = Throttle(PROGRESS_INTERVAL_S)

        def progress(done: int, total: int) -> None:
            if updates.ready(force=done >= total):
                self.post_message(CorpusProgress(done, total))

        try:
            info = load_corpus(source, pasted, train_ratio, progress, train)
        except GptTuiError as exc:
            self.post_message(CorpusFailed(label, str(exc)))
            return
        self.post_message(CorpusLoaded(info))

    def on_corpus_progress(self, message: CorpusProgress) -> None:
        self.query_one(CorpusSummary).progress(message.done, message.total)

    def on_corpus_failed(self, message: CorpusFailed) -> None:
        self._show_error(message.source, message.error)
        if message.offline:
            self.notify(
                "The book's story could not be fetched: no server answered. Press v again "
                "once online, or b for the built-in corpus (it works offline).",
                title="No network?",
                severity="error",
                timeout=10,
                markup=False,
            )

    def on_corpus_loaded(self, message: CorpusLoaded) -> None:
        info = message.info
        self.query_one(CorpusSummary).loaded(info)
        viewer = self.query_one(TokenViewer)
        if viewer.display:
            viewer.set_source(*self._token_source())
        self.post_message(CorpusChanged(info.source, (info.train_tokens, info.val_tokens)))

    def on_unmount(self) -> None:
        if self._fetch_cancel is not None:  # never leave a download thread behind the app
            self._fetch_cancel.set()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "corpus" and event.state == WorkerState.ERROR:
            self._show_error("", f"could not load the corpus: {event.worker.error}")

    def _show_error(self, source: str, error: str) -> None:
        """The new source failed: the summary says so; the last corpus's plan stands again."""
        self.query_one(CorpusSummary).failed(source, error)
        if self.info is not None:
            self.post_message(CorpusChanged(None, (self.info.train_tokens, self.info.val_tokens)))

    def config_changed(self) -> None:
        """The Train form's config changed (routed by the app): another split means
        other token counts; else only the plan changes."""
        if self.info is None:
            return
        read_as = reading_of(self._train_settings())
        if self.info.train_ratio != self._train_ratio() or self.info.reading != read_as:
            # another split or field: other token counts
            self.load_source(self.info.source)
        else:
            self.query_one(CorpusSummary).render_stats()
