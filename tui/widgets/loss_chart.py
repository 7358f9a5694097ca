"""Train and validation loss against steps, drawn in the terminal with plotext."""

from __future__ import annotations

import math

from textual_plotext import PlotextPlot

from ..runstate import RunState

MOST_TICKS = 5  # per axis: room for their labels at 80 columns


def nice_ticks(lo: float, hi: float, most: int = MOST_TICKS, integer: bool = False) -> list[float]:
    """Evenly spaced round ticks that cover [lo, hi] in at most `most` intervals: a step
    of 1, 2 or 5 times a power of ten (whole numbers when `integer`). One value gets a
    unit of room above it, so a single evaluation has an axis too."""
    lo, hi = min(lo, hi), max(lo, hi)
    if hi == lo:
        hi = lo + (1 if integer else max(abs(lo) * 0.1, 0.1))
    magnitude = 10 ** math.floor(math.log10((hi - lo) / most))
    for m in (1, 2, 5, 10, 20, 50):  # the smallest round step that needs at most `most`
        step = max(1, round(m * magnitude)) if integer else m * magnitude
        first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
        if last - first <= most:
            break
    decimals = max(0, -math.floor(math.log10(step)))
    return [round(i * step, decimals) for i in range(first, last + 1)]


def tick_labels(ticks: list[float]) -> list[str]:
    """As many decimals as the step between ticks needs, the same for all."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return [f"{tick:.{decimals}f}" for tick in ticks]


class LossChart(PlotextPlot):
    """Redrawn from a RunState whenever a new evaluation arrives."""

    def on_mount(self) -> None:
        self.show_run(RunState())

    def show_run(self, state: RunState) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title("loss")
        plt.xlabel("step")
        evals = state.evals
        if evals:
            steps = [e.step for e in evals]
            train, val = [e.train_loss for e in evals], [e.val_loss for e in evals]
            plt.plot(steps, train, label="train", marker="braille")
            plt.plot(steps, val, label="val", marker="braille")
            # plotext's own ticks are uneven, and centred on 0 for one point (-1 … 1).
            x = nice_ticks(min(steps), max(steps), integer=True)
            y = nice_ticks(min(train + val), max(train + val))
            plt.xlim(x[0], x[-1])
            plt.ylim(y[0], y[-1])
            plt.xticks(x, tick_labels(x))
            plt.yticks(y, tick_labels(y))
        self.refresh()
