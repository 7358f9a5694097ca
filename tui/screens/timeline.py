"""The sample timeline of a run: the same prompt and seed generated from each of its
checkpoints, with step, tokens seen and val loss, beside a second model's text.

The work is gptcore.timeline.sample_timeline's (cached in RUN/timeline.json, so a
second visit is instant); this screen runs it in a worker, shows its progress and
lists the entries. Model text is shown verbatim (rich Text, never markup).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, ProgressBar, Select, Static
from textual.worker import Worker, WorkerState, get_current_worker

from gptcore.errors import GenerationError, GptTuiError
from gptcore.runs.rundir import run_prompt
from gptcore.settings.sampling import GenerationSettings
from gptcore.settings.train import TrainConfig
from gptcore.util.fmt import MISSING, format_count
from gptcore.util.progress import elapsed_eta_text
from gptcore.weights.spec import choice_for, describe_spec

from ..fields import setting_fields

if TYPE_CHECKING:
    from gptcore.sampling.timeline import TimelineEntry
    from gptcore.weights.spec import ModelChoice

NO_OTHER = ""  # the Select's value for "no second model"
# The prompt, then the sampling settings (from their declarations), parsed by
# gptcore.sampling.from_text.settings_from_text as `gpt-tui timeline`'s flags are.
SAMPLING = ("seed", "temperature", "max_new_tokens")
WIDTHS = {"seed": 7, "temperature": 5, "max_new_tokens": 5}  # the prompt takes the rest
FIELDS = setting_fields(GenerationSettings, SAMPLING, {"seed": TrainConfig.seed})
(PROMPT,) = setting_fields(TrainConfig, ["start_context"])


class TimelineProgress(Message):
    def __init__(self, computation: int, done: int, total: int) -> None:
        super().__init__()
        self.computation, self.done, self.total = computation, done, total


class OtherChoices(Message):
    def __init__(self, options: list[tuple[str, str]]) -> None:
        super().__init__()
        self.options = options


class TimelineDone(Message):
    def __init__(self, computation: int, entries: list[TimelineEntry]) -> None:
        super().__init__()
        self.computation, self.entries = computation, entries


def entry_header(entry: TimelineEntry) -> Text:
    """`step N · T tokens · val L  RUN/NAME` (a damaged one has no numbers to show)."""
    if entry.error is not None:
        return Text(f"{entry.label} (damaged)", style="bold")
    loss = MISSING if entry.val_loss is None else f"{entry.val_loss:.3f}"
    text = Text(
        f"step {format_count(entry.step)} · {format_count(entry.tokens_seen)} tokens · val {loss}",
        style="bold",
    )
    text.append(f"  {entry.label}", style="dim")
    return text


def sample_text(prompt: str, continuation: str | None, title: str | None = None) -> Text:
    """The prompt (dim) and its continuation, verbatim, under an optional title."""
    text = Text()
    if title is not None:
        text.append(f"{title}\n", style="italic dim")
    text.append(prompt, style="dim")
    text.append(continuation or "")
    return text


def entry_widget(entry: TimelineEntry, prompt: str, other_label: str | None) -> Vertical:
    """One entry: its header, then its sample, beside the second model's when there is one."""
    if entry.error is not None:
        body: list[Static] = [Static(Text(f"damaged: {entry.error}"), classes="-error")]
    else:
        body = [Static(sample_text(prompt, entry.text))]
        if other_label is not None:
            other = sample_text(prompt, entry.other_text, other_label)
            body.append(Static(other, classes="-other"))
    return Vertical(
        Static(entry_header(entry)),
        Horizontal(*body, classes="timeline-samples"),
        classes="timeline-entry",
    )


