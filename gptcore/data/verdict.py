"""The book's corpus, Edith Wharton's short story "The Verdict" (the-verdict.txt):
where it comes from, what it must be, and fetching it into the data dir.

`gpt-tui download verdict` and the Corpus screen's `v` key both call
`fetch_verdict`: a resumable download (gptcore.util.download) to
`paths.verdict_file()`, kept only when its size and sha256 match the book's file.
A copy already there and intact is used without any request.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from gptcore.errors import DownloadError
from gptcore.util.download import ProgressCallback, RetryPolicy, Timeouts, download_file
from gptcore.util.paths import verdict_file

VERDICT_URL = (
    "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/"
    "ch02/01_main-chapter-code/the-verdict.txt"
)
VERDICT_URL_ENV = "GPT_TUI_VERDICT_URL"  # another source (a mirror; tests' local server)
VERDICT_BYTES = 20_479
VERDICT_SHA256 = "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f"


def verdict_url(url: str | None = None) -> str:
    """`url` when given, else $GPT_TUI_VERDICT_URL, else the book's repository."""
    return url or os.environ.get(VERDICT_URL_ENV) or VERDICT_URL


def fetch_verdict(
    url: str | None = None,
    *,
    timeouts: Timeouts | None = None,
    retry: RetryPolicy | None = None,
    cancel: threading.Event | None = None,
    on_progress: ProgressCallback | None = None,
) -> Path:
    """the-verdict.txt in the data dir, downloaded from `verdict_url(url)` unless an
    intact copy is there; returns its path.

    Raises DownloadError (its `offline` set when no server answered) whose message
    also says where to save the file by hand, or DownloadCancelled when `cancel`
    is set (the partial file stays and the next call resumes it).
    """
    dest = verdict_file()
    try:
        return download_file(
            verdict_url(url),
            dest,
            size=VERDICT_BYTES,
            sha256=VERDICT_SHA256,
            timeouts=timeouts,
            retry=retry,
            cancel=cancel,
            on_progress=on_progress,
        )
    except DownloadError as exc:
        if type(exc) is not DownloadError:  # DownloadCancelled: nothing to add
            raise
        raise DownloadError(
            f"{exc}. To install by hand, save the file as {dest}", exc.offline
        ) from None
