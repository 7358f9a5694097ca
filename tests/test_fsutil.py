"""The one atomic write: whole new file or the old one, never a temp file left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gptcore.runs.rundir import RunDir, write_run_config
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.util import fsutil
from gptcore.util.fsutil import (
    atomic_open,
    atomic_output,
    atomic_write_bytes,
    atomic_write_text,
    durable_replace,
)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def refuse(src: object, dst: object) -> None:
    raise OSError(28, "No space left on device")


def test_writes_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "dir" / "notes.txt"  # missing folders are created
    atomic_write_text(target, "héllo\n")
    assert target.read_text(encoding="utf-8") == "héllo\n"
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert names(target.parent) == ["notes.txt"]


def test_new_files_get_ordinary_permissions(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic_write_text(tmp_path / "atomic.txt", "x")
    mode = stat.S_IMODE
    assert mode((tmp_path / "atomic.txt").stat().st_mode) == mode(plain.stat().st_mode)


def test_a_failed_rename_keeps_the_old_content(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "config.toml"
    target.write_text("old")
    monkeypatch.setattr(fsutil.os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert names(tmp_path) == ["config.toml"]


def test_an_error_mid_stream_keeps_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "tokens.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="cancelled"), atomic_open(target, "wb") as f:
        f.write(b"new part one")
        raise RuntimeError("cancelled")
    assert target.read_bytes() == b"old"
    assert names(tmp_path) == ["tokens.bin"]


def test_streaming_writes_pieces_and_replaces_at_the_end(tmp_path: Path) -> None:
    target = tmp_path / "tokens.bin"
    target.write_bytes(b"old")
    with atomic_open(target, "wb") as f:
        for piece in (b"a", b"b", b"c"):
            f.write(piece)
        assert target.read_bytes() == b"old"  # unchanged until the block ends
    assert target.read_bytes() == b"abc"
    with pytest.raises(ValueError, match="mode"), atomic_open(target, "ab"):
        pass


def test_atomic_output_hands_a_path_to_writers_that_want_one(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".model.safetensors.")
        tmp.write_bytes(b"weights")  # like safetensors' save_file(tensors, str(tmp))
    assert target.read_bytes() == b"weights"
    assert names(tmp_path) == ["model.safetensors"]


def test_durable_replace_moves_a_finished_file(tmp_path: Path) -> None:
    part = tmp_path / "model.ckpt.part"
    part.write_bytes(b"done")
    durable_replace(part, tmp_path / "model.ckpt")
    assert names(tmp_path) == ["model.ckpt"]


def test_callers_go_through_it(tmp_path: Path, monkeypatch) -> None:
    # The run config is written through fsutil: a failed rename keeps the old one.
    run = RunDir(tmp_path)
    write_run_config(run.path, GPTConfig(), TrainConfig())
    before = run.config.read_text()
    monkeypatch.setattr(fsutil.os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        write_run_config(run.path, GPTConfig(), TrainConfig(epochs=99))
    assert run.config.read_text() == before
    assert [p for p in os.listdir(tmp_path) if p.endswith(fsutil.TEMP_SUFFIX)] == []
