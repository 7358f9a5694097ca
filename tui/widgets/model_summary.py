"""The model summary on the Train screen: parameters per component, weight sizes
at each dtype, and the run's plan on this machine's device (gptcore.planner: the
step's peak memory by part, whether it fits, what would).

The counts come from gptcore.model.summary, which builds the model on the meta
device; that imports torch, so it runs in a thread worker and the worker posts the
result. Summaries are cached per model config: a batch or context edit only re-does
the cheap memory plan.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static
from textual.worker import Worker, WorkerState, get_current_worker

from gptcore.errors import GptTuiError
from gptcore.settings.model import PRESETS, GPTConfig
from gptcore.settings.train import TrainConfig

if TYPE_CHECKING:  # both import torch: only inside the worker
    from gptcore.model.summary import ModelSummary
    from gptcore.planner.plan import RunPlan


@dataclass(frozen=True)
class SummaryRequest:
    """What the summary is of: the model, and the run's settings (batch, window,
    precision, device) that its memory plan depends on."""

    model: GPTConfig
    train: TrainConfig


def model_name(config: GPTConfig) -> str:
    """The preset a config is, or is but for its context length; else "custom model".

    The init scheme and vocabulary padding are no part of the shape: the summary line
    shows them separately.
    """
    kept = {"init": config.init, "vocab_multiple": config.vocab_multiple}
    for name, preset in PRESETS.items():
        if dataclasses.replace(preset, **kept) == config:
            return name
    for name, preset in PRESETS.items():
        same_but_context = dataclasses.replace(preset, context_length=config.context_length, **kept)
        if same_but_context == config:
            return f"{name} at context {config.context_length:,}"
    return "custom model"


@functools.lru_cache(maxsize=16)
def _summary(model: GPTConfig) -> ModelSummary:
    from gptcore.model.summary import summarize_config

    return summarize_config(model)


def _padding(c: GPTConfig) -> str:
    padded = c.padded_vocab_size
    return f" (padded to {padded:,})" if padded != c.vocab_size else ""


def summary_text(summary: ModelSummary, dtypes: list[str]) -> Text:
    """The summary laid out for a narrow pane (about 44 columns)."""
    c = summary.config
    head = "tied" if summary.tied else "untied"
    out = Text()
    out.append(f"{model_name(c)}\n", style="bold")
    out.append(
        f"{c.n_layers} layers · {c.n_heads} heads · emb {c.emb_dim} · context "
        f"{c.context_length:,} · vocab {c.vocab_size:,}{_padding(c)} · {head} output head · "
        f"init {c.init}\n\n",
        style="dim",
    )
    out.append(f"{'parameters':<16}{summary.total:>13,}\n", style="bold")
    out_head = summary.by_component["output head"]
    if not summary.tied:
        # The book's second figure: what the count would be with the head tied.
        out.append(f"{'  if head tied':<16}{summary.total - out_head:>13,}\n")
    for name, count in summary.by_component.items():
        share = count / summary.total if summary.total else 0.0
        note = " tied" if name == "output head" and summary.tied else ""
        out.append(f"  {name:<14}{count:>13,} {share:6.1%}{note}\n")
    out.append("\nweights\n", style="bold")
    cells = [f"  {d:<5}{summary.weights_mb(d):>10,.2f} MB" for d in dtypes]
    for i in range(0, len(cells), 2):
        out.append("".join(cells[i : i + 2]) + "\n")
    out.rstrip()
    return out


def memory_plan(model: GPTConfig, train: TrainConfig) -> RunPlan | str:
    """The run's memory plan on this machine's device, or why there is none."""
    from gptcore.planner.devices import plan_device
    from gptcore.planner.plan import plan_run

    try:
        return plan_run(model, train, plan_device(None, train.device), memory_only=True)
    except GptTuiError as exc:
        return str(exc)


def plan_section(plan: RunPlan | str) -> Text:
    """The run on this machine's device: the step's peak memory and its largest parts,
    whether it fits the device's free memory, what would."""
    out = Text()
    if isinstance(plan, str):
        out.append(f"plan: {plan}", style="dim")
        return out
    batch = f"batch {plan.train.batch_size} × {plan.train.grad_accum}"
    out.append(f"this run ({plan.precision}, {batch})\n", style="bold")
    for i, line in enumerate(plan.memory_lines()):
        style = "bold red" if i == 1 and not plan.fits else ""
        out.append(f"  {line}\n", style=style)
    out.rstrip()
    return out


class ModelSummaryView(VerticalScroll):
    """Shows the summary of the configs it is given (see `show`)."""

    DEFAULT_CSS = """
    ModelSummaryView { height: 1fr; }
    ModelSummaryView #summary-title { color: $text-muted; height: auto; }
    """

    class Updated(Message):
        """Posted by the worker with the numbers for `request`."""

        def __init__(
            self, request: SummaryRequest, summary: ModelSummary, plan: RunPlan | str, text: Text
        ) -> None:
            super().__init__()
            self.request, self.summary, self.plan, self.text = request, summary, plan, text

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.request: SummaryRequest | None = None
        self.summary: ModelSummary | None = None  # of self.request, once computed
        self.plan: RunPlan | str | None = None  # of self.request: the plan, or why none

    def compose(self) -> ComposeResult:
        yield Static("Model summary of the form's config", id="summary-title")
        yield Static("waiting for a valid config in the form …", id="summary-body")

    def set_stale(self, reason: str | None) -> None:
        """Say when the form has an error, so the last valid config is what shows."""
        title = "Model summary of the form's config"
        if reason:
            title += f" (last valid; the form has an error: {reason})"
        self.query_one("#summary-title", Static).update(Text(title))

    def show(self, model: GPTConfig, train: TrainConfig) -> None:
        """Summarize these configs (in a worker); a repeat of the last one is free."""
        request = SummaryRequest(model, train)
        if request == self.request:
            return
        if self.request is None or self.request.model != request.model:
            # A new shape may take a moment (torch loads once); a batch edit keeps the text.
            self.query_one("#summary-body", Static).update(Text("counting parameters …"))
        self.request = request
        self.summary = self.plan = None
        self._summary_worker(request)

    @work(thread=True, exclusive=True, exit_on_error=False, group="summary")
    def _summary_worker(self, request: SummaryRequest) -> None:
        from gptcore.model.summary import DTYPE_BYTES

        summary = _summary(request.model)
        text = summary_text(summary, list(DTYPE_BYTES))
        plan = memory_plan(request.model, request.train)
        text.append("\n\n")
        text.append_text(plan_section(plan))
        if not get_current_worker().is_cancelled:
            self.post_message(self.Updated(request, summary, plan, text))

    def on_model_summary_view_updated(self, message: ModelSummaryView.Updated) -> None:
        message.stop()
        if message.request != self.request:
            return  # the form changed since: a newer worker is on its way
        self.summary, self.plan = message.summary, message.plan
        self.query_one("#summary-body", Static).update(message.text)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "summary" and event.state == WorkerState.ERROR:
            self.query_one("#summary-body", Static).update(
                Text(f"could not summarize this model: {event.worker.error}")
            )
