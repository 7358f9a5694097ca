"""Chat's controls panel: the mode, the sampling settings (validated as typed), the
end-of-text stop, the precision, the reason a value is refused, and the keys.

The settings come from their declarations (gptcore.settings.sampling) and are parsed
and checked by gptcore.sampling.from_text.settings_from_text, like `gpt-tui
generate`'s flags. Chat samples from the start (temperature 1, top-k 40); blank
top-k / top-p / seed mean "off" / "random". The samplers beyond the book sit in a
collapsed section; the list settings (logit bias, ban) take comma-separated items.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Checkbox, Collapsible, Input, Label, Select, Static

from gptcore.errors import GenerationError
from gptcore.settings.sampling import GenerationSettings, sampler_names

from ...fields import SettingField, setting_fields

CONTROLS = setting_fields(
    GenerationSettings,
    ["temperature", "top_k", "top_p", "max_new_tokens", "seed", "num_samples"],
    {"temperature": 1.0, "top_k": 40},
)
SAMPLER_CONTROLS = setting_fields(GenerationSettings, sampler_names())
LIST_CONTROLS = ("logit_bias", "ban")
MODES = ("continue", "chat")
KEYS_HELP = (
    "ctrl+n inspect\nctrl+f confidence\nctrl+r new seed\n"
    "ctrl+y copy answer\nctrl+s save transcript\nctrl+l clear\nctrl+o model"
)


def _row(field: SettingField) -> Horizontal:
    return Horizontal(
        Label(field.label, classes="chat-label"),
        Input(field.initial, id=f"chat-{field.name}", compact=True),
        classes="chat-row",
    )


class ChatControls(VerticalScroll, can_focus=False):
    """The controls; `settings` is None while a value is refused (`errors` says why,
    by field, in the words of the labels on screen).

    Nothing is validated until `validate()` is first called (validating imports
    torch, which must not delay the app's first frame); from then on every change is.
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.settings: GenerationSettings | None = None
        self.errors: dict[str, str] = {}
        # The loaded model's vocabulary and window (none: GPT-2's, window unknown).
        self.limits: dict[str, int] = {}
        self.active = False

    def compose(self) -> ComposeResult:
        with Horizontal(classes="chat-row"):
            yield Label("mode", classes="chat-label")
            yield Select(
                [(m, m) for m in MODES],
                value="continue",
                allow_blank=False,
                id="chat-mode",
                compact=True,
            )
        for field in CONTROLS:
            yield _row(field)
        with Collapsible(title="samplers", collapsed=True, id="chat-samplers"):
            for field in SAMPLER_CONTROLS:
                yield _row(field)
        yield Checkbox("stop at end-of-text", True, id="chat-eos", compact=True)
        with Horizontal(classes="chat-row"):
            yield Label("dtype", classes="chat-label")
            yield Select(
                [("fp32", "fp32")], value="fp32", allow_blank=False, id="chat-dtype", compact=True
            )
        yield Static("", id="chat-reason", markup=False)
        yield Static(KEYS_HELP, id="chat-keys", markup=False)

    @property
    def mode(self) -> str:
        """ "continue" (the book's plain continuation) or "chat" (a User/Assistant transcript)."""
        return str(self.query_one("#chat-mode", Select).value)

    def set_precisions(self, precisions: list[str], current: str) -> None:
        """Offer the precisions this device runs, `current` chosen if among them."""
        dtype = self.query_one("#chat-dtype", Select)
        with dtype.prevent(Select.Changed):
            dtype.set_options([(p, p) for p in precisions])
            dtype.value = current if current in precisions else "fp32"

    def set_model(self, vocab_size: int, context_length: int) -> None:
        """Check from now on against the loaded model's vocabulary and window."""
        self.limits = {"vocab_size": vocab_size, "context_length": context_length}
        self.validate()

    @on(Input.Changed)
    @on(Checkbox.Changed, "#chat-eos")
    def _changed(self) -> None:
        if self.active:
            self.validate()

    def validate(self) -> None:
        """Parse and check every control; mark the refused ones and say why."""
        from gptcore.sampling.from_text import messages_by_label, settings_from_text, split_ban_list

        self.active = True
        fields = (*CONTROLS, *SAMPLER_CONTROLS)
        values = {f.name: self.query_one(f"#chat-{f.name}", Input).value for f in fields}
        lists = {name: split_ban_list(values.pop(name)) for name in LIST_CONTROLS}
        eos = self.query_one("#chat-eos", Checkbox).value
        try:
            self.settings = settings_from_text(values, stop_at_eos=eos, **lists, **self.limits)
            self.errors = {}
        except GenerationError as exc:
            labels = {f.name: f.label for f in fields}
            self.settings, self.errors = None, messages_by_label(exc, labels)
        for f in fields:
            widget = self.query_one(f"#chat-{f.name}", Input)
            widget.set_class(f.name in self.errors, "-invalid")
            widget.tooltip = Text(self.errors.get(f.name, f.help))
        self.query_one("#chat-reason", Static).update(Text("\n".join(self.errors.values())))
