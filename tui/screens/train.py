"""The Train screen: pick and edit a config, start / pause / stop a run, and watch
its loss curves, throughput and samples live; or follow a run started elsewhere.
`m` swaps the charts for the model summary of the form's config.

Training runs in a thread worker. The worker never touches widgets: the
trainer's events reach this screen as throttled TrainEvents messages (tui.pump).
A watched run is followed by polling its metrics.jsonl on a timer.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import Input, Label, RichLog, Select, Sparkline, Static
from textual.worker import Worker, WorkerState

from gptcore.config import PRESETS, GPTConfig, TrainConfig
from gptcore.errors import GptTuiError
from gptcore.events import CheckpointSaved, Event

from ..configs import (
    FIELDS,
    Field,
    build_configs,
    field_text,
    list_configs,
    load_config,
    parse_field,
    save_config,
    validate_field,
)
from ..pump import EventPump, TrainEvents
from ..runstate import RunState, format_duration
from ..widgets.loss_chart import LossChart
from ..widgets.model_summary import ModelSummaryView

POLL_S = 0.25  # how often a watched metrics.jsonl is read


def _input_id(field: Field) -> str:
    return "f-" + field.key.replace(".", "-").replace("_", "-")


def memory_text(device: str) -> str:
    """GPU memory on CUDA, else this process's peak resident memory."""
    torch = sys.modules.get("torch")
    if device.startswith("cuda") and torch is not None and torch.cuda.is_available():
        used = torch.cuda.memory_allocated() / 2**20
        peak = torch.cuda.max_memory_allocated() / 2**20
        return f"gpu {used:,.0f}/{peak:,.0f} MiB"
    try:
        import resource

        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        scale = 1 if sys.platform != "darwin" else 1 / 1024  # bytes on macOS
        return f"rss {kib * scale / 1024:,.0f} MiB"
    except (ImportError, OSError):
        return "mem –"


