"""`gpt-tui train`, `gpt-tui checkpoints` and `gpt-tui eval --checkpoint` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gptcore.cli import main
from gptcore.runs.checkpoint import load_checkpoint
from gptcore.runs.checkpoints import list_checkpoints

from .run_helpers import tiny_corpus, write_tiny_run_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_tiny_run_config(tmp_path / "tiny.toml")


def test_train_prints_the_books_log_and_saves(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    code = main(["train", "--config", str(config), "--set", "max_steps=13", "--run-dir", str(run)])
    out = capsys.readouterr().out
    assert code == 0
    assert "Ep 1 (Step 000000): Train loss " in out and "Ep 2 (Step 000012)" in out
    assert "Every effort moves you" in out  # the epoch-1 sample
    assert "max_steps: 13 steps" in out
    assert (run / "config.toml").exists() and (run / "metrics.jsonl").exists()
    assert load_checkpoint(run / "checkpoints" / "step-000013").reason == "final"


def test_train_a_shipped_config_by_name_with_home_after_the_subcommand(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    home = tmp_path / "home"
    shrink = ["max_steps=1", "max_length=16", "model.context_length=16", "model.emb_dim=16"]
    shrink += ["model.n_heads=2", "model.n_layers=1", "sample_tokens=0"]
    args = ["train", "--config", "tiny", "--corpus", str(tiny_corpus(tmp_path))]
    args += [arg for value in shrink for arg in ("--set", value)]
    assert main([*args, "--home", str(home)]) == 0
    (run,) = (home / "data" / "runs").iterdir()
    assert load_checkpoint(run / "checkpoints" / "step-000001").train_config["sampler"] == "random"
    assert str(run) in capsys.readouterr().out


def test_an_unknown_config_name_lists_the_shipped_ones(capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--config", "tinny"]) == 2
    err = capsys.readouterr().err
    assert (
        "config file not found: tinny (shipped presets: book, gpt2-124m-continue, quick, tiny)"
        in err
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give a run config with --config FILE"),
        (["--config", "{tmp}/nope.toml"], "config file not found"),
        (["--config", "{bad_toml}"], "invalid TOML in"),
        (["--config", "{unknown_key}"], "unknown key 'lrr'"),
        (["--set", 'batch_size="two"'], "batch_size must be an integer"),
        (["--set", "lr=-1"], "train.lr must be positive"),
        (["--set", "nonsense"], "--set expects key=value"),
        (["--set", "model=huge"], "unknown model preset 'huge'"),
        (["--corpus", "{tmp}/missing.txt"], "corpus not found"),
        (["--corpus", "verdict"], "gpt-tui download verdict"),
        (["--set", "batch_size=100"], "too small for this configuration"),
        (["--set", "max_length=64"], "exceeds the model's context length"),
        (["--resume", "no-such-run"], "no run or checkpoint named 'no-such-run'"),
        (["--resume", "{tmp}", "--init", "gpt2:124M"], "cannot go with --resume"),
        (["--set", 'precision="fp16"', "--set", 'device="cpu"'], "fp16 needs a CUDA GPU"),
    ],
)
def test_errors_are_one_line_exit_2_and_write_nothing(
    config: Path,
    tmp_path: Path,
    isolated_home: Path,
    capsys: pytest.CaptureFixture,
    args: list[str],
    message: str,
) -> None:
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[train\nlr = ")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[train]\nlrr = 1\n")
    args = [a.format(tmp=tmp_path, bad_toml=bad_toml, unknown_key=unknown) for a in args]
    if args and args[0] == "--set" or args[:1] == ["--corpus"]:
        args = ["--config", str(config), *args]
    code = main(["train", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("gpt-tui: error: ") and err.count("\n") == 1, err
    assert message in err
    if "unknown key" in message:
        assert str(unknown) in err  # names the file
    assert not (isolated_home / "data" / "runs").exists()


def test_resume_with_another_model_config_is_refused(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    assert (
        main(["train", "--config", str(config), "--set", "max_steps=2", "--run-dir", str(run)]) == 0
    )
    capsys.readouterr()
    args = ["train", "--config", str(config), "--set", "model.n_layers=2", "--resume", str(run)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "does not match the model configuration" in err and "n_layers 1 vs 2" in err
    args = ["train", "--config", str(config), "--set", "batch_size=4", "--resume", str(run)]
    assert main(args) == 2
    assert "different train.batch_size" in capsys.readouterr().err


def test_checkpoints_commands(
    config: Path, tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["train", "--config", str(config), "--set", "max_steps=3"]) == 0
    (run,) = (isolated_home / "data" / "runs").iterdir()
    (run / "checkpoints" / "broken").mkdir()
    capsys.readouterr()

    assert main(["checkpoints"]) == 0
    out = capsys.readouterr().out
    assert "step-000003" in out and "BROKEN" in out

    assert main(["checkpoints", "show", f"{run}:latest", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["step"] == 3 and shown["model"]["n_layers"] == 1

    pth = tmp_path / "book.pth"
    assert main(["checkpoints", "export", str(run), str(pth)]) == 0
    assert "trf_blocks.0.norm1.scale" in torch.load(pth, weights_only=True)["model_state_dict"]
    args = ["checkpoints", "import", str(pth), "--preset", "tiny", "--name", "imp"]
    assert main(args) == 2  # wrong preset for these weights
    assert "does not match the model configuration" in capsys.readouterr().err
    sets = ["--set", "model.context_length=16", "--set", "model.emb_dim=16"]
    sets += ["--set", "model.n_heads=2", "--set", "model.n_layers=1"]
    assert main([*args, *sets]) == 0
    imported = Path(capsys.readouterr().out.strip())
    assert load_checkpoint(imported).reason == "imported"

    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(imported),
                "--corpus",
                str(config.parent / "corpus.txt"),
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["val_loss"] > 0

    assert main(["checkpoints", "rename", str(run), "pinned"]) == 0
    assert (run / "checkpoints" / "pinned").exists()
    assert main(["checkpoints", "rm", str(run / "checkpoints" / "pinned")]) == 0
    assert not (run / "checkpoints" / "pinned").exists()
    assert main(["checkpoints", "rm", "nothing-here"]) == 2
    assert "no run or checkpoint named" in capsys.readouterr().err
    names = {i.name for i in list_checkpoints()}
    assert "pinned" not in names and "broken" in names


def test_init_from_weights_takes_the_weights_shape(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from gptcore.model.gpt import GPTModel
    from gptcore.settings.model import GPTConfig
    from gptcore.weights.hf_export import export_hf

    shape = GPTConfig(
        context_length=16, emb_dim=8, n_heads=2, n_layers=1, qkv_bias=True, tie_embeddings=True
    )
    torch.manual_seed(0)
    start = GPTModel(shape)
    weights = export_hf(start, tmp_path / "hf")
    run = tmp_path / "run"
    args = ["train", "--config", str(config), "--init", f"weights:{weights}"]
    assert main([*args, "--set", "max_steps=1", "--run-dir", str(run)]) == 0
    ckpt = load_checkpoint(run / "checkpoints" / "step-000001")
    assert ckpt.model_config.emb_dim == 8 and ckpt.model_config.tie_embeddings
    assert ckpt.train_config["init"] == f"weights:{weights}"
    trained = ckpt.state_dict()
    # One AdamW step from the given weights: close to them, not equal.
    delta = (trained["tok_emb.weight"] - start.tok_emb.weight).abs().max().item()
    assert 0 < delta < 0.01
    assert main([*args, "--set", "max_steps=1", "--resume", str(run)]) == 2
    assert "cannot go with --resume" in capsys.readouterr().err


def test_python_dash_m_entry_point_trains(config: Path, tmp_path: Path) -> None:
    """`python -m gptcore train` (what torchrun runs), with the global --home after the
    subcommand."""
    run = tmp_path / "run"
    home = tmp_path / "home"
    args = ["--config", str(config), "--set", "max_steps=2", "--run-dir", str(run)]
    proc = subprocess.run(
        [sys.executable, "-m", "gptcore", "train", *args, "--quiet", "--home", str(home)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "max_steps: 2 steps" in proc.stdout
    assert load_checkpoint(run / "checkpoints" / "step-000002").step == 2
