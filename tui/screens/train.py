"""The Train screen: pick and edit a config, start / pause / stop a run, and watch
its loss curves, throughput and samples live; or follow a run started elsewhere.
`m` swaps the charts for the model summary of the form's config.

Training runs in a thread worker. The worker never touches widgets: the
trainer's events reach this screen as throttled TrainEvents messages (tui.pump).
A watched run is followed by reading its metrics.jsonl in a thread worker that a
timer starts; what it read arrives as TrainEvents too.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, Label, RichLog, Select, Sparkline, Static
from textual.worker import Worker, WorkerState

from gptcore.errors import GptTuiError
from gptcore.hardware.sysinfo import CpuMeter, SystemStats, describe, system_stats
from gptcore.runs.events import CheckpointSaved, Event, Failed, Finished, Overfitting, Spike
from gptcore.runs.metrics import MetricsFollower
from gptcore.runs.rundir import RunDir, checkpoint_label
from gptcore.settings.model import PRESETS, GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.util.fmt import format_duration

from ..background import freeze_long_lived_objects, lower_thread_priority
from ..configs import (
    FIELDS,
    Field,
    build_configs,
    field_text,
    first_run_config,
    list_configs,
    load_config,
    parse_field,
    save_config,
    validate_field,
)
from ..messages import RunConfigChanged, RunFolderChanged
from ..pump import EventPump, TrainEvents
from ..runstate import RunState
from ..widgets.loss_chart import LossChart
from ..widgets.model_summary import ModelSummaryView

POLL_S = 0.25  # how often a watched metrics.jsonl is read
# The controls whose keys say why when they cannot act (see TrainPane.why_not).
CONTROLS = ("start", "pause", "stop", "checkpoint", "watch", "export")
RUN_ENTRY = "run:"  # config-list key prefix of a watched or resumed run's own configs


def _input_id(field: Field) -> str:
    return "f-" + field.key.replace(".", "-").replace("_", "-")


class TrainerReady(Message):
    """The worker built the run's Trainer: pause and checkpoint requests go to it."""

    def __init__(self, source: str, trainer: object) -> None:
        super().__init__()
        self.source, self.trainer = source, trainer


class DeviceRateMeasured(Message):
    """A device's effective training FLOP/s (gptcore.estimate): run-time estimates can show."""

    def __init__(self, setting: str, device: str, rate: float) -> None:
        super().__init__()
        self.setting, self.device, self.rate = setting, device, rate


class SystemRead(Message):
    """The system line (gptcore.sysinfo), read off the UI thread for run `token`."""

    def __init__(self, token: int, text: str) -> None:
        super().__init__()
        self.token, self.text = token, text


class RunConfigRead(Message):
    """A watched or resumed run's own configs (or why they cannot be read)."""

    def __init__(
        self,
        source: str,
        label: str,
        configs: tuple[GPTConfig, TrainConfig] | None,
        problem: str | None = None,
    ) -> None:
        super().__init__()
        self.source, self.label, self.configs, self.problem = source, label, configs, problem


