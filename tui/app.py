"""The gpt-tui Textual app: one tab bar over the Corpus, Train, Chat, Checkpoints,
Models, Runs and Speed Lab screens, a footer of keys, a help screen and command-palette actions.

Start-up stays fast: nothing here imports torch or the engine modules that do;
the screens import them inside their workers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from textual import events
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import TabbedContent, TabPane, Tabs

from gptcore.errors import GptTuiError
from gptcore.runs.rundir import resume_command
from gptcore.training.stopsignals import StopSignals, exit_code, stop_message

from .background import IdleCollector, freeze_long_lived_objects
from .crashlog import write_crash_log
from .keys import after_escape
from .messages import (
    CheckpointsChanged,
    CorpusChanged,
    OpenInChat,
    ResumeRun,
    RunConfigChanged,
    RunFolderChanged,
)
from .screens.chat import ChatPane
from .screens.checkpoints import CheckpointsPane
from .screens.corpus import CorpusPane
from .screens.dialogs import ConfirmScreen
from .screens.help import HelpScreen
from .screens.models import ModelsPane
from .screens.open_run import run_dir_problem
from .screens.runs import RunsPane
from .screens.speedlab import SpeedLabPane
from .screens.sweeps import SweepsPane, SweepsScreen
from .screens.train import TrainPane
from .settings import Settings, load_settings, save_settings
from .state import AppState
from .widgets.footer import StableFooter

STYLES = Path(__file__).parent
# Each screen's layout, one .tcss file per screen (absolute paths: subclasses load them too).
PANE_CSS = [
    STYLES / name
    for name in (
        "chat.tcss",
        "checkpoints.tcss",
        "models.tcss",
        "runs.tcss",
        "speedlab.tcss",
        "sweeps.tcss",
    )
]

# (tab id, title, key, pane class): the order of the tab bar.
SCREENS = [
    ("corpus", "Corpus", "1", CorpusPane),
    ("train", "Train", "2", TrainPane),
    ("chat", "Chat", "3", ChatPane),
    ("checkpoints", "Checkpoints", "4", CheckpointsPane),
    ("models", "Models", "5", ModelsPane),
    ("runs", "Runs", "6", RunsPane),
    ("speedlab", "Speed", "7", SpeedLabPane),
]


class PaneRouter(App[int]):
    """Owns the shared state (tui.state.AppState) and routes the panes' app-level
    messages (tui.messages) to the panes that act on them: panes never query each
    other. Tests' bare host apps route the same way."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.state = AppState(settings if settings is not None else Settings())
        self.state.corpus_source = self.state.settings.corpus

    def save_settings(self) -> None:
        """Write the settings (a failure is a warning: the app goes on without them)."""
        try:
            save_settings(self.state.settings)
        except OSError as exc:
            self.notify(f"could not save settings: {exc}", severity="warning")

    def action_show_tab(self, tab: str) -> None:
        """Switch to a screen's tab (a bare host app has no tab bar)."""

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Every notification here is plain text: its paths, commands, errors and model
        output show verbatim (`pip install 'gpt-tui[plot]'`). Markup stays off even when
        a caller passes markup=True, as Widget.notify does by default."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def action_help_quit(self) -> None:
        """ctrl+c: Textual's own hint is markup, so it is given here as plain text."""
        for key, active in self.active_bindings.items():
            if active.binding.action in ("quit", "app.quit"):
                self.notify(f"press {key} to quit the app", title="Do you want to quit?")
                return

    def on_open_in_chat(self, message: OpenInChat) -> None:
        chats = self.query(ChatPane)
        if chats:
            chats.first().open_model(message.spec)
            self.action_show_tab("chat")

    def on_resume_run(self, message: ResumeRun) -> None:
        trains = self.query(TrainPane)
        if not trains:  # no Train screen here: give the exact command instead
            self.notify(
                f"continue this run with: {resume_command(message.checkpoint, message.overrides)}",
                title="Continue training",
                timeout=15,
                markup=False,
            )
            return
        trains.first().resume_from(message.checkpoint, message.overrides)
        self.action_show_tab("train")

    def on_checkpoints_changed(self, message: CheckpointsChanged) -> None:
        for checkpoints in self.query(CheckpointsPane):
            checkpoints.refresh_list()
        for chat in self.query(ChatPane):
            chat.refresh_models()

    def on_run_folder_changed(self, message: RunFolderChanged) -> None:
        self.state.run_dir = message.run_dir  # Chat offers it as "just trained"

    def on_corpus_changed(self, message: CorpusChanged) -> None:
        if message.source is not None and message.source != self.state.corpus_source:
            self.state.corpus_source = self.state.settings.corpus = message.source
            self.save_settings()
            for train in self.query(TrainPane):
                train.schedule_validation()  # the run config now names the new corpus
        self.state.corpus_tokens = message.tokens
        for train in self.query(TrainPane):
            train.corpus_changed()

    def on_run_config_changed(self, message: RunConfigChanged) -> None:
        self.state.run_config = message.config
        for corpus in self.query(CorpusPane):
            corpus.config_changed()
        for train in self.query(TrainPane):
            train.config_changed()


