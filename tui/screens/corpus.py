"""The Corpus screen: pick the built-in corpus, a file or folder, or pasted text,
and see its size, split, windows, batches and a preview; `k` shows the text split
into its tokens (the tokenizer view), where you can also type your own.

Reading and tokenizing run in a thread worker (gptcore.data imports torch, so it
is imported there too); the worker only posts messages, the UI draws them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import ContentSwitcher, DirectoryTree, Input, ProgressBar, Static, TextArea
from textual.worker import Worker, WorkerState

if TYPE_CHECKING:  # gptcore.data imports torch: loaded by the worker, off the UI thread
    from gptcore.data.tokens import TokenizedCorpus

from gptcore.errors import GptTuiError
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig

from ..messages import CorpusChanged
from ..widgets.token_view import TokenViewer

PREVIEW_TOKENS = 500
# The app has no decoding choice of its own: converting the file is what works here.
NOT_UTF8_HINT = (
    "convert it to UTF-8 first (for example: iconv -f latin1 -t utf-8 OLD.txt > NEW.txt), "
    "then load the converted file"
)


class TextTree(DirectoryTree):
    """A directory tree showing folders and the files gpt-tui reads as text."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        # Runs in the tree's loader thread, so importing the engine here is fine.
        from gptcore.data.corpus import TEXT_SUFFIXES

        return [
            p
            for p in paths
            if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() in TEXT_SUFFIXES)
        ]


@dataclass(frozen=True)
class CorpusInfo:
    """What the screen shows about a loaded corpus (plain numbers, no arrays)."""

    source: str
    name: str
    files: int
    chars: int
    train_chars: int
    val_chars: int
    tokens: int  # of the whole text (the split may cut one token in two)
    train_tokens: int
    val_tokens: int
    preview: str
    train_ratio: float = 0.9  # the split these numbers are for

    @classmethod
    def of(cls, corpus: TokenizedCorpus, source: str, train_ratio: float = 0.9) -> CorpusInfo:
        """The numbers of a tokenized corpus; the preview is decoded from the cached
        tokens, so a big corpus is not read a second time."""
        from gptcore.model.tokenizer import get_tokenizer

        head = corpus.train_tokens[:PREVIEW_TOKENS].tolist()
        return cls(
            source=source,
            name=corpus.name,
            files=corpus.files,
            chars=corpus.n_chars,
            train_chars=corpus.train_chars,
            val_chars=corpus.val_chars,
            tokens=corpus.n_tokens,
            train_tokens=len(corpus.train_tokens),
            val_tokens=len(corpus.val_tokens),
            preview=get_tokenizer().decode(head),
            train_ratio=train_ratio,
        )


class CorpusProgress(Message):
    def __init__(self, done: int, total: int) -> None:
        super().__init__()
        self.done, self.total = done, total


class CorpusLoaded(Message):
    def __init__(self, info: CorpusInfo) -> None:
        super().__init__()
        self.info = info


class CorpusFailed(Message):
    def __init__(self, source: str, error: str) -> None:
        super().__init__()
        self.source, self.error = source, error


def pasted_corpus_path(text: str) -> Path:
    """Pasted text is kept as a file in the data dir, so runs can name it."""
    from gptcore.util.paths import corpora_dir

    digest = hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()[:12]
    return corpora_dir() / f"pasted-{digest}.txt"


