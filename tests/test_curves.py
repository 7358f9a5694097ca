"""The runs view's curve maths: the debiased EMA and min/max downsampling."""

from __future__ import annotations

import math

import pytest

from gptcore.runs.curves import X_AXES, debiased_ema, downsample


def test_debiased_ema_by_hand() -> None:
    # s = 0.5: ema = 2, 2, 4; divided by 1 - 0.5, 1 - 0.25, 1 - 0.125.
    assert debiased_ema([4.0, 2.0, 6.0], 0.5) == pytest.approx([4.0, 2 / 0.75, 4 / 0.875])
    # The first point is the first value, whatever the smoothing (no pull towards 0).
    assert debiased_ema([10.0, 10.0, 10.0], 0.9) == pytest.approx([10.0, 10.0, 10.0])
    assert debiased_ema([7.5], 0.99) == [7.5]
    assert debiased_ema([11.158225059509277, 1.0], 0.6)[0] == 11.158225059509277


def test_zero_smoothing_is_the_raw_series() -> None:
    values = [3.0, 1.0, 4.0, 1.0, 5.0]
    assert debiased_ema(values, 0.0) == values
    assert debiased_ema([], 0.6) == []


def test_non_finite_points_pass_through_without_poisoning_the_rest() -> None:
    out = debiased_ema([4.0, math.nan, 2.0, math.inf, 6.0], 0.5)
    assert out[0] == 4.0 and math.isnan(out[1]) and out[3] == math.inf
    # The finite points are the EMA of 4, 2, 6 alone.
    assert [out[0], out[2], out[4]] == pytest.approx([4.0, 2 / 0.75, 4 / 0.875])
    # A leading NaN: the first finite point still equals its value.
    assert debiased_ema([math.nan, 3.0], 0.9)[1] == pytest.approx(3.0)


def test_smoothing_out_of_range_is_refused() -> None:
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            debiased_ema([1.0], bad)


def test_downsample_keeps_each_buckets_min_and_max_in_x_order() -> None:
    xs = list(range(10))
    ys = [5.0, 4.0, 3.0, 9.0, 2.0, 1.0, 1.5, 50.0, 1.2, 1.1]
    out_x, out_y, downsampled = downsample(xs, ys, 4)
    assert downsampled
    # Buckets 0-4 and 5-9: (min 2 at x=4, max 9 at x=3), (min 1 at x=5, spike 50 at x=7).
    assert out_x == [3, 4, 5, 7]
    assert out_y == [9.0, 2.0, 1.0, 50.0]


def test_downsample_leaves_a_short_series_alone_and_skips_nan() -> None:
    assert downsample([1, 2, 3], [3.0, 2.0, 1.0], 10) == ([1, 2, 3], [3.0, 2.0, 1.0], False)
    xs = list(range(8))
    ys = [1.0, math.nan, 3.0, 2.0, math.nan, math.nan, math.nan, math.nan]
    out_x, out_y, downsampled = downsample(xs, ys, 4)
    assert downsampled and out_x == [0, 2] and out_y == [1.0, 3.0]
    with pytest.raises(ValueError):
        downsample([1, 2], [1.0], 4)


def test_x_axes() -> None:
    assert X_AXES == ("step", "tokens", "time")
