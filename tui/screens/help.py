"""The help screen: every key of the app and of each screen, with what it does."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from gptcore.util.paths import places


def _rows(bindings: list[BindingType]) -> list[tuple[str, str]]:
    rows = []
    for b in bindings:
        if isinstance(b, Binding):
            key = b.key_display or ", ".join(k.strip() for k in b.key.split(","))
            row = (key, b.description or b.action)
            if row not in rows:  # a key's fallback twin (Train's refused controls)
                rows.append(row)
    return rows


def help_table(sections: list[tuple[str, list[BindingType]]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for title, bindings in sections:
        table.add_row(f"[reverse] {title} [/]", "")
        for key, description in _rows(bindings):
            table.add_row(key.replace("[", r"\["), description)
        table.add_row("", "")
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close", id="help-close")]

    def __init__(self, sections: list[tuple[str, list[BindingType]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog wide", id="help-body"):
            yield Static("[b]Keys[/] — Escape closes · ctrl+p opens the command palette")
            yield Static(help_table(self.sections))
            yield Static(where_files_are(), id="help-places", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)


def where_files_are() -> str:
    """The folders gpt-tui writes, by their real paths on this machine (`gpt-tui info`
    also gives their sizes)."""
    by_name = {place.name: place for place in places()}
    roots = [by_name[name] for name in ("data", "config", "cache") if name in by_name]
    lines = [f"  {place.name:<7} {place.path} · {place.what}" for place in roots]
    return "Your files (gpt-tui info lists them with their sizes):\n" + "\n".join(lines)
