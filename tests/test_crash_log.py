"""An exception nothing in the app handles: its traceback goes to a crash log in the
data folder, the user is told where once the app has left the screen, and the
process exits non-zero (it exited 0 before, issue 25)."""

from __future__ import annotations

import argparse

import pytest

import tui.app as app_module
from gptcore.util.paths import data_dir
from tui.app import GptTuiApp, run
from tui.crashlog import crash_log_dir
from tui.screens.corpus import CorpusPane


@pytest.fixture
def crashing_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole app, headless, with a bug injected where it starts the engine."""

    def broken_start(self: CorpusPane) -> None:
        raise RuntimeError("a bug injected by the test")

    monkeypatch.setattr(CorpusPane, "start", broken_start)
    headful_run = GptTuiApp.run
    monkeypatch.setattr(
        GptTuiApp, "run", lambda self: headful_run(self, headless=True, size=(80, 24))
    )
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # run() sets it: restored after the test


def test_a_crash_is_logged_in_the_data_folder_and_exits_non_zero(
    crashing_app: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(argparse.Namespace(command=None))

    assert code != 0
    assert crash_log_dir().parent == data_dir()
    logs = sorted(crash_log_dir().glob("crash-*.log"))
    assert len(logs) == 1
    text = logs[0].read_text(encoding="utf-8")
    assert text.startswith("gpt-tui ")
    assert "Traceback (most recent call last)" in text
    assert "in broken_start" in text and "RuntimeError: a bug injected by the test" in text
    err = capsys.readouterr().err
    assert f"its traceback is saved in {logs[0]}" in err


def test_a_crash_log_that_cannot_be_written_is_said_and_still_exits_non_zero(
    crashing_app: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(error: BaseException) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(app_module, "write_crash_log", full_disk)
    code = run(argparse.Namespace(command=None))

    assert code != 0
    assert not crash_log_dir().exists()
    err = capsys.readouterr().err
    assert "its traceback could not be saved ([Errno 28] No space left on device)" in err
