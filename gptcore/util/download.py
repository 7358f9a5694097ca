"""A resumable, verified HTTP downloader (standard library only).

A file is written to `NAME.part` and only renamed to `NAME` once its size (and
sha256, when known) checks out, so nothing half-written ever looks complete.
An interrupted download resumes from the `.part` file with an HTTP Range
request. Connection problems, timeouts, truncated bodies and 5xx/429 answers are
retried with exponential backoff (the retry budget refills whenever the file
gets longer than it ever was); 4xx answers and wrong sizes are not. Whatever a
server does, each file has an overall deadline (kept by a watchdog that closes
the connection, so it holds while headers are read too), a bounded number of
requests and a size limit, so a hostile or broken server cannot keep us busy
forever or fill the disk. A digest the source publishes in its response headers
(`published`: Hugging Face's sha256, Azure's Content-MD5) is checked, and an
optional `check` validates the content, before the rename.
Progress is reported as `DownloadProgress` events; a `threading.Event` cancels
between chunks.
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
from email.message import Message
from pathlib import Path
from typing import BinaryIO

from gptcore import __version__
from gptcore.errors import DownloadError, GptTuiError
from gptcore.util.download_limits import Budget, BudgetSpent, RetryPolicy, Timeouts
from gptcore.util.fsutil import durable_replace

USER_AGENT = f"gpt-tui/{__version__}"
CHUNK = 1 << 16
# A file of unknown size may not grow past this (GPT-2 XL's weights, the largest
# file we fetch, are about 6.4 GB).
MAX_UNKNOWN_BYTES = 8_000_000_000


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
class PublishedDigest:
    """A hash of the whole file that a server states in a response header."""

    algorithm: str  # a hashlib name: "sha256", "md5"
    hexdigest: str
    header: str  # the header it came from, for messages


# Reads the digest a source publishes from one response's headers (redirects included)
# and its HTTP status; None when that response states none.
DigestReader = Callable[[Message, int], PublishedDigest | None]


class _Retryable(Exception):
    """An attempt failed in a way that may succeed if tried again."""

    def __init__(self, message: str, unreachable: bool = False, no_answer: bool = False) -> None:
        super().__init__(message)
        # Host unknown or refusing connections: most likely offline, so one quick
        # retry (for a DNS hiccup) rather than the whole backoff ladder.
        self.unreachable = unreachable
        # No server answered (a connection-level failure, timeouts included).
        self.no_answer = no_answer or unreachable


class _TooLong(Exception):
    """The body went past the file's size limit; carries the limit and whether it was a cap."""

    def __init__(self, limit: int, capped: bool) -> None:
        super().__init__(limit)
        self.limit = limit
        self.capped = capped


@dataclass
class _Attempt:
    """State shared by one file's attempts, for messages."""

    url: str
    errors: list[str] = field(default_factory=list)
    answered: bool = False  # a server answered at least once (even with an error)


