"""Horizontal bars drawn with block characters (eighths), for probabilities and counts."""

from __future__ import annotations

import math

_EIGHTHS = " ▏▎▍▌▋▊▉█"


def bar(fraction: float, width: int) -> str:
    """A bar of `width` cells filled to `fraction` (clamped to [0, 1]), left-aligned, padded."""
    if not math.isfinite(fraction):
        fraction = 0.0
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    full, rest = divmod(eighths, 8)
    text = "█" * full + (_EIGHTHS[rest] if rest else "")
    return text.ljust(width)


def percent(p: float) -> str:
    """6-character percentage: ' 57.75%', '<0.01%' for tiny non-zero values."""
    if p <= 0:
        return "  0.00%"
    if p < 0.0001:
        return " <0.01%"
    return f"{p * 100:6.2f}%"


def token_label(text: str, width: int) -> str:
    """A token's text made visible (spaces as ␣, newlines as ⏎) and cut to `width`."""
    shown = text.replace(" ", "␣").replace("\n", "⏎").replace("\t", "⇥").replace("\r", "␍")
    if len(shown) > width:
        shown = shown[: width - 1] + "…"
    return shown.ljust(width)