class MainScreen(Screen):
    """The screen of the tabs. Its focus is the active pane's (on_mount, show_tab):
    Textual's auto-focus would pick the first pane, Corpus, and switch the tabs to it.
    Dialogs pushed over it keep their auto-focus ("" is off; None would mean the app's)."""

    AUTO_FOCUS = ""


class GptTuiApp(PaneRouter):
    """Pretrain a GPT in the terminal."""

    TITLE = "gpt-tui"
    CSS_PATH = [STYLES / "app.tcss", *PANE_CSS]
    BINDINGS = [
        *(
            Binding(key, f"show_tab('{tab}')", f"{title} screen", id=f"show-{tab}", show=False)
            for tab, title, key, _ in SCREENS
        ),
        Binding("question_mark,f1", "help", "Help", id="help", key_display="?"),
        Binding("ctrl+t", "change_theme", "Theme", id="theme", show=False),
        Binding("escape", "focus_screen", "Leave input", id="leave-input", show=False),
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True),
    ]

    def __init__(self, watch_dir: Path | None = None, settings: Settings | None = None) -> None:
        super().__init__(settings if settings is not None else load_settings())
        self.watch_dir = watch_dir
        self.signal_exit_code: int | None = None  # 128 + signum once a stop signal came
        self._train: TrainPane | None = None  # kept past unmount: run() waits for its run
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._collector = IdleCollector()
        # After an exception nothing handled: where its traceback was saved, or why not.
        self.crash_log: Path | None = None
        self.crash_log_error: OSError | None = None

    def get_default_screen(self) -> Screen:
        return MainScreen(id="_default")

    def compose(self) -> ComposeResult:
        initial = "train" if self.watch_dir else "corpus"
        with TabbedContent(initial=initial, id="tabs"):
            for tab, title, _key, pane in SCREENS:
                with TabPane(title, id=tab):
                    if tab == initial:  # the others are mounted after the first frame
                        yield pane(id=f"{tab}-pane")
        yield StableFooter(compact=True)

    def on_mount(self) -> None:
        self._event_loop = asyncio.get_running_loop()
        if self.state.settings.theme in self.available_themes:
            self.theme = self.state.settings.theme
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        # The tab bar takes no focus: screens switch with their digits, and a Tab
        # that left the last field must not land where a digit switches screens.
        self.query_one("#tabs", TabbedContent).query_one(Tabs).can_focus = False
        self.call_after_refresh(self._focus_active)

    async def on_ready(self) -> None:
        # The first frame is on screen: now mount the other screens, then let the
        # engine load (torch, the corpus) in a worker.
        for tab, _title, _key, pane in SCREENS:
            if not self.query(f"#{tab}-pane"):
                await self.query_one(f"TabPane#{tab}").mount(pane(id=f"{tab}-pane"))
        self._train = self.query_one(TrainPane)
        freeze_long_lived_objects()  # the screens are built: spare them the full GC passes
        self._collector.start()
        self.set_interval(0.5, self._collector.tick, name="idle-gc")
        self.query_one(CorpusPane).start()
        if self.watch_dir is not None:
            self.query_one(TrainPane).watch_run(self.watch_dir)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.InputEvent):
            self._collector.input_seen()  # a full GC pass now would delay what it shows
        if isinstance(event, events.Key) and not event.is_forwarded:
            key = after_escape(event)
            if key is not None:  # Escape and a key typed quickly after it: both, in order
                await self._escape_then(key)
                return
        await super().on_event(event)

    async def _escape_then(self, key: events.Key) -> None:
        """Escape, then `key`. Escape's binding runs here and now (leaving an input
        moves the focus at once), so `key` reaches where Escape left the user."""
        bound = await self._check_bindings("escape", priority=True)
        if not bound and not await self._check_bindings("escape"):
            await super().on_event(events.Key("escape", "\x1b"))  # the widget's own Escape
        await super().on_event(key)

    def on_unmount(self) -> None:
        self._collector.stop()

    def _handle_exception(self, error: Exception) -> None:
        """Textual's hook for an exception nothing handled (it ends the app): keep the
        traceback in the data folder first; run() says where once the screen is back."""
        if self.crash_log is None and self.crash_log_error is None:
            try:
                self.crash_log = write_crash_log(error)
            except OSError as exc:
                self.crash_log_error = exc
        super()._handle_exception(error)

    # ------------------------------------------------------------ settings

    def action_toggle_bell(self) -> None:
        """The terminal bell when a run ends (live or watched), on or off (saved)."""
        self.state.settings.bell = not self.state.settings.bell
        self.save_settings()
        self.notify(f"bell when a run ends: {'on' if self.state.settings.bell else 'off'}")

    def _theme_changed(self, theme: object) -> None:
        self.state.settings.theme = self.theme
        self.save_settings()

    # ------------------------------------------------------------ navigation

    def action_show_tab(self, tab: str) -> None:
        # Focus the new pane at once: a focused widget hidden with its tab hands focus to
        # a neighbour in that same tab, and no focus at all lets the screen's auto-focus
        # pick the first pane (Corpus); either way TabbedContent switches back to it.
        self.query_one(TabbedContent).active = tab
        self._focus_active()
        self.call_after_refresh(self._focus_active)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        # Only the app's own tab bar: a screen pushed over it (the inspector) has tabs
        # of its own, whose focus is its business.
        if event.tabbed_content.id == "tabs":
            self.call_after_refresh(self._focus_active)

    def _focus_active(self) -> None:
        tabs = self.query_one(TabbedContent)
        for pane in self.query(f"#{tabs.active}-pane") if tabs.active else []:
            # At once, not pane.focus(): that defers the focus, and a deferred focus of
            # a pane whose tab has since been left switches the tabs back to it.
            self.screen.set_focus(pane)

    def action_focus_screen(self) -> None:
        """Escape: leave an input so the screen's single-key bindings work again."""
        self._focus_active()

    def action_help(self) -> None:

        sections = [("Everywhere", list(self.BINDINGS))]
        sections += [(title, list(pane.BINDINGS)) for _tab, title, _key, pane in SCREENS]
        # Not a tab: opened from the command palette (ctrl+p, "Sweeps").
        sweeps = [*SweepsScreen.BINDINGS, *SweepsPane.BINDINGS]
        sections.append(("Sweeps (ctrl+p, Sweeps)", sweeps))
        self.push_screen(HelpScreen(sections))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for tab, title, key, _pane in SCREENS:
            yield SystemCommand(
                f"Go to {title}",
                f"Show the {title} screen ({key})",
                lambda tab=tab: self.action_show_tab(tab),
            )
        train = self.query_one(TrainPane)
        yield SystemCommand(
            "Start training", "Train with the current config (s)", train.action_start
        )
        yield SystemCommand("Stop training", "Stop the current run (x)", train.action_stop)
        yield SystemCommand("Pause / resume training", "(p)", train.action_pause)
        yield SystemCommand("Save checkpoint now", "(k)", train.action_checkpoint)
        yield SystemCommand(
            "Watch a run", "Follow a run directory's metrics.jsonl (w)", train.action_watch
        )
        yield SystemCommand(
            "Export loss chart", "Save the loss plot as PNG (e)", train.action_export
        )
        yield SystemCommand(
            "Save config as", "Save the Train form as a config (a)", train.action_save_config
        )
        corpus = self.query_one(CorpusPane)
        yield SystemCommand("Use the built-in corpus", "(b on Corpus)", corpus.action_use_builtin)
        yield SystemCommand(
            "Use the book's story",
            "The Verdict, fetched once (v on Corpus)",
            corpus.action_use_verdict,
        )
        yield SystemCommand(
            "Prepare Gutenberg books",
            "Clean a folder of Project Gutenberg books into a corpus (g on Corpus)",
            corpus.action_prepare_gutenberg,
        )
        now = "on" if self.state.settings.bell else "off"
        yield SystemCommand(
            "Toggle bell", f"Ring when a run ends (now {now})", self.action_toggle_bell
        )
        yield SystemCommand(
            "Sweeps",
            "Hyperparameter sweeps: leaderboard, budget, start / stop / resume",
            lambda: self.push_screen(SweepsScreen()),
        )
        yield SystemCommand("Help", "Every key (?)", self.action_help)

    # ------------------------------------------------------------ quitting

    async def action_quit(self) -> None:
        trains = self.query(TrainPane)
        train = trains.first() if trains else None
        if train is None or not train.training:
            self.exit(0)
            return

        async def answered(yes: bool | None) -> None:
            if yes:
                # The status says "stopping" at once; the current step may take minutes on a CPU.
                self.notify("stopping after the current step, then saving a checkpoint …")
                await train.shutdown()
                self.exit(0)

        await self.push_screen(
            ConfirmScreen("Training is running. Save a checkpoint, stop and quit?", "Quit"),
            answered,
        )

    # ------------------------------------------------------------ signals

    def stop_for_signal(self, signum: int) -> None:
        """The first SIGTERM, SIGHUP (the terminal is gone) or SIGINT: stop the
        live run (its trainer saves an "interrupt" checkpoint and writes the
        closing event), then exit with 128 + signum. Called in the signal handler,
        so it only sets the run's stop event and schedules the rest on the loop."""
        self.signal_exit_code = exit_code(signum)
        if self._train is not None:
            self._train.stop_and_wait(timeout=0, signum=signum)
        if self._event_loop is None:  # not running yet: nothing to save
            raise SystemExit(self.signal_exit_code)
        self._event_loop.call_soon_threadsafe(self._close_for_signal, signum)

    def _close_for_signal(self, signum: int) -> None:
        self.notify(stop_message(signum, "saving a checkpoint and stopping …"))
        self.run_worker(self._exit_after_run(), group="signal-exit")

    async def _exit_after_run(self) -> None:
        if self._train is not None:
            await self._train.shutdown()
        self.exit(self.signal_exit_code)

    def wait_for_run(self) -> None:
        """Block until the live run's thread has ended (the app's loop may end first)."""
        if self._train is not None:
            self._train.stop_and_wait()


