"""Pick a run to watch: type a run directory or choose one under the data dir.

The list shows each run as the Runs tab does (gptcore.runs.table: one run-state
machine), read in a thread worker: reading every run's metrics.jsonl can take a
while, and typing a path must not wait for it.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from gptcore.errors import GptTuiError
from gptcore.runs.table import run_table


def run_dir_problem(path: Path) -> str | None:
    """Why `path` cannot be watched, or None."""
    if not path.exists():
        return f"no such folder: {path}"
    if not path.is_dir():
        return f"not a folder: {path} (pick the run's directory)"
    return None


def known_runs() -> list[tuple[Path, str]]:
    """(run directory, label) of every run under the data dir, newest first, each
    labelled with its state and steps as the run table has them; empty if the runs
    folder cannot be read."""

    try:
        rows = run_table()
    except (OSError, GptTuiError):  # an unreadable runs folder must not block typing a path
        return []
    out = []
    for row in rows:
        step = f", step {row.steps}" if row.steps is not None else ""
        out.append((row.path, f"{row.name}  ({row.state}{step})"))
    return out


class OpenRunScreen(ModalScreen[str | None]):
    """Returns the chosen run directory, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="open-run-cancel")]

    class Listed(Message):
        """The runs under the data dir, read: (run directory, label) pairs."""

        def __init__(self, runs: list[tuple[Path, str]]) -> None:
            super().__init__()
            self.runs = runs

    def __init__(self, title: str = "Watch a run (read-only): type its folder or pick one") -> None:
        super().__init__()
        self.title_text = title
        self.listed = False  # the run list has been read and shown

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Static(self.title_text, markup=False)
            yield Input(placeholder="run directory, then Enter", id="run-path", compact=True)
            yield Static("", id="run-path-error", markup=False)
            yield OptionList(Option("reading the runs …", disabled=True), id="run-list")

    def on_mount(self) -> None:
        self.query_one("#run-path", Input).focus()
        self._list_runs()

    @work(thread=True, exclusive=True, exit_on_error=False, group="list-runs")
    def _list_runs(self) -> None:
        self.post_message(self.Listed(known_runs()))

    def on_open_run_screen_listed(self, message: Listed) -> None:
        listing = self.query_one("#run-list", OptionList)
        listing.clear_options()
        if message.runs:
            listing.add_options([Option(Text(label), id=str(path)) for path, label in message.runs])
        else:
            listing.add_option(Option("no runs under the data dir yet", disabled=True))
        self.listed = True

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted, "#run-path")
    def _typed(self, event: Input.Submitted) -> None:
        self._choose(Path(event.value.strip()).expanduser())

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self._choose(Path(event.option.id))

    def _choose(self, path: Path) -> None:
        problem = run_dir_problem(path)
        if problem:
            self.query_one("#run-path-error", Static).update(problem)
            return
        self.dismiss(str(path))
