"""Deleting a checkpoint removes only what gpt-tui wrote, wherever the path really leads:
`..` after a symlink, a checkpoints/ folder symlinked to a user's folder, a symlinked
meta.json (issue 25's three reproductions), through the CLI and the app's delete."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from textual.widgets import DataTable

from gptcore.cli import main
from gptcore.errors import CheckpointError, ConfigError
from gptcore.model.gpt import GPTModel
from gptcore.runs.checkpoint import WRITTEN_FILES, load_checkpoint, save_checkpoint
from gptcore.runs.checkpoints import delete_checkpoint
from gptcore.settings.model import GPTConfig
from gptcore.util.paths import runs_dir
from tests.tui_helpers import find_pane, host_app, run_async, wait_for
from tui.screens.checkpoints import CheckpointsPane

CFG = GPTConfig(context_length=16, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.0)


def checkpoint_at(folder: Path, step: int = 60) -> Path:
    """A gpt-tui checkpoint (with optimizer state) written at `folder`."""
    torch.manual_seed(step)
    model = GPTModel(CFG)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.zeros(1, 4, dtype=torch.long)).sum().backward()
    optimizer.step()
    return save_checkpoint(
        folder, model, train_config={}, step=step, epoch=0, tokens_seen=step,
        optimizer=optimizer,
    )  # fmt: skip


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpt-tui: error: "), err
    return lines[0]


def test_dotdot_after_a_symlink_is_resolved_where_it_leads(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # ln -s /X/a/b RUN/checkpoints/lnk; gpt-tui checkpoints rm RUN/checkpoints/lnk/../victim
    victim = checkpoint_at(tmp_path / "X" / "a" / "victim")  # looks like ours, is not
    (tmp_path / "X" / "a" / "b").mkdir()
    run = tmp_path / "RUN"
    ours = checkpoint_at(run / "checkpoints" / "step-000060")
    (run / "checkpoints" / "lnk").symlink_to(tmp_path / "X" / "a" / "b")
    sneaky = run / "checkpoints" / "lnk" / ".." / "victim"

    assert main(["checkpoints", "rm", str(sneaky)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert (
        "outside the checkpoints/ folder" in line and str(tmp_path / "X" / "a" / "victim") in line
    )
    with pytest.raises(CheckpointError, match="outside"):
        delete_checkpoint(sneaky)
    assert load_checkpoint(victim).step == 60
    # The same name also exists in the run: the sneaky path still names the other one.
    checkpoint_at(run / "checkpoints" / "victim")
    assert main(["checkpoints", "rm", str(sneaky)]) == 2
    capsys.readouterr()
    assert load_checkpoint(victim).step == 60
    # The symlink itself is not a checkpoint folder either.
    assert main(["checkpoints", "rm", str(run / "checkpoints" / "lnk")]) == 2
    one_error_line(capsys.readouterr().err)
    assert (tmp_path / "X" / "a" / "b").is_dir() and load_checkpoint(ours).step == 60


def test_symlinked_checkpoints_folder_deletes_only_our_files(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # RUN/checkpoints is a symlink to a user's folder that holds their own files.
    user = tmp_path / "user-folder"
    ckpt_real = checkpoint_at(user / "step-000060")
    (user / "step-000060" / "notes.txt").write_text("mine")
    (user / "step-000060" / "plots").mkdir()
    (user / "thesis.tex").write_text("precious")
    run = tmp_path / "RUN"
    run.mkdir()
    (run / "checkpoints").symlink_to(user)

    assert main(["checkpoints", "rm", str(run / "checkpoints" / "step-000060")]) == 0
    out = capsys.readouterr().out.strip()
    assert out.endswith("left 2 files that gpt-tui did not write: notes.txt, plots/"), out
    assert sorted(p.name for p in ckpt_real.iterdir()) == ["notes.txt", "plots"]
    assert (ckpt_real / "notes.txt").read_text() == "mine"
    assert (user / "thesis.tex").read_text() == "precious"
    # Named by its real path, outside any run's checkpoints/ folder: refused.
    checkpoint_at(user / "step-000070", step=70)
    assert main(["checkpoints", "rm", str(user / "step-000070")]) == 2
    assert "not in a run's checkpoints/ folder" in one_error_line(capsys.readouterr().err)
    assert load_checkpoint(user / "step-000070").step == 70


def test_checkpoints_moved_to_another_disk_by_symlink_still_delete(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    disk = tmp_path / "disk2"
    checkpoint_at(disk / "ckpts" / "step-000060")
    run = tmp_path / "home" / "runs" / "RUN"
    run.mkdir(parents=True)
    (run / "checkpoints").symlink_to(disk / "ckpts")
    assert main(["checkpoints", "rm", str(run / "checkpoints" / "step-000060")]) == 0
    assert capsys.readouterr().out.strip() == f"deleted {run / 'checkpoints' / 'step-000060'}"
    assert not (disk / "ckpts" / "step-000060").exists() and (disk / "ckpts").is_dir()

    # The whole runs/ folder moved, named by RUN:latest.
    checkpoint_at(disk / "runs" / "R2" / "checkpoints" / "step-000010", step=10)
    checkpoint_at(disk / "runs" / "R2" / "checkpoints" / "step-000020", step=20)
    (tmp_path / "home2").mkdir()
    (tmp_path / "home2" / "runs").symlink_to(disk / "runs")
    assert main(["checkpoints", "rm", f"{tmp_path / 'home2' / 'runs' / 'R2'}:latest"]) == 0
    capsys.readouterr()
    left = sorted(p.name for p in (disk / "runs" / "R2" / "checkpoints").iterdir())
    assert left == ["step-000010"]


def test_a_user_folder_with_a_symlinked_meta_json_is_not_ours(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    elsewhere = checkpoint_at(tmp_path / "elsewhere" / "real")
    folder = tmp_path / "RUN" / "checkpoints" / "mine"
    folder.mkdir(parents=True)
    (folder / "meta.json").symlink_to(elsewhere / "meta.json")
    (folder / "weights.safetensors").write_bytes(b"the user's own bytes")
    (folder / "data.csv").write_text("1,2,3")
    assert main(["checkpoints", "rm", str(folder)]) == 2
    assert "meta.json is a symbolic link" in one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in folder.iterdir()) == [
        "data.csv",
        "meta.json",
        "weights.safetensors",
    ]
    assert load_checkpoint(elsewhere).step == 60


def test_our_names_that_are_not_plain_files_are_left(tmp_path: Path) -> None:
    ckpt = checkpoint_at(tmp_path / "RUN" / "checkpoints" / "step-000060")
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"keep")
    (ckpt / "optimizer.pt").unlink()
    (ckpt / "optimizer.pt").symlink_to(outside)
    deleted = delete_checkpoint(ckpt)
    assert deleted.left == ("optimizer.pt",) and outside.read_bytes() == b"keep"
    assert "left 1 file that gpt-tui did not write: optimizer.pt" in deleted.message()


def test_a_plain_checkpoint_goes_entirely(tmp_path: Path) -> None:
    ckpt = checkpoint_at(tmp_path / "RUN" / "checkpoints" / "step-000060")
    assert sorted(p.name for p in ckpt.iterdir()) == sorted(WRITTEN_FILES)
    deleted = delete_checkpoint(ckpt)
    assert deleted.left == () and not ckpt.exists()
    assert (tmp_path / "RUN" / "checkpoints").is_dir()


# ------------------------------------------------------------------ the app's delete


async def _start(pilot) -> CheckpointsPane:
    pane = await find_pane(pilot, CheckpointsPane)
    await wait_for(pilot, lambda: pane.loaded)
    pane.query_one(DataTable).focus()
    await pilot.pause()
    return pane


async def _delete_row(pilot, pane: CheckpointsPane, path: Path) -> None:
    table = pane.query_one(DataTable)
    table.move_cursor(row=table.get_row_index(str(path)))
    await pilot.pause()
    await pilot.press("d")
    await pilot.pause()
    await pilot.press("y")


def _notes(app) -> list[str]:
    return [n.message for n in app._notifications]


@run_async
async def test_the_app_delete_keeps_what_is_not_ours(tmp_path: Path) -> None:
    # The run's checkpoints/ is a symlink to a user's folder: our files go, theirs stay.
    user = tmp_path / "user-folder"
    checkpoint_at(user / "step-000060")
    (user / "step-000060" / "notes.txt").write_text("mine")
    (user / "thesis.tex").write_text("precious")
    run = runs_dir() / "tiny-run"
    run.mkdir(parents=True)
    (run / "checkpoints").symlink_to(user)
    # A folder whose meta.json is a symlink to a real checkpoint's: listed, not deletable.
    elsewhere = checkpoint_at(tmp_path / "elsewhere" / "real", step=5)
    foreign = user / "borrowed"
    foreign.mkdir()
    (foreign / "meta.json").symlink_to(elsewhere / "meta.json")
    (foreign / "data.csv").write_text("1,2,3")
    # A symlink in checkpoints/ to a folder holding a checkpoint: not deletable either.
    (user / "lnk").symlink_to(elsewhere)

    app = host_app(CheckpointsPane)
    async with app.run_test(size=(140, 30)) as pilot:
        pane = await _start(pilot)
        listed = run / "checkpoints"
        await _delete_row(pilot, pane, listed / "step-000060")
        await wait_for(pilot, lambda: any("did not write" in n for n in _notes(app)))
        assert sorted(p.name for p in (user / "step-000060").iterdir()) == ["notes.txt"]
        assert (user / "thesis.tex").read_text() == "precious"

        await _delete_row(pilot, pane, listed / "borrowed")
        await wait_for(pilot, lambda: any("is a symbolic link" in n for n in _notes(app)))
        assert sorted(p.name for p in foreign.iterdir()) == ["data.csv", "meta.json"]

        await _delete_row(pilot, pane, listed / "lnk")
        await wait_for(
            pilot, lambda: any("lnk is a symbolic link, not a" in n for n in _notes(app))
        )
    assert load_checkpoint(elsewhere).step == 5 and (user / "lnk").is_symlink()


def test_tree_removal_is_never_used() -> None:
    # Deleting works by name: shutil.rmtree is not in the module at all.
    import gptcore.runs.checkpoints as module

    assert "rmtree" not in Path(module.__file__).read_text() and not hasattr(module, "shutil")


def test_deleting_gpt2_weights_takes_only_their_files(tmp_path: Path) -> None:
    """The Models screen's delete: GPT-2's own files (and their .part) by name; a file
    the user put in the folder, and a symlinked weights file's target, stay."""
    from gptcore.weights.downloads import delete_gpt2
    from gptcore.weights.gpt2 import HF_FILES, gpt2_dir

    folder = gpt2_dir("124M", "hf")
    folder.mkdir(parents=True)
    config, weights = HF_FILES
    (folder / config).write_text("{}")
    (folder / (weights + ".part")).write_bytes(b"partial")
    (folder / "notes.txt").write_text("mine")
    deleted = delete_gpt2("124M", "hf")
    assert deleted.left == ("notes.txt",) and "did not write: notes.txt" in deleted.message()
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]

    (folder / "notes.txt").unlink()
    outside = tmp_path / "elsewhere.safetensors"
    outside.write_bytes(b"keep")
    (folder / weights).symlink_to(outside)
    assert delete_gpt2("124M", "hf").left == (weights,)  # a link is not ours to follow
    assert outside.read_bytes() == b"keep"
    (folder / weights).unlink()
    assert delete_gpt2("124M", "hf").left == () and not folder.exists()
    with pytest.raises(ConfigError, match="no GPT-2 124M files from hf"):
        delete_gpt2("124M", "hf")