def window_report(info: CorpusInfo, model: GPTConfig, train: TrainConfig) -> tuple[str, str | None]:
    """The Trainer's own batch plan for this corpus and config, and what stops it, if anything."""
    from gptcore.data.plan import batch_plan

    plan = batch_plan(info.train_tokens, info.val_tokens, model, train)
    return plan.describe(), str(plan.problem) if plan.problem else None


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
    ]
    # Keys of the corpus view (hidden while the tokens show) and of the tokens view.
    _CORPUS_ACTIONS = ("use_builtin", "pick_path", "paste_text", "load")
    _TOKEN_ACTIONS = ("toggle_ids", "type_tokens")

    def compose(self) -> ComposeResult:
        viewer = TokenViewer(id="token-viewer")
        viewer.display = False
        yield viewer
        with Horizontal(id="corpus-main"):
            with Vertical(id="corpus-source"):
                yield Static(
                    "Source: [b]b[/] built-in · [b]f[/] file/folder · [b]t[/] paste",
                    id="corpus-hint",
                )
                with ContentSwitcher(initial="src-builtin", id="source-switcher"):
                    yield Static(
                        "Built-in corpus: CPython's help topics (about 430 KB of English prose, "
                        "one line per paragraph). It ships with Python, so it works offline.",
                        id="src-builtin",
                    )
                    with Vertical(id="src-path"):
                        yield Input(
                            placeholder="path to a text file or folder, then Enter",
                            id="corpus-path",
                            compact=True,
                        )
                        # The tree is mounted on first use (see action_pick_path).
                    with Vertical(id="src-paste"):
                        yield TextArea(id="corpus-paste-text", soft_wrap=True)
                        yield Static("ctrl+r uses the pasted text", classes="hint")
            with Vertical(id="corpus-info"):
                yield Static("", id="corpus-name")
                yield ProgressBar(id="corpus-progress", show_eta=False)
                yield Static("", id="corpus-error")
                yield Static("", id="corpus-stats")
                with VerticalScroll(id="corpus-preview-box"):
                    yield Static("", id="corpus-preview")

    def on_mount(self) -> None:
        self.info: CorpusInfo | None = None
        # Set while the numbers shown belong to the corpus loaded before (a new one
        # is loading, or failed to load): says so above them.
        self._previous_note: str | None = None
        self._last_progress = 0.0
        self.query_one("#corpus-progress").display = False

    def start(self) -> None:
        """Load the last corpus; the app calls this once the first frame is on screen,
        because importing torch (in the worker) would otherwise delay that frame."""
        source = self.app.state.corpus_source
        if source != "builtin":
            self.query_one("#corpus-path", Input).value = source
            self.query_one(ContentSwitcher).current = "src-path"  # the tree waits for f
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
        if self.query_one(ContentSwitcher).current == "src-paste":
            pasted = self.query_one("#corpus-paste-text", TextArea).text
            if pasted.strip():
                return pasted, "the pasted text"
        if self.info is not None:
            return self.info.preview, f"the start of {self.info.name}"
        return "", "no corpus loaded yet: type some text"

    def action_use_builtin(self) -> None:
        self.query_one(ContentSwitcher).current = "src-builtin"
        self.load_source("builtin")

    def action_pick_path(self) -> None:
        self._show_tree()
        self.query_one("#corpus-path", Input).focus()

    def _show_tree(self) -> None:
        self.query_one(ContentSwitcher).current = "src-path"
        if not self.query("#corpus-tree"):
            self.query_one("#src-path").mount(TextTree(Path.cwd(), id="corpus-tree"))

    def action_paste_text(self) -> None:
        self.query_one(ContentSwitcher).current = "src-paste"
        self.query_one("#corpus-paste-text", TextArea).focus()

    def action_load(self) -> None:
        current = self.query_one(ContentSwitcher).current
        if current == "src-builtin":
            self.load_source("builtin")
        elif current == "src-path":
            self._load_path(self.query_one("#corpus-path", Input).value)
        else:
            text = self.query_one("#corpus-paste-text", TextArea).text
            if not text.strip():
                self._show_error("pasted", "the pasted text is empty: paste some text first")
                return
            self.load_text(text)

    @on(Input.Submitted, "#corpus-path")
    def _path_submitted(self, event: Input.Submitted) -> None:
        self._load_path(event.value)

    @on(DirectoryTree.FileSelected)
    def _file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.query_one("#corpus-path", Input).value = str(event.path)
        self.load_source(str(event.path))

    @on(DirectoryTree.DirectorySelected)
    def _dir_selected(self, event: DirectoryTree.DirectorySelected) -> None:
        # A folder is a corpus too: fill it in; ctrl+r or Enter in the input loads it.
        self.query_one("#corpus-path", Input).value = str(event.path)

    def _load_path(self, value: str) -> None:
        if not value.strip():
            self._show_error("", "type a path to a text file or a folder of text files")
            return
        self.load_source(value.strip())

    # ------------------------------------------------------------ loading

    def load_source(self, source: str) -> None:
        self._begin(source)
        self._load_worker(source, None, self._train_ratio())

    def load_text(self, text: str) -> None:
        self._begin("pasted text")
        self._load_worker("", text, self._train_ratio())

    def _train_ratio(self) -> float:
        """The Train form's split (read here: the worker never reads the app's state)."""
        return self.app.state.train_ratio

    def _begin(self, label: str) -> None:
        self.post_message(CorpusChanged(None, None))  # no plan until the new counts are in
        self.query_one("#corpus-name", Static).update(Text(f"Loading {label} …"))
        self.query_one("#corpus-error", Static).update("")
        self._show_previous("until the new one loads")
        bar = self.query_one("#corpus-progress", ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True

    @work(thread=True, exclusive=True, exit_on_error=False, group="corpus")
    def _load_worker(self, source: str, pasted: str | None, train_ratio: float) -> None:
        from gptcore.data.tokens import prepare_corpus
        from gptcore.util.fsutil import atomic_write_text

        if pasted is not None:
            path = pasted_corpus_path(pasted)
            if not path.exists():
                atomic_write_text(path, pasted)
            source = str(path)
        from gptcore.data.corpus import NotUtf8Error

        try:
            corpus = prepare_corpus(source, train_ratio, "strict", self._progress)
        except NotUtf8Error as exc:  # the CLI's flag does not exist here
            self.post_message(CorpusFailed(source, exc.with_hint(NOT_UTF8_HINT)))
            return
        except GptTuiError as exc:
            self.post_message(CorpusFailed(source, str(exc)))
            return
        self.post_message(CorpusLoaded(CorpusInfo.of(corpus, source, train_ratio)))

    def _progress(self, done: int, total: int) -> None:
        # Called on the worker thread: at most ~10 messages a second, plus the last.
        now = time.monotonic()
        if done < total and now - self._last_progress < 0.1:
            return
        self._last_progress = now
        self.post_message(CorpusProgress(done, total))

    def on_corpus_progress(self, message: CorpusProgress) -> None:
        self.query_one("#corpus-progress", ProgressBar).update(
            total=message.total, progress=message.done
        )

    def on_corpus_failed(self, message: CorpusFailed) -> None:
        self._show_error(message.source, message.error)

    def on_corpus_loaded(self, message: CorpusLoaded) -> None:
        self.info = info = message.info
        self._show_previous(None)
        self.query_one("#corpus-progress").display = False
        files = f", {info.files} files" if info.files > 1 else ""
        self.query_one("#corpus-name", Static).update(Text(f"Corpus: {info.name}{files}"))
        self.query_one("#corpus-preview", Static).update(Text(info.preview))
        viewer = self.query_one(TokenViewer)
        if viewer.display:
            viewer.set_source(*self._token_source())
        self._render_stats()
        self.post_message(CorpusChanged(info.source, (info.train_tokens, info.val_tokens)))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "corpus" and event.state == WorkerState.ERROR:
            self._show_error("", f"could not load the corpus: {event.worker.error}")

    def _show_error(self, source: str, error: str) -> None:
        """The new source failed: say so, and label what stays shown as the corpus
        still in use (the app keeps training on it), never as the new one."""
        self.query_one("#corpus-progress").display = False
        self.query_one("#corpus-name", Static).update(
            Text(f"Not loaded: {source}" if source else "Not loaded")
        )
        self._show_previous("(loaded before)")
        self.query_one("#corpus-error", Static).update(Text(error))
        if self.info is not None:  # its plan stands again
            self.post_message(CorpusChanged(None, (self.info.train_tokens, self.info.val_tokens)))

    def _show_previous(self, note: str | None) -> None:
        """Mark the stats and preview as the previous corpus's (note), or as current (None)."""
        self._previous_note = note if self.info is not None else None
        self.query_one("#corpus-info").set_class(self._previous_note is not None, "-previous")
        self._render_stats()

    def config_changed(self) -> None:
        """The Train form's config changed (routed by the app): another split means
        other token counts; else only the plan changes."""
        if self.info is None:
            return
        if self.info.train_ratio != self._train_ratio():  # another split: other token counts
            self.load_source(self.info.source)
        else:
            self._render_stats()

    def _render_stats(self) -> None:
        info = self.info
        if info is None:
            return
        heading = ""
        if self._previous_note is not None:
            heading = f"Still using: {info.name} {self._previous_note}\n"
        stats = heading + (
            f"characters {info.chars:,}  tokens {info.tokens:,}\n"
            f"train {info.train_chars:,} chars, {info.train_tokens:,} tokens\n"
            f"val   {info.val_chars:,} chars, {info.val_tokens:,} tokens"
        )
        problem = None
        config = self.app.state.run_config
        if config is not None:
            lines, problem = window_report(info, *config)
            stats += "\n" + lines
        self.query_one("#corpus-stats", Static).update(Text(stats))
        if self._previous_note is None:  # else the error shown is the new source's
            self.query_one("#corpus-error", Static).update(Text(problem or ""))
