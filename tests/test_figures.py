"""The temperature figure (the book's grouped bars at T = 1, 0.1, 5) and its PNG export."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from gptcore.cli import main
from gptcore.errors import GptTuiError
from gptcore.sampling.figures import (
    BOOK_TEMPERATURES,
    grouped_bars,
    save_temperature_figure,
    save_toy_temperature_figure,
    toy_temperature_table,
)
from gptcore.sampling.nexttoken import TOY_LOGITS, TOY_VOCAB

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def has_matplotlib() -> bool:
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `import matplotlib` fail as it does where the plot extra is not installed."""
    for name in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)


def test_toy_table_is_softmax_of_the_scaled_logits_in_vocabulary_order() -> None:
    labels, table = toy_temperature_table()
    assert labels == list(TOY_VOCAB)
    assert list(table) == list(BOOK_TEMPERATURES)
    logits = torch.tensor(TOY_LOGITS)
    for t, probs in table.items():
        expected = torch.softmax(logits / t, dim=0).tolist()
        assert probs == pytest.approx(expected, abs=1e-6)
    # The chapter's reading of the figure: T=0.1 is almost greedy, T=5 much flatter.
    assert table[0.1][TOY_VOCAB.index("forward")] > 0.99
    assert max(table[5.0]) < 0.3 < max(table[1.0])


def test_grouped_bars_sit_side_by_side_around_each_token() -> None:
    labels, table = toy_temperature_table()
    series = grouped_bars(labels, table)
    assert [s.label for s in series] == [
        "Temperature = 1",
        "Temperature = 0.1",
        "Temperature = 5",
    ]
    width = series[0].width
    assert all(s.width == width for s in series) and len(series) * width <= 1.0
    for i in range(len(labels)):
        xs = [s.x[i] for s in series]
        assert xs == sorted(xs)  # in temperature order, left to right
        assert sum(xs) / len(xs) == pytest.approx(i)  # the group is centred on the tick
        assert xs[1] - xs[0] == pytest.approx(width)  # touching, not overlapping
    assert [s.heights for s in series] == [table[t] for t in table]


def test_bad_tables_are_explained() -> None:
    with pytest.raises(GptTuiError, match="at least one temperature"):
        grouped_bars(["a"], {})
    with pytest.raises(GptTuiError, match="at least one token"):
        grouped_bars([], {1.0: []})
    with pytest.raises(GptTuiError, match="2 probabilities for 3 tokens"):
        grouped_bars(["a", "b", "c"], {1.0: [0.5, 0.5]})
    with pytest.raises(GptTuiError, match=">= 0"):
        toy_temperature_table([1.0, -2.0])


def test_missing_matplotlib_names_the_plot_extra(tmp_path: Path, no_matplotlib: None) -> None:
    out = tmp_path / "temperature.png"
    with pytest.raises(GptTuiError, match=r"pip install 'gpt-tui\[plot\]'"):
        save_toy_temperature_figure(out)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_cli_without_matplotlib_is_one_line_and_exit_2(
    tmp_path: Path, no_matplotlib: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "temperature.png"
    assert main(["inspect", "--toy", "--samples", "0", "--png", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # checked before the report is printed
    assert captured.err.startswith("gpt-tui: error: exporting a PNG needs matplotlib")
    assert "gpt-tui[plot]" in captured.err and captured.err.count("\n") == 1
    assert not out.exists()


@pytest.mark.skipif(not has_matplotlib(), reason="the plot extra (matplotlib) is not installed")
def test_png_of_the_books_figure_from_the_library_and_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = save_toy_temperature_figure(tmp_path / "sub" / "temperature.png")
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in out.parent.iterdir()] == ["temperature.png"]  # no temp left

    cli_out = tmp_path / "cli.png"
    assert main(["inspect", "--toy", "--samples", "0", "--png", str(cli_out)]) == 0
    assert cli_out.read_bytes()[:8] == PNG_MAGIC
    assert f"saved the temperature comparison to {cli_out}" in capsys.readouterr().out

    custom = save_temperature_figure(tmp_path / "two.png", ["a", "b"], {2.0: [0.25, 0.75]})
    assert custom.read_bytes()[:8] == PNG_MAGIC