def _opener(
    budget: Budget, record: Callable[[Message, int], None]
) -> urllib.request.OpenerDirector:
    """urllib's opener whose connections the budget's watchdog can close, and which
    shows `record` the headers of every response, redirects included (Hugging Face
    states a file's sha256 on the redirect to its CDN)."""

    def watched(base: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
        class Watched(base):  # type: ignore[misc, valid-type]
            def connect(self) -> None:
                super().connect()
                budget.watch(self.sock)

        return Watched

    http_conn = watched(http.client.HTTPConnection)
    https_conn = watched(http.client.HTTPSConnection)

    class HTTP(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(http_conn, req)

    class HTTPS(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            kwargs: dict[str, object] = {"context": getattr(self, "_context", None)}
            if hasattr(self, "_check_hostname"):  # Python before 3.12
                kwargs["check_hostname"] = self._check_hostname
            return self.do_open(https_conn, req, **kwargs)

    class Redirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
            record(headers, code)
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return urllib.request.build_opener(HTTP, HTTPS, Redirects)


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def sha256_of(path: Path) -> str:
    return _hash_file(path, "sha256")


def _hash_file(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
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


def probe(url: str, timeout: float = 3.0) -> str | None:
    """None when a server answers at `url` (any HTTP status), else why not.

    One HEAD request and no retry: a quick check that the network is there,
    made before anyone asks for a download.
    """
    req = urllib.request.Request(url, method="HEAD", headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(req, timeout=timeout):
            return None
    except urllib.error.HTTPError as exc:
        exc.close()
        return None  # an HTTP answer, even an error, means a server is there
    except http.client.HTTPException:
        return None  # a garbled answer is still an answer
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return _describe(exc)


def _fetch_once(
    url: str,
    part: Path,
    expected_size: int | None,
    max_bytes: int,
    timeouts: Timeouts,
    budget: Budget,
    cancel: threading.Event | None,
    report: Callable[[int, int | None, float], None],
    record: Callable[[Message, int], None] = lambda _headers, _status: None,
) -> int:
    """One HTTP attempt appending to `part`; returns the file's total size.

    `record` sees every response's headers and status (redirects included). Raises
    _Retryable for failures worth retrying, BudgetSpent when the file's budget is spent,
    DownloadError for the rest.
    """
    budget.next_request()
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = _opener(budget, record).open(
            req, timeout=max(min(timeouts.connect, budget.left()), 0.01)
        )
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
        budget.check_time()  # a connect timeout cut short by the deadline
        reason = getattr(exc, "reason", exc)
        unreachable = isinstance(reason, (ConnectionRefusedError, socket.gaierror))
        no_answer = not isinstance(exc, http.client.HTTPException)
        raise _Retryable(_describe(exc), unreachable, no_answer) from None

    with resp:
        record(resp.headers, resp.status)
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
        if expected_size is None and total is not None:
            if total > max_bytes:
                raise DownloadError(
                    f"{url} is {total:,} bytes, more than the {max_bytes:,}-byte limit"
                )
            budget.learn_size(total)
        total = total if total is not None else expected_size
        if total is not None and offset > total:
            part.unlink(missing_ok=True)
            raise _Retryable("partial file is longer than the file; starting over")

        # Never write past the known size, or past the cap when the size is unknown.
        limit = total if total is not None else max_bytes
        try:
            with open(part, mode) as fh:
                try:
                    done = _copy_body(
                        resp, fh, offset, total, limit, timeouts, budget, cancel, report
                    )
                finally:
                    fh.flush()
                    os.fsync(fh.fileno())
        except _TooLong as exc:
            part.unlink(missing_ok=True)
            if exc.capped:
                raise DownloadError(
                    f"{url} sent more than {exc.limit:,} bytes (the limit for a file of "
                    "unknown size); stopped"
                ) from None
            raise _Retryable(f"received more than the {exc.limit:,} bytes expected") from None
        if total is not None and done < total:
            raise _Retryable(f"connection closed early at {done:,} of {total:,} bytes")
        return done


def _copy_body(
    resp: http.client.HTTPResponse,
    fh: BinaryIO,
    offset: int,
    total: int | None,
    limit: int,
    timeouts: Timeouts,
    budget: Budget,
    cancel: threading.Event | None,
    report: Callable[[int, int | None, float], None],
) -> int:
    """Append the body to `fh` until it ends; returns the file's length so far.

    Reads whatever has arrived (`read1`), so a trickle still meets the deadline.
    """
    done = offset
    start, got = time.monotonic(), 0
    try:
        while True:
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled(f"download of {resp.geturl()} cancelled")
            budget.check_time()
            _set_read_timeout(resp, max(min(timeouts.read, budget.left()), 0.01))
            chunk = resp.read1(CHUNK)
            if not chunk:
                budget.check_time()  # the watchdog closed the connection: not the end
                return done
            if done + len(chunk) > limit:
                raise _TooLong(limit, capped=total is None)
            fh.write(chunk)
            done += len(chunk)
            got += len(chunk)
            report(done, total, got / max(time.monotonic() - start, 1e-6))
    except (OSError, http.client.HTTPException) as exc:
        budget.check_time()  # a read timeout cut short by the deadline
        raise _Retryable(f"{_describe(exc)} after {done:,} bytes") from None


def download_file(
    urls: str | Sequence[str],
    dest: str | Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    max_bytes: int = MAX_UNKNOWN_BYTES,
    check: Callable[[Path], None] | None = None,
    published: DigestReader | None = None,
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

    An existing `dest` of the right size (and hash) that passes `check` is
    kept; an existing `dest.part` is resumed. `max_bytes` caps a file of unknown
    `size`; `published` reads the digest a server states in its headers, which the
    finished `.part` must match; `check(path)` raises a GptTuiError when the finished
    `.part` is not what it must be (it then never gets the final name). Raises DownloadError
    naming every URL tried and why, or DownloadCancelled (the `.part` file stays
    for a later resume).
    """
    dest = Path(dest)
    url_list = [urls] if isinstance(urls, str) else list(urls)
    timeouts = timeouts or Timeouts()
    retry = retry or RetryPolicy()
    if dest.is_file() and _verified(dest, size, sha256, check):
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
    budget = Budget(timeouts, retry, size)
    try:
        return _download_from(
            url_list, dest, part, size, sha256, max_bytes, check, published,
            timeouts, retry, budget, cancel, report, attempts,
        )  # fmt: skip
    finally:
        budget.close()


def _download_from(
    url_list: list[str],
    dest: Path,
    part: Path,
    size: int | None,
    sha256: str | None,
    max_bytes: int,
    check: Callable[[Path], None] | None,
    published: DigestReader | None,
    timeouts: Timeouts,
    retry: RetryPolicy,
    budget: Budget,
    cancel: threading.Event | None,
    report: Callable[[int, int | None, float], None],
    attempts: list[_Attempt],
) -> Path:
    """download_file's attempts: each URL in turn, within one budget."""
    for url in url_list:
        attempt = _Attempt(url)
        attempts.append(attempt)
        digests: set[PublishedDigest] = set()  # what this URL's server stated

        def record(headers: Message, status: int, digests: set = digests) -> None:
            found = published(headers, status) if published is not None else None
            if found is not None:
                digests.add(found)

        left = retry.retries
        delay = retry.backoff
        # The retry budget refills only when the file gets longer than it ever was,
        # so a server that keeps restarting the file cannot keep us going.
        longest = part.stat().st_size if part.exists() else 0
        try:
            while True:
                try:
                    _fetch_once(
                        url, part, size, max_bytes, timeouts, budget, cancel, report, record
                    )
                except _Retryable as exc:
                    attempt.errors.append(str(exc))
                    attempt.answered |= not exc.no_answer
                    after = part.stat().st_size if part.exists() else 0
                    if after > longest:  # progress was made: the retry budget refills
                        longest = after
                        left, delay = retry.retries, retry.backoff
                    elif exc.unreachable:
                        left = min(left, 1 if len(attempt.errors) == 1 else 0)
                    if left <= 0:
                        break
                    left -= 1
                    _wait(cancel, max(min(delay, budget.left()), 0.0))
                    delay = min(delay * 2, retry.max_backoff)
                    continue
                except DownloadCancelled:
                    raise
                except DownloadError as exc:
                    attempt.errors.append(str(exc))
                    attempt.answered = True
                    break
                attempt.answered = True
                if _finish(part, dest, size, sha256, check, attempt, digests):
                    return dest
                break  # wrong hash or content: this URL serves the wrong bytes
        except BudgetSpent as exc:
            last = f"; last: {attempt.errors[-1]}" if attempt.errors else ""
            attempt.errors.append(f"{exc}{last}")
            break  # the file's budget covers every URL
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


def _verified(
    path: Path, size: int | None, sha256: str | None, check: Callable[[Path], None] | None
) -> bool:
    if size is not None and path.stat().st_size != size:
        return False
    if sha256 is not None and sha256_of(path) != sha256:
        return False
    try:
        if check is not None:
            check(path)
    except GptTuiError:
        return False
    return True


def _finish(
    part: Path,
    dest: Path,
    size: int | None,
    sha256: str | None,
    check: Callable[[Path], None] | None,
    attempt: _Attempt,
    digests: set[PublishedDigest] = frozenset(),  # type: ignore[assignment]
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
    for want in sorted(digests, key=lambda d: (d.algorithm, d.hexdigest)):
        got_digest = _hash_file(part, want.algorithm)
        if got_digest != want.hexdigest:
            part.unlink(missing_ok=True)
            attempt.errors.append(
                f"{want.algorithm} {got_digest[:12]}... does not match the "
                f"{want.hexdigest[:12]}... its server published ({want.header}): wrong bytes"
            )
            return False
    if check is not None:
        try:
            check(part)
        except (GptTuiError, ValueError, RecursionError) as exc:
            part.unlink(missing_ok=True)
            attempt.errors.append(
                str(exc) if isinstance(exc, GptTuiError) else f"{part.name}: {exc}"
            )
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
    max_bytes: int = MAX_UNKNOWN_BYTES  # the cap while `size` is unknown
    # Validates the finished file before it gets its final name (see download_file).
    check: Callable[[Path], None] | None = field(default=None, compare=False)
    # Reads the digest its server publishes in the response headers (see download_file).
    published: DigestReader | None = field(default=None, compare=False)


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
                max_bytes=f.max_bytes,
                check=f.check,
                published=f.published,
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
