"""Bars and percentages drawn in text cells: the one bar renderer of gpt-tui.

`gpt-tui inspect`, `gpt-tui speedlab`, the CLI progress line, the inspector
screen and the Speed Lab screen all draw their bars with `bar`, so a bar reads
the same in a terminal log and in the app:

    bar(0.5, 8)       "████    "     (filled in eighths of a cell: ▏▎▍▌▋▊▉█)
    bar(0.07, 8)      "▌       "
    percent(0.5775)   " 57.75%"      (7 cells; " <0.01%" for a tiny non-zero value)
"""

from __future__ import annotations

import math

_EIGHTHS = " ▏▎▍▌▋▊▉"
FULL = "█"


def bar(fraction: float, width: int) -> str:
    """A bar `width` cells long filled to `fraction` of it (clamped to [0, 1]; NaN
    is 0), in eighths of a cell, padded with spaces to exactly `width` cells."""
    width = max(width, 0)
    if not math.isfinite(fraction):
        fraction = 0.0
    fraction = min(max(fraction, 0.0), 1.0)
    full, rest = divmod(round(fraction * width * 8), 8)
    return (FULL * full + (_EIGHTHS[rest] if rest else "")).ljust(width)


def percent(p: float) -> str:
    """A probability as a percentage in 7 cells: ' 57.75%', '  0.00%' for 0 and
    ' <0.01%' for a tiny non-zero value (an untrained model's are about 0.002%)."""
    if p <= 0:
        return "  0.00%"
    if p < 0.0001:
        return " <0.01%"
    return f"{p * 100:6.2f}%"
