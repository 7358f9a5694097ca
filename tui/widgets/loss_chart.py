"""Train and validation loss against steps, drawn in the terminal with plotext."""

from __future__ import annotations

import math
import sys

from ..runstate import RunState
from .safe_plot import SafePlot, drawable

MOST_TICKS = 5  # per axis: room for their labels at 80 columns


def nice_ticks(lo: float, hi: float, most: int = MOST_TICKS, integer: bool = False) -> list[float]:
    """Evenly spaced round ticks that cover [lo, hi] in at most `most` intervals: a step
    of 1, 2 or 5 times a power of ten (whole numbers when `integer`). One value gets a
    unit of room above it, so a single evaluation has an axis too."""
    lo, hi = min(lo, hi), max(lo, hi)
    if hi - lo <= max(abs(lo), abs(hi)) * 1e-9:  # one value, or a rounding apart
        room = 1 if integer else max(abs(lo) * 0.1, 0.1)
        lo, hi = (lo, lo + room) if math.isfinite(lo + room) else (lo - room, lo)
    if not 0 < (hi - lo) / most < math.inf:  # a span past the float range, or below it
        return [lo, hi]
    magnitude = 10 ** math.floor(math.log10((hi - lo) / most))
    for m in (1, 2, 5, 10, 20, 50):  # the smallest round step that needs at most `most`
        step = max(1, round(m * magnitude)) if integer else m * magnitude
        first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
        if last - first <= most:
            break
    decimals = max(0, -math.floor(math.log10(step)))
    ticks = [round(i * step, decimals) for i in range(first, last + 1)]
    # Round ticks past the largest float (an int power of ten can be): the ends instead.
    fine = len(ticks) > 1 and all(abs(t) <= sys.float_info.max for t in ticks)
    return ticks if fine else [lo, hi]


def tick_labels(ticks: list[float]) -> list[str]:
    """As many decimals as the step between ticks needs, the same for all."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    if not 0 < step < math.inf:  # ticks that are not evenly spaced round numbers
        return [f"{tick:.3g}" for tick in ticks]
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return [f"{tick:.{decimals}f}" for tick in ticks]


class LossChart(SafePlot):
    """Redrawn from a RunState whenever a new evaluation arrives."""

    def on_mount(self) -> None:
        self.show_run(RunState())

    def show_run(self, state: RunState) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title("loss")
        plt.xlabel("step")
        # A NaN loss (a diverged run) has no place on the axis: each series keeps its
        # drawable points (plotext gets lists of its own).
        train = [(e.step, e.train_loss) for e in state.evals if _point(e.step, e.train_loss)]
        val = [(e.step, e.val_loss) for e in state.evals if _point(e.step, e.val_loss)]
        if train or val:
            steps = [s for s, _loss in train + val]
            losses = [loss for _s, loss in train + val]
            for label, points in (("train", train), ("val", val)):
                if points:
                    xs, ys = zip(*points, strict=True)
                    plt.plot(list(xs), list(ys), label=label, marker="braille")
            # plotext's own ticks are uneven, and centred on 0 for one point (-1 … 1).
            x = nice_ticks(min(steps), max(steps), integer=True)
            y = nice_ticks(min(losses), max(losses))
            plt.xlim(x[0], x[-1])
            plt.ylim(y[0], y[-1])
            plt.xticks(x, tick_labels(x))
            plt.yticks(y, tick_labels(y))
        self.refresh()


def _point(step: float, loss: float) -> bool:
    return drawable(step) and drawable(loss)
