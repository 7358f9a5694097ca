"""The next-token inspector: what the model would say next, before and after the
sampling controls, at several temperatures, and over N seeded draws.

The model runs once, before this screen opens (the Chat screen computes the
logits in a worker). Every control change here only re-runs the engine's cheap
post-processing (gptcore.nexttoken.distribution); the sampling lab's draws run in
a worker. The chapter's 9-word toy vocabulary is one key away, so its numbers
(top-3: 0.0615 / 0.5775 / 0.3610; 1,000 draws with seed 123: 73 / 582 / 343 / 2)
can be reproduced without any model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
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

from gptcore.settings.sampling import GenerationSettings, InspectSettings

from ..fields import SettingField, setting_fields
from ..widgets.bars import bar, percent, token_label

if TYPE_CHECKING:
    import torch

TOP_N = 20
TEMPS_SHOWN = 10  # candidates in the temperature comparison
BAR = 14
DRAW_DELAY_S = 0.2


class DrawsDone(Message):
    def __init__(self, token: int, counts: Counter, draws: int, seed: int) -> None:
        super().__init__()
        self.token, self.counts, self.draws, self.seed = token, counts, draws, seed


# The filter's settings (generation's own) and the lab's, from their declarations;
# parsed and checked by gptcore.sampling.from_text.inspect_settings_from_text, like
# `gpt-tui inspect`'s flags. WIDTHS is only how wide each input is drawn.
FILTER = ("temperature", "top_k", "top_p")
LAB = ("temperatures", "draws", "seed")
WIDTHS = {"temperature": 5, "top_k": 5, "top_p": 5, "temperatures": 11, "draws": 6, "seed": 6}


def inspector_fields(
    temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> tuple[SettingField, ...]:
    """The screen's inputs, the filter starting where the caller's settings are."""
    start = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
    return setting_fields(GenerationSettings, FILTER, start) + setting_fields(InspectSettings, LAB)


class InspectorScreen(Screen[None]):
    """Top candidates, the distribution after the controls, temperatures, draws."""

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
        label: Callable[[int], str] | None = None,
        source: str = "",
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        samplers: GenerationSettings | None = None,
        history: Sequence[int] = (),
    ) -> None:
        super().__init__()
        # The samplers beyond the book (the Chat controls') and the tokens they read;
        # this screen's own temperature / top-k / top-p replace theirs.
        self.samplers = samplers
        self.history = list(history)
        self.model_logits = logits
        self.model_label = label
        self.source = source
        self.toy = logits is None
        self.fields = inspector_fields(temperature, top_k, top_p)
        self.controls: InspectSettings | None = None
        self.errors: dict[str, str] = {}
        self.dist = None
        self.stages: list[tuple[str, torch.Tensor]] = []
        self.candidates: list = []
        self.counts: Counter | None = None
        self._token = 0  # which computation the next DrawsDone must match
        self._draw_timer: Timer | None = None

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Static("", id="insp-title", markup=False)
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

    # ------------------------------------------------------------ data

    @property
    def logits(self) -> torch.Tensor:
        import torch

        from gptcore.sampling.nexttoken import TOY_LOGITS

        if self.toy or self.model_logits is None:
            return torch.tensor(TOY_LOGITS)
        return self.model_logits

    def label(self, token: int) -> str:
        from gptcore.sampling.nexttoken import TOY_VOCAB

        if self.toy or self.model_label is None:
            return TOY_VOCAB[token]
        return self.model_label(token)

    def values(self) -> dict[str, str]:
        return {f.name: self.query_one(f"#insp-{f.name}", Input).value for f in self.fields}

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self.recompute()

    def recompute(self) -> None:
        """Validate the controls; redo only the post-processing and the draws."""
        from gptcore.errors import GenerationError
        from gptcore.sampling.from_text import inspect_settings_from_text, messages_by_label
        from gptcore.sampling.nexttoken import chain_distributions, distribution, top_candidates

        logits = self.logits
        try:
            controls = inspect_settings_from_text(self.values(), logits.numel())
            errors: dict[str, str] = {}
        except GenerationError as exc:
            labels = {f.name: f.label for f in self.fields}
            controls, errors = None, messages_by_label(exc, labels)
        self.errors = errors
        for f in self.fields:
            widget = self.query_one(f"#insp-{f.name}", Input)
            widget.set_class(f.name in errors, "-invalid")
            widget.tooltip = Text(errors.get(f.name, f.help))
        error = self.query_one("#insp-error", Static)
        error.update(Text("; ".join(errors.values())))  # each names its field's label
        error.display = bool(errors)  # no blank line above the summary
        if controls is None:
            return  # keep showing the last valid view
        self.controls = controls
        chain = controls.sampling
        if self.samplers is not None and not self.toy:
            chain = replace(
                self.samplers,
                temperature=controls.sampling.temperature,
                top_k=controls.sampling.top_k,
                top_p=controls.sampling.top_p,
            )
        history = [] if self.toy else self.history
        self.dist = distribution(logits, chain=chain, history=history)
        self.stages = chain_distributions(logits, chain, history)
        self.candidates = top_candidates(self.dist, TOP_N)
        self.counts = None
        self._render_stages()
        self._render_title()
        self._render_distribution()
        self._render_temperatures()
        self._render_lab()
        self._token += 1
        # Draw once typing pauses: a running draw cannot be interrupted, so drawing on
        # every keystroke would queue up stale work.
        if self._draw_timer is not None:
            self._draw_timer.stop()
        if not controls.draws:
            return  # 0 draws: the lab is off
        token, probs = self._token, self.dist.probs
        self._draw_timer = self.set_timer(
            DRAW_DELAY_S, lambda: self._draw(token, probs, controls.draws, controls.seed)
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="inspector-draws")
    def _draw(self, token: int, probs: torch.Tensor, draws: int, seed: int) -> None:
        from gptcore.sampling.nexttoken import sample_counts

        counts = sample_counts(probs, draws, seed)
        self.post_message(DrawsDone(token, counts, draws, seed))

    def on_draws_done(self, message: DrawsDone) -> None:
        if message.token != self._token:
            return  # the controls changed since
        self.counts = message.counts
        self._render_lab()

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
        seed = self.query_one("#insp-seed", Input)
        if self.controls is not None:
            seed.value = str(self.controls.seed + 1)  # Changed recomputes

    # ------------------------------------------------------------ drawing

    def _render_title(self) -> None:
        assert self.controls is not None
        c = self.controls.sampling
        where = "toy vocabulary (chapter 5)" if self.toy else self.source
        settings = (
            f"T {c.temperature:g} · top-k {c.top_k if c.top_k is not None else 'off'} · "
            f"top-p {c.top_p if c.top_p is not None else 'off'}"
        )
        self.query_one("#insp-title", Static).update(Text(f"Inspector · {where} · {settings}"))

    def _render_distribution(self) -> None:
        from gptcore.sampling.nexttoken import covered

        dist, cands = self.dist, self.candidates
        out = Text()
        out.append(
            f"{'token':<12} {'id':>6} {'logit':>7} {'prob':>7} {'':<{BAR}}   "
            f"{'after':>7} {'':<{BAR}}\n",
            style="bold",
        )
        for c in cands:
            out.append(f"{token_label(self.label(c.id), 12)} {c.id:>6} {c.logit:7.2f} ")
            out.append(f"{percent(c.raw_prob)} ")
            out.append(bar(c.raw_prob, BAR), style="cyan")
            out.append(" │ ")
            if c.kept:
                out.append(f"{percent(c.prob)} ")
                out.append(bar(c.prob, BAR), style="green")
            else:
                out.append(f"{'masked':>7}", style="dim strike")
            out.append("\n")
        out.rstrip()
        self.query_one("#insp-dist-view", Static).update(out)
        kept = int(dist.kept.sum())
        summary = Text(
            f"the top {len(cands)} cover {percent(covered(cands)).strip()} of the probability · "
            f"entropy {dist.raw_entropy:.3f} nats, after the controls {dist.entropy:.3f} · "
            f"{kept:,} of {dist.logits.numel():,} tokens can be drawn",
            style="italic",
        )
        self.query_one("#insp-summary", Static).update(summary)

    def _render_stages(self) -> None:
        """The top 5 after each active stage of the sampler chain, in its order."""
        import torch

        lines = ["after each stage of the sampler chain (top 5):"]
        for name, probs in self.stages:
            values, ids = torch.topk(probs, min(5, probs.numel()))
            cells = "  ".join(
                f"{self.label(int(i))[:10]} {float(q):.0%}"
                for q, i in zip(values, ids, strict=True)
                if q > 0
            )
            lines.append(f"{name:<18} {cells}")
        self.query_one("#insp-stages-view", Static).update(Text("\n".join(lines)))

    def _render_temperatures(self) -> None:
        from gptcore.sampling.nexttoken import temperature_table

        assert self.controls is not None
        c = self.controls
        cands = self.candidates[:TEMPS_SHOWN]
        table = temperature_table(self.logits, c.temperatures, [x.id for x in cands])
        styles = ("cyan", "magenta", "yellow", "green", "blue", "red")
        out = Text()
        out.append(
            "probability of each candidate at each temperature (the book's figure 5.14)\n",
            style="bold",
        )
        width = max(len(f"T={t:g}") for t in c.temperatures)
        for row, cand in enumerate(cands):
            out.append(token_label(self.label(cand.id), 14).rstrip() + "\n", style="bold")
            for i, t in enumerate(c.temperatures):
                p = table[t][row]
                out.append(f"  {f'T={t:g}':<{width}} {percent(p)} ")
                out.append(bar(p, 40), style=styles[i % len(styles)])
                out.append("\n")
        self.query_one("#insp-temps-view", Static).update(out)

    def _render_lab(self) -> None:
        c, dist = self.controls, self.dist
        assert c is not None and dist is not None
        out = Text()
        if not c.draws:
            out.append("no draws: set draws above 0 to run the sampling lab", style="italic")
            self.query_one("#insp-lab-view", Static).update(out)
            return
        if self.counts is None:
            out.append(f"drawing {c.draws:,} samples (seed {c.seed}) …", style="italic")
            self.query_one("#insp-lab-view", Static).update(out)
            return
        out.append(
            f"{c.draws:,} draws with seed {c.seed} under these settings "
            "(ctrl+r: draw again with the next seed)\n",
            style="bold",
        )
        out.append(
            f"{'token':<12} {'count':>6} {'freq':>7} {'':<{BAR}}   {'prob':>7} {'':<{BAR}}\n",
            style="bold",
        )
        ids = [x.id for x in self.candidates]
        ids += sorted((t for t in self.counts if t not in ids), key=lambda t: -self.counts[t])
        for token in ids:
            n = self.counts.get(token, 0)
            p = float(dist.probs[token])
            out.append(f"{token_label(self.label(token), 12)} {n:>6} {percent(n / c.draws)} ")
            out.append(bar(n / c.draws, BAR), style="yellow")
            out.append(f" │ {percent(p)} ")
            out.append(bar(p, BAR), style="green")
            out.append("\n")
        self.query_one("#insp-lab-view", Static).update(out)
