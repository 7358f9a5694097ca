"""The next-token inspector: what the model would say next, before and after the
sampling controls, at several temperatures, and over N seeded draws.

The model runs once, before this screen opens (Chat computes the logits in a
worker, on the context its next answer would start from). Every control change
here only re-runs the engine's analysis (gptcore.sampling.analysis.
analyze_next_token, the same as `gpt-tui inspect`); the sampling lab's draws run
in a worker once typing pauses. The chapter's 9-word toy vocabulary is one key
away, so its numbers (top-3: 0.0615 / 0.5775 / 0.3610; 1,000 draws with seed 123:
73 / 582 / 343 / 2) can be reproduced without any model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input, Label, Static, TabbedContent, TabPane

from gptcore.errors import GenerationError
from gptcore.settings.sampling import GenerationSettings, InspectSettings

from ..fields import SettingField, setting_fields
from ..widgets import next_token as views

if TYPE_CHECKING:
    import torch

    from gptcore.sampling.analysis import NextTokenAnalysis

TOP_N = 20  # candidates listed
DRAW_DELAY_S = 0.2
TOY_SOURCE = "toy vocabulary (chapter 5)"

# The filter's settings (generation's own) and the lab's, from their declarations;
# parsed and checked by gptcore.sampling.from_text.inspect_settings_from_text, like
# `gpt-tui inspect`'s flags. WIDTHS is only how wide each input is drawn.
FILTER = ("temperature", "top_k", "top_p")
LAB = ("temperatures", "draws", "seed")
WIDTHS = {"temperature": 5, "top_k": 5, "top_p": 5, "temperatures": 11, "draws": 6, "seed": 6}


class DrawsDone(Message):
    """The lab's draws for analysis number `analysis_id` (a stale one is dropped)."""

    def __init__(self, analysis_id: int, analysis: NextTokenAnalysis) -> None:
        super().__init__()
        self.analysis_id, self.analysis = analysis_id, analysis


def inspector_fields(settings: GenerationSettings | None = None) -> tuple[SettingField, ...]:
    """The screen's inputs, the filter starting where the caller's settings are
    (greedy starts at temperature 1: all the mass on one token shows little)."""
    start: dict[str, object] = {"temperature": 1.0}
    if settings is not None:
        start = {
            "temperature": settings.temperature if settings.temperature > 0 else 1.0,
            "top_k": settings.top_k,
            "top_p": settings.top_p,
        }
    return setting_fields(GenerationSettings, FILTER, start) + setting_fields(InspectSettings, LAB)