class TrainPane(Container, can_focus=True):
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
    # What the model summary replaces on the dashboard while it shows.
    _RUN_VIEWS = ("#loss-chart", "#sparks", "#samples")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = RunState()
        self.base_model: GPTConfig = PRESETS["tiny"]
        self.base_train = TrainConfig()
        self.errors: dict[str, str] = {}
        self.form_error: str | None = None
        self.trainer: object | None = None
        self.live = False  # a run of ours (not a watched one) is in progress
        self.watching: Path | None = None
        self.run_dir: Path | None = None
        self._follower: MetricsFollower | None = None
        self._timer: Timer | None = None
        self._run_token = 0  # which run (live or watched) messages must come from
        self._stop_requested = False
        self._cancel: threading.Event | None = None  # the live run's stop, for its worker
        self._worker: Worker | None = None  # the live run's worker
        self._run_ended: threading.Event | None = None  # set when its thread has ended
        self._samples_shown = 0
        self._backlog = False  # the first read of a watched run: its past, not news
        self._validation_pending = False
        self._config_key: str | None = None
        # The watched or resumed run's own configs, under their config-list key.
        self._run_configs: dict[str, tuple[GPTConfig, TrainConfig]] = {}
        self._watch_config: str | None = None  # why the watched run's config is not shown
        # train.device setting -> (resolved device, effective FLOP/s), None while measuring.
        self._device_rates: dict[str, tuple[str, float] | None] = {}
        self._cpu = CpuMeter()  # the live run's process (this app) between two refreshes

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with Horizontal():
            with VerticalScroll(id="train-form"):
                yield Select(
                    list_configs(),
                    prompt="config",
                    allow_blank=False,
                    value=self._initial_config(),
                    id="config-select",
                    compact=True,
                )
                yield Select(
                    [(name, name) for name in PRESETS],
                    prompt="custom model",
                    id="preset-select",
                    compact=True,
                )
                for field in FIELDS:
                    with Horizontal(classes="field-row"):
                        yield Label(field.label, classes="field-label")
                        yield Input(id=_input_id(field), compact=True)
                yield Static("", id="form-reason")
            with Vertical(id="dashboard"):
                yield Static("IDLE · press s to start", id="run-state")
                yield Static("", id="run-stats")
                system = Static("", id="run-system")
                system.display = False  # only while a run is live or watched
                yield system
                yield LossChart(id="loss-chart")
                with Horizontal(id="sparks"):
                    yield Label("loss", classes="spark-label")
                    yield Sparkline([], id="spark-loss")
                    yield Label("tok/s", classes="spark-label")
                    yield Sparkline([], id="spark-tps")
                yield RichLog(id="samples", markup=False, wrap=True, max_lines=500)
                summary = ModelSummaryView(id="model-summary")
                summary.display = False  # counted only when shown (torch loads in a worker)
                yield summary

    def _initial_config(self) -> str:
        key = self.app.state.settings.config
        keys = [k for _, k in list_configs()]
        if key not in keys:  # a first start, or a saved config since deleted
            key = first_run_config() if first_run_config() in keys else keys[0]
        return key

    def on_mount(self) -> None:
        self._load_config(self.query_one("#config-select", Select).value)
        # Redraws the status's elapsed time ("evaluating … 12s") while a run is active.
        self.set_interval(1.0, self._tick)

    # ------------------------------------------------------------ model summary

    def action_toggle_summary(self) -> None:
        summary = self.query_one(ModelSummaryView)
        summary.display = not summary.display
        for selector in self._RUN_VIEWS:
            self.query_one(selector).display = not summary.display
        self._summarize(self.app.state.run_config)

    def config_changed(self) -> None:
        """The form's config changed (the app routes RunConfigChanged back here)."""
        self._summarize(self.app.state.run_config)
        self._show_plan()

    def corpus_changed(self) -> None:
        """The loaded corpus changed: its plan."""
        self._show_plan()

    def _summarize(self, config: tuple[GPTConfig, TrainConfig] | None) -> None:
        summary = self.query_one(ModelSummaryView)
        if summary.display and config is not None:
            summary.show(*config)

    # ------------------------------------------------------------ the form

    @on(Select.Changed, "#config-select")
    def _config_selected(self, event: Select.Changed) -> None:
        # Changed is queued: skip stale ones and the one for what is already loaded.
        if event.value == event.select.value and event.value != self._config_key:
            self._load_config(event.value)

    def _load_config(self, key: str) -> None:
        if key in self._run_configs:  # a run's own configs: not saved as the user's choice
            self.base_model, self.base_train = self._run_configs[key]
            self._config_key = key
            self._fill_form()
            return
        try:
            model, train = load_config(key)
        except GptTuiError as exc:
            self.form_error = str(exc)
            self._show_form_reason()
            self.notify(str(exc), title="Config", severity="error")
            return
        self.base_model, self.base_train = model, train
        self._config_key = key
        self.app.state.settings.config = key
        self.app.save_settings()
        self._fill_form()

    def _show_run_config(self, label: str, model: GPTConfig, train: TrainConfig) -> None:
        """Fill the form with a watched or resumed run's own configs, under an entry
        of its own in the config list, so the form names what it shows."""
        key = RUN_ENTRY + label
        self._run_configs = {key: (model, train)}
        select = self.query_one("#config-select", Select)
        select.set_options([*list_configs(), (label, key)])
        self._config_key = key  # first: the Changed messages that follow are then ignored
        select.value = key
        self._load_config(key)

    def _restore_form(self) -> None:
        """Back to the user's own config choice (after watching a run)."""
        self._run_configs = {}
        key = self._initial_config()  # the last choice the user made, still in settings
        select = self.query_one("#config-select", Select)
        select.set_options(list_configs())
        self._config_key = key
        select.value = key
        self._load_config(key)

    def _lock_form(self, locked: bool) -> None:
        """A watched run's form is read-only; before its config is read, it is blank
        rather than showing another config."""
        self.query_one("#train-form").disabled = locked
        if locked:
            self.query_one("#preset-select", Select).clear()
            for field in FIELDS:
                self.query_one(f"#{_input_id(field)}", Input).value = ""
            self.schedule_validation()

    @on(Select.Changed, "#preset-select")
    def _preset_selected(self, event: Select.Changed) -> None:
        if not isinstance(event.value, str) or event.value != event.select.value:
            return  # blank ("custom model") or a stale message
        preset = PRESETS[event.value]
        if preset != self.base_model:
            self.base_model = preset
            self._fill_form()

    def _fill_form(self) -> None:
        preset = next((n for n, c in PRESETS.items() if c == self.base_model), None)
        select = self.query_one("#preset-select", Select)
        if preset is None:
            select.clear()  # "custom model": the config changes a preset's shape
        else:
            select.value = preset
        for field in FIELDS:
            self.query_one(f"#{_input_id(field)}", Input).value = field_text(
                field, self.base_model, self.base_train
            )
        self.schedule_validation()

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        if not (event.input.id and event.input.id.startswith("f-")):
            return
        if self._validation_pending:
            return  # a full check is queued (the form is being filled)
        field = next(f for f in FIELDS if _input_id(f) == event.input.id)
        self._check_field(field)
        self._check_form()

    def schedule_validation(self) -> None:
        if not self._validation_pending:
            self._validation_pending = True
            self.call_after_refresh(self._validate_all)

    def form_values(self) -> dict[str, object]:
        """The typed values of every valid input."""
        values = {}
        for field in FIELDS:
            text = self.query_one(f"#{_input_id(field)}", Input).value
            if field.key not in self.errors:
                values[field.key] = parse_field(field, text)
        return values

    def _validate_all(self) -> None:
        self._validation_pending = False
        self.errors = {}
        for field in FIELDS:
            self._check_field(field)
        self._check_form()

    def _check_field(self, field: Field) -> None:
        widget = self.query_one(f"#{_input_id(field)}", Input)
        try:
            error = validate_field(field, widget.value, self.base_model, self.base_train)
        except GptTuiError as exc:
            error = str(exc)
        widget.set_class(error is not None, "-invalid")
        widget.tooltip = None if error is None else Text(error)
        if error is None:
            self.errors.pop(field.key, None)
        else:
            self.errors[field.key] = error

    def _check_form(self) -> None:
        """Rules across fields, then publish the config the form describes."""
        self.form_error = None
        if not self.errors:
            try:
                config = build_configs(
                    self.base_model,
                    self.base_train,
                    self.form_values(),
                    self.app.state.corpus_source,
                )
            except GptTuiError as exc:
                self.form_error = str(exc)  # e.g. heads vs emb_dim
            else:
                self.post_message(RunConfigChanged(config))
        self._show_form_reason()
        self.refresh_bindings()

    def blocking_reason(self) -> str | None:
        """Why Start is blocked, or None."""
        if self.watching is not None and self._watch_config is not None:
            return f"the config of {self.watching.name} is not shown: {self._watch_config}"
        if self.errors:  # each message names its field by the form's label
            return next(iter(self.errors.values()))
        return self.form_error

    def _show_form_reason(self) -> None:
        reason = self.blocking_reason()
        text = f"Can't start: {reason}" if reason else ""
        if self.watching is not None:
            text = f"{self.watching.name}'s own config, read-only: w leaves watch mode"
            text += f"\n{reason}" if reason else ""
        self.query_one("#form-reason", Static).update(Text(text))
        self.query_one(ModelSummaryView).set_stale(reason)

    # ------------------------------------------------------------ actions

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
        active = self.live and self.state.active
        if active and action in ("start", "watch"):
            paused = self.state.state == "paused"
            what = "a run is paused: p resumes it" if paused else "a run is training"
            then = "start another" if action == "start" else "watch another run"
            return f"{what}; x stops it (after the current step), then you can {then}"
        if not active and action in ("pause", "stop", "checkpoint"):
            return "no run is training: s starts one from the form"
        if action == "stop" and self._stop_requested:
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

    def action_start(self) -> None:
        if self._refused("start"):
            return
        reason = self.blocking_reason()
        if reason:
            self.notify(reason, title="Can't start", severity="error", markup=False)
            return
        model, train = build_configs(
            self.base_model, self.base_train, self.form_values(), self.app.state.corpus_source
        )
        self._stop_watching()
        self._reset(RunState(state="starting", message="building the model …"))
        self._begin_live()
        self._worker = self.run_training(
            model, train, f"live-{self._run_token}", self._cancel, ended=self._run_ended
        )
        self.refresh_bindings()

    def action_pause(self) -> None:
        if self._refused("pause"):
            return
        trainer = self.trainer
        pause = self.state.state != "paused"
        if pause:
            trainer.pause()
        else:
            trainer.unpause()
        self.state.set_paused(pause, time.time())
        self._render_state()

    def action_stop(self) -> None:
        if self._refused("stop"):
            return
        self._stop_and_show()

    def _stop_and_show(self) -> None:
        """Stop our run; the status says so at once, not after the step (minutes on a CPU)."""
        self._cancel_run()
        self.state.request_stop(time.time())
        self._render_state()

    def action_checkpoint(self) -> None:
        if self._refused("checkpoint"):
            return
        self.trainer.request_checkpoint()
        self.notify("a checkpoint will be saved after this step", title="Checkpoint")

    def action_watch(self) -> None:
        if self._refused("watch"):
            return
        from .open_run import OpenRunScreen

        def opened(path: str | None) -> None:
            if path:
                self.watch_run(Path(path))

        self.app.push_screen(OpenRunScreen(), opened)

    def action_save_config(self) -> None:
        from .dialogs import PromptScreen

        reason = self.blocking_reason()
        if reason:
            self.notify(reason, title="Can't save", severity="error")
            return

        def named(name: str | None) -> None:
            if not name:
                return
            model, train = build_configs(
                self.base_model, self.base_train, self.form_values(), self.app.state.corpus_source
            )
            try:
                path = save_config(name, model, train)
            except GptTuiError as exc:
                self.notify(str(exc), title="Can't save", severity="error")
                return
            select = self.query_one("#config-select", Select)
            select.set_options(list_configs())
            select.value = str(path)
            self.notify(f"saved {path}", title="Config")

        self.app.push_screen(PromptScreen("Save this config as:", placeholder="name"), named)

    def action_export(self) -> None:
        if self._refused("export"):
            return
        folder = self.run_dir or self.watching
        if folder is None:  # no run folder: the data folder takes the plot
            from gptcore.util.paths import data_dir

            folder = data_dir()
        # The worker gets its own copy: this screen goes on updating self.state.
        self._export_worker(RunDir(folder).loss_plot, RunState(evals=list(self.state.evals)))

    @work(thread=True, exclusive=True, exit_on_error=False, group="export")
    def _export_worker(self, path: Path, state: RunState) -> None:
        from ..export import export_loss_png

        try:
            export_loss_png(state, path)
        except GptTuiError as exc:
            self.notify(str(exc), title="Export", severity="error")  # thread-safe
            return
        self.notify(f"saved {path}", title="Export")

    # ------------------------------------------------------------ training

    def resume_from(self, path: Path | str) -> None:
        """Continue the run that checkpoint `path` belongs to (Checkpoints screen, `t`)."""
        if self.live and self.state.active:
            self.notify(
                "a run is training: stop it first", title="Can't resume", severity="warning"
            )
            return
        self._stop_watching()
        self._reset(RunState(state="starting", message=f"resuming from {path} …"))
        self._begin_live()
        self._worker = self.run_training(
            None, None, f"live-{self._run_token}", self._cancel, str(path), self._run_ended
        )
        self.refresh_bindings()

    def _begin_live(self) -> None:
        self.live = True
        self._backlog = False
        self._stop_requested = False
        self._cancel = threading.Event()
        self._run_ended = threading.Event()
        self._run_token += 1

    def _cancel_run(self) -> None:
        """Stop our run: the event is the trainer's own, so this works even before
        the worker has handed the trainer over."""
        self._stop_requested = True
        if self._cancel is not None:
            self._cancel.set()

    @work(thread=True, exclusive=True, exit_on_error=False, group="train")
    def run_training(
        self,
        model: GPTConfig | None,
        train: TrainConfig | None,
        source: str,
        cancel: threading.Event,
        resume: str | None = None,
        ended: threading.Event | None = None,
    ) -> None:
        from gptcore.training.trainer import Trainer

        lower_thread_priority()  # before torch starts its threads from this one
        pump = EventPump(self, source=source)
        try:
            checkpoint = None
            if resume is not None:  # the run's own configs; the checkpoint is verified once
                from gptcore.training.resume import prepare_run

                run = prepare_run(resume=resume)
                model, train, checkpoint = run.model_config, run.train_config, run.checkpoint
                # The form shows what trains (and `m` describes its model).
                label = f"{checkpoint_label(checkpoint.path)} (resumed)"
                self.post_message(RunConfigRead(source, label, (model, train)))
                if run.notice:  # e.g. the latest checkpoint was damaged (notify is thread-safe)
                    self.app.notify(run.notice, title="Resume", severity="warning", markup=False)
            # `cancel` is the trainer's own stop: set before the screen holds it, it still counts.
            trainer = Trainer(
                model, train, listeners=(pump,), resume=checkpoint, cancel_event=cancel
            )
            freeze_long_lived_objects()  # torch and the engine are loaded by now
            self.post_message(TrainerReady(source, trainer))
            trainer.run()
        finally:
            pump.flush()
            if ended is not None:  # the checkpoint and closing event are written
                ended.set()

    def on_trainer_ready(self, message: TrainerReady) -> None:
        if message.source == f"live-{self._run_token}":
            self.trainer = message.trainer
            self.refresh_bindings()  # pause and checkpoint can act now

    def on_run_config_read(self, message: RunConfigRead) -> None:
        if message.source not in (f"live-{self._run_token}", f"watch-{self._run_token}"):
            return  # an earlier run's or watch's
        if message.configs is None:
            if message.problem != self._watch_config:
                self._watch_config = message.problem
                self._validate_all()  # shows the problem in the form and the model summary
        elif self._config_key != RUN_ENTRY + message.label:
            self._watch_config = None
            self._show_run_config(message.label, *message.configs)

    def on_train_events(self, message: TrainEvents) -> None:
        if message.source not in (f"live-{self._run_token}", f"watch-{self._run_token}"):
            return  # a message from an earlier run or watch
        self.apply_events(message.events)
        self._backlog = False

    def apply_events(self, events: list[Event]) -> None:
        n_evals, n_health = len(self.state.evals), len(self.state.health)
        for event in events:
            self.state.apply(event)
            if isinstance(event, CheckpointSaved):
                self.notify(f"{event.reason} checkpoint: {event.path}", title="Checkpoint")
            elif isinstance(event, Overfitting | Spike) and not self._backlog:
                self._notify_health([event])
            elif isinstance(event, Finished | Failed) and not self._backlog:
                self._announce_end()
            started = self.state.started
            if started is not None and self.run_dir is None and started.run_dir:
                self._set_run_dir(Path(started.run_dir))
        if len(self.state.evals) != n_evals:
            self.query_one(LossChart).show_run(self.state)
        self.query_one("#spark-loss", Sparkline).data = list(self.state.step_losses)
        self.query_one("#spark-tps", Sparkline).data = list(self.state.tokens_per_s)
        log = self.query_one("#samples", RichLog)
        for sample in self.state.samples[self._samples_shown :]:
            # Model output is text, never markup: Text() shows "[/b]" as typed.
            log.write(Text(f"── epoch {sample.epoch + 1}, step {sample.step} ──", style="dim"))
            log.write(Text(sample.text))
        self._samples_shown = len(self.state.samples)
        if self._backlog:  # a watched run's past signals: in one notification
            self._notify_health(self.state.health[n_health:])
        self._render_state()

    def _notify_health(self, found: list[Overfitting | Spike]) -> None:
        """Warn about health signals; several at once in one notification."""
        from gptcore.training.health import health_text

        if not found:
            return
        text, title = health_text(found[-1]), type(found[-1]).__name__
        if len(found) > 1:
            text, title = f"{len(found)} health signals so far; the latest: {text}", "Run health"
        self.notify(text, title=title, severity="warning", markup=False)

    def _announce_end(self) -> None:
        """A run ended: a notification and the terminal bell, for a user whose app is
        in another tmux window. Not when the user stopped our run here."""
        if self.live and self._stop_requested:
            return
        name = self.run_dir.name if self.run_dir is not None else "the run"
        state = self.state.state
        if state in ("nan", "error"):
            title, severity = "Training failed", "error"
        else:
            title, severity = f"Training {state}", "information"
        self.notify(f"{name}: {self.state.message}", title=title, severity=severity, markup=False)
        self._ring()

    def _ring(self) -> None:
        if self.app.state.settings.bell:
            self.app.bell()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "train" or event.worker is not self._worker:
            return  # not a run, or an earlier run ending after a new one started
        if event.state == WorkerState.ERROR:
            self.state.fail(str(event.worker.error))
            self.notify(self.state.message, title="Training stopped", severity="error")
            self._ring()
        elif event.state in (WorkerState.SUCCESS, WorkerState.CANCELLED) and self.state.active:
            self.state.state = "stopped" if self._stop_requested else "finished"
            self.state.message = self.state.message or self.state.state
        if event.state in (WorkerState.ERROR, WorkerState.SUCCESS, WorkerState.CANCELLED):
            self.trainer = None
            self.live = False
            self._render_state()

    @property
    def training(self) -> bool:
        """True while a run of ours is in progress (its thread is alive)."""
        return any(w.group == "train" and not w.is_finished for w in self.workers)

    async def shutdown(self) -> None:
        """Stop our run and wait for its thread to end; the trainer saves an
        "interrupt" checkpoint when it is cancelled."""
        self._stop_and_show()
        for worker in list(self.workers):
            if worker.group == "train":
                with contextlib.suppress(Exception):  # a failed run is already reported
                    await worker.wait()

    def stop_and_wait(self, timeout: float | None = None) -> bool:
        """Stop our live run and block until its thread has ended (the trainer
        saves an "interrupt" checkpoint and writes its closing event first);
        True once no run of ours is left. Thread-safe and needs no UI: the app's
        signal handling calls it, also after the app's loop has ended."""
        self._cancel_run()
        ended = self._run_ended
        return ended is None or ended.wait(timeout)

    def on_unmount(self) -> None:
        # Never leave a training thread behind the app.
        if self._cancel is not None:
            self._cancel.set()

    # ------------------------------------------------------------ watching

    def watch_run(self, run_dir: Path) -> None:
        """Follow RUN_DIR/metrics.jsonl read-only (a run started elsewhere)."""
        if self.live and self.state.active:
            self.notify("stop the current run before watching another", severity="warning")
            return
        self._stop_watching()
        self.watching = Path(run_dir)
        self._watch_config = "no config.toml yet"  # until the first read finds it
        self._lock_form(True)
        self._reset(RunState(message="waiting for events …"))
        self._run_token += 1
        self._backlog = True  # until its first read: what happened before we watched
        self._follower = MetricsFollower(RunDir(self.watching).metrics)
        self._timer = self.set_interval(POLL_S, self.poll_watched)
        self.poll_watched()
        self.notify(
            f"watching {self.watching.name} read-only: w leaves watch mode",
            title="Watch",
            markup=False,
        )

    def action_leave_watch(self) -> None:
        """Stop following the watched run: the form is the user's again."""
        if self.watching is None:
            return
        name = self.watching.name
        self._stop_watching()
        self._reset(RunState(message="pick a config and press s to start"))
        self._restore_form()
        self.notify(f"stopped watching {name}: the form is yours again", markup=False)

    def poll_watched(self) -> None:
        """Read what the watched run added, in a worker (the timer calls this)."""
        if self._follower is None:
            return
        if any(w.group == "watch" and not w.is_finished for w in self.workers):
            return  # one read at a time: the follower keeps the file offset
        run = RunDir(self.watching)
        # Its config too, until read: the run writes config.toml as it starts.
        config = run.config if self._watch_config is not None else None
        self._read_metrics(self._follower, f"watch-{self._run_token}", run.name, config)

    @work(thread=True, exclusive=True, exit_on_error=False, group="watch")
    def _read_metrics(
        self, follower: MetricsFollower, source: str, name: str, config: Path | None = None
    ) -> None:
        if config is not None and config.is_file():
            from gptcore.settings.files import load_run_config

            label = f"{name} (watched)"
            try:
                configs = load_run_config(config)
            except GptTuiError as exc:
                self.post_message(RunConfigRead(source, label, None, str(exc)))
            else:
                self.post_message(RunConfigRead(source, label, configs))
        events = follower.poll()
        if events:
            self.post_message(TrainEvents(events, source))

    def _stop_watching(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = None
        self._follower = None
        if self.watching is not None:
            self.watching = None
            self._watch_config = None
            self._lock_form(False)

    # ------------------------------------------------------------ drawing

    def _reset(self, state: RunState) -> None:
        self.state = state
        self._set_run_dir(self.watching)
        self._samples_shown = 0
        self.query_one(LossChart).show_run(state)
        self.query_one("#spark-loss", Sparkline).data = []
        self.query_one("#spark-tps", Sparkline).data = []
        self.query_one("#samples", RichLog).clear()
        self.query_one("#run-system", Static).display = False
        self._render_state()
        self.call_later(self._poll_system)  # once the run or watch has begun

    def _set_run_dir(self, run_dir: Path | None) -> None:
        """The run's folder; the app passes it on to Chat (its "just trained" model)."""
        if run_dir != self.run_dir:
            self.run_dir = run_dir
            self.post_message(RunFolderChanged(run_dir))

    def _tick(self) -> None:
        if self.state.active:
            self._render_state()
        self._poll_system()

    def _system_shown(self) -> bool:
        """The system line shows while a run of ours or a watched run is in progress."""
        return self.state.active and (self.live or self.watching is not None)

    def _poll_system(self) -> None:
        """Refresh the system line (the 1 s timer calls this)."""
        if not self._system_shown():
            self.query_one("#run-system", Static).display = False
            return
        if self.watching is not None:  # the run's own numbers, from its metrics.jsonl
            self.on_system_read(SystemRead(self._run_token, self._reported_system()))
            return
        started = self.state.started
        self._read_system(self._run_token, started.device if started is not None else None)

    def _reported_system(self) -> str:
        """What the watched run's process last reported using (SystemSample events)."""
        sample = self.state.system
        if sample is None:
            return ""
        fields = {f: getattr(sample, f) for f in SystemStats.__dataclass_fields__}
        age = max(0.0, time.time() - sample.time)
        line = describe(SystemStats(**fields))
        return f"run: {line} · {format_duration(age)} ago" if line else ""

    @work(thread=True, exclusive=True, exit_on_error=False, group="sysinfo")
    def _read_system(self, token: int, device: str | None) -> None:
        # Off the UI thread: a CUDA query can wait on a device busy training.
        self.post_message(SystemRead(token, describe(system_stats(device, self._cpu))))

    def on_system_read(self, message: SystemRead) -> None:
        if message.token != self._run_token:
            return  # an earlier run's or watch's
        widget = self.query_one("#run-system", Static)
        widget.update(Text(message.text))
        widget.display = self._system_shown() and bool(message.text)

    def on_resize(self) -> None:
        self.call_after_refresh(self._render_state)  # narrow or wide words

    def _render_state(self) -> None:
        state = self.state
        # One line at 60 columns: the watched run's name is in the form's config entry.
        head = state.state.upper() + (" (watched)" if self.watching is not None else "")
        line = Text(head, style="bold")
        widget = self.query_one("#run-state", Static)
        width = widget.content_size.width - (len(head) - len(state.state))
        detail = state.detail(time.time(), width if width > 0 else None)
        if detail:
            line.append(f" · {detail}", style="")
        widget.update(line)
        widget.set_class(state.state in ("nan", "error"), "-error")
        widget.set_class(state.state == "finished", "-done")
        self.query_one("#run-stats", Static).update(Text(self._stats_text()))
        self.refresh_bindings()

    def _show_plan(self, _changed: object = None) -> None:
        if self.state.state == "idle" and self.watching is None:
            self.query_one("#run-stats", Static).update(Text(self._stats_text()))

    def _plan_text(self) -> str:
        """Before a run: the Trainer's batch plan for the form's config on the loaded corpus."""
        from gptcore.data.plan import batch_plan

        config, tokens = self.app.state.run_config, self.app.state.corpus_tokens
        if config is None or tokens is None:
            return ""
        plan = batch_plan(*tokens, *config)
        if plan.problem is not None:
            return f"cannot train on this corpus: {plan.problem}"
        return (  # short lines: the dashboard is 28 columns wide at 60x20
            f"plan {plan.total_steps:,} steps ({plan.steps_per_epoch:,}/epoch)\n"
            f"{plan.train_windows:,} windows × {plan.length}, batch {plan.batch_size}"
            + self._estimate_text(config, plan)
        )

    def _estimate_text(self, config: tuple[GPTConfig, TrainConfig], plan: object) -> str:
        """About how long the run takes here, before it starts (a long run is a choice)."""
        from gptcore.training.estimate import estimate_seconds

        wanted = config[1].device
        if wanted not in self._device_rates:
            self._device_rates[wanted] = None  # measuring: once per device setting
            self._measure_device(wanted)
            return ""
        measured = self._device_rates[wanted]
        if measured is None:
            return ""
        device, rate = measured
        seconds = estimate_seconds(*config, plan, rate)
        return f"\nestimated {format_duration(seconds)} on {device}"  # 28 columns at 60x20

    @work(thread=True, exit_on_error=False, group="estimate")
    def _measure_device(self, wanted: str) -> None:
        from gptcore.hardware.device import pick_device
        from gptcore.training.estimate import effective_flops

        try:
            device = str(pick_device(wanted))
        except GptTuiError:
            return  # the form reports a device that is not here
        self.post_message(DeviceRateMeasured(wanted, device, effective_flops(device)))

    def on_device_rate_measured(self, message: DeviceRateMeasured) -> None:
        self._device_rates[message.setting] = (message.device, message.rate)
        self._show_plan()

    def _stats_text(self) -> str:
        s = self.state.last_step
        started = self.state.started
        device = started.device if started else "–"
        if s is None:
            if self.state.state == "idle" and self.watching is None:
                return self._plan_text()
            return f"device {device}"
        total = f"/{s.total_steps:,}" if s.total_steps else ""
        last_eval = self.state.evals[-1] if self.state.evals else None
        losses = f" · val {last_eval.val_loss:.3f}" if last_eval else ""
        # No ETA once the run is over (a stale one would look like time left).
        eta = f" · ETA {format_duration(self.state.eta_s())}" if self.state.active else ""
        return (
            f"step {s.step + 1:,}{total} · epoch {s.epoch + 1}{eta}\n"
            f"tokens {s.tokens_seen:,} · {s.tokens_per_s:,.0f} tok/s · lr {s.lr:.1e}\n"
            f"loss {s.loss:.3f}{losses} · {device}"
        )
