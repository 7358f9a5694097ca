"""Pick a run to watch: type a run directory or choose one under the data dir."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option


def run_dir_problem(path: Path) -> str | None:
    """Why `path` cannot be watched, or None."""
    if not path.exists():
        return f"no such folder: {path}"
    if not path.is_dir():
        return f"not a folder: {path} (pick the run's directory)"
    return None


def known_runs() -> list[tuple[Path, str]]:
    """(run directory, label) under the data dir, newest first; empty if unreadable."""
    from gptcore.runs.metrics import list_runs

    try:
        runs = list_runs()
    except OSError:  # an unreadable runs folder must not block typing a path
        return []
    out = []
    for run in reversed(runs):
        step = f", step {run.last_step}" if run.last_step is not None else ""
        out.append((run.path, f"{run.name}  ({run.status}{step})"))
    return out


class OpenRunScreen(ModalScreen[str | None]):
    """Returns the chosen run directory, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="open-run-cancel")]

    def __init__(self, title: str = "Watch a run (read-only): type its folder or pick one") -> None:
        super().__init__()
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Static(self.title_text, markup=False)
            yield Input(placeholder="run directory, then Enter", id="run-path", compact=True)
            yield Static("", id="run-path-error", markup=False)
            yield OptionList(id="run-list")

    def on_mount(self) -> None:
        runs = known_runs()
        listing = self.query_one("#run-list", OptionList)
        if runs:
            listing.add_options([Option(Text(label), id=str(path)) for path, label in runs])
        else:
            listing.add_option(Option("no runs under the data dir yet", disabled=True))
        self.query_one("#run-path", Input).focus()

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