class InspectorScreen(Screen[None]):
    """Top candidates, the distribution after the controls, temperatures, draws.

    `logits` are the model's for the token after `context` (the ids the model read,
    which the sampler chain's penalties read too); `settings` are the Chat
    controls', whose samplers apply here; `note` says what was left out of the
    context. Without logits: the toy vocabulary only.
    """

    # A screen loads its own styles, so it looks the same over any app.
    CSS_PATH = Path(__file__).parent.parent / "inspector.tcss"

    BINDINGS = [
        Binding("escape", "close", "Back", id="insp-close"),
        Binding("ctrl+t", "toggle_toy", "Toy vocab", id="insp-toy"),
        Binding("ctrl+r", "redraw", "Draw again", id="insp-redraw"),
        # Priority: a focused input would take them, and it has nothing to scroll.
        Binding("pagedown", "page('down')", "Scroll", id="insp-page-down", priority=True),
        Binding("pageup", "page('up')", "Scroll up", id="insp-page-up", show=False, priority=True),
    ]

    def __init__(
        self,
        logits: torch.Tensor | None = None,
        context: Sequence[int] = (),
        source: str = "",
        settings: GenerationSettings | None = None,
        note: str | None = None,
    ) -> None:
        super().__init__()
        self.model_logits = logits
        self.context = tuple(context)
        self.source = source
        self.settings = settings
        self.note = note
        self.toy = logits is None
        self.fields = inspector_fields(settings)
        self.errors: dict[str, str] = {}
        self.analysis: NextTokenAnalysis | None = None
        self._analysis_id = 0  # which analysis the next DrawsDone must match
        self._draw_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="insp-title", markup=False)
        yield Static("", id="insp-note", markup=False)
        with Horizontal(id="insp-controls"):
            for field in self.fields:
                yield Label(field.label)
                inp = Input(field.initial, id=f"insp-{field.name}", compact=True)
                inp.styles.width = WIDTHS[field.name]
                yield inp
        yield Static("", id="insp-error", markup=False)
        # Above the tabs, so it shows without scrolling at 80x24.
        yield Static("", id="insp-summary", markup=False)
        with TabbedContent(id="insp-tabs"):
            with TabPane("Next token", id="insp-dist"), VerticalScroll():
                yield Static("", id="insp-dist-view", markup=False)
            with TabPane("Temperatures", id="insp-temps"), VerticalScroll():
                yield Static("", id="insp-temps-view", markup=False)
            with TabPane("Sampling lab", id="insp-lab"), VerticalScroll():
                yield Static("", id="insp-lab-view", markup=False)
            with TabPane("Stages", id="insp-stages"), VerticalScroll():
                yield Static("", id="insp-stages-view", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.recompute()

    # ------------------------------------------------------------ the analysis

    def values(self) -> dict[str, str]:
        return {f.name: self.query_one(f"#insp-{f.name}", Input).value for f in self.fields}

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self.recompute()

    def recompute(self) -> None:
        """Validate the controls; redo the analysis (never the model), then the draws."""
        from gptcore.sampling.analysis import TOY, analyze_next_token, gpt2_vocabulary, toy_logits
        from gptcore.sampling.from_text import inspect_settings_from_text, messages_by_label

        toy = self.toy or self.model_logits is None
        logits = toy_logits() if toy else self.model_logits
        vocabulary = TOY if toy else gpt2_vocabulary(logits.numel())
        # The Chat samplers and the context are a model's: the toy has neither.
        samplers = None if toy else self.settings
        try:
            controls = inspect_settings_from_text(
                self.values(), vocabulary.size, samplers=samplers, encode_text=vocabulary.encode
            )
            self.errors = {}
        except GenerationError as exc:
            labels = {f.name: f.label for f in self.fields}
            controls, self.errors = None, messages_by_label(exc, labels)
        self._show_errors()
        if controls is None:
            return  # keep showing the last valid view
        context = () if toy else self.context
        self.analysis = analyze_next_token(logits, controls, context, vocabulary, TOP_N)
        self._analysis_id += 1
        self._draw_views()
        self._schedule_draws()

    def _schedule_draws(self) -> None:
        # Draw once typing pauses: a running draw cannot be interrupted, so drawing on
        # every keystroke would queue up stale work.
        if self._draw_timer is not None:
            self._draw_timer.stop()
        analysis = self.analysis
        if analysis is None or not analysis.controls.draws:
            return  # 0 draws: the lab is off
        number = self._analysis_id
        self._draw_timer = self.set_timer(DRAW_DELAY_S, lambda: self._draw(number, analysis))

    @work(thread=True, exclusive=True, exit_on_error=False, group="inspector-draws")
    def _draw(self, analysis_id: int, analysis: NextTokenAnalysis) -> None:
        self.post_message(DrawsDone(analysis_id, analysis.drawn()))

    def on_draws_done(self, message: DrawsDone) -> None:
        if message.analysis_id != self._analysis_id:
            return  # the controls changed since
        self.analysis = message.analysis
        self._view("lab", views.lab_text(message.analysis))

    # ------------------------------------------------------------ actions

    def action_close(self) -> None:
        self.dismiss(None)

    def action_toggle_toy(self) -> None:
        if self.model_logits is None:
            self.notify("no model loaded: the toy vocabulary is all there is", title="Inspector")
            return
        self.toy = not self.toy
        self.recompute()

    def action_page(self, direction: str) -> None:
        """PageDown / PageUp scroll the open tab's list while an input has the focus."""
        tabs = self.query_one("#insp-tabs", TabbedContent)
        scroll = tabs.get_pane(tabs.active).query_one(VerticalScroll)
        if direction == "down":
            scroll.scroll_page_down()
        else:
            scroll.scroll_page_up()

    def action_redraw(self) -> None:
        if self.analysis is not None:
            seed = self.query_one("#insp-seed", Input)
            seed.value = str(self.analysis.controls.seed + 1)  # Changed recomputes

    # ------------------------------------------------------------ drawing

    def _show_errors(self) -> None:
        for f in self.fields:
            widget = self.query_one(f"#insp-{f.name}", Input)
            widget.set_class(f.name in self.errors, "-invalid")
            widget.tooltip = Text(self.errors.get(f.name, f.help))
        error = self.query_one("#insp-error", Static)
        error.update(Text("; ".join(self.errors.values())))  # each names its field's label
        error.display = bool(self.errors)  # no blank line above the summary

    def _draw_views(self) -> None:
        a = self.analysis
        assert a is not None
        toy = a.vocabulary.toy
        self.query_one("#insp-title", Static).update(
            views.title_text(a, TOY_SOURCE if toy else self.source)
        )
        note = self.query_one("#insp-note", Static)
        note.update(Text(self.note or ""))
        note.display = bool(self.note) and not toy
        self.query_one("#insp-summary", Static).update(views.summary_text(a))
        self._view("dist", views.distribution_text(a))
        self._view("temps", views.temperatures_text(a))
        self._view("lab", views.lab_text(a))
        self._view("stages", views.stages_text(a))

    def _view(self, tab: str, text: Text) -> None:
        self.query_one(f"#insp-{tab}-view", Static).update(text)
