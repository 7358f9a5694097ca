"""The Train screen's dashboard: what a run is doing, drawn from its RunState.

The status line (the state word and what the trainer does now), the stats (before
a run: the batch plan and a run-time estimate for the form's config), the system
line, the loss chart, the loss and throughput sparklines and the samples. `m` swaps
the charts for the model summary of the form's config. It only draws: the pane
tells it what to show.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Label, RichLog, Sparkline, Static

from gptcore.data.plan import BatchPlan, batch_plan
from gptcore.errors import GptTuiError
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.util.fmt import format_bytes, format_duration

if TYPE_CHECKING:  # both import torch: only in the worker
    from gptcore.planner.plan import RunPlan
    from gptcore.planner.timing import StepTiming

from ...runstate import RunState
from ...widgets.loss_chart import LossChart
from ...widgets.model_summary import ModelSummaryView

# What the model summary replaces while it shows.
RUN_VIEWS = ("#loss-chart", "#sparks", "#samples")


def _timing_key(model: GPTConfig, train: TrainConfig) -> tuple:
    """What a probe's step time depends on: the model and the step's shape."""
    step = ("batch_size", "max_length", "grad_accum", "effective_batch", "precision", "adamw")
    more = ("dropout_masks", "device", "grad_clip")
    return (model, *(getattr(train, name) for name in step + more))


class Dashboard(Vertical):
    """The run's status, stats, system line, loss chart, sparklines and samples."""

    class TimingMeasured(Message):
        """The form's run was planned (its memory) and then timed by a probe
        (gptcore.planner): `timing` None until the probe is done. `key` is what both
        depend on (see _timing_key)."""

        def __init__(self, key: tuple, plan: RunPlan, timing: StepTiming | None) -> None:
            super().__init__()
            self.key, self.plan, self.timing = key, plan, timing

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown_state = RunState()  # what the status line last showed
        self._watched = False
        self._samples_shown = 0
        # What a step depends on -> (memory plan, StepTiming or None while measuring),
        # None while planning.
        self._timings: dict[tuple, tuple[RunPlan, StepTiming | None] | None] = {}

    def compose(self) -> ComposeResult:
        yield Static("IDLE · press s to start", id="run-state")
        yield Static("", id="run-stats")
        system = Static("", id="run-system")
        system.display = False  # only while a run is live or watched
        yield system
        yield LossChart(id="loss-chart")
        with Horizontal(id="sparks"):
            yield Label("loss", classes="spark-label")
            yield Sparkline([], id="spark-loss")
            yield Label("tok/s", classes="spark-label")
            yield Sparkline([], id="spark-tps")
        yield RichLog(id="samples", markup=False, wrap=True, max_lines=500)
        summary = ModelSummaryView(id="model-summary")
        summary.display = False  # counted only when shown (torch loads in a worker)
        yield summary

    # ------------------------------------------------------------ a run's progress

    def reset(self, state: RunState) -> None:
        """Start over on a new run (or none): empty charts, samples and system line."""
        self._samples_shown = 0
        self.query_one(LossChart).show_run(state)
        self.query_one("#spark-loss", Sparkline).data = []
        self.query_one("#spark-tps", Sparkline).data = []
        self.query_one("#samples", RichLog).clear()
        self.show_system("")

    def show_progress(self, state: RunState, evals_before: int) -> None:
        """Draw what new events added: the chart (on a new evaluation), the
        sparklines and the samples not shown yet."""
        if len(state.evals) != evals_before:
            self.query_one(LossChart).show_run(state)
        self.query_one("#spark-loss", Sparkline).data = list(state.step_losses)
        self.query_one("#spark-tps", Sparkline).data = list(state.tokens_per_s)
        log = self.query_one("#samples", RichLog)
        for sample in state.samples[self._samples_shown :]:
            # Model output is text, never markup: Text() shows "[/b]" as typed.
            log.write(Text(f"── epoch {sample.epoch + 1}, step {sample.step} ──", style="dim"))
            log.write(Text(sample.text))
        self._samples_shown = len(state.samples)

    def show_state(self, state: RunState, watched: bool) -> None:
        """The status line and the stats; `watched`: the run is followed read-only."""
        self._shown_state, self._watched = state, watched
        # One line at 60 columns: the watched run's name is in the form's config entry.
        head = state.state.upper() + (" (watched)" if watched else "")
        line = Text(head, style="bold")
        widget = self.query_one("#run-state", Static)
        width = widget.content_size.width - (len(head) - len(state.state))
        detail = state.detail(time.time(), width if width > 0 else None)
        if detail:
            line.append(f" · {detail}", style="")
        widget.update(line)
        widget.set_class(state.state in ("nan", "error"), "-error")
        widget.set_class(state.state == "finished", "-done")
        self.query_one("#run-stats", Static).update(Text(self._stats_text()))

    def show_system(self, text: str) -> None:
        """The system line (what the run's process uses); hidden when empty."""
        widget = self.query_one("#run-system", Static)
        widget.update(Text(text))
        widget.display = bool(text)

    def _stats_text(self) -> str:
        state = self._shown_state
        s = state.last_step
        started = state.started
        device = started.device if started else "–"
        if s is None:
            if state.state == "idle" and not self._watched:
                return self._plan_text()
            return f"device {device}"
        total = f"/{s.total_steps:,}" if s.total_steps else ""
        last_eval = state.evals[-1] if state.evals else None
        losses = f" · val {last_eval.val_loss:.3f}" if last_eval else ""
        # No ETA once the run is over (a stale one would look like time left).
        eta = f" · ETA {format_duration(state.eta_s())}" if state.active else ""
        return (
            f"step {s.step + 1:,}{total} · epoch {s.epoch + 1}{eta}\n"
            f"tokens {s.tokens_seen:,} · {s.tokens_per_s:,.0f} tok/s · lr {s.lr:.1e}\n"
            f"loss {s.loss:.3f}{losses} · {device}"
        )

    # ------------------------------------------------------------ before a run

    def show_plan(self) -> None:
        """Redraw the plan (the form's config or the corpus changed), while idle."""
        if self._shown_state.state == "idle" and not self._watched:
            self.query_one("#run-stats", Static).update(Text(self._stats_text()))

    def _plan_text(self) -> str:
        """The Trainer's batch plan for the form's config on the loaded corpus."""

        config, tokens = self.app.state.run_config, self.app.state.corpus_tokens
        if config is None or tokens is None:
            return ""
        plan = batch_plan(*tokens, *config)
        if plan.problem is not None:
            return f"cannot train on this corpus: {plan.problem}"
        key = _timing_key(*config)
        if key not in self._timings:
            self._timings[key] = None  # planning: once per model and step shape
            self._measure_steps(key, config)
        measured = self._timings[key]
        batch = f"batch {plan.batch_size}"
        if measured is not None and not isinstance(config[1].batch_size, int):
            resolved = measured[0].train  # the batch "auto" picks here
            plan = batch_plan(*tokens, config[0], resolved)
            batch = f"batch auto {resolved.batch_size}×{resolved.grad_accum}"
        return (  # short lines: the dashboard is 28 columns wide at 60x20
            f"plan {plan.total_steps:,} steps ({plan.steps_per_epoch:,}/epoch)\n"
            f"{plan.train_windows:,} windows × {plan.length}, {batch}"
            + self._estimate_text(measured, plan)
        )

    def _estimate_text(
        self, measured: tuple[RunPlan, StepTiming | None] | None, plan: BatchPlan
    ) -> str:
        """Whether the run fits this device's memory and about how long it takes here,
        before it starts (a long run is a choice): the planner's memory model, then a
        few of its steps measured on its device, in the background."""
        from gptcore.planner.timing import run_time

        if measured is None:
            return "\nmeasuring a few steps…"
        run_plan, timing = measured
        peak = format_bytes(run_plan.memory.peak)
        if not run_plan.fits:
            return f"\nmemory {peak}: too much\nm: what would fit"  # 28 columns
        fits = f"\nmemory {peak}, fits"
        if timing is None:
            return fits + "\nmeasuring a few steps…"
        run = run_time(run_plan.model, run_plan.train, plan, timing)
        # The probe's range; 28 columns at 60x20 ("time 12m40s–13m50s on cuda:0").
        low, high = format_duration(run.low), format_duration(run.high)
        span = low if low == high else f"{low}–{high}"
        return f"{fits}\ntime {span} on {timing.device}"

    @work(thread=True, exit_on_error=False, group="estimate")
    def _measure_steps(self, key: tuple, config: tuple[GPTConfig, TrainConfig]) -> None:
        """The run's memory plan (posted at once), then, when it fits, its timing."""
        import torch

        from gptcore.planner.devices import plan_device
        from gptcore.planner.plan import plan_run
        from gptcore.planner.timing import probe

        try:
            spec = plan_device(None, config[1].device)
            run_plan = plan_run(*config, spec, memory_only=True)  # "auto" batch resolved
            self.post_message(self.TimingMeasured(key, run_plan, None))
            if run_plan.fits:  # never a probe that could not fit
                timing = probe(run_plan.model, run_plan.train, torch.device(spec.torch_device))
                self.post_message(self.TimingMeasured(key, run_plan, timing))
        except GptTuiError:
            return  # the form reports a device that is not here, or a bad setting

    def on_dashboard_timing_measured(self, message: TimingMeasured) -> None:
        self._timings[message.key] = (message.plan, message.timing)
        self.show_plan()

    # ------------------------------------------------------------ the model summary

    def toggle_summary(self, config: tuple[GPTConfig, TrainConfig] | None) -> None:
        """Swap the charts and samples for the model summary of `config`, or back."""
        summary = self.query_one(ModelSummaryView)
        summary.display = not summary.display
        for selector in RUN_VIEWS:
            self.query_one(selector).display = not summary.display
        self.summarize(config)

    def summarize(self, config: tuple[GPTConfig, TrainConfig] | None) -> None:
        """Describe `config` in the model summary, if it shows."""
        summary = self.query_one(ModelSummaryView)
        if summary.display and config is not None:
            summary.show(*config)

    def summary_stale(self, reason: str | None) -> None:
        """The form cannot describe a run now (`reason`): the summary says so."""
        self.query_one(ModelSummaryView).set_stale(reason)
