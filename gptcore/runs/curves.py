"""Curve maths for the runs view: smoothing people can trust and honest downsampling.

Smoothing is a debiased exponential moving average (as Adam debiases its moments),
so the first points are not dragged towards zero, and it is computed on the full
series *before* any downsampling for display. Downsampling keeps each bucket's
minimum and maximum, so a spike is never lost, and says when it happened.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

X_AXES = ("step", "tokens", "time")  # what the runs view can put on the x-axis


def debiased_ema(values: Sequence[float], smoothing: float) -> list[float]:
    """The debiased exponential moving average of `values`.

    ema_t = s * ema_(t-1) + (1 - s) * v_t from ema_(-1) = 0, divided by 1 - s^(t+1),
    so the first point equals the first value. `smoothing` s is in [0, 1); 0 gives the
    raw values. A NaN or infinite point is passed through as it is and left out of the
    average, so it does not poison the points after it.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    out: list[float] = []
    ema, seen = 0.0, 0  # seen: finite points averaged so far (the debias exponent)
    for value in values:
        value = float(value)
        if not math.isfinite(value):
            out.append(value)
            continue
        ema = smoothing * ema + (1.0 - smoothing) * value
        seen += 1
        # The first point is its value exactly (the division gives it up to rounding).
        out.append(value if seen == 1 else ema / (1.0 - smoothing**seen))
    return out


def downsample(
    xs: Sequence[float], ys: Sequence[float], max_points: int
) -> tuple[list[float], list[float], bool]:
    """At most about `max_points` points of (xs, ys), ordered by x, and whether any were left out.

    The series is cut into max_points // 2 buckets of consecutive points; each keeps its
    lowest and highest y, in x order, so no spike disappears. Non-finite ys never win a
    bucket (they cannot be drawn); a series that fits is returned unchanged.
    """
    if len(xs) != len(ys):
        raise ValueError(f"xs and ys differ in length: {len(xs)} and {len(ys)}")
    n = len(xs)
    if n <= max(max_points, 2):
        return list(xs), list(ys), False
    buckets = max(1, max_points // 2)
    out_x: list[float] = []
    out_y: list[float] = []
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        finite = [i for i in range(lo, hi) if math.isfinite(ys[i])]
        if not finite:
            continue
        low = min(finite, key=lambda i: ys[i])
        high = max(finite, key=lambda i: ys[i])
        for i in sorted({low, high}):
            out_x.append(xs[i])
            out_y.append(ys[i])
    return out_x, out_y, True
