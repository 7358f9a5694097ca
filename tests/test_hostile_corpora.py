"""Hostile corpora and paths (issue 14): special files never hang a run, a pipe is
read once, and Unicode paths (non-BMP, or not UTF-8 at all) work end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from gptcore.cli import main
from gptcore.data import corpus
from gptcore.data.tokens import prepare_corpus
from gptcore.errors import CorpusError
from gptcore.runs.checkpoint import load_checkpoint

from .run_helpers import write_tiny_run_config

REPO = Path(__file__).resolve().parents[1]
EMOJI = "\U0001f600"  # outside the BMP: JSON writes it as a surrogate pair
NOT_UTF8 = os.fsdecode(b"\xff")  # a name byte that is not UTF-8, as Python sees it
TEXT = "Every effort moves you forward. " * 60

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")


def finish_within(seconds: float, fn: Callable[[], object], unblock: Path | None = None) -> object:
    """fn()'s result (or its exception), failing the test instead of hanging when it
    does not return in time; `unblock` is a FIFO whose stuck reader is then released."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if unblock is not None:  # a writer that opens and closes ends the blocked read
            os.close(os.open(unblock, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"still blocked after {seconds} s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]


def write_later(fifo: Path, payload: bytes) -> threading.Thread:
    """A writer thread: opens the FIFO (waiting for a reader), writes, closes."""

    def write() -> None:
        with open(fifo, "wb") as f:
            f.write(payload)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


# ---------------------------------------------------------------- special files


@needs_fifo
def test_a_fifo_corpus_is_read_once_and_prepares_like_the_file(tmp_path: Path) -> None:
    fifo = tmp_path / "corpus.fifo"
    os.mkfifo(fifo)
    writer = write_later(fifo, TEXT.encode())
    piped = finish_within(30, lambda: prepare_corpus(fifo), unblock=fifo)
    writer.join(5)
    plain = tmp_path / "corpus.txt"
    plain.write_text(TEXT, encoding="utf-8")
    expected = prepare_corpus(plain, cache_dir=tmp_path / "other-cache")
    assert piped.n_chars == len(TEXT)
    assert np.array_equal(piped.train_tokens, expected.train_tokens)
    assert np.array_equal(piped.val_tokens, expected.val_tokens)


@needs_fifo
def test_a_fifo_nobody_writes_to_fails_in_one_line_instead_of_blocking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(corpus, "PIPE_WAIT_S", 0.3)
    fifo = tmp_path / "silent.fifo"
    os.mkfifo(fifo)
    with pytest.raises(CorpusError, match="nothing was written to the pipe .*silent.fifo"):
        finish_within(20, lambda: prepare_corpus(fifo), unblock=fifo)


@needs_fifo
def test_a_pipe_larger_than_the_cap_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(corpus, "MAX_PIPE_BYTES", 1000)
    fifo = tmp_path / "big.fifo"
    os.mkfifo(fifo)
    write_later(fifo, b"x " * 5000)
    with pytest.raises(CorpusError, match=r"big.fifo holds more than .*save it to a file"):
        finish_within(30, lambda: prepare_corpus(fifo), unblock=fifo)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
def test_dev_zero_as_corpus_is_refused_at_once() -> None:
    # In a subprocess: before the fix this read /dev/zero forever; the timeout ends it.
    code = "from gptcore.cli import main; raise SystemExit(main(['eval', '--corpus', '/dev/zero']))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "gpt-tui: error: corpus /dev/zero is a character device, not a text file; "
        "give a file or a folder"
    ]


# ---------------------------------------------------------------- Unicode paths


def tiny_weights(folder: Path) -> Path:
    from gptcore.model.gpt import GPTModel
    from gptcore.settings.model import GPTConfig
    from gptcore.weights.hf_export import export_hf

    shape = GPTConfig(
        context_length=16, emb_dim=8, n_heads=2, n_layers=1, qkv_bias=True, tie_embeddings=True
    )
    torch.manual_seed(0)
    return export_hf(GPTModel(shape), folder)


def test_emoji_in_corpus_weights_home_and_run_dir_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    place = tmp_path / f"place {EMOJI}"
    place.mkdir()
    config = write_tiny_run_config(place / "tiny.toml")  # its corpus sits beside it
    corpus = place / f"corpus {EMOJI}.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    weights = tiny_weights(place / f"weights {EMOJI}")
    home, run = place / f"home {EMOJI}", place / f"run {EMOJI}"
    args = ["train", "--config", str(config), "--corpus", str(corpus)]
    args += ["--init", f"weights:{weights}", "--run-dir", str(run), "--home", str(home)]
    assert main([*args, "--set", "max_steps=1"]) == 0, capsys.readouterr().err
    ckpt = load_checkpoint(run / "checkpoints" / "step-000001")
    assert ckpt.train_config["corpus"] == str(corpus)
    assert ckpt.train_config["init"] == f"weights:{weights}"
    assert f'corpus = "{corpus}"' in (run / "config.toml").read_text(encoding="utf-8")
    assert (home / "cache" / "tokens").is_dir()  # the corpus was cached under --home
    resume = ["train", "--resume", str(run), "--set", "max_steps=2", "--home", str(home)]
    assert main(resume) == 0, capsys.readouterr().err
    assert load_checkpoint(run / "checkpoints" / "step-000002").step == 2


@needs_fifo
def test_a_folder_with_a_file_named_in_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text(TEXT, encoding="utf-8")
    (folder / f"bad{NOT_UTF8}.txt").write_text("More words here. " * 40, encoding="utf-8")
    os.mkfifo(folder / "pipe.txt")  # special files in a folder are skipped, never read
    corpus = finish_within(60, lambda: prepare_corpus(folder), unblock=folder / "pipe.txt")
    assert corpus.files == 2 and corpus.n_chars > len(TEXT)
    (folder / f"worse{NOT_UTF8}.txt").write_bytes(b"\xff\xfe not text")
    with pytest.raises(CorpusError) as caught:
        prepare_corpus(folder)
    message = str(caught.value)
    assert "\n" not in message and "worse\\xff.txt is not valid UTF-8" in message


def test_paths_that_are_not_utf8_train_resume_and_reload(tmp_path: Path) -> None:
    config = write_tiny_run_config(tmp_path / "tiny.toml")
    corpus = tmp_path / f"corpus{NOT_UTF8}.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    home, run = tmp_path / f"home{NOT_UTF8}", tmp_path / f"run{NOT_UTF8}"
    args = ["train", "--config", str(config), "--corpus", str(corpus), "--home", str(home)]
    assert main([*args, "--run-dir", str(run), "--set", "max_steps=1"]) == 0
    assert load_checkpoint(run / "checkpoints" / "step-000001").train_config["corpus"] == str(
        corpus
    )
    # The run's config.toml holds the path as its bytes on disk and reads back to it.
    assert os.fsencode(corpus) in (run / "config.toml").read_bytes()
    again = tmp_path / "again"
    rerun = ["train", "--config", str(run / "config.toml"), "--run-dir", str(again)]
    assert main([*rerun, "--set", "max_steps=1"]) == 0
    assert load_checkpoint(again / "checkpoints" / "step-000001").train_config["corpus"] == str(
        corpus
    )
    resume = ["train", "--resume", str(run), "--set", "max_steps=2", "--home", str(home)]
    assert main(resume) == 0
    assert load_checkpoint(run / "checkpoints" / "step-000002").step == 2


def test_a_run_dir_that_is_not_utf8_prints_on_a_strict_utf8_stdout(tmp_path: Path) -> None:
    config = write_tiny_run_config(tmp_path / "tiny.toml")
    run = tmp_path / f"run{NOT_UTF8}"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "GPT_TUI_HOME": str(tmp_path)}
    command = [sys.executable, "-m", "gptcore", "train", "--config", str(config)]
    command += ["--run-dir", str(run), "--set", "max_steps=1"]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert b"Traceback" not in result.stderr
    # printed as its bytes on disk, as ls does
    assert b"run " + os.fsencode(run) + b": " in result.stdout
    assert load_checkpoint(run / "checkpoints" / "step-000001").step == 1
