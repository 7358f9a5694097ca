"""Hostile inputs (issue 14, validation): every bad setting is one line, exit 2,
refused before a run folder (or any other file) is written; no traceback."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from gptcore.cli import main
from gptcore.data.plan import batch_plan
from gptcore.errors import CheckpointError, ConfigError
from gptcore.settings.files import run_config_from_dict
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from tests.run_helpers import write_tiny_run_config

VOCAB_MESSAGE = "vocab_size must be at least 50257, the tokenizer's"
MAX_WINDOWS = 100_000_000  # gptcore.config.MAX_WINDOWS_PER_EPOCH


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_tiny_run_config(tmp_path / "tiny.toml")


def one_line_error(capsys: pytest.CaptureFixture, code: int, message: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("gpt-tui: error: ") and err.count("\n") == 1, err
    assert message in err, err
    return err


# ---------------------------------------------------------------- training settings


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["sample_tokens=100001"], "train.sample_tokens must be at most 100,000"),
        (["model.vocab_size=1000"], VOCAB_MESSAGE),
        (
            ['sampler="random"', "samples_per_epoch=1000000000"],
            "train.samples_per_epoch must be at most 100,000,000",
        ),
        (["seed=-1"], "train.seed must be >= 0"),
        (["epochs=10000000"], "train.epochs must be at most 1,000,000"),
        (['corpus=""'], "train.corpus is empty"),
        (['model=["tiny"]'], "unknown model preset ['tiny']"),
        (["model={a=1}"], "unknown key 'a'"),
    ],
)
def test_bad_training_settings_are_refused_before_anything_is_written(
    config: Path,
    isolated_home: Path,
    capsys: pytest.CaptureFixture,
    sets: list[str],
    message: str,
) -> None:
    args = ["train", "--config", str(config), "--set", "max_steps=3"]  # short, were it to run
    for s in sets:
        args += ["--set", s]
    one_line_error(capsys, main(args), message)
    assert not (isolated_home / "data" / "runs").exists()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('model = ["tiny"]\n', "unknown model preset ['tiny']"),
        ("train = 5\n", "[train] must be a table of settings, got 5"),
        ("[model]\npreset = []\n", "unknown model preset []"),
    ],
)
def test_toml_values_of_the_wrong_shape_are_one_line(
    tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture, toml: str, message: str
) -> None:
    path = tmp_path / "shape.toml"
    path.write_text(toml)
    one_line_error(capsys, main(["train", "--config", str(path)]), message)
    assert not (isolated_home / "data" / "runs").exists()


def test_a_model_table_given_with_set_is_a_table() -> None:
    model, _ = run_config_from_dict({}, overrides=['model={preset="tiny", n_layers=1}'])
    assert model.n_layers == 1 and model.emb_dim == 64


def test_upper_bounds_on_train_settings() -> None:
    assert TrainConfig(seed=2**64 - 1, epochs=1_000_000).seed == 2**64 - 1
    for bad in (
        {"start_context": "x" * 100_001},
        {"corpus": "  "},
        {"sample_tokens": 100_001},
        {"samples_per_epoch": MAX_WINDOWS + 1},
        {"epochs": 1_000_001},
        {"seed": 2**64},
    ):
        with pytest.raises(ConfigError):
            TrainConfig(**bad)


def test_a_sequential_epoch_beyond_the_window_cap_is_a_plan_problem() -> None:
    model = GPTConfig(context_length=16, emb_dim=16, n_heads=2, n_layers=1)
    plan = batch_plan(MAX_WINDOWS + 100, 1000, model, TrainConfig(stride=1))
    assert isinstance(plan.problem, ConfigError)
    assert "more than 100,000,000" in str(plan.problem)


def test_init_weights_with_a_small_vocabulary_are_refused_before_the_run_folder(
    tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture, config: Path
) -> None:
    from gptcore.model.gpt import GPTModel
    from gptcore.weights.hf_export import export_hf

    small = GPTConfig(vocab_size=1000, context_length=16, emb_dim=16, n_heads=2, n_layers=1)
    weights = export_hf(GPTModel(small), tmp_path / "small-vocab")
    code = main(["train", "--config", str(config), "--init", f"weights:{weights}"])
    one_line_error(capsys, code, VOCAB_MESSAGE)
    assert not (isolated_home / "data" / "runs").exists()


def test_resume_with_another_max_steps_under_cosine_is_refused(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    cosine = ["--set", 'lr_schedule="cosine"']
    args = ["train", "--config", str(config), *cosine, "--set", "max_steps=4"]
    assert main([*args, "--run-dir", str(run)]) == 0
    metrics = (run / "metrics.jsonl").read_text()
    capsys.readouterr()
    code = main(["train", "--resume", str(run), "--set", "max_steps=6"])
    one_line_error(capsys, code, "different train.max_steps")
    assert (run / "metrics.jsonl").read_text() == metrics  # nothing appended
    # The same total (here: the same max_steps) is the finished run: nothing to train.
    code = main(["train", "--resume", str(run), "--set", "max_steps=4"])
    one_line_error(capsys, code, "reached train.max_steps = 4")
    assert (run / "metrics.jsonl").read_text() == metrics


# ---------------------------------------------------------------- the app's Train form


def test_the_train_form_refuses_what_the_trainer_refuses() -> None:
    from tui.configs import FIELDS, build_configs, validate_field

    sample_len = next(f for f in FIELDS if f.key == "sample_tokens")
    error = validate_field(sample_len, "100001", GPTConfig(), TrainConfig())
    # The engine's rule, naming the field by the form's label.
    assert error is not None and "sample len must be at most 100,000" in error
    with pytest.raises(ConfigError, match=VOCAB_MESSAGE):
        build_configs(GPTConfig(vocab_size=1000), TrainConfig(), {})


# ---------------------------------------------------------------- other commands


def test_generate_refuses_absurd_thread_counts(capsys: pytest.CaptureFixture) -> None:
    args = ["generate", "--preset", "tiny", "--prompt", "x", "--threads", "100000"]
    one_line_error(capsys, main(args), "--threads must be in [1, ")


@pytest.mark.parametrize("command", ["generate", "inspect"])
def test_a_temperature_that_overflows_the_logits_is_refused(
    command: str, capsys: pytest.CaptureFixture
) -> None:
    args = [command, "--preset", "tiny", "--prompt", "x", "--temperature", "1e-320"]
    one_line_error(capsys, main(args), "too close to 0")


def test_inspect_caps_the_sampling_lab(capsys: pytest.CaptureFixture) -> None:
    args = ["inspect", "--preset", "tiny", "--prompt", "x", "--samples", "1000000000"]
    one_line_error(capsys, main(args), "draws must be an integer in [0, 100000]")


@pytest.mark.parametrize(
    "command", [["tokens"], ["generate", "--preset", "tiny", "--max-new-tokens", "1"]]
)
def test_invalid_utf8_on_stdin_is_one_line(
    command: list[str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Strict UTF-8 stdio, as with PYTHONIOENCODING=utf-8:strict.
    stdin = io.TextIOWrapper(io.BytesIO(b"caf\xe9 \xff"), encoding="utf-8", errors="strict")
    monkeypatch.setattr(sys, "stdin", stdin)
    one_line_error(capsys, main(command), "standard input is not UTF-8 text")


def test_a_safetensors_header_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    from gptcore.weights.downloads import safetensors_complete
    from gptcore.weights.hf_export import hf_config_dict
    from gptcore.weights.loaders import load_hf

    folder = tmp_path / "weights"
    folder.mkdir()
    config = GPTConfig(context_length=16, emb_dim=16, n_heads=2, n_layers=1)
    (folder / "config.json").write_text(json.dumps(hf_config_dict(config)))
    header = b"[1, 2]"
    file = folder / "model.safetensors"
    file.write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(CheckpointError, match="header is not a JSON object"):
        load_hf(folder)
    assert safetensors_complete(file) is False


def test_export_to_a_folder_or_nowhere_is_one_line(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    assert (
        main(["train", "--config", str(config), "--set", "max_steps=1", "--run-dir", str(run)]) == 0
    )
    capsys.readouterr()
    one_line_error(capsys, main(["checkpoints", "export", str(run), str(tmp_path)]), "is a folder")
    one_line_error(capsys, main(["checkpoints", "export", str(run), ""]), "give the file to write")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["checkpoints", "export", str(run), str(blocker / "out.pth")])
    one_line_error(capsys, code, "cannot write")


def test_a_home_that_is_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    home = tmp_path / "home-file"
    home.write_text("not a folder")
    one_line_error(capsys, main(["--home", str(home), "checkpoints"]), "is not a folder")
    code = main(["checkpoints", "--home", str(home / "below")])
    one_line_error(capsys, code, "cannot be created")
