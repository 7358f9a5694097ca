"""How gpt-tui writes sizes, rates, durations and counts for people to read.

The CLI and the app both format through these, so a checkpoint's size or a
download's ETA reads the same everywhere:

    format_bytes(548_100_000)   "548 MB"        (decimal units, three digits)
    format_si(12_345, "tok")    "12.3 ktok"
    format_duration(245)        "4m05s"         (ETAs and elapsed times)
    format_count(5145)          "5,145"

Missing values (None, NaN) show as "–".
"""

from __future__ import annotations

import math

MISSING = "–"
_PREFIXES = ("", "k", "M", "G", "T", "P")


def format_si(value: float, unit: str = "") -> str:
    """`value` scaled to a decimal prefix, with about three significant digits.

    Whole numbers below 1000 keep no decimals ("512 B"); otherwise one decimal
    below 100 ("12.3 MB") and none above ("548 MB").
    """
    if not math.isfinite(value):
        return MISSING
    prefix = ""
    for prefix in _PREFIXES:
        if abs(value) < 999.5 or prefix == _PREFIXES[-1]:
            break
        value /= 1000
    whole = prefix == "" and float(value).is_integer()
    number = f"{value:.0f}" if whole or abs(value) >= 99.95 else f"{value:.1f}"
    return f"{number} {prefix}{unit}".rstrip()


def format_bytes(n: float | None) -> str:
    """A size in bytes: "512 B", "13.0 MB", "1.5 GB"."""
    return MISSING if n is None else format_si(n, "B")


def format_duration(seconds: float | None) -> str:
    """A duration or ETA: "45s", "4m05s", "1h02m" (whole seconds, rounded down)."""
    if seconds is None or not math.isfinite(seconds):
        return MISSING
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def format_count(n: int | None) -> str:
    """A count with thousands separators: "5,145"."""
    return MISSING if n is None else f"{n:,}"
