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

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="open-run-cancel"),
        # Reached only from the path field (the list takes ↓ itself).
        Binding("down", "to_list", "The list", id="open-run-list", show=False),
    ]

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
            yield Input(
                placeholder="run directory, then Enter · ↓: pick from the list",
                id="run-path",
                compact=True,
            )
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
            listing.highlighted = 0  # Enter on the list picks a run without ↓ first
        else:
            listing.add_option(Option("no runs under the data dir yet", disabled=True))
        self.listed = True

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_to_list(self) -> None:
        self.query_one("#run-list", OptionList).focus()

    @on(Input.Submitted, "#run-path")
    def _typed(self, event: Input.Submitted) -> None:
        typed = event.value.strip()
        if not typed:  # Path("") is the current folder: never what was meant
            self._refuse("type a run's folder first, or pick one from the list (↓, Enter)")
            return
        self._choose(Path(typed).expanduser())

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self._choose(Path(event.option.id))

    def _choose(self, path: Path) -> None:
        problem = run_dir_problem(path)
        if problem:
            self._refuse(problem)
            return
        self.dismiss(str(path))

    def _refuse(self, problem: str) -> None:
        self.query_one("#run-path-error", Static).update(problem)
