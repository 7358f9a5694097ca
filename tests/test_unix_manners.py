"""Unix manners (issue 25): a closed pipe ends a command quietly, `checkpoints ls`
lists, and a full disk during an export or a Speed Lab save is one line, not a
traceback (the Speed Lab's measured rungs are still shown)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gptcore.cli import EXIT_BROKEN_PIPE, main
from gptcore.speedlab.results import scan_results
from tests.tui_helpers import make_checkpoint

REPO = Path(__file__).resolve().parents[1]


def no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(isolated_home: Path) -> None:
    make_checkpoint(name="step-5")  # so `runs` has a row to print
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write: `| head -0`
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "gptcore", "runs"],
            cwd=REPO,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "GPT_TUI_HOME": str(isolated_home)},
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert proc.stderr == ""  # no BrokenPipeError traceback, no "Exception ignored"
    assert proc.returncode == EXIT_BROKEN_PIPE


def test_broken_pipe_in_any_command_is_caught_once_in_main(monkeypatch) -> None:
    class ClosedPipe:
        def write(self, _text: str) -> int:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def flush(self) -> None:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["checkpoints", "list"]) == EXIT_BROKEN_PIPE


def test_checkpoints_ls_is_list(capsys: pytest.CaptureFixture[str]) -> None:
    make_checkpoint(name="step-5")
    assert main(["checkpoints", "list", "--json"]) == 0
    listed = capsys.readouterr().out
    assert main(["checkpoints", "ls", "--json"]) == 0
    assert capsys.readouterr().out == listed and "step-5" in listed


@pytest.mark.parametrize(
    "failure",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        # What torch.save says when the zip writer runs out of room.
        RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 22"),
    ],
    ids=["ENOSPC", "torch-zip-writer"],
)
def test_a_full_disk_during_a_pth_export_is_one_line(
    failure: Exception, monkeypatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = make_checkpoint(name="step-5")

    def full(*_args, **_kwargs):
        raise failure

    monkeypatch.setattr(torch, "save", full)
    out = tmp_path / "model.pth"
    assert main(["checkpoints", "export", str(path), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gpt-tui: error: no space left on {tmp_path}: the export needs about")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_full_disk_during_a_hf_export_is_one_line(
    monkeypatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = make_checkpoint(name="step-5")
    monkeypatch.setattr("safetensors.torch.save_file", no_space)
    out = tmp_path / "hf"
    assert main(["checkpoints", "export", str(path), str(out), "--format", "hf"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gpt-tui: error: no space left on {out}: the export needs about")
    assert err.count("\n") == 1


def test_a_full_disk_during_a_speedlab_save_keeps_the_measured_rungs(
    monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gptcore.settings.model import PRESETS, GPTConfig

    mini = GPTConfig(vocab_size=250, context_length=16, emb_dim=16, n_heads=2, n_layers=1)
    monkeypatch.setitem(PRESETS, "mini", mini)  # a rung in milliseconds
    monkeypatch.setattr("gptcore.speedlab.results.atomic_write_text", no_space)
    assert main(["speedlab", "--model", "mini", "--steps", "1", "--json"]) == 1
    captured = capsys.readouterr()
    shown = json.loads(captured.out)  # every measured rung, printed all the same
    assert shown["rungs"] and all("key" in r for r in shown["rungs"])
    measured = sum(1 for r in shown["rungs"] if r.get("tokens_per_s"))
    assert captured.err == (
        f"gpt-tui: error: no space left on {Path(os.environ['GPT_TUI_HOME'])}"
        f"/data/speedlab: the {measured} measured rung(s) are shown, not saved\n"
    )
    assert scan_results() == ([], [])
