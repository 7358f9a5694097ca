"""The dialog that continues a finished run: it asks for more epochs (or a higher step
limit), checked by the engine against the settings' declarations, and says what the
learning rate does for the extra steps (gptcore.training.continuation)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from gptcore.errors import ConfigError
from gptcore.training.continuation import ContinueOffer, continue_overrides

from ..dialogs import FormDialog


def finished_text(offer: ContinueOffer) -> str:
    """`RUN/NAME is finished: all 2 epochs done (step 84).`"""
    if offer.max_steps is not None and offer.step >= offer.max_steps:
        done = f"its max steps ({offer.max_steps:,}) reached"
    else:
        done = f"all {offer.epochs} epochs done"
    return f"{offer.label} is finished: {done} (step {offer.step:,}). Train it further to:"


class ContinueRunScreen(FormDialog[tuple[str, ...]]):
    """Ask how far to continue a finished run; dismissed with the `--set` overrides
    that do it, or None (Escape, Cancel)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="continue-cancel")]
    ACCEPT_ID = "continue-yes"

    def __init__(self, offer: ContinueOffer) -> None:
        super().__init__()
        self.offer = offer

    def compose(self) -> ComposeResult:
        offer = self.offer
        steps = "" if offer.suggested_max_steps is None else str(offer.suggested_max_steps)
        steps_hint = "max steps" + (" (blank = no limit)" if offer.max_steps is None else "")
        with Vertical(classes="dialog wide", id="continue-dialog"):
            yield Static(finished_text(offer), classes="question", markup=False)
            with Horizontal(classes="continue-field"):
                yield Label(f"epochs (done {offer.epochs_done})", markup=False)
                yield Input(str(offer.suggested_epochs), id="continue-epochs", compact=True)
            with Horizontal(classes="continue-field"):
                yield Label(steps_hint, markup=False)
                yield Input(steps, id="continue-max-steps", compact=True)
            yield Static(offer.lr_rule(), id="continue-lr", markup=False)
            yield Static("", id="continue-error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Continue (enter)", id="continue-yes", variant="warning", compact=True)
                yield Button("Cancel (esc)", id="continue-no", compact=True)

    def accept(self) -> None:
        epochs = self.query_one("#continue-epochs", Input).value
        max_steps = self.query_one("#continue-max-steps", Input).value
        try:
            overrides = continue_overrides(self.offer, epochs, max_steps)
        except ConfigError as exc:
            self.query_one("#continue-error", Static).update(str(exc))
            field = exc.errors[0].field if exc.errors else "epochs"
            target = "#continue-max-steps" if field == "max_steps" else "#continue-epochs"
            self.query_one(target, Input).focus()
            return
        self.dismiss(tuple(overrides))
