"""A resumable, verified HTTP downloader (standard library only).

A file is written to `NAME.part` and only renamed to `NAME` once its size (and
sha256, when known) checks out, so nothing half-written ever looks complete.
An interrupted download resumes from the `.part` file with an HTTP Range
request. Connection problems, timeouts, truncated bodies and 5xx/429 answers are
retried with exponential backoff (the retry budget refills whenever bytes
arrive); 4xx answers and wrong sizes are not. Progress is reported as
`DownloadProgress` events; a `threading.Event` cancels between chunks.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .errors import DownloadError
from .fsutil import durable_replace

USER_AGENT = f"gpt-tui/{__version__}"
CHUNK = 1 << 16


class DownloadCancelled(DownloadError):
    """The caller's cancel event was set; the `.part` file is kept for resuming."""


@dataclass(frozen=True)
class DownloadProgress:
    """One progress event: plain values for the CLI's progress line and the TUI's bar."""

    name: str  # file name being fetched
    done: int  # bytes of this file on disk so far
    total: int | None  # its size, None while unknown
    speed: float  # bytes per second over this attempt
    eta_s: float | None  # seconds left at that speed, None while unknown
    index: int = 0  # which file of `count` (0-based) in a multi-file download
    count: int = 1
    overall_done: int = 0  # bytes of all files so far (only files of known size count)
    overall_total: int | None = None


ProgressCallback = Callable[[DownloadProgress], None]


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0  # seconds to open the connection
    read: float = 30.0  # seconds without any byte arriving


@dataclass
class RetryPolicy:
    retries: int = 4  # extra attempts after the first, per stretch without progress
    backoff: float = 0.5  # first wait; doubles each time
    max_backoff: float = 8.0


class _Retryable(Exception):
    """An attempt failed in a way that may succeed if tried again."""

    def __init__(self, message: str, unreachable: bool = False, no_answer: bool = False) -> None:
        super().__init__(message)
        # Host unknown or refusing connections: most likely offline, so one quick
        # retry (for a DNS hiccup) rather than the whole backoff ladder.
        self.unreachable = unreachable
        # No server answered (a connection-level failure, timeouts included).
        self.no_answer = no_answer or unreachable


@dataclass
class _Attempt:
    """State shared by one file's attempts, for messages."""

    url: str
    errors: list[str] = field(default_factory=list)
    answered: bool = False  # a server answered at least once (even with an error)


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _wait(cancel: threading.Event | None, seconds: float) -> None:
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        raise DownloadCancelled("download cancelled")


def _set_read_timeout(resp: http.client.HTTPResponse, seconds: float) -> None:
    """urllib uses one timeout for connect and reads; give reads their own.

    The socket sits behind private attributes; if they move, the connect
    timeout keeps applying to reads, which is still bounded.
    """
    sock = getattr(getattr(getattr(resp, "fp", None), "raw", None), "_sock", None)
    if isinstance(sock, socket.socket):
        sock.settimeout(seconds)


_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason = exc.reason
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused"
        if isinstance(reason, socket.gaierror):
            return "host not found (offline?)"
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return "connection timed out"
        return str(reason)
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timed out waiting for data"
    return str(exc) or type(exc).__name__


