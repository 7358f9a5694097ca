"""SIGTERM and SIGHUP during training behave like the first Ctrl-C (issue 14).

`docker stop`, systemd and Slurm send SIGTERM; an SSH drop sends SIGHUP. Each must
leave a loadable "interrupt" checkpoint and a closing `finished` event, exit with
128 + the signal's number, and let `--resume RUN` continue.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gptcore.cli import main
from gptcore.runs.checkpoint import load_checkpoint
from gptcore.training.stopsignals import StopSignals, exit_code, stop_message
from tui.screens.train import TrainPane
from tui.settings import Settings, save_settings

from .run_helpers import write_tiny_run_config
from .tui_helpers import (
    SLOW_WAIT_S,
    fast_config,
    make_app,
    settle,
    train_state,
    wait_for,
    write_corpus,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_tiny_run_config(tmp_path / "tiny.toml")


def wait_for_first_step(proc: subprocess.Popen, metrics: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics.exists() and '"event": "step"' in metrics.read_text():
            return
        assert proc.poll() is None, "training ended before its first step"
        time.sleep(0.05)
    raise AssertionError("no step event within the timeout")


def last_event(metrics: Path) -> dict:
    return json.loads(metrics.read_text().splitlines()[-1])


def assert_stopped_and_saved(run: Path) -> int:
    """The run's closing event says cancelled and its checkpoint loads: its step."""
    closing = last_event(run / "metrics.jsonl")
    assert closing["event"] == "finished" and closing["reason"] == "cancelled"
    ckpt = load_checkpoint(run / "checkpoints" / f"step-{closing['step']:06d}")
    assert ckpt.reason == "interrupt" and ckpt.step == closing["step"]
    return ckpt.step


