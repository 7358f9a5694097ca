"""Atomic file writes: the one way gpt-tui replaces a file on disk.

Every writer puts its bytes in a hidden temporary file in the target's own
folder, fsyncs it, renames it over the target and fsyncs the folder. A crash
or an error at any moment leaves either the old file or the complete new one,
never a half-written file, and the temporary file is removed on any failure.

    atomic_write_text(path, text) / atomic_write_bytes(path, data)   small files
    atomic_open(path, "wb")            a file written incrementally (stream, torch.save)
    atomic_output(path)                a temp path for writers that want a file name
    durable_replace(src, dst)          give a finished file (a download's .part) its name

Temporary files are named `.NAME.PID-RANDOM.tmp`; a writer that was killed
leaves one behind, and the next write into that folder sweeps it once its
process is gone (`sweep_stale_temps`). `disk_full` tells a full disk apart
from other write errors, so callers can say so in one line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + "$")


def fsync_file(path: str | Path) -> None:
    """Flush a file's contents to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Make renames inside a folder durable, where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def durable_replace(src: str | Path, dst: str | Path) -> None:
    """Rename a complete file over `dst`, its bytes and the rename both on disk."""
    fsync_file(src)
    os.replace(src, dst)
    fsync_dir(Path(dst).parent)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def sweep_stale_temps(folder: str | Path) -> list[Path]:
    """Remove the temporary files that killed writers left in `folder`: those whose
    writer's pid is gone (a write in progress, ours or another process's, is kept)."""
    removed = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            match = _TEMP_NAME.match(entry.name)
            if match is None or not entry.is_file(follow_symlinks=False):
                continue
            pid = int(match.group(1))
            if pid == os.getpid() or pid_alive(pid):
                continue
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def disk_full(exc: BaseException) -> bool:
    """Whether a write failed because the disk (or the user's quota) is full.

    torch.save and safetensors report it as RuntimeError / SafetensorError text
    rather than an OSError, so their messages are recognised too.
    """
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(exc)
    return any(
        mark in text
        for mark in ("No space left", "StorageFull", "unexpected pos", "file write failed")
    )


def _new_temp(path: Path) -> Path:
    """Create an empty, uniquely named hidden file beside `path`.

    Created with mode 0o666 (less the umask), so the final file gets the
    permissions an ordinary write would give it (mkstemp's 0o600 would not).
    """
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # pragma: no cover - a 32-bit random clash
            continue
        os.close(fd)
        return tmp


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`.

    For writers that need a file name (safetensors' save_file). The parent
    folder is created when missing. On any exception the temporary file is
    removed, `path` is left as it was, and the exception propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(path.parent)
    tmp = _new_temp(path)
    try:
        yield tmp
        durable_replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(
    path: str | Path, mode: str = "wb", encoding: str | None = None
) -> Iterator[IO[Any]]:
    """Open a temporary file for writing ("w" or "wb"); on success it replaces `path`.

    The streaming variant: write as much as you like, in pieces, and the target
    only changes once the `with` block ends without an exception.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a new file: mode must be 'w' or 'wb', not {mode!r}")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    with atomic_output(path) as tmp, open(tmp, mode, encoding=encoding) as f:
        yield f


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace `path` with `data`, atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Replace `path` with `text` (UTF-8), atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


@contextlib.contextmanager
def exclusive(lock_path: str | Path) -> Iterator[None]:
    """Hold an advisory lock on `lock_path` (created if missing) for the block: other
    processes asking for the same one wait (DDP ranks building one token cache).
    Where flock does not exist (Windows) the block runs unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Unix
        yield
        return
    Path(lock_path).parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@dataclass(frozen=True)
class Deleted:
    """What deleting a checkpoint (or downloaded weights) did: its folder, and the
    entries in it gpt-tui did not write, which were left (the folder stays when there
    are any)."""

    path: Path
    left: tuple[str, ...] = ()

    def message(self) -> str:
        """One line for the CLI and the app."""
        if not self.left:
            return f"deleted {self.path}"
        shown = ", ".join(self.left[:5]) + (", ..." if len(self.left) > 5 else "")
        count = len(self.left)
        return (
            f"deleted gpt-tui's files in {self.path}; left {count} "
            f"{'file' if count == 1 else 'files'} that gpt-tui did not write: {shown}"
        )


def delete_named_files(folder: str | Path, names: Iterable[str]) -> tuple[str, ...]:
    """Delete the plain files `names` in `folder`, one by one in the given order and never
    a tree, then the folder when nothing else is in it (and it is not a symlink). Returns
    what was left: other entries (a folder ends in "/") and any of `names` that is not a
    plain file (a symlink or a folder), sorted. Whatever gpt-tui did not write stays."""
    folder = Path(folder)
    for name in names:
        file = folder / name
        try:
            if stat.S_ISREG(os.lstat(file).st_mode):
                os.unlink(file)
        except FileNotFoundError:
            continue
    left = tuple(
        sorted(
            e.name + ("/" if e.is_dir(follow_symlinks=False) else "") for e in os.scandir(folder)
        )
    )
    if not left and not folder.is_symlink():
        os.rmdir(folder)
    return left
