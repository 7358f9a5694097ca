"""Who may write into a run folder: one training process at a time, and never an
earlier run's folder unless resuming it.

RUN/.lock names the process training there ({"pid", "host", "token"}). It is
created atomically (O_CREAT | O_EXCL) and removed when training ends. A lock
left by a process that died (kill -9, a power cut) is stale: when it was taken
on this host and its pid is gone, the next process takes it over. A lock from
another host cannot be checked from here; the error says how to clear it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import stat
import time
from pathlib import Path
from typing import Any

from gptcore.errors import ConfigError, DamagedFile, RunBusyError
from gptcore.runs.rundir import RunDir
from gptcore.util.fsutil import pid_alive
from gptcore.util.typedfile import decode_json, open_regular

STARTING_GRACE_S = 10.0  # an empty lock younger than this is a process still writing it


def check_run_dir_unused(run_dir: str | Path, resuming: str | Path | None = None) -> None:
    """Refuse (ConfigError) to train into a folder that already holds a run, unless
    `resuming` (the resumed checkpoint) belongs to that very run."""
    run = RunDir(run_dir)
    if not run.holds_run():
        return
    own = RunDir.of_checkpoint(resuming) if resuming is not None else None
    if own is not None and _same_folder(own.path, run.path):
        return
    raise ConfigError(
        f"--run-dir {run_dir} already holds a run; train into a new folder, or continue "
        f"that run with --resume {run_dir}"
    )


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


class RunLock:
    """RUN/.lock: `acquire()` or RunBusyError naming the holder; `release()` when done."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = RunDir(run_dir).lock
        self.run_dir = Path(run_dir)
        self._token = secrets.token_hex(8)
        self._held = False

    def acquire(self) -> RunLock:
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "token": self._token}
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(mine))
                f.flush()
                os.fsync(f.fileno())
            self._held = True
            return self
        raise RunBusyError(f"run {self.run_dir} is in use: its lock {self.path} keeps coming back")

    def release(self) -> None:
        """Remove the lock if this object holds it (and it is still ours)."""
        if not self._held:
            return
        self._held = False
        holder, _ = _read(self.path)
        if holder is not None and holder.get("token") == self._token:
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _take_over_if_stale(self) -> None:
        """Remove a stale lock, or raise RunBusyError naming the live holder."""
        holder, inode = _read(self.path)
        if inode is None:
            return  # gone meanwhile: try again
        reason = _why_held(holder, self.path)
        if reason is not None:
            raise RunBusyError(f"run {self.run_dir} is in use: {reason}")
        # Move it aside first, then check it is still the stale file we judged: a
        # process that took it over meanwhile keeps its fresh lock.
        aside = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}-{time.monotonic_ns()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        moved, moved_inode = _read(aside)
        if moved_inode != inode or moved != holder:
            with contextlib.suppress(OSError):
                os.link(aside, self.path)  # put the other process's lock back
        with contextlib.suppress(OSError):
            os.unlink(aside)


def lock_holder(run_dir: str | Path) -> str | None:
    """Why RUN/.lock is held (a sentence naming a live holder, or one on another
    host that cannot be checked from here), or None when no process holds it."""
    path = RunDir(run_dir).lock
    holder, inode = _read(path)
    if inode is None:
        return None
    return _why_held(holder, path)


def _read(path: Path) -> tuple[dict[str, Any] | None, int | None]:
    """(the lock's contents or None when unreadable, its inode or None when absent)."""
    try:
        fd = open_regular(path)  # a FIFO in its place is refused, never opened blocking
    except FileNotFoundError:
        return None, None
    except DamagedFile:
        return None, 0
    try:
        inode = os.fstat(fd).st_ino
        data = os.read(fd, 4096)
    except OSError:
        return None, 0
    finally:
        os.close(fd)
    try:
        holder = decode_json(data, dict[str, Any], path)
    except DamagedFile:  # garbled, or nested too deep
        return None, inode
    return holder, inode


def _why_held(holder: dict[str, Any] | None, path: Path) -> str | None:
    """Why the lock is still held (a sentence naming the holder), or None when stale."""
    if holder is None:  # empty or garbled: a process may be writing it right now
        try:
            st = path.stat()
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):  # a FIFO or folder there: no process's lock
            return None
        if time.time() - st.st_mtime < STARTING_GRACE_S:
            return f"another process is starting to train there ({path})"
        return None
    pid, host = holder.get("pid"), holder.get("host")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    if host != socket.gethostname():
        return f"pid {pid} on host {host} holds it; if nothing trains there any more, delete {path}"
    if pid == os.getpid() or pid_alive(pid):
        return f"pid {pid} is training there (its lock: {path})"
    return None