@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"]
)
def test_a_stop_signal_saves_closes_the_run_and_resume_continues(
    signum: int, config: Path, tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "GPT_TUI_HOME": str(isolated_home)}
    cmd = [sys.executable, "-m", "gptcore", "train", "--config", str(config)]
    proc = subprocess.Popen(
        [*cmd, "--set", "epochs=1000", "--run-dir", str(run)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_first_step(proc, run / "metrics.jsonl")
    proc.send_signal(signum)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err
    # Pipes are not a terminal: the way back is printed even after SIGHUP.
    assert f"Resume with:\n  gpt-tui train --resume {run}" in err
    assert stop_message(signum) in err  # says what a second signal does
    stopped = assert_stopped_and_saved(run)
    assert last_event(run / "metrics.jsonl")["signal"] == signal.Signals(signum).name

    code = main(["train", "--resume", str(run), "--set", f"max_steps={stopped + 2}"])
    assert code == 0
    assert f"resuming at step {stopped}" in capsys.readouterr().out
    assert last_event(run / "metrics.jsonl")["reason"] == "max_steps"
    assert load_checkpoint(run / "checkpoints" / f"step-{stopped + 2:06d}").step == stopped + 2


def test_torchrun_passes_sigterm_on_and_its_ranks_save(tmp_path: Path, isolated_home: Path) -> None:
    """Slurm preemption of a torchrun job: the agent sends SIGTERM to each rank;
    they stop at the same step and rank 0 saves and closes the run."""
    config = write_tiny_run_config(tmp_path / "b1.toml", batch_size=1, sample_tokens=0)
    run = tmp_path / "run"
    env = {**os.environ, "GPT_TUI_HOME": str(isolated_home), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "gptcore", "train", "--config", str(config), "--set", "epochs=1000"]
    proc = subprocess.Popen(
        [*cmd, "--run-dir", str(run)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_first_step(proc, run / "metrics.jsonl", timeout=240)
    proc.send_signal(signal.SIGTERM)  # torchrun itself then exits 1: its own way
    _out, err = proc.communicate(timeout=240)
    assert err.count("Resume with:") == 1  # rank 0 only
    assert_stopped_and_saved(run)


def spawn_on_a_terminal(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    """Start `cmd` with a pty as stdin/stdout/stderr; a thread drains the terminal
    until its master side is closed (the "SSH connection" dropping)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
    )
    os.close(slave)

    def drain() -> None:
        while True:
            try:
                if not os.read(master, 65536):
                    return
            except OSError:  # closed by the test, or the child's side is gone
                return

    threading.Thread(target=drain, daemon=True).start()
    return proc, master


def test_sighup_after_the_terminal_is_gone_still_saves(
    config: Path, tmp_path: Path, isolated_home: Path
) -> None:
    """An SSH drop: the terminal hangs up (writes to it fail), then SIGHUP comes.
    The progress bar and the closing lines must not crash the shutdown."""
    run = tmp_path / "run"
    env = {**os.environ, "GPT_TUI_HOME": str(isolated_home), "TERM": "xterm"}
    cmd = [sys.executable, "-m", "gptcore", "train", "--config", str(config)]
    proc, master = spawn_on_a_terminal([*cmd, "--set", "epochs=1000", "--run-dir", str(run)], env)
    try:
        wait_for_first_step(proc, run / "metrics.jsonl")
        os.close(master)  # the terminal goes away: the child's writes now fail
        time.sleep(0.3)  # let the progress bar hit the dead terminal first
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(timeout=120) == 129
    finally:
        if proc.poll() is None:
            proc.kill()
    assert_stopped_and_saved(run)


def test_a_second_ctrl_c_aborts_but_repeated_hangups_do_not(tmp_path: Path) -> None:
    """Only a second Ctrl-C aborts (KeyboardInterrupt); SIGHUP/SIGTERM arriving again
    while the checkpoint is saved (an SSH drop, systemd's TERM then HUP) are ignored."""
    stops: list[int] = []
    with StopSignals(stops.append) as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stops == [signal.SIGTERM] and signals.exit_code == 143
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stops == [signal.SIGTERM] and signals.exit_code == 143  # still stopping
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back
    assert [exit_code(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)] == [130, 143, 129]


# ---------------------------------------------------------------- the app


def test_the_apps_signal_handler_saves_the_run_and_exits_with_its_code(tmp_path: Path) -> None:
    """What tui.app.run installs for SIGTERM/SIGHUP, called as the handler would be."""
    corpus = write_corpus(tmp_path, repeats=12)
    app = make_app(corpus, fast_config(corpus, epochs=1000))
    run_dirs: list[Path] = []

    async def scenario() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot, "corpus")
            await pilot.press("2", "s")
            await wait_for(
                pilot, lambda: train_state(pilot).last_step is not None, timeout=SLOW_WAIT_S
            )
            pane = app.query_one(TrainPane)
            run_dirs.append(pane.run_dir)
            app.stop_for_signal(signal.SIGTERM)
            await settle(pilot, "train")  # the app leaves once the run has ended
            await settle(pilot, "signal-exit")

    asyncio.run(scenario())
    app.wait_for_run()
    assert app.return_value == 143 and app.signal_exit_code == 143
    assert_stopped_and_saved(run_dirs[0])
    assert last_event(run_dirs[0] / "metrics.jsonl")["signal"] == "SIGTERM"


def start_training_in_the_app(master: int, proc: subprocess.Popen, home: Path) -> Path:
    """Press 2 (Train) and s (start) until the run's first step is written."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the app ended"
        for metrics in glob.glob(str(home / "data" / "runs" / "*" / "metrics.jsonl")):
            if '"event": "step"' in Path(metrics).read_text():
                return Path(metrics).parent
        os.write(master, b"2")
        time.sleep(0.5)
        os.write(master, b"s")
        time.sleep(0.5)
    raise AssertionError("the app did not start training")


@pytest.mark.parametrize("hang_up", [False, True], ids=["SIGTERM", "SIGHUP-after-hangup"])
def test_the_app_saves_its_run_on_sigterm_and_when_its_terminal_is_gone(
    hang_up: bool, tmp_path: Path, isolated_home: Path
) -> None:
    """`gpt-tui` on a terminal, training: `docker stop` (SIGTERM), or an SSH drop
    (the terminal hangs up, then SIGHUP). Either way the run is saved and closed."""
    corpus = write_corpus(tmp_path, repeats=12)
    save_settings(Settings(corpus=str(corpus), config=fast_config(corpus, epochs=1000)))
    env = {**os.environ, "GPT_TUI_HOME": str(isolated_home), "TERM": "xterm-256color"}
    proc, master = spawn_on_a_terminal([sys.executable, "-m", "tui.launch"], env)
    try:
        run = start_training_in_the_app(master, proc, isolated_home)
        signum = signal.SIGTERM
        if hang_up:
            signum = signal.SIGHUP
            os.close(master)  # Textual's output and input threads now fail
            time.sleep(2)
        proc.send_signal(signum)
        assert proc.wait(timeout=120) == 128 + signum
    finally:
        if proc.poll() is None:
            proc.kill()
        if not hang_up:
            os.close(master)
    assert_stopped_and_saved(run)