# After a stop signal and the end of its run, how long the app's own exit may take
# before the process leaves without it: when the terminal hung up first, Textual's
# output thread dies on the dead terminal and its shutdown blocks forever.
EXIT_GRACE_S = 10.0


def _stop_for_signal(app: GptTuiApp, signum: int) -> None:
    app.stop_for_signal(signum)
    threading.Thread(
        target=_exit_once_saved, args=(app, exit_code(signum)), name="exit-once-saved", daemon=True
    ).start()


def _exit_once_saved(app: GptTuiApp, code: int) -> None:
    app.wait_for_run()
    time.sleep(EXIT_GRACE_S)  # a daemon thread: an orderly exit ends it first
    os._exit(code)


def _abort(signum: int) -> None:
    """A second stop signal: leave at once, as a second Ctrl-C does in `gpt-tui train`."""
    os._exit(exit_code(signum))


def quiet_idle_threads(environ: dict[str, str] | os._Environ[str] = os.environ) -> None:
    """Let torch's OpenMP threads sleep, not spin, between parallel regions.

    libgomp busy-waits after each parallel region by default; while a run trains
    in this process, those spinning threads hold both cores of a small machine and
    keys wait for the CPU. Passive waiting costs the step little (a wake-up per
    region). Set only in the app (headless `gpt-tui train` keeps the default) and
    before torch loads; a value the user set is kept."""
    environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def run(args: argparse.Namespace) -> int:
    """Open the app (`gpt-tui`, or `gpt-tui watch RUN_DIR` straight on a run)."""
    quiet_idle_threads()
    watch_dir = None
    if getattr(args, "command", None) == "watch":
        watch_dir = Path(args.run_dir).expanduser()
        problem = run_dir_problem(watch_dir)
        if problem:
            raise GptTuiError(problem)
    app = GptTuiApp(watch_dir=watch_dir)
    with StopSignals(lambda signum: _stop_for_signal(app, signum), on_abort=_abort):
        result = app.run()
        app.wait_for_run()  # its checkpoint before the process ends
    if app.return_code:  # an unexpected exception ended the app (Textual printed it)
        _tell_where_the_crash_is(app)
    return app.signal_exit_code or app.return_code or int(result or 0)


def _tell_where_the_crash_is(app: GptTuiApp) -> None:
    if app.crash_log is not None:
        where = f"its traceback is saved in {app.crash_log}"
    else:
        where = f"its traceback could not be saved ({app.crash_log_error}); it is printed above"
    print(
        f"gpt-tui stopped on an unexpected error (any training run was saved first); {where}",
        file=sys.stderr,
    )
