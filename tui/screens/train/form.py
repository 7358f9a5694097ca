"""The Train screen's form: a config, a model preset and the hyperparameters the
user edits (tui.configs: each field is a declared setting), checked as they type.

After every check it posts TrainForm.Checked with the configs it describes (None
when they cannot run) and why Start is blocked; the pane passes valid configs on
to the app (RunConfigChanged) and updates its keys and the model summary. A watched or resumed run's own
configs show under an entry of their own in the config list; a watched run's form
is read-only.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, Select, Static

from gptcore.errors import GptTuiError
from gptcore.settings.model import PRESETS, GPTConfig
from gptcore.settings.train import TrainConfig

from ...configs import (
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
from ..dialogs import PromptScreen

RUN_ENTRY = "run:"  # config-list key prefix of a watched or resumed run's own configs
BATCH_KEY = "batch_size"  # its row has an "auto" button (gptcore.planner.autobatch)


def input_id(field: Field) -> str:
    """The id of the input that edits `field` ("f-model-context-length")."""
    return "f-" + field.key.replace(".", "-").replace("_", "-")


AUTO_HELP = (
    "batch size auto: the largest batch that fits this device's free memory (a trial "
    "step confirms it); grad_accum keeps the effective batch. Press again for a number."
)


class TrainForm(VerticalScroll, can_focus=False):
    """The config select, the preset select, one input per field and why Start is blocked."""

    class Checked(Message):
        """The form was checked: `config` is what it describes (None when that cannot
        run), `reason` why Start is blocked (None: it can start)."""

        def __init__(
            self, config: tuple[GPTConfig, TrainConfig] | None, reason: str | None
        ) -> None:
            super().__init__()
            self.config, self.reason = config, reason

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        # The config the fields edit (the chosen config, or a preset picked over it).
        self.base_model: GPTConfig = PRESETS["tiny"]
        self.base_train = TrainConfig()
        self.errors: dict[str, str] = {}  # field key -> why its input is invalid
        self.form_error: str | None = None  # a rule across fields, or a config that failed to load
        self.watched: str | None = None  # the watched run's name while the form shows it
        self.config_problem: str | None = None  # why the watched run's config is not shown
        self.config_key: str | None = None  # the config-list entry the form shows
        self._validation_pending = False
        self._batch_before_auto = ""  # the batch size the "auto" button replaced
        # The watched or resumed run's own configs, under their config-list key.
        self._run_configs: dict[str, tuple[GPTConfig, TrainConfig]] = {}

    def compose(self) -> ComposeResult:
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
                yield Input(id=input_id(field), compact=True)
                if field.key == BATCH_KEY:
                    yield Button("auto", id="batch-auto", compact=True, tooltip=AUTO_HELP)
        yield Static("", id="form-reason")

    def on_mount(self) -> None:
        self._load_config(self.query_one("#config-select", Select).value)

    def _initial_config(self) -> str:
        key = self.app.state.settings.config
        keys = [k for _, k in list_configs()]
        if key not in keys:  # a first start, or a saved config since deleted
            key = first_run_config() if first_run_config() in keys else keys[0]
        return key

    def _input(self, field: Field) -> Input:
        return self.query_one(f"#{input_id(field)}", Input)

    # ------------------------------------------------------------ which config

    @on(Select.Changed, "#config-select")
    def _config_selected(self, event: Select.Changed) -> None:
        # Changed is queued: skip stale ones and the one for what is already loaded.
        if event.value == event.select.value and event.value != self.config_key:
            self._load_config(event.value)

    def _load_config(self, key: str) -> None:
        if key in self._run_configs:  # a run's own configs: not saved as the user's choice
            self.base_model, self.base_train = self._run_configs[key]
            self.config_key = key
            self._fill()
            return
        try:
            model, train = load_config(key)
        except GptTuiError as exc:
            self.form_error = str(exc)
            self._show_reason()
            self.notify(str(exc), title="Config", severity="error")
            return
        self.base_model, self.base_train = model, train
        self.config_key = key
        self.app.state.settings.config = key
        self.app.save_settings()
        self._fill()

    def show_run_config(self, label: str, model: GPTConfig, train: TrainConfig) -> None:
        """Fill the form with a watched or resumed run's own configs, under an entry
        of its own in the config list, so the form names what it shows."""
        key = RUN_ENTRY + label
        if key == self.config_key:
            self.show_config_problem(None)
            return
        self.config_problem = None
        self._run_configs = {key: (model, train)}
        select = self.query_one("#config-select", Select)
        select.set_options([*list_configs(), (label, key)])
        self.config_key = key  # first: the Changed messages that follow are then ignored
        select.value = key
        self._load_config(key)

    def show_watched(self, name: str) -> None:
        """Show the watched run `name`'s config, read-only; until it is read the form
        is blank rather than showing another config."""
        self.watched, self.config_problem = name, "no config.toml yet"
        self.disabled = True
        self.query_one("#preset-select", Select).clear()
        for field in FIELDS:
            self._input(field).value = ""
        self.schedule_validation()

    def show_config_problem(self, problem: str | None) -> None:
        """Why the watched run's config cannot be shown (its config.toml is damaged)."""
        if problem != self.config_problem:
            self.config_problem = problem
            self._validate_all()  # shows the problem in the form and the model summary

    def release(self) -> None:
        """Editable again (the run it showed is no longer watched); the fields keep
        what they show until another config is chosen."""
        if self.watched is not None:
            self.watched = self.config_problem = None
            self.disabled = False
            self.schedule_validation()

    def show_own_config(self) -> None:
        """Editable again, on the user's own config choice (still in the settings)."""
        self.release()
        self._run_configs = {}
        key = self._initial_config()
        select = self.query_one("#config-select", Select)
        select.set_options(list_configs())
        self.config_key = key
        select.value = key
        self._load_config(key)

    @on(Select.Changed, "#preset-select")
    def _preset_selected(self, event: Select.Changed) -> None:
        if not isinstance(event.value, str) or event.value != event.select.value:
            return  # blank ("custom model") or a stale message
        preset = PRESETS[event.value]
        if preset != self.base_model:
            self.base_model = preset
            self._fill()

    def _fill(self) -> None:
        preset = next((n for n, c in PRESETS.items() if c == self.base_model), None)
        select = self.query_one("#preset-select", Select)
        if preset is None:
            select.clear()  # "custom model": the config changes a preset's shape
        else:
            select.value = preset
        for field in FIELDS:
            self._input(field).value = field_text(field, self.base_model, self.base_train)
        self.schedule_validation()

    @on(Button.Pressed, "#batch-auto")
    def _batch_auto(self, event: Button.Pressed) -> None:
        """Toggle the batch size between "auto" and the number it had (the config's
        when it had none): auto keeps the effective batch (grad_accum follows)."""
        event.stop()
        field = next(f for f in FIELDS if f.key == BATCH_KEY)
        widget = self._input(field)
        if widget.value.strip() != "auto":
            self._batch_before_auto = widget.value
            widget.value = "auto"
        else:
            number = self._batch_before_auto or field_text(field, self.base_model, self.base_train)
            if number.strip() == "auto":  # the config itself says auto: the default number
                number = field_text(field, self.base_model, TrainConfig())
            widget.value = number

    # ------------------------------------------------------------ checking

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        if self._validation_pending:
            return  # a full check is queued (the form is being filled)
        field = next(f for f in FIELDS if input_id(f) == event.input.id)
        self._check_field(field)
        self._check_form()

    def schedule_validation(self) -> None:
        """Check every field once the current changes are in (after a refresh)."""
        if not self._validation_pending:
            self._validation_pending = True
            self.call_after_refresh(self._validate_all)

    def _validate_all(self) -> None:
        self._validation_pending = False
        self.errors = {}
        for field in FIELDS:
            self._check_field(field)
        self._check_form()

    def _check_field(self, field: Field) -> None:
        widget = self._input(field)
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
        """Rules across fields, then tell the pane what the form describes."""
        self.form_error, config = None, None
        if not self.errors:
            try:
                config = self.configs()
            except GptTuiError as exc:
                self.form_error = str(exc)  # e.g. heads vs emb_dim
        self._show_reason(config)

    def values(self) -> dict[str, object]:
        """The typed values of every valid input."""
        return {
            field.key: parse_field(field, self._input(field).value)
            for field in FIELDS
            if field.key not in self.errors
        }

    def configs(self) -> tuple[GPTConfig, TrainConfig]:
        """The (model, train) configs the form describes, on the loaded corpus;
        ConfigError when they cannot run."""
        return build_configs(
            self.base_model, self.base_train, self.values(), self.app.state.corpus_source
        )

    def blocking_reason(self) -> str | None:
        """Why Start is blocked, or None."""
        if self.watched is not None and self.config_problem is not None:
            return f"the config of {self.watched} is not shown: {self.config_problem}"
        if self.errors:  # each message names its field by the form's label
            return next(iter(self.errors.values()))
        return self.form_error

    def _show_reason(self, config: tuple[GPTConfig, TrainConfig] | None = None) -> None:
        reason = self.blocking_reason()
        text = f"Can't start: {reason}" if reason else ""
        if self.watched is not None:
            text = f"{self.watched}'s own config, read-only: w leaves watch mode"
            text += f"\n{reason}" if reason else ""
        self.query_one("#form-reason", Static).update(Text(text))
        self.post_message(self.Checked(config, reason))

    # ------------------------------------------------------------ saving

    def ask_to_save(self) -> None:
        """Ask for a name and save the form's configs as the user's own config."""

        reason = self.blocking_reason()
        if reason:
            self.notify(reason, title="Can't save", severity="error")
            return

        def named(name: str | None) -> None:
            if not name:
                return
            try:
                path = save_config(name, *self.configs())
            except GptTuiError as exc:
                self.notify(str(exc), title="Can't save", severity="error")
                return
            select = self.query_one("#config-select", Select)
            select.set_options(list_configs())
            select.value = str(path)
            self.notify(f"saved {path}", title="Config")

        self.app.push_screen(PromptScreen("Save this config as:", placeholder="name"), named)
