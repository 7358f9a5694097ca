import json
import math

import pytest

from gptcore.cli import main


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_eval_reproduces_the_books_initial_losses(capsys, verdict_path):
    code, out, _ = run_cli(
        capsys,
        "eval",
        "--preset",
        "book-124m",
        "--corpus",
        str(verdict_path),
        "--seed",
        "123",
        "--json",
    )
    assert code == 0
    result = json.loads(out)
    # The book prints 10.98758347829183 and 10.98110580444336.
    assert result["train_loss"] == pytest.approx(10.98758, abs=1e-3)
    assert result["val_loss"] == pytest.approx(10.98111, abs=1e-3)
    assert result["val_perplexity"] == pytest.approx(math.exp(result["val_loss"]))


def test_eval_tiny_on_builtin_prints_losses(capsys):
    code, out, _ = run_cli(capsys, "eval", "--preset", "tiny", "--max-batches", "2")
    assert code == 0
    assert "train loss" in out and "val loss" in out and "builtin" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--corpus", "/no/such/corpus.txt"], "corpus not found"),
        (["--batch-size", "0"], "--batch-size must be positive"),
        (["--device", "cuda"], "CUDA is not available"),
    ],
)
def test_eval_errors_are_one_line_and_exit_2(capsys, args, message):
    code, _, err = run_cli(capsys, "eval", "--preset", "tiny", *args)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert err.startswith("gpt-tui: error:")


def test_eval_corpus_too_small(capsys, tmp_path):
    path = tmp_path / "small.txt"
    path.write_text("A short story. " * 10)
    code, _, err = run_cli(capsys, "eval", "--preset", "tiny", "--corpus", str(path))
    assert code == 2
    assert "needs at least 65" in err
