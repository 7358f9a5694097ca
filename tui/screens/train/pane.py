"""The Train screen: the form (TrainForm) beside the dashboard (Dashboard), the keys,
and the run the screen follows: one of ours (LiveRunControl) or one started
elsewhere (WatchMode), one RunHandle at a time.

Workers never touch widgets: what they learn about a run arrives as messages that
carry its handle, and a message whose handle is not the current one is dropped.
"""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal

from gptcore.errors import GptTuiError
from gptcore.runs.events import (
    BatchChanged,
    CheckpointSaved,
    Event,
    Failed,
    Finished,
    Overfitting,
    Spike,
)
from gptcore.runs.rundir import RunDir, checkpoint_label
from gptcore.training.health import health_text
from gptcore.util.paths import data_dir

from ...export import export_loss_png
from ...messages import RunConfigChanged, RunFolderChanged
from ...pump import TrainEvents
from ...runhandle import RunHandle
from ...runstate import RunState
from .dashboard import Dashboard
from .form import TrainForm
from .live import LiveRunControl
from .messages import RunConfigRead, SystemRead
from .watch import WatchMode

# The controls whose keys say why when they cannot act (see TrainPane.why_not).
CONTROLS = ("start", "pause", "stop", "checkpoint", "watch", "export")


class TrainPane(LiveRunControl, WatchMode, Container, can_focus=True):
    """Configure, run and watch training."""

    BINDINGS = [
        Binding("s", "start", "Start", id="train-start"),
        Binding("p", "pause", "Pause", id="train-pause"),
        Binding("x", "stop", "Stop", id="train-stop"),
        Binding("k", "checkpoint", "Ckpt", id="train-checkpoint"),
        Binding("w", "watch", "Watch", id="train-watch"),
        Binding("w", "leave_watch", "Leave watch", id="train-leave-watch"),
        Binding("e", "export", "PNG", id="train-export"),
        Binding("a", "save_config", "Save config", id="train-save-config", show=False),
        Binding("m", "toggle_summary", "Model", id="train-summary"),
    ]
    # A control that cannot act is hidden or dimmed, and its key falls through to its
    # twin here, whose action says why. Same key and description: one row in the help.
    BINDINGS += [
        Binding(b.key, f"explain('{b.action}')", b.description, id=f"{b.id}-why", show=False)
        for b in BINDINGS
        if b.action in CONTROLS
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = RunState()  # the followed run's, folded from its events
        self.handle: RunHandle | None = None  # the run followed (live or watched), or None
        self.run_dir: Path | None = None  # its folder, as the app was last told

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield TrainForm(id="train-form")
            yield Dashboard(id="dashboard")

    def on_mount(self) -> None:
        # Redraws the status's elapsed time ("evaluating … 12s") while a run is active.
        self.set_interval(1.0, self.tick)

    @property
    def form(self) -> TrainForm:
        return self.query_one(TrainForm)

    @property
    def dashboard(self) -> Dashboard:
        return self.query_one(Dashboard)

    # ------------------------------------------------------------ what the app calls

    def config_changed(self) -> None:
        """The form's config changed (the app routes RunConfigChanged back here)."""
        self.dashboard.summarize(self.app.state.run_config)
        self.dashboard.show_plan()

    def corpus_changed(self) -> None:
        """The loaded corpus changed: its plan."""
        self.dashboard.show_plan()

    def schedule_validation(self) -> None:
        """Check the form again (the corpus it names changed)."""
        self.form.schedule_validation()

    def on_train_form_checked(self, message: TrainForm.Checked) -> None:
        # Posted here, not by the form: the app routes it back (config_changed).
        if message.config is not None:
            self.post_message(RunConfigChanged(message.config))
        self.dashboard.summary_stale(message.reason)
        self.refresh_bindings()  # Start may act now, or not

    # ------------------------------------------------------------ the keys

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave_watch":
            return self.watching is not None
        if action == "watch" and self.watching is not None:
            return False  # w leaves watch mode instead (the palette still opens another run)
        if action not in CONTROLS or self.why_not(action) is None:
            return True
        # Refused: hidden while watching (a watched run is not ours to control), else
        # dimmed. Either way the key reaches action_explain, which says why.
        return False if self.watching is not None and action != "export" else None

    def why_not(self, action: str) -> str | None:
        """Why the control `action` (start, pause, …) cannot act now, or None."""
        if self.watching is not None and action in ("start", "pause", "stop", "checkpoint"):
            return (
                f"watching {self.watching.name} read-only: control it where it runs; "
                "w leaves watch mode (then s starts a run from the form)"
            )
        if self.live and action in ("start", "watch"):
            paused = self.state.state == "paused"
            what = "a run is paused: p resumes it" if paused else "a run is training"
            then = "start another" if action == "start" else "watch another run"
            return f"{what}; x stops it (after the current step), then you can {then}"
        if not self.live and action in ("pause", "stop", "checkpoint"):
            return "no run is training: s starts one from the form"
        if action == "stop" and self.handle is not None and self.handle.stop_requested:
            return "already stopping after the current step"
        if action in ("pause", "checkpoint") and self.trainer is None:
            return "the run is still starting: try again once its first step is done"
        if action == "export" and not self.state.evals:
            return "no evaluation yet: the loss chart can be saved after the first one"
        return None

    def _refused(self, action: str) -> bool:
        """Say why `action` cannot act now, if it cannot."""
        reason = self.why_not(action)
        if reason is not None:
            self.notify(reason, title=f"Can't {action}", severity="warning", markup=False)
        return reason is not None

    def action_explain(self, action: str) -> None:
        """A refused control's key: the action says why it cannot act."""
        getattr(self, f"action_{action}")()

    def action_toggle_summary(self) -> None:
        self.dashboard.toggle_summary(self.app.state.run_config)

    def action_save_config(self) -> None:
        self.form.ask_to_save()

    def action_export(self) -> None:
        if self._refused("export"):
            return
        folder = self.run_dir
        if folder is None:  # no run folder: the data folder takes the plot
            folder = data_dir()
        # The worker gets its own copy: this screen goes on updating self.state.
        self._export_worker(RunDir(folder).loss_plot, RunState(evals=list(self.state.evals)))

    @work(thread=True, exclusive=True, exit_on_error=False, group="export")
    def _export_worker(self, path: Path, state: RunState) -> None:

        try:
            export_loss_png(state, path)
        except GptTuiError as exc:
            self.notify(str(exc), title="Export", severity="error")  # thread-safe
            return
        self.notify(f"saved {path}", title="Export")

    # ------------------------------------------------------------ following a run

    def follow(self, handle: RunHandle | None, state: RunState) -> None:
        """Follow the run `handle` stands for (None: no run) from `state`: messages of
        the run followed before are dropped from now on, and the dashboard starts over."""
        if self.watching is not None and handle is not self.handle:
            self.stop_watching()
            self.form.release()
        self.handle, self.state = handle, state
        self._set_run_dir(handle.run_dir if handle is not None else None)
        self.dashboard.reset(state)
        self.render_state()
        self.call_later(self.poll_system)  # once the run or watch has begun

    def _set_run_dir(self, run_dir: Path | None) -> None:
        """The followed run's folder; the app passes it on to Chat (its "just trained"
        model)."""
        if self.handle is not None:
            self.handle.run_dir = run_dir
        if run_dir != self.run_dir:
            self.run_dir = run_dir
            self.post_message(RunFolderChanged(run_dir))

    def on_train_events(self, message: TrainEvents) -> None:
        if message.handle is self.handle:  # else from a run no longer followed
            self.apply_events(message.events)

    def on_run_config_read(self, message: RunConfigRead) -> None:
        if message.handle is not self.handle:
            return  # an earlier run's or watch's
        if message.configs is None:
            self.form.show_config_problem(message.problem)
        else:
            self.form.show_run_config(message.label, *message.configs)

    def apply_events(self, events: list[Event]) -> None:
        """Fold the followed run's new events into its state and show them."""
        catching_up = self.handle is not None and self.handle.catching_up
        n_evals, n_health = len(self.state.evals), len(self.state.health)
        for event in events:
            self.state.apply(event)
            if isinstance(event, CheckpointSaved):
                if not catching_up:  # a watched run's past saves are history, not news
                    self._notify_checkpoint(event)
            elif isinstance(event, Overfitting | Spike) and not catching_up:
                self._notify_health([event])
            elif isinstance(event, BatchChanged) and not catching_up:
                severity = "warning" if event.reason == "out_of_memory" else "information"
                self.notify(event.detail, title="Batch", severity=severity, markup=False)
            elif isinstance(event, Finished | Failed) and not catching_up:
                self.announce_end()
        started = self.state.started
        if started is not None and started.run_dir and self.run_dir is None:
            self._set_run_dir(Path(started.run_dir))  # a live run's, once it reports it
        self.dashboard.show_progress(self.state, n_evals)
        if catching_up:  # a watched run's past signals: in one notification
            self._notify_health(self.state.health[n_health:])
        self.render_state()

    def _notify_checkpoint(self, event: CheckpointSaved) -> None:
        """One short toast per checkpoint: a run's end saves "final" into the folder its
        last epoch's save just wrote, which was announced already (two toasts covered
        the chart at 80x24); the run's name, not the whole path, keeps it to two rows."""
        if any(saved.path == event.path for saved in self.state.checkpoints[:-1]):
            return
        label = checkpoint_label(event.path)
        self.notify(f"{event.reason} checkpoint: {label}", title="Checkpoint", markup=False)

    def _notify_health(self, found: list[Overfitting | Spike]) -> None:
        """Warn about health signals; several at once in one notification."""

        if not found:
            return
        text, title = health_text(found[-1]), type(found[-1]).__name__
        if len(found) > 1:
            text, title = f"{len(found)} health signals so far; the latest: {text}", "Run health"
        self.notify(text, title=title, severity="warning", markup=False)

    def announce_end(self) -> None:
        """A run ended: a notification and the terminal bell, for a user whose app is
        in another tmux window. Not when the user stopped our run here."""
        handle = self.handle
        if handle is not None and handle.kind == "live" and handle.stop_requested:
            return
        name = self.run_dir.name if self.run_dir is not None else "the run"
        state = self.state.state
        if state in ("nan", "error"):
            title, severity = "Training failed", "error"
        else:
            title, severity = f"Training {state}", "information"
        self.notify(f"{name}: {self.state.message}", title=title, severity=severity, markup=False)
        self.ring()

    def ring(self) -> None:
        if self.app.state.settings.bell:
            self.app.bell()

    # ------------------------------------------------------------ drawing

    def tick(self) -> None:
        """The 1 s timer: the status's elapsed time and the system line."""
        if self.state.active:
            self.render_state()
        self.poll_system()

    def on_resize(self) -> None:
        self.call_after_refresh(self.render_state)  # narrow or wide words

    def render_state(self) -> None:
        """Draw the status line and the stats; the keys follow the state."""
        self.dashboard.show_state(self.state, watched=self.watching is not None)
        self.refresh_bindings()

    def poll_system(self) -> None:
        """The system line shows while a run of ours or a watched run is in progress:
        a watched run's own numbers (from its metrics.jsonl), else this process's."""
        handle = self.handle
        if handle is None or not self.state.active:
            self.dashboard.show_system("")
        elif handle.kind == "watch":
            self.dashboard.show_system(self.reported_system())
        else:
            self.read_system(handle)

    def on_system_read(self, message: SystemRead) -> None:
        if message.handle is self.handle and self.state.active:
            self.dashboard.show_system(message.text)
