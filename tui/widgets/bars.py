"""The engine's bar (gptcore.util.bars) as a Rich renderable that fills its table
cell: the Speed Lab's rows draw their bars at whatever width the table gives them."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text

from gptcore.util.bars import bar

MIN_CELLS = 4


class Bar:
    """A bar filled to `fraction` (0..1) of the cell it is drawn in."""

    def __init__(self, fraction: float, style: str = "") -> None:
        self.fraction, self.style = fraction, style

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text(bar(self.fraction, options.max_width), style=self.style, no_wrap=True, end="")

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(min(MIN_CELLS, options.max_width), options.max_width)
