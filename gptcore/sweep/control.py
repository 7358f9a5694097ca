"""Starting and stopping sweeps from another process (the app's Sweeps view).

A sweep started from the app runs headless (`gpt-tui sweep ...` in its own session),
exactly as one started in tmux: closing the app does not stop it, and the view
watches both kinds the same way, by reading the study. Stopping sends SIGTERM to
the processes that hold the sweep's trial claims on this host: each stops its run
as any run stops (a checkpoint is saved) and leaves the trial to be resumed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from gptcore.runs.lock import lock_holder
from gptcore.sweep.folder import CLAIMS_DIR, SweepFolder
from gptcore.util.paths import sweeps_dir

LOG_FILE = "sweep.log"


def list_sweeps(root: Path | None = None) -> list[SweepFolder]:
    """The sweep folders under DATA/sweeps (or `root`), by name."""
    root = root if root is not None else sweeps_dir()
    if not root.is_dir():
        return []
    return [SweepFolder(p) for p in sorted(root.iterdir()) if SweepFolder(p).is_sweep()]


def sweep_pids(folder: SweepFolder) -> list[int]:
    """The processes on this host running one of the sweep's trials now."""
    claims = folder.path / CLAIMS_DIR
    if not claims.is_dir():
        return []
    host, pids = socket.gethostname(), []
    for claim in sorted(claims.iterdir()):
        if lock_holder(claim) is None:
            continue
        with contextlib.suppress(OSError, ValueError):
            holder = json.loads((claim / ".lock").read_text(encoding="utf-8"))
            pid = holder.get("pid")
            if holder.get("host") == host and isinstance(pid, int) and pid not in pids:
                pids.append(pid)
    return pids


def stop_sweep(folder: SweepFolder) -> int:
    """SIGTERM each process running the sweep's trials here; how many were signalled."""
    sent = 0
    for pid in sweep_pids(folder):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
            sent += 1
    return sent


def start_sweep(args: list[str], folder: Path) -> subprocess.Popen:
    """Run `gpt-tui sweep ARGS` headless in its own session, its output appended to
    FOLDER/sweep.log: `args` is ["SWEEP.toml", "--dir", FOLDER] or ["--resume", FOLDER]."""
    folder.mkdir(parents=True, exist_ok=True)
    log = (folder / LOG_FILE).open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "gptcore", "sweep", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a signal to the app's terminal does not reach it
        )
    finally:
        log.close()
