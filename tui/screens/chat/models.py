"""Chat's model picker: the menu of models (checkpoints, the run just trained,
downloaded GPT-2 sizes, listed in a worker), the loaded model, and the status line
under the menu. Loading runs in a worker; only the latest load asked for counts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.timer import Timer
from textual.widgets import Select, Static
from textual.worker import Worker, WorkerState

from gptcore.runs.rundir import RunDir
from gptcore.weights.spec import LATEST, ModelChoice, choice_for, describe_spec

from .messages import ChatChoices, ModelLoaded, describe_error

if TYPE_CHECKING:
    from gptcore.model.gpt import GPTModel

PROMPT = "model: none yet (ctrl+o)"
STATUS_INTERVAL_S = 0.5  # the loading time ticks while a model loads


def just_trained(run_dir: Path | None) -> ModelChoice | None:
    """The Train screen's run (tui.messages.RunFolderChanged), once it has a checkpoint."""

    if run_dir is None or not RunDir(run_dir).has_checkpoints():
        return None
    return ModelChoice(f"just trained: {Path(run_dir).name} (latest)", str(run_dir), LATEST)


class ModelMenu(Select[str]):
    """The menu; `choices` are the models it offers."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__([], prompt=PROMPT, id=id, compact=True)
        self.choices: list[ModelChoice] = []

    def offer(self, choices: list[ModelChoice], keep: tuple[str | None, ...], current: str | None):
        """Show `choices` (plus the specs in `keep`, opened from another screen and
        not found here), `current` selected, without posting Select.Changed."""
        choices = list(choices)
        for spec in keep:
            if spec and all(c.spec != spec for c in choices):
                choices.append(choice_for(spec))
        self.choices = choices
        with self.prevent(Select.Changed):
            self.set_options([(Text(c.label), c.spec) for c in choices])
            if current is not None:
                self.value = Select.NULL  # set_options bypassed the display: force it
                self.value = current

    def open_menu(self) -> None:
        """Focus and expand the menu (ctrl+o), the first model highlighted."""
        self.focus()

        def expand() -> None:
            # After the focus lands: expanding focuses the menu, which must come last.
            self.expanded = True
            if self.value is Select.NULL and self.choices:
                from textual.widgets._select import SelectOverlay

                self.query_one(SelectOverlay).highlighted = 1  # the first model, not the prompt

        self.call_after_refresh(expand)


class ModelPicker(Vertical):
    """The menu and the status line; holds the loaded `model` (None while loading).

    A finished load posts ModelLoaded, which goes on to the pane once this picker
    has taken the model; `generating` is the pane's, for the status line.
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model: GPTModel | None = None
        self.spec: str | None = None
        self.precision = "fp32"
        # The model being loaded, as the status names it. Not `loading`: that is
        # Widget's, and a true value covers the widget with a spinner.
        self.opening: str | None = None
        self.load_error: str | None = None
        self.wanted: str | None = None  # asked for, not loaded yet
        self.generating = False
        self._load = 0  # the latest load: an older one's model is dropped
        self._started = 0.0
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield ModelMenu(id="chat-model")
        yield Static("no model loaded", id="chat-status", markup=False)

    def on_mount(self) -> None:
        self.render_status()

    @property
    def menu(self) -> ModelMenu:
        return self.query_one(ModelMenu)

    # ------------------------------------------------------------ listing

    def list_models(self, trained_run: Path | None) -> None:
        """Re-list the models in a worker; it posts ChatChoices (for the pane)."""
        self._list(trained_run)

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-list")
    def _list(self, trained_run: Path | None) -> None:
        from gptcore.weights.modelspec import available_precisions, list_choices

        choices = list_choices()
        just = just_trained(trained_run)
        if just is not None:
            choices.insert(0, just)
        self.post_message(ChatChoices(choices, available_precisions()))

    def on_chat_choices(self, message: ChatChoices) -> None:
        """Offer the listed models (the message goes on to the pane, for the precisions)."""
        self.menu.offer(message.choices, (self.spec, self.wanted), self.wanted or self.spec)

    def choose_precision(self, precision: str) -> str | None:
        """Use `precision` from now on; returns the spec to load again at it (None:
        no change, or no model asked for)."""
        if precision == self.precision:
            return None
        self.precision = precision
        return self.wanted or self.spec

    # ------------------------------------------------------------ loading

    def open(self, spec: str, precision: str, reload: bool = False) -> None:
        """Load the model a spec names (PATH, RUN:best, gpt2:SIZE, ...) in a worker."""
        if spec == self.spec and self.model is not None and not reload:
            return
        # Let the old model go first: two large models at once may not fit in memory.
        self.model, self.spec, self.precision = None, None, precision
        self.wanted = spec
        self._load += 1
        self.opening, self.load_error = describe_spec(spec), None
        self._started = time.monotonic()
        if self._timer is None:
            self._timer = self.set_interval(STATUS_INTERVAL_S, self.render_status)
        menu = self.menu
        if any(c.spec == spec for c in menu.choices):
            with menu.prevent(Select.Changed):
                menu.value = spec
        else:
            self.list_models(self.app.state.run_dir)
        self.render_status()
        self._load_model(self._load, spec, precision)

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-load")
    def _load_model(self, load: int, spec: str, precision: str) -> None:
        from gptcore.weights.modelspec import load_spec

        model = load_spec(spec, "auto", precision).model
        self.post_message(ModelLoaded(load, spec, model, precision))

    def on_model_loaded(self, message: ModelLoaded) -> None:
        if message.load != self._load:
            message.stop()  # a newer load was asked for
            return
        self.model, self.spec, self.precision = message.model, message.spec, message.precision
        self.wanted = None
        self._end_loading()
        self.notify(f"{describe_spec(message.spec)} is ready", title="Chat", markup=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        text = describe_error(event.worker.error)
        if event.worker.group != "chat-load":
            self.notify(text, title="Chat", severity="error", markup=False)
            return
        self.wanted = None
        self.load_error = f"could not load {self.opening}: {text}"
        self._end_loading()
        self.notify(
            text, title="Could not load the model", severity="error", timeout=10, markup=False
        )

    def _end_loading(self) -> None:
        self.opening = None
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.render_status()

    # ------------------------------------------------------------ status

    def render_status(self) -> None:
        if self.opening:
            elapsed = time.monotonic() - self._started
            text = f"loading {self.opening} ({self.precision}) … {elapsed:.0f}s"
        elif self.load_error:
            text = self.load_error
        elif self.model is None:
            text = "no model loaded: choose one above (ctrl+o)"
        else:
            c = self.model.config
            state = "generating … (Esc stops)" if self.generating else "ready"
            text = (
                f"{describe_spec(self.spec or '')} · {self.precision} · "
                f"ctx {c.context_length} · {state}"
            )
        self.query_one("#chat-status", Static).update(Text(text))
