"""The chapter's temperature figure as a PNG: grouped bars of next-token
probabilities at several temperatures (the book uses 1, 0.1 and 5 on its toy
vocabulary).

matplotlib is an optional extra (`pip install 'gpt-tui[plot]'`), imported only
when a figure is drawn; the bar layout itself needs no matplotlib.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from gptcore.errors import GptTuiError
from gptcore.sampling.nexttoken import TOY_LOGITS, TOY_VOCAB, temperature_table
from gptcore.util.fsutil import atomic_open

BOOK_TEMPERATURES = (1.0, 0.1, 5.0)
GROUP_WIDTH = 0.8  # share of each token's slot that its group of bars fills
PLOT_EXTRA = "pip install 'gpt-tui[plot]'"


@dataclass(frozen=True)
class BarSeries:
    """One temperature's bars: x positions (token index + offset) and heights."""

    temperature: float
    x: list[float]
    heights: list[float]
    width: float

    @property
    def label(self) -> str:
        return f"Temperature = {self.temperature:g}"


def grouped_bars(labels: Sequence[str], table: Mapping[float, Sequence[float]]) -> list[BarSeries]:
    """Side-by-side bars: one series per temperature, centred on each token's index."""
    if not table:
        raise GptTuiError("the temperature figure needs at least one temperature")
    if not labels:
        raise GptTuiError("the temperature figure needs at least one token")
    width = GROUP_WIDTH / len(table)
    series = []
    for j, (temperature, probs) in enumerate(table.items()):
        if len(probs) != len(labels):
            raise GptTuiError(
                f"temperature {temperature:g} has {len(probs)} probabilities for {len(labels)} tokens"
            )
        offset = (j - (len(table) - 1) / 2) * width
        series.append(
            BarSeries(temperature, [i + offset for i in range(len(labels))], list(probs), width)
        )
    return series


def toy_temperature_table(
    temperatures: Sequence[float] = BOOK_TEMPERATURES,
) -> tuple[list[str], dict[float, list[float]]]:
    """The chapter's toy vocabulary (in its order) and its probabilities per temperature."""
    try:
        table = temperature_table(torch.tensor(TOY_LOGITS), temperatures, range(len(TOY_VOCAB)))
    except ValueError as exc:
        raise GptTuiError(str(exc)) from None
    return list(TOY_VOCAB), table


def save_temperature_figure(
    path: str | Path, labels: Sequence[str], table: Mapping[float, Sequence[float]]
) -> Path:
    """Write the grouped-bar figure to `path` as a PNG (whole, or not at all)."""
    series = grouped_bars(labels, table)
    try:
        from matplotlib.figure import Figure  # no pyplot: no global state, no display
    except ImportError:
        raise GptTuiError(f"exporting a PNG needs matplotlib: {PLOT_EXTRA}") from None
    fig = Figure(figsize=(5, 3))
    ax = fig.subplots()
    for s in series:
        ax.bar(s.x, s.heights, s.width, label=s.label)
    ax.set_ylabel("Probability")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(list(labels), rotation=90)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="png")
    except OSError as exc:
        raise GptTuiError(f"could not write the figure to {path}: {exc.strerror or exc}") from None
    return path


def save_toy_temperature_figure(
    path: str | Path, temperatures: Sequence[float] = BOOK_TEMPERATURES
) -> Path:
    """The book's figure: the toy vocabulary at temperatures 1, 0.1 and 5."""
    labels, table = toy_temperature_table(temperatures)
    return save_temperature_figure(path, labels, table)