def _fetch_once(
    url: str,
    part: Path,
    expected_size: int | None,
    timeouts: Timeouts,
    cancel: threading.Event | None,
    report: Callable[[int, int | None, float], None],
) -> int:
    """One HTTP attempt appending to `part`; returns the file's total size.

    Raises _Retryable for failures worth retrying, DownloadError for the rest.
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeouts.connect)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:  # our .part is already as long as the file (or longer)
            total_text = (exc.headers.get("Content-Range") or "").rpartition("/")[2]
            if total_text.isdigit() and int(total_text) == offset:
                return offset
            part.unlink(missing_ok=True)
            raise _Retryable("server refused to resume; starting over") from None
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Retryable(f"HTTP {exc.code} {exc.reason}") from None
        raise DownloadError(f"HTTP {exc.code} {exc.reason} for {url}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        unreachable = isinstance(reason, (ConnectionRefusedError, socket.gaierror))
        no_answer = not isinstance(exc, http.client.HTTPException)
        raise _Retryable(_describe(exc), unreachable, no_answer) from None

    with resp:
        _set_read_timeout(resp, timeouts.read)
        length = resp.headers.get("Content-Length")
        body_len = int(length) if length and length.isdigit() else None
        if resp.status == 206:
            match = _RANGE.search(resp.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                part.unlink(missing_ok=True)
                raise _Retryable("server sent the wrong byte range; starting over")
            total = int(match.group(3)) if match.group(3) != "*" else None
            mode = "ab"
        else:  # 200: the whole file (a server that ignores Range restarts us at 0)
            offset = 0
            total = body_len
            mode = "wb"
        if expected_size is not None and total is not None and total != expected_size:
            raise DownloadError(
                f"{url} is {total:,} bytes, expected {expected_size:,} "
                "(wrong file or a changed mirror)"
            )
        total = total if total is not None else expected_size
        if total is not None and offset > total:
            part.unlink(missing_ok=True)
            raise _Retryable("partial file is longer than the file; starting over")

        done = offset
        start, got = time.monotonic(), 0
        with open(part, mode) as fh:
            try:
                while True:
                    if cancel is not None and cancel.is_set():
                        raise DownloadCancelled(f"download of {url} cancelled")
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        break
                    fh.write(chunk)
                    done += len(chunk)
                    got += len(chunk)
                    report(done, total, got / max(time.monotonic() - start, 1e-6))
            except (OSError, http.client.HTTPException) as exc:
                fh.flush()
                raise _Retryable(f"{_describe(exc)} after {done:,} bytes") from None
            finally:
                fh.flush()
                os.fsync(fh.fileno())
        if total is not None and done < total:
            raise _Retryable(f"connection closed early at {done:,} of {total:,} bytes")
        if total is not None and done > total:
            part.unlink(missing_ok=True)
            raise _Retryable(f"received {done:,} bytes, more than the {total:,} announced")
        return done


def download_file(
    urls: str | Sequence[str],
    dest: str | Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    timeouts: Timeouts | None = None,
    retry: RetryPolicy | None = None,
    cancel: threading.Event | None = None,
    on_progress: ProgressCallback | None = None,
    index: int = 0,
    count: int = 1,
    overall_before: int = 0,
    overall_total: int | None = None,
) -> Path:
    """Download to `dest`, trying each URL in turn (a mirror comes second).

    An existing `dest` of the right size (and hash) is kept; an existing
    `dest.part` is resumed. Raises DownloadError naming every URL tried and why,
    or DownloadCancelled (the `.part` file stays for a later resume).
    """
    dest = Path(dest)
    url_list = [urls] if isinstance(urls, str) else list(urls)
    timeouts = timeouts or Timeouts()
    retry = retry or RetryPolicy()
    if dest.is_file() and _verified(dest, size, sha256):
        _emit(
            on_progress,
            dest.name,
            dest.stat().st_size,
            size,
            0.0,
            index,
            count,
            overall_before,
            overall_total,
        )
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    if dest.exists():  # a wrong-sized file under the final name: redo it
        dest.unlink()
    _check_space(dest.parent, size, part)

    last = [0.0]

    def report(done: int, total: int | None, speed: float) -> None:
        now = time.monotonic()  # at most ~20 events a second, and always the last one
        if now - last[0] < 0.05 and done != total:
            return
        last[0] = now
        _emit(
            on_progress, dest.name, done, total, speed, index, count, overall_before, overall_total
        )

    attempts: list[_Attempt] = []
    for url in url_list:
        attempt = _Attempt(url)
        attempts.append(attempt)
        left = retry.retries
        delay = retry.backoff
        while True:
            before = part.stat().st_size if part.exists() else 0
            try:
                _fetch_once(url, part, size, timeouts, cancel, report)
            except _Retryable as exc:
                attempt.errors.append(str(exc))
                attempt.answered |= not exc.no_answer
                after = part.stat().st_size if part.exists() else 0
                if after > before:  # progress was made: the retry budget refills
                    left, delay = retry.retries, retry.backoff
                elif exc.unreachable:
                    left = min(left, 1 if len(attempt.errors) == 1 else 0)
                if left <= 0:
                    break
                left -= 1
                _wait(cancel, delay)
                delay = min(delay * 2, retry.max_backoff)
                continue
            except DownloadCancelled:
                raise
            except DownloadError as exc:
                attempt.errors.append(str(exc))
                attempt.answered = True
                break
            attempt.answered = True
            if _finish(part, dest, size, sha256, attempt):
                return dest
            break  # hash mismatch: this URL serves the wrong bytes
    tried = "; ".join(f"{a.url} ({a.errors[-1] if a.errors else 'no answer'})" for a in attempts)
    offline = bool(attempts) and not any(a.answered for a in attempts)
    raise DownloadError(f"could not download {dest.name}: tried {tried}", offline=offline)


def _emit(
    on_progress: ProgressCallback | None,
    name: str,
    done: int,
    total: int | None,
    speed: float,
    index: int,
    count: int,
    overall_before: int,
    overall_total: int | None,
) -> None:
    if on_progress is None:
        return
    eta = (total - done) / speed if total is not None and speed > 0 else None
    on_progress(
        DownloadProgress(
            name, done, total, speed, eta, index, count, overall_before + done, overall_total
        )
    )


def _verified(path: Path, size: int | None, sha256: str | None) -> bool:
    if size is not None and path.stat().st_size != size:
        return False
    return sha256 is None or sha256_of(path) == sha256


def _finish(
    part: Path, dest: Path, size: int | None, sha256: str | None, attempt: _Attempt
) -> bool:
    """Check the finished `.part` and give it its final name; False (and delete) if bad."""
    got = part.stat().st_size
    if size is not None and got != size:
        part.unlink(missing_ok=True)
        attempt.errors.append(f"got {got:,} bytes, expected {size:,}")
        return False
    if sha256 is not None:
        digest = sha256_of(part)
        if digest != sha256:
            part.unlink(missing_ok=True)
            attempt.errors.append(f"sha256 {digest[:12]}... does not match {sha256[:12]}...")
            return False
    durable_replace(part, dest)
    return True


def _check_space(folder: Path, size: int | None, part: Path) -> None:
    if size is None:
        return
    have = part.stat().st_size if part.exists() else 0
    free = shutil.disk_usage(folder).free
    if size - have > free:
        raise DownloadError(
            f"not enough disk space in {folder}: need {size - have:,} bytes, {free:,} free"
        )


@dataclass(frozen=True)
class RemoteFile:
    """One file of a multi-file download: where to get it and what it must be."""

    name: str
    urls: tuple[str, ...]
    size: int | None = None
    sha256: str | None = None


def download_files(
    files: Sequence[RemoteFile],
    folder: str | Path,
    *,
    timeouts: Timeouts | None = None,
    retry: RetryPolicy | None = None,
    cancel: threading.Event | None = None,
    on_progress: ProgressCallback | None = None,
) -> list[Path]:
    """Download several files into `folder`; progress events carry overall totals."""
    folder = Path(folder)
    known = [f.size for f in files]
    overall_total = sum(s for s in known if s is not None) if all(known) else None
    done_before = 0
    out = []
    for i, f in enumerate(files):
        out.append(
            download_file(
                f.urls,
                folder / f.name,
                size=f.size,
                sha256=f.sha256,
                timeouts=timeouts,
                retry=retry,
                cancel=cancel,
                on_progress=on_progress,
                index=i,
                count=len(files),
                overall_before=done_before,
                overall_total=overall_total,
            )
        )
        done_before += out[-1].stat().st_size
    return out
