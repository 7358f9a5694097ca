import json
import math
from pathlib import Path

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


def _corpus(tmp_path):
    path = tmp_path / "story.txt"
    words = " ".join(f"word{i % 97} and the story goes on." for i in range(400))
    path.write_text(words, encoding="utf-8")
    return path


def test_eval_cli_and_evaluate_model_agree(capsys, tmp_path):
    from gptcore.training.evaluate import evaluate_model
    from gptcore.weights.modelspec import load_spec

    corpus = _corpus(tmp_path)
    code, out, _ = run_cli(
        capsys, "eval", "--preset", "tiny", "--seed", "5", "--corpus", str(corpus),
        "--batch-size", "3", "--device", "cpu", "--json", "--all",
    )  # fmt: skip
    assert code == 0
    model = load_spec("preset:tiny", "cpu", seed=5).model
    result = evaluate_model(model, corpus, batch_size=3, device="cpu")
    assert json.loads(out) == result.to_dict()
    assert result.train_batches > 1 and result.val_batches >= 1 and result.device == "cpu"
    # The text report shows the same numbers and what was measured.
    code, out, _ = run_cli(
        capsys, "eval", "--preset", "tiny", "--seed", "5", "--corpus", str(corpus),
        "--batch-size", "3", "--device", "cpu", "--all",
    )  # fmt: skip
    assert f"train loss  {result.train_loss:.4f}" in out
    assert (
        f"batches     train {result.train_batches}, val {result.val_batches} (batch size 3)" in out
    )
    assert "tiny (untrained, seed 5)" in out


def test_eval_checkpoint_spec_and_max_batches(capsys, tmp_path):
    import torch

    from gptcore.model.gpt import GPTModel
    from gptcore.runs.checkpoint import save_checkpoint
    from gptcore.settings.model import get_preset
    from gptcore.training.evaluate import evaluate_model
    from gptcore.util.paths import runs_dir

    torch.manual_seed(3)
    model = GPTModel(get_preset("tiny"))
    path = save_checkpoint(
        runs_dir() / "r" / "checkpoints" / "step-000004", model,
        train_config={}, step=4, epoch=0, tokens_seen=0, val_loss=5.0,
    )  # fmt: skip
    corpus = _corpus(tmp_path)
    code, out, _ = run_cli(
        capsys, "eval", "--checkpoint", "r:best", "--corpus", str(corpus), "--max-batches", "2",
        "--json",
    )  # fmt: skip
    assert code == 0
    result = evaluate_model(model, corpus, max_batches=2)
    assert json.loads(out) == pytest.approx(result.to_dict(), rel=1e-6)
    assert result.train_batches == 2 and result.val_batches <= 2
    code, out, _ = run_cli(capsys, "eval", "--checkpoint", "r:latest", "--corpus", str(corpus))
    assert code == 0 and f"checkpoint {path} (step 4)" in out


def test_evaluate_model_errors_and_options(tmp_path):
    import torch

    from gptcore.errors import ConfigError
    from gptcore.training.evaluate import eval_options, evaluate_model
    from gptcore.weights.modelspec import load_spec

    model = load_spec("preset:tiny", "cpu").model
    with pytest.raises(ConfigError, match="batch size must be positive"):
        evaluate_model(model, _corpus(tmp_path), batch_size=0)
    with pytest.raises(ConfigError, match="fewer than one batch of 500"):
        evaluate_model(model, _corpus(tmp_path), batch_size=500, device="cpu")
    assert eval_options({"batch_size": 8, "device": "cpu"}) == (8, torch.device("cpu"))
    # A run trained on a device this machine lacks is evaluated on pick_device's choice.
    missing = "mps" if torch.cuda.is_available() else "cuda"
    batch, device = eval_options({"device": missing})
    assert batch == 2 and device.type != missing


def _checkpoint(run: str, seed: int, train_config: dict) -> Path:
    import torch

    from gptcore.model.gpt import GPTModel
    from gptcore.runs.checkpoint import save_checkpoint
    from gptcore.settings.model import get_preset
    from gptcore.util.paths import runs_dir

    torch.manual_seed(seed)
    return save_checkpoint(
        runs_dir() / run / "checkpoints" / "step-000004", GPTModel(get_preset("tiny")),
        train_config=train_config, step=4, epoch=0, tokens_seen=0, val_loss=5.0,
    )  # fmt: skip


def test_eval_checkpoint_uses_its_runs_corpus_split_windows_and_batches(capsys, tmp_path):
    from gptcore.training.evaluate import evaluate_model
    from gptcore.weights.modelspec import load_spec

    corpus = _corpus(tmp_path)
    own = {"corpus": str(corpus), "train_ratio": 0.6, "batch_size": 3, "max_length": 16}
    path = _checkpoint("r", 3, {**own, "stride": 8, "device": "cpu", "lr": 0.01})
    code, out, _ = run_cli(capsys, "eval", "--checkpoint", "r", "--max-batches", "2", "--json")
    assert code == 0
    shown = json.loads(out)
    model = load_spec(str(path), "cpu").model
    expected = evaluate_model(
        model, corpus, train_ratio=0.6, batch_size=3, max_length=16, stride=8, max_batches=2
    )
    assert shown == pytest.approx(expected.to_dict(), rel=1e-6)
    assert (shown["train_ratio"], shown["window"], shown["stride"]) == (0.6, 16, 8)
    # The default split gives other token counts: the checkpoint's own one was used.
    default = evaluate_model(model, corpus, max_batches=2)
    assert shown["val_tokens"] > 3 * default.val_tokens
    code, out, _ = run_cli(capsys, "eval", "--checkpoint", "r", "--max-batches", "2")
    assert code == 0
    assert (
        f"split       train 0.6 as its run trained: {expected.train_tokens:,} tokens, "
        f"val {expected.val_tokens:,}; windows of 16, stride 8"
    ) in out


@pytest.mark.parametrize("flag", [["--train-ratio", "0.5"], ["--batch-size", "4"]])
def test_eval_checkpoint_refuses_split_flags(capsys, flag):
    _checkpoint("r", 3, {})
    code, _, err = run_cli(capsys, "eval", "--checkpoint", "r", *flag)
    assert code == 2
    assert f"{flag[0]} applies to --preset, --gpt2 and --weights" in err


def test_a_checkpoints_damaged_split_setting_is_named(capsys):
    path = _checkpoint("r", 3, {"train_ratio": 7})
    code, _, err = run_cli(capsys, "eval", "--checkpoint", "r")
    assert code == 2
    assert f"checkpoint {path}: train_config: train.train_ratio must be" in err
    assert "Traceback" not in err
