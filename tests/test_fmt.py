"""The one formatter for sizes, rates, durations and counts, and the one TOML writer."""

from __future__ import annotations

import math
import sys

import pytest

from gptcore.util.fmt import format_bytes, format_count, format_duration, format_si
from gptcore.util.tomlwrite import dumps_toml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (None, "–"),
        (0, "0 B"),
        (512, "512 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (13_000_000, "13.0 MB"),
        (548_100_000, "548 MB"),
        (999_600, "1.0 MB"),  # would round to "1000 kB": the next unit instead
        (1_500_000_000, "1.5 GB"),
        (6_400_000_000, "6.4 GB"),
        (2_000_000_000_000, "2.0 TB"),
    ],
)
def test_format_bytes(n: int | None, text: str) -> None:
    assert format_bytes(n) == text


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (12_345, "tok", "12.3 ktok"),
        (12.0, "steps", "12 steps"),
        (5.26, "steps", "5.3 steps"),
        (0.5, "chars", "0.5 chars"),
        (1234.0, "", "1.2 k"),
        (float("nan"), "B", "–"),
    ],
)
def test_format_si(value: float, unit: str, text: str) -> None:
    assert format_si(value, unit) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "–"),
        (float("inf"), "–"),
        (-3, "0s"),
        (0, "0s"),
        (45.9, "45s"),  # whole seconds, rounded down
        (60, "1m00s"),
        (245, "4m05s"),
        (1313, "21m53s"),  # the README's CLI example
        (3599, "59m59s"),
        (3600, "1h00m"),
        (3725, "1h02m"),
        (90_000, "25h00m"),
    ],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("n", "text"), [(None, "–"), (0, "0"), (5145, "5,145"), (163_009_536, "163,009,536")]
)
def test_format_count(n: int | None, text: str) -> None:
    assert format_count(n) == text


# ---------------------------------------------------------------- TOML


def test_toml_round_trips_through_tomllib() -> None:
    data = {
        "name": 'quote " back \\ tab \t newline \n [/b] del \x7f emoji 😀 é',
        "n": 3,
        "big": 2**62,
        "x": 0.0004,
        "tiny": 1e-5,
        "huge": 1e16,
        "neg": -2.5,
        "flag": False,
        "skip": None,
        "ids": [1, 2, 3],
        "words": ["a", 'b"'],
        "spaced key": "quoted",
        "model": {"context_length": 64, "drop_rate": 0.0, "qkv_bias": True, "unset": None},
        "train": {"lr": 4e-4, "start_context": "Every effort moves you"},
    }
    parsed = tomllib.loads(dumps_toml(data, comment="header\nsecond line"))
    expected = {k: v for k, v in data.items() if v is not None}
    expected["model"] = {k: v for k, v in data["model"].items() if v is not None}
    assert parsed == expected


def test_toml_writes_non_finite_floats_and_a_comment() -> None:
    text = dumps_toml({"a": float("inf"), "b": float("-inf"), "c": float("nan")}, comment="hi")
    assert text.startswith("# hi\n")
    parsed = tomllib.loads(text)
    assert parsed["a"] == math.inf and parsed["b"] == -math.inf and math.isnan(parsed["c"])


def test_toml_refuses_what_these_files_never_hold() -> None:
    with pytest.raises(TypeError, match="dict"):
        dumps_toml({"model": {"nested": {"too": "deep"}}})
    with pytest.raises(TypeError, match="object"):
        dumps_toml({"x": object()})
