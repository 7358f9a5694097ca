"""Exporting a checkpoint: gptcore.weights.export.export_checkpoint, the one function
behind `gpt-tui checkpoints export` and the Checkpoints screen's e / h keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gptcore.cli import main
from gptcore.errors import CheckpointError, GptTuiError
from gptcore.runs.checkpoint import save_checkpoint
from gptcore.runs.rundir import RunDir
from gptcore.weights.export import export_checkpoint
from gptcore.weights.loaders import load_weights
from tests.tui_helpers import make_checkpoint, make_corrupted, tiny_model


def test_default_destination_is_the_runs_exports_folder() -> None:
    path = make_checkpoint(name="step-5")
    run = RunDir.of_checkpoint(path)
    assert run is not None
    pth = export_checkpoint("tiny-run:latest", "pth")
    assert pth == run.pth_export("step-5")
    state = torch.load(pth, weights_only=True)["model_state_dict"]
    assert "trf_blocks.0.norm1.scale" in state  # the book's names
    hf = export_checkpoint(path, "hf")
    assert hf == run.hf_export("step-5")
    assert json.loads((hf / "config.json").read_text())["n_layer"] == 2
    # The exported weights compute what the checkpoint computes.
    x = torch.randint(0, 500, (1, 8))
    with torch.no_grad():
        assert torch.allclose(load_weights(hf, "cpu")(x), tiny_model()(x), atol=1e-5)


def test_the_cli_writes_where_the_engine_does(capsys: pytest.CaptureFixture, tmp_path) -> None:
    path = make_checkpoint(name="step-5")
    run = RunDir.of_checkpoint(path)
    assert run is not None
    assert main(["checkpoints", "export", "tiny-run", "--format", "hf"]) == 0
    assert capsys.readouterr().out.strip() == str(run.hf_export("step-5"))
    assert main(["checkpoints", "export", "tiny-run"]) == 0  # pth, the default
    assert capsys.readouterr().out.strip() == str(run.pth_export("step-5"))
    out = tmp_path / "mine.pth"
    assert main(["checkpoints", "export", str(path), str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out) and out.is_file()


@pytest.mark.parametrize(
    ("kind", "out", "words"),
    [
        ("pth", "FOLDER", "is a folder; give a file name"),
        ("hf", "FILE", "is a file; a Hugging Face export is a folder"),
        ("pth", "", "give the file to write"),
        ("hf", "", "give the folder to write"),
        ("pth", "FILE/below.pth", "cannot write"),
    ],
)
def test_bad_destinations_are_one_message_in_both_front_ends(
    kind: str, out: str, words: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    make_checkpoint(name="step-5")
    (tmp_path / "FILE").write_text("x")
    (tmp_path / "FOLDER").mkdir()
    dest = str(tmp_path / out) if out else ""
    with pytest.raises(GptTuiError, match=words) as caught:
        export_checkpoint("tiny-run", kind, dest)  # type: ignore[arg-type]
    assert main(["checkpoints", "export", "tiny-run", dest, "--format", kind]) == 2
    assert capsys.readouterr().err.strip() == f"gpt-tui: error: {caught.value}"


def test_damaged_or_runless_checkpoints_write_nothing(tmp_path: Path) -> None:
    broken = make_corrupted(name="broken")
    with pytest.raises(CheckpointError):
        export_checkpoint(broken, "pth")
    assert not (broken.parent.parent / "exports").exists()
    loose = save_checkpoint(
        tmp_path / "loose", tiny_model(), train_config={}, step=1, epoch=0, tokens_seen=0
    )
    with pytest.raises(GptTuiError, match="not inside a run folder"):
        export_checkpoint(loose, "hf")
    assert export_checkpoint(loose, "hf", tmp_path / "out-hf") == tmp_path / "out-hf"
