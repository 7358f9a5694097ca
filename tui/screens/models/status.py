"""What the Models screen says about one GPT-2 size from one source: its status
cell, why a key cannot act on it now, where to put its files by hand, and a
download's progress line. Plain functions of what the pane knows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gptcore.util.fmt import format_bytes, format_duration
from gptcore.weights.downloads import files_for
from gptcore.weights.gpt2 import SOURCE_LABELS, gpt2_dir

if TYPE_CHECKING:
    from gptcore.util.download import DownloadProgress
    from gptcore.weights.downloads import LocalWeights

Row = tuple[str, str]  # (size, source)


def progress_line(p: DownloadProgress) -> str:
    """`model.safetensors (2/2) · 12.3 MB / 548 MB · 5.1 MB/s · ETA 1m45s`."""
    total = f" / {format_bytes(p.total)}" if p.total is not None else ""
    return (
        f"{p.name} ({p.index + 1}/{p.count}) · {format_bytes(p.done)}{total} · "
        f"{format_bytes(int(p.speed))}/s · ETA {format_duration(p.eta_s)}"
    )


def status_text(
    status: LocalWeights | None, downloading: bool, progress: DownloadProgress | None
) -> str:
    """The status cell: how far a running download is, else what is on disk."""
    if downloading:
        p = progress
        if p is not None and p.overall_total:
            return f"downloading {p.overall_done / p.overall_total:.0%}"
        if p is not None and p.total:  # sizes known file by file only
            return f"file {p.index + 1}/{p.count} {p.done / p.total:.0%}"
        return "downloading"
    if status is None:
        return "…"
    if status.complete:
        return "complete"
    if status.partial or status.bytes:
        return "partial: d resumes"
    return "absent"


def refusal(
    action: str, row: Row, status: LocalWeights | None, downloading: Row | None
) -> str | None:
    """Why `action` ("download", "open_chat" or "delete") cannot act on `row` now, or
    None when it can. `status` is what is on disk for it (None: not read yet);
    `downloading` the row being downloaded, if any."""
    size, source = row
    label = f"GPT-2 {size} ({source})"
    on_disk = status is not None and status.path.is_dir() and status.bytes > 0
    complete = status is not None and status.complete
    if action == "download":
        if downloading == row:
            return f"{label} is downloading: x cancels it"
        if downloading:
            return "one download at a time: x cancels it"
        if complete:
            return f"{label} is already downloaded: o opens it in Chat"
    elif action == "open_chat":
        if downloading == row:
            return f"{label} is still downloading"
        if not complete:
            if on_disk:
                return f"{label} is only partly downloaded: d resumes the download"
            return f"{label} is not downloaded: press d to download it"
    elif action == "delete":
        if downloading == row:
            return f"{label} is downloading: x cancels it first"
        if not on_disk:
            return f"{label} is not downloaded: there is nothing to delete"
    return None


def hint_text(row: Row) -> str:
    """Where the files of `row` go when installed by hand (and TensorFlow's note)."""

    size, source = row
    names = ", ".join(files_for(source))
    extra = (
        " (loading it needs TensorFlow: pip install 'gpt-tui[tf]')" if source == "openai" else ""
    )
    return (
        f"GPT-2 {size} from {SOURCE_LABELS[source]}{extra}.\n"
        f"To install by hand, put {names} into {gpt2_dir(size, source)}"
    )
