"""A plotext chart widget that draws from a copy of what was plotted.

plotext's build rewrites the data it stores in place: on a log scale it replaces
every stored value (series, ticks, reference lines, labels' positions) with its
log10, on each build. Textual renders again on every resize, so the second render
took the log of a log and the third failed with "math domain error", ending the
app. Here each render builds from a deep copy of plotext's state and the copy is
thrown away: what the chart was given stays exactly as given, however often it
is drawn.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

# The largest magnitude plotext can place: its arithmetic on spans and scales
# overflows near the float range's end. A loss can only get this far as float64
# garbage (float32 ends at 3.4e38); such points are left out like NaN ones.
DRAWABLE_MAX = 1e150


def drawable(value: float) -> bool:
    """Whether plotext can place `value` on an axis: finite and not absurdly large."""
    return math.isfinite(value) and abs(value) <= DRAWABLE_MAX


class SafePlot(PlotextPlot):
    """A PlotextPlot whose renders never change its plotted data, and whose
    failure to draw (a plotext bug) shows as a line of text, not a crash."""

    def draw_text(self, width: int, height: int) -> str:
        """The chart at `width` x `height` as ANSI text (raises what plotext raises).

        Builds on a throwaway copy of plotext's state, so a later draw at another
        size starts from the same data."""
        plot = self._plot
        pristine = plot.monitor
        plot.monitor = pristine.copy()  # plotext's own deep copy
        try:
            plot.plotsize(width, height)
            plot._set_size(width, height)  # as PlotextPlot.render does (textual-plotext#5)
            plot.theme(self._get_plotext_theme_name(self.app.theme))
            return plot.build()
        finally:
            plot.monitor = pristine

    def render(self) -> RenderResult:
        try:
            return Text.from_ansi(self.draw_text(self.size.width, self.size.height))
        except Exception as exc:  # a plotting library's fault must not end the app
            self.log.error(f"chart not drawn: {exc!r}")
            return Text(f"(the chart could not be drawn: {exc})", style="dim")
