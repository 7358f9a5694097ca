"""Val loss against one parameter's values, drawn in text: one line per value (or per
range of values, for a continuous parameter), the trials' mean as a dot on a band
from their lowest to their highest val loss. Seeds of one configuration are one
trial's mean already, so the band shows how much the other settings (or seeds) move it.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

BINS = 6  # lines for a continuous parameter


def _label(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _groups(points: list[tuple[Any, float]]) -> list[tuple[str, list[float]]]:
    values = {v for v, _ in points}
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if not numeric or len(values) <= BINS:
        order = (
            sorted(values, key=lambda v: (str(type(v)), v)) if numeric else sorted(values, key=str)
        )
        return [(_label(v), [loss for x, loss in points if x == v]) for v in order]
    low, high = min(values), max(values)
    use_log = low > 0 and high / low > 20
    scale = (lambda x: math.log10(x)) if use_log else (lambda x: x)
    a, b = scale(low), scale(high)
    edges = [a + (b - a) * i / BINS for i in range(BINS + 1)]
    unscale = (lambda x: 10**x) if use_log else (lambda x: x)
    groups = []
    for i in range(BINS):
        inside = [
            loss
            for x, loss in points
            if edges[i] <= scale(x) < edges[i + 1] or (i == BINS - 1 and scale(x) == edges[-1])
        ]
        if inside:
            groups.append((f"{_label(unscale(edges[i]))}-{_label(unscale(edges[i + 1]))}", inside))
    return groups


def param_lines(param: str, points: list[tuple[Any, float]], width: int = 60) -> list[str]:
    """The view's lines for `param` (its name first); a note when nothing to draw."""
    if not points:
        return [f"{param}: no trial has a val loss yet"]
    groups = _groups(points)
    losses = [loss for _, loss in points]
    low, high = min(losses), max(losses)
    label_w = max(len(label) for label, _ in groups)
    bar_w = max(10, width - label_w - 18)

    def col(value: float) -> int:
        return 0 if high == low else round((value - low) / (high - low) * (bar_w - 1))

    lines = [f"val loss by {param} ({low:.3f} left, {high:.3f} right; dot = mean)"]
    for label, group in groups:
        cells = [" "] * bar_w
        a, b = col(min(group)), col(max(group))
        for i in range(a, b + 1):
            cells[i] = "─"
        cells[col(statistics.fmean(group))] = "●"
        mean = statistics.fmean(group)
        lines.append(f"{label.rjust(label_w)} │{''.join(cells)}│ {mean:.3f} ({len(group)})")
    return lines
