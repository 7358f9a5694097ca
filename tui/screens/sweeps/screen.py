"""The Sweeps view as a screen of its own, opened from the command palette ("Sweeps"):
the Sweeps pane over the footer; Escape goes back."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen

from ...widgets.footer import StableFooter
from .pane import SweepsPane


class SweepsScreen(Screen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="sweeps-back")]

    def compose(self) -> ComposeResult:
        yield SweepsPane()
        yield StableFooter(compact=True)

    def on_mount(self) -> None:
        self.query_one(SweepsPane).focus()