class TimelineScreen(Screen[None]):
    """A run's checkpoints, oldest first, each with its sample of the same prompt."""

    # A screen loads its own styles, so it looks the same over any app.
    CSS_PATH = Path(__file__).parent.parent / "timeline.tcss"

    BINDINGS = [
        Binding("escape", "close", "Back", id="timeline-close"),
        Binding("ctrl+r", "recompute", "Recompute", id="timeline-recompute"),
        # Priority: a focused input would take them, and it has nothing to scroll.
        Binding("pagedown", "page('down')", "Scroll", id="timeline-page-down", priority=True),
        Binding(
            "pageup", "page('up')", "Scroll up", id="timeline-page-up", show=False, priority=True
        ),
    ]

    def __init__(self, run_path: str | Path, other_spec: str | None = None) -> None:
        super().__init__()
        self.run_path = Path(run_path)
        self.other_spec = other_spec
        self.entries: list[TimelineEntry] = []
        self.prompt = run_prompt(run_path)  # one small TOML read
        self.shown_prompt = self.prompt
        self.shown_other: str | None = None
        self._computation = 0  # which computation the next message must match
        self._asked: tuple[str, str | None] = (self.prompt, other_spec)
        # The computation running: when it started and (done, total) models; None: none.
        self._started: float | None = None
        self._progress = (0, 0)

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Static(Text(f"Sample timeline · {self.run_path.name}"), id="timeline-title")
        with Horizontal(id="timeline-controls"):
            yield Label(PROMPT.label)  # the run's sample prompt is what it starts with
            yield Input(self.prompt, id="timeline-prompt", compact=True, tooltip=PROMPT.help)
            for f in FIELDS:
                yield Label(f.label)
                field = Input(f.initial, id=f"timeline-{f.name}", compact=True, tooltip=f.help)
                field.styles.width = WIDTHS[f.name]
                yield field
        with Horizontal(id="timeline-against"):
            yield Label("against")
            yield Select(
                self._other_options([]),
                value=self.other_spec or NO_OTHER,
                allow_blank=False,
                compact=True,
                id="timeline-other",
            )
        with Horizontal(id="timeline-status-row"):
            yield ProgressBar(show_eta=False, id="timeline-progress")
            yield Static("", id="timeline-status")
        yield VerticalScroll(id="timeline-entries", can_focus=True)
        yield Footer()

    def _other_options(self, choices: list[ModelChoice]) -> list[tuple[str, str]]:
        """ "none", the spec given (listed or not), then every model on disk."""

        choices = list(choices)
        if self.other_spec and all(c.spec != self.other_spec for c in choices):
            choices.insert(0, choice_for(self.other_spec))
        return [("none", NO_OTHER), *((c.label, c.spec) for c in choices)]

    def on_mount(self) -> None:
        self._list_choices()
        self.recompute()
        # A model takes seconds to sample: the elapsed time moves on between reports.
        self.set_interval(1.0, self._show_progress)

    @work(thread=True, exit_on_error=False, group="timeline-choices")
    def _list_choices(self) -> None:
        """The models on disk, listed off the UI thread (it may hash new weights)."""
        from gptcore.weights.modelspec import list_choices

        self.post_message(OtherChoices(self._other_options(list_choices())))

    def on_other_choices(self, message: OtherChoices) -> None:
        select = self.query_one("#timeline-other", Select)
        with self.prevent(Select.Changed):
            select.set_options(message.options)
            select.value = self.other_spec or NO_OTHER

    # ------------------------------------------------------------ computing

    def recompute(self) -> None:
        """Check the controls, then compute the timeline in a worker."""
        from gptcore.sampling.from_text import messages_by_label, settings_from_text

        values = {f.name: self.query_one(f"#timeline-{f.name}", Input).value for f in FIELDS}
        prompt = self.query_one("#timeline-prompt", Input).value
        try:
            settings = settings_from_text(values)
            errors: dict[str, str] = {}
        except GenerationError as exc:
            settings = None
            errors = messages_by_label(exc, {f.name: f.label for f in FIELDS})
        for f in FIELDS:
            self.query_one(f"#timeline-{f.name}", Input).set_class(f.name in errors, "-invalid")
        if settings is None:
            self._started = None  # the error stays shown, not the progress
            self._status("; ".join(errors.values()), error=True)
            return
        other = self.query_one("#timeline-other", Select).value
        self.other_spec = other if isinstance(other, str) and other else None
        self._computation += 1
        self._asked = (prompt, self.other_spec)
        self._status("sampling…")
        self._started, self._progress = time.monotonic(), (0, 0)
        bar = self.query_one("#timeline-progress", ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True
        self._compute(self._computation, prompt, settings, self.other_spec)

    @work(thread=True, exclusive=True, exit_on_error=False, group="timeline")
    def _compute(
        self, computation: int, prompt: str, settings: GenerationSettings, other: str | None
    ) -> None:
        from gptcore.sampling.timeline import sample_timeline  # torch: in the worker

        worker = get_current_worker()
        entries = sample_timeline(
            self.run_path,
            prompt,
            settings.seed,
            settings,
            other=other,
            progress=lambda done, total: self.post_message(
                TimelineProgress(computation, done, total)
            ),
            cancel=lambda: worker.is_cancelled,
        )
        if not worker.is_cancelled:
            self.post_message(TimelineDone(computation, entries))

    def on_timeline_progress(self, message: TimelineProgress) -> None:
        if message.computation == self._computation:
            bar = self.query_one("#timeline-progress", ProgressBar)
            bar.update(total=max(message.total, 1), progress=message.done)
            self._progress = (message.done, message.total)
            self._show_progress()

    def _show_progress(self) -> None:
        """`2 of 5 models sampled · 41s elapsed · ETA 1m05s` while a computation runs."""
        if self._started is None or not self._progress[1]:
            return
        done, total = self._progress
        elapsed = time.monotonic() - self._started
        self._status(f"{done} of {total} models sampled · {elapsed_eta_text(done, total, elapsed)}")

    def on_timeline_done(self, message: TimelineDone) -> None:
        if message.computation != self._computation:
            return  # the controls changed since
        self._started = None
        self.query_one("#timeline-progress", ProgressBar).display = False
        self.entries = message.entries
        self.shown_prompt, self.shown_other = self._asked
        n = len(message.entries)
        self._status(f"{n} checkpoint{'s' if n != 1 else ''}" if n else "no checkpoints yet")
        self._render_entries()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "timeline" or event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        text = str(error) if isinstance(error, GptTuiError) else f"{type(error).__name__}: {error}"
        self._started = None
        self.query_one("#timeline-progress", ProgressBar).display = False
        self._status(text, error=True)

    def _render_entries(self) -> None:

        scroll = self.query_one("#timeline-entries", VerticalScroll)
        scroll.remove_children()
        other = describe_spec(self.shown_other) if self.shown_other else None
        scroll.mount_all(entry_widget(e, self.shown_prompt, other) for e in self.entries)

    def _status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#timeline-status", Static)
        status.update(Text(text))
        status.set_class(error, "-error")

    # ------------------------------------------------------------ actions

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.recompute()

    @on(Select.Changed, "#timeline-other")
    def _other_changed(self, event: Select.Changed) -> None:
        if (event.value or None) != self.other_spec:
            self.recompute()

    def action_recompute(self) -> None:
        self.recompute()

    def action_close(self) -> None:
        self.workers.cancel_group(self, "timeline")
        self.dismiss(None)

    def action_page(self, direction: str) -> None:
        """PageDown / PageUp scroll the entries while an input has the focus."""
        scroll = self.query_one("#timeline-entries", VerticalScroll)
        if direction == "down":
            scroll.scroll_page_down()
        else:
            scroll.scroll_page_up()
