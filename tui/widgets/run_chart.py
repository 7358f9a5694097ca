"""Several runs' curves overlaid in one plotext chart (the Runs screen's panel).

Each run keeps one colour for the whole session, chosen from its name; its smoothed
series (a debiased EMA of the full series, gptcore.runs.curves) is drawn over the raw one
in a faint shade of the same colour. Downsampling for display keeps every bucket's
min and max and the title says when it happened. What was drawn is kept in
`RunChart.drawn`, as data, so tests check the plot without reading pixels.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from textual.color import Color

from gptcore.runs.curves import debiased_ema, downsample

from .loss_chart import nice_ticks, tick_labels
from .safe_plot import SafePlot, drawable

RGB = tuple[int, int, int]
# Okabe-Ito: told apart with most kinds of colour blindness, on dark and light themes.
PALETTE: tuple[RGB, ...] = (
    (86, 180, 233),
    (230, 159, 0),
    (0, 158, 115),
    (204, 121, 167),
    (240, 228, 66),
    (213, 94, 0),
    (0, 114, 178),
)
FAINT = 0.35  # how much of a run's colour its raw series keeps (the rest is the background)
MIN_POINTS = 100  # the least points per series before downsampling, whatever the width


class ColourBook:
    """A colour per run name, kept for the session: the name picks its colour
    (crc32), and only a clash with a run already given that colour moves it on."""

    def __init__(self) -> None:
        self._colours: dict[str, RGB] = {}

    def colour(self, name: str) -> RGB:
        if name not in self._colours:
            start = zlib.crc32(name.encode("utf-8")) % len(PALETTE)
            taken = set(self._colours.values())
            free = [PALETTE[(start + i) % len(PALETTE)] for i in range(len(PALETTE))]
            free = [c for c in free if c not in taken] or [PALETTE[start]]
            self._colours[name] = free[0]
        return self._colours[name]


@dataclass(frozen=True)
class Curve:
    """One series of one run, in the x unit the chart is asked to show."""

    run: str
    label: str  # "train", "val", "lr", …
    xs: list[float]
    ys: list[float]
    # Drawn as a dot per point and never smoothed: the sparse val losses, told apart
    # from the per-step train loss drawn as a line in the same colour.
    points: bool = False


@dataclass(frozen=True)
class Drawn:
    """A series as plotted: `raw` is the faint one behind a smoothed curve."""

    run: str
    label: str
    xs: list[float]
    ys: list[float]
    colour: RGB
    raw: bool


def log_ticks(lo: float, hi: float) -> list[float]:
    """1, 2 and 5 times powers of ten inside [lo, hi]; plain ticks when too few fit."""
    if lo <= 0:
        return nice_ticks(lo, hi)
    if hi <= lo * (1 + 1e-9):  # one value (or a rounding apart): a factor of two either side
        lo, hi = (lo / 2 if lo / 2 > 0 else lo), hi * 2
    ticks = [
        m * 10.0**e
        for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
        for m in (1, 2, 5)
        if lo <= m * 10.0**e <= hi
    ]
    if len(ticks) > 6:
        ticks = [t for t in ticks if math.isclose(math.log10(t) % 1, 0, abs_tol=1e-9)]
    return ticks if len(ticks) >= 2 else [lo, hi]


def _short(value: float) -> str:
    return f"{value:.3g}"


class RunChart(SafePlot):
    """Redrawn by `show` whenever the runs, their data or a setting changes."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.colours = ColourBook()
        self.drawn: list[Drawn] = []
        self.title = ""
        self.x_label = ""
        self.log_y = False
        self.downsampled = False

    def show(
        self,
        curves: Sequence[Curve],
        *,
        title: str,
        x_label: str,
        smoothing: float = 0.0,
        log_y: bool = False,
        pinned: str | None = None,
        lines: Sequence[tuple[str, float]] = (),
        marks: Sequence[tuple[str, float]] = (),
        x_format: Callable[[float], str] | None = None,
        x_integer: bool = False,
        max_points: int | None = None,
    ) -> None:
        """Draw `curves` (the pinned run's on top), horizontal reference `lines`
        (label, y) and vertical `marks` (run, x) in that run's faint colour."""
        width = self.size.width or 80
        max_points = max_points or max(MIN_POINTS, 2 * width)  # braille: 2 dots a column
        faint_to = self._background()
        plt = self.plt
        plt.clear_data()
        self.drawn, self.downsampled = [], False
        # The pinned run last, so its curve is drawn over the others.
        ordered = sorted(curves, key=lambda c: c.run == pinned)
        for curve in ordered:
            colour = self.colours.colour(curve.run)
            xs, ys = self._drawable(curve.xs, curve.ys, log_y)
            if not xs:
                continue
            if smoothing > 0 and not curve.points:
                # The EMA of the full series first; only then thinned for display.
                # (The average of tiny values can underflow to 0: off a log scale.)
                sx, sy = self._drawable(xs, debiased_ema(ys, smoothing), log_y)
                self._add_series(curve, xs, ys, _blend(colour, faint_to), True, max_points)
                self._add_series(curve, sx, sy, colour, False, max_points)
            else:
                self._add_series(curve, xs, ys, colour, False, max_points)
        self._axes(log_y, x_format, x_integer, lines)
        for label, value in lines:
            if not drawable(value) or (log_y and value <= 0):
                continue
            plt.hline(value, "gray")
            plt.text(label, self._x_span()[0], value, color="gray", alignment="left")
        for run, x in marks:
            if not drawable(x):
                continue
            plt.vline(x, _blend(self.colours.colour(run), faint_to))
        self.title = title + (" · downsampled (min/max kept)" if self.downsampled else "")
        plt.title(self.title)
        plt.xlabel(x_label)
        self.x_label, self.log_y = x_label, log_y
        # plotext fails to draw an empty plot on a log scale.
        plt.yscale("log" if log_y and self.drawn else "linear")
        self.refresh()

    def _background(self) -> RGB:
        try:
            return Color.parse(self.app.theme_variables.get("surface", "black")).rgb
        except Exception:  # no app yet or an odd theme value: fade towards black
            return (0, 0, 0)

    @staticmethod
    def _drawable(
        xs: Sequence[float], ys: Sequence[float], log_y: bool
    ) -> tuple[list[float], list[float]]:
        """Points that can be drawn: finite (and within plotext's range), and positive
        on a log scale."""
        pairs = [
            (x, y)
            for x, y in zip(xs, ys, strict=False)
            if drawable(x) and drawable(y) and (y > 0 or not log_y)
        ]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def _add_series(
        self, curve: Curve, xs: list[float], ys: list[float], colour: RGB, raw: bool, most: int
    ) -> None:
        px, py, thinned = downsample(xs, ys, most)
        self.downsampled = self.downsampled or thinned
        self.drawn.append(Drawn(curve.run, curve.label, px, py, colour, raw))
        # plotext gets lists of its own: `drawn` keeps ours, as they were drawn.
        if curve.points:
            self.plt.scatter(list(px), list(py), marker="•", color=colour)
        else:
            self.plt.plot(list(px), list(py), marker="braille", color=colour)

    def _x_span(self) -> tuple[float, float]:
        xs = [x for d in self.drawn for x in d.xs]
        return (min(xs), max(xs)) if xs else (0.0, 1.0)

    def _axes(
        self,
        log_y: bool,
        x_format: Callable[[float], str] | None,
        x_integer: bool,
        lines: Sequence[tuple[str, float]],
    ) -> None:
        """Round ticks (plotext's own are uneven); reference lines stay inside the y range."""
        plt = self.plt
        ys = [y for d in self.drawn for y in d.ys]
        ys += [v for _label, v in lines if drawable(v) and (v > 0 or not log_y)]
        if not ys:  # an empty frame, not the last drawing's ticks
            plt.xlim(0, 1)
            plt.ylim(0, 1)
            plt.xticks([0, 1], ["", ""])
            plt.yticks([0, 1], ["", ""])
            return
        lo, hi = self._x_span()
        x = nice_ticks(lo, hi, integer=x_integer)
        plt.xlim(x[0], x[-1])
        plt.xticks(x, [x_format(t) for t in x] if x_format else tick_labels(x))
        if log_y:
            y = log_ticks(min(ys), max(ys))
            # On a log scale plotext takes its limits as powers of ten, its ticks as values.
            plt.ylim(math.log10(min(ys + y)), math.log10(max(ys + y)))
            plt.yticks(y, [_short(t) for t in y])
        else:
            y = nice_ticks(min(ys), max(ys))
            plt.ylim(y[0], y[-1])
            plt.yticks(y, tick_labels(y))


def _blend(colour: RGB, towards: RGB) -> RGB:
    r, g, b = (round(c * FAINT + t * (1 - FAINT)) for c, t in zip(colour, towards, strict=True))
    return (r, g, b)