class TrainPane(Container, can_focus=True):
    """Configure, run and watch training."""

    BINDINGS = [
        Binding("s", "start", "Start", id="train-start"),
        Binding("p", "pause", "Pause", id="train-pause"),
        Binding("x", "stop", "Stop", id="train-stop"),
        Binding("k", "checkpoint", "Ckpt", id="train-checkpoint"),
        Binding("w", "watch", "Watch", id="train-watch"),
        Binding("e", "export", "PNG", id="train-export"),
        Binding("a", "save_config", "Save config", id="train-save-config", show=False),
        Binding("m", "toggle_summary", "Model", id="train-summary"),
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
        self._follower: object | None = None
        self._timer: Timer | None = None
        self._run_token = 0
        self._stop_requested = False
        self._samples_shown = 0
        self._validation_pending = False
        self._config_key: str | None = None

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
                yield Static("idle: pick a config and press s to start", id="run-state")
                yield Static("", id="run-stats")
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
        key = self.app.settings.config
        keys = [k for _, k in list_configs()]
        if key not in keys:
            key = "preset:tiny" if "preset:tiny" in keys else keys[0]
        return key

    def on_mount(self) -> None:
        self._load_config(self.query_one("#config-select", Select).value)
        self.watch(self.app, "run_config", self._summarize, init=False)

    # ------------------------------------------------------------ model summary

    def action_toggle_summary(self) -> None:
        summary = self.query_one(ModelSummaryView)
        summary.display = not summary.display
        for selector in self._RUN_VIEWS:
            self.query_one(selector).display = not summary.display
        self._summarize(self.app.run_config)

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
        try:
            model, train = load_config(key)
        except GptTuiError as exc:
            self.form_error = str(exc)
            self._show_form_reason()
            self.notify(str(exc), title="Config", severity="error")
            return
        self.base_model, self.base_train = model, train
        self._config_key = key
        self.app.settings.config = key
        self.app.save_settings()
        self._fill_form()

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
        widget.tooltip = error
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
                    self.base_model, self.base_train, self.form_values(), self.app.corpus_source
                )
            except GptTuiError as exc:
                self.form_error = str(exc)  # e.g. heads vs emb_dim
            else:
                self.app.run_config = config
        self._show_form_reason()
        self.refresh_bindings()

    def blocking_reason(self) -> str | None:
        """Why Start is blocked, or None."""
        if self.errors:
            key, error = next(iter(self.errors.items()))
            label = next(f.label for f in FIELDS if f.key == key)
            return f"{label}: {error}"
        return self.form_error

    def _show_form_reason(self) -> None:
        reason = self.blocking_reason()
        self.query_one("#form-reason", Static).update(
            Text(f"Can't start: {reason}" if reason else "")
        )
        self.query_one(ModelSummaryView).set_stale(reason)

    # ------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        active = self.live and self.state.active
        if action in ("pause", "stop", "checkpoint"):
            return True if active else None
        if action in ("start", "watch"):
            return None if active else True
        if action == "export":
            return True if self.state.evals else None
        return True

    def action_start(self) -> None:
        if self.live and self.state.active:
            return
        reason = self.blocking_reason()
        if reason:
            self.notify(reason, title="Can't start", severity="error")
            return
        model, train = build_configs(
            self.base_model, self.base_train, self.form_values(), self.app.corpus_source
        )
        self._stop_watching()
        self._reset(RunState(state="starting", message="building the model …"))
        self.live = True
        self._stop_requested = False
        self._run_token += 1
        self.run_training(model, train, f"live-{self._run_token}")
        self.refresh_bindings()

    def action_pause(self) -> None:
        trainer = self.trainer
        if trainer is None or not self.state.active:
            return
        if self.state.state == "paused":
            trainer.unpause()
            self.state.state = "running"
            self.state.message = "resumed"
        else:
            trainer.pause()
            self.state.state = "paused"
            self.state.message = "paused: press p to resume"
        self._render_state()

    def action_stop(self) -> None:
        self._stop_requested = True
        if self.trainer is not None:
            self.trainer.cancel()
        self.state.message = "stopping after this step …"
        self._render_state()

    def action_checkpoint(self) -> None:
        if self.trainer is not None:
            self.trainer.request_checkpoint()
            self.notify("a checkpoint will be saved after this step", title="Checkpoint")

    def action_watch(self) -> None:
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
                self.base_model, self.base_train, self.form_values(), self.app.corpus_source
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
        if not self.state.evals:
            self.notify("no evaluation yet", title="Export", severity="warning")
            return
        folder = self.run_dir or self.watching
        if folder is None:
            from gptcore.paths import data_dir

            folder = data_dir()
        self._export_worker(Path(folder) / "loss.png")

    @work(thread=True, exclusive=True, exit_on_error=False, group="export")
    def _export_worker(self, path: Path) -> None:
        from ..export import export_loss_png

        try:
            export_loss_png(self.state, path)
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
        self.live = True
        self._stop_requested = False
        self._run_token += 1
        self.run_training(None, None, f"live-{self._run_token}", resume=str(path))
        self.refresh_bindings()

    @work(thread=True, exclusive=True, exit_on_error=False, group="train")
    def run_training(
        self,
        model: GPTConfig | None,
        train: TrainConfig | None,
        source: str,
        resume: str | None = None,
    ) -> None:
        from gptcore.train import Trainer  # torch is imported here, off the UI thread

        pump = EventPump(self, source=source)
        try:
            if resume is not None:  # the run's own configs, as the checkpoint saved them
                from gptcore.checkpoint import load_checkpoint
                from gptcore.config import TrainConfig, dataclass_from_dict

                ckpt = load_checkpoint(resume)
                model = ckpt.model_config
                train = dataclass_from_dict(TrainConfig, ckpt.train_config, str(resume))
            trainer = Trainer(model, train, listeners=(pump,), resume=resume)
            self.trainer = trainer
            if self._stop_requested:
                trainer.cancel()
            trainer.run()
        finally:
            pump.flush()

    def on_train_events(self, message: TrainEvents) -> None:
        if message.source.startswith("live") and message.source != f"live-{self._run_token}":
            return  # a message from an earlier run
        self.apply_events(message.events)

    def apply_events(self, events: list[Event]) -> None:
        n_evals = len(self.state.evals)
        for event in events:
            self.state.apply(event)
            if isinstance(event, CheckpointSaved):
                self.notify(f"{event.reason} checkpoint: {event.path}", title="Checkpoint")
            started = self.state.started
            if started is not None and self.run_dir is None and started.run_dir:
                self.run_dir = Path(started.run_dir)
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
        self._render_state()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "train":
            return
        if event.state == WorkerState.ERROR:
            self.state.fail(str(event.worker.error))
            self.notify(self.state.message, title="Training stopped", severity="error")
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
        self._stop_requested = True
        if self.trainer is not None:
            self.trainer.cancel()
        for worker in list(self.workers):
            if worker.group == "train":
                with contextlib.suppress(Exception):  # a failed run is already reported
                    await worker.wait()

    def on_unmount(self) -> None:
        # Never leave a training thread behind the app.
        if self.trainer is not None:
            self.trainer.cancel()

    # ------------------------------------------------------------ watching

    def watch_run(self, run_dir: Path) -> None:
        """Follow RUN_DIR/metrics.jsonl read-only (a run started elsewhere)."""
        from gptcore.runs import MetricsFollower

        if self.live and self.state.active:
            self.notify("stop the current run before watching another", severity="warning")
            return
        self._stop_watching()
        self.watching = Path(run_dir)
        self.run_dir = Path(run_dir)
        self._reset(RunState(message="waiting for events …"))
        self._follower = MetricsFollower(self.watching / "metrics.jsonl")
        self._timer = self.set_interval(POLL_S, self.poll_watched)
        self.poll_watched()

    def poll_watched(self) -> None:
        if self._follower is None:
            return
        events = self._follower.poll()
        if events:
            self.apply_events(events)

    def _stop_watching(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = None
        self._follower = None
        self.watching = None

    # ------------------------------------------------------------ drawing

    def _reset(self, state: RunState) -> None:
        self.state = state
        self.run_dir = None if self.watching is None else self.watching
        self._samples_shown = 0
        self.query_one(LossChart).show_run(state)
        self.query_one("#spark-loss", Sparkline).data = []
        self.query_one("#spark-tps", Sparkline).data = []
        self.query_one("#samples", RichLog).clear()
        self._render_state()

    def _render_state(self) -> None:
        state = self.state
        head = state.state
        if self.watching is not None:
            head = f"watching {self.watching.name} (read-only) · {head}"
        line = Text(head.upper() if not self.watching else head, style="bold")
        if state.message:
            line.append(f" — {state.message}", style="")
        widget = self.query_one("#run-state", Static)
        widget.update(line)
        widget.set_class(state.state in ("nan", "error"), "-error")
        widget.set_class(state.state == "finished", "-done")
        self.query_one("#run-stats", Static).update(Text(self._stats_text()))
        self.refresh_bindings()

    def _stats_text(self) -> str:
        s = self.state.last_step
        started = self.state.started
        device = started.device if started else "–"
        if s is None:
            return f"device {device}"
        total = f"/{s.total_steps:,}" if s.total_steps else ""
        memory = "" if self.watching is not None else " " + memory_text(device)
        last_eval = self.state.evals[-1] if self.state.evals else None
        losses = f" · val {last_eval.val_loss:.3f}" if last_eval else ""
        return (
            f"step {s.step + 1:,}{total} · epoch {s.epoch + 1} · "
            f"ETA {format_duration(self.state.eta_s())}\n"
            f"tokens {s.tokens_seen:,} · {s.tokens_per_s:,.0f} tok/s · lr {s.lr:.1e}\n"
            f"loss {s.loss:.3f}{losses} · {device}{memory}"
        )
