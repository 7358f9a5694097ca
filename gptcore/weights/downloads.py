"""Downloading GPT-2 weights and knowing what is on disk.

`download_gpt2` fetches one size from OpenAI's storage or Hugging Face (mirrors
and test servers through environment overrides), resumable and verified, through
gptcore.util.download. `local_status` / `list_local` say which downloads are
complete, `find_gpt2` the folder a size loads from.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gptcore.errors import CheckpointError, ConfigError, DownloadError
from gptcore.util.download import (
    ProgressCallback,
    RemoteFile,
    RetryPolicy,
    Timeouts,
    download_files,
    probe,
)
from gptcore.weights.gpt2 import (
    HF_CONFIG,
    HF_FILES,
    HF_WEIGHTS,
    OPENAI_FILES,
    PREFERRED_SOURCES,
    SIZES,
    SOURCES,
    GPT2Size,
    gpt2_dir,
    resolve_size,
)
from gptcore.weights.loaders import check_hf_config, check_hf_weights, safetensors_header

if TYPE_CHECKING:  # torch loads lazily, so `gpt-tui download` / `models` start instantly
    pass


OPENAI_BASE_URL = "https://openaipublic.blob.core.windows.net/gpt-2/models"


HF_BASE_URL = "https://huggingface.co"


# Environment overrides (tests point these at a local server; users at a proxy/mirror).
OPENAI_URL_ENV = "GPT_TUI_OPENAI_URL"


HF_URL_ENV = "GPT_TUI_HF_URL"


MIRROR_ENV = "GPT_TUI_GPT2_MIRROR"


def files_for(source: str) -> tuple[str, ...]:
    if source not in SOURCES:
        raise ConfigError(f"unknown source {source!r}; choose one of: {', '.join(SOURCES)}")
    return OPENAI_FILES if source == "openai" else HF_FILES


def _url(base: str, size: GPT2Size, source: str, file: str) -> str:
    base = base.rstrip("/")
    if source == "openai":
        return f"{base}/{size.name}/{file}"
    return f"{base}/{size.hf_repo}/resolve/main/{file}"


def _servers(
    source: str, base_url: str | None = None, mirror: str | None = None
) -> tuple[str, str | None]:
    """The base URL `source` downloads from, and the mirror tried second (if any)."""
    default = OPENAI_BASE_URL if source == "openai" else HF_BASE_URL
    env = OPENAI_URL_ENV if source == "openai" else HF_URL_ENV
    return base_url or os.environ.get(env) or default, mirror or os.environ.get(MIRROR_ENV) or None


def probe_servers(timeout: float = 3.0) -> str | None:
    """None when any GPT-2 download server answers, else what each one said
    (`huggingface.co: host not found (offline?); ...`): a quick offline check."""
    urls: list[str] = []
    for source in PREFERRED_SOURCES:
        for url in _servers(source):
            if url and url not in urls:
                urls.append(url)
    failures = []
    for url in urls:
        reason = probe(url, timeout)
        if reason is None:
            return None
        failures.append(f"{urlsplit(url).hostname or url}: {reason}")
    return "; ".join(failures)


def remote_files(
    size: str, source: str = "openai", base_url: str | None = None, mirror: str | None = None
) -> list[RemoteFile]:
    """What `download_gpt2` fetches: each file with its URLs (primary, then mirror) and size."""
    s = resolve_size(size)
    base, mirror = _servers(source, base_url, mirror)
    out = []
    for file in files_for(source):
        urls = [_url(base, s, source, file)]
        if mirror:
            urls.append(_url(mirror, s, source, file))
        if source == "openai":
            out.append(RemoteFile(file, tuple(urls), s.openai_bytes.get(file)))
        else:  # sizes unpublished here: check the content before the rename instead
            check, cap = _HF_CHECKS[file]
            out.append(RemoteFile(file, tuple(urls), max_bytes=cap, check=check))
    return out


def _check_config_file(path: Path) -> None:
    check_hf_config(path)


def _check_weights_file(path: Path) -> None:
    check_hf_weights(path)  # against the config.json fetched (and checked) just before


# Hugging Face file -> its content check and size cap (config.json is under 1 kB;
# the largest model.safetensors, gpt2-xl's, about 6.4 GB).
_HF_CHECKS: dict[str, tuple[Callable[[Path], None], int]] = {
    HF_CONFIG: (_check_config_file, 1_000_000),
    HF_WEIGHTS: (_check_weights_file, 8_000_000_000),
}


def download_gpt2(
    size: str,
    source: str = "openai",
    *,
    base_url: str | None = None,
    mirror: str | None = None,
    dest: str | Path | None = None,
    timeouts: Timeouts | None = None,
    retry: RetryPolicy | None = None,
    cancel: threading.Event | None = None,
    on_progress: ProgressCallback | None = None,
) -> Path:
    """Fetch GPT-2 `size` from `source` ("openai" or "hf") into its weights folder.

    Complete files are skipped, partial ones resumed. On failure the
    DownloadError names every URL tried and the folder to fill by hand.
    """
    s = resolve_size(size)
    folder = Path(dest) if dest is not None else gpt2_dir(s.name, source)
    files = remote_files(s.name, source, base_url, mirror)
    try:
        download_files(
            files, folder, timeouts=timeouts, retry=retry, cancel=cancel, on_progress=on_progress
        )
    except DownloadError as exc:
        if type(exc) is not DownloadError:  # cancelled: no advice needed
            raise
        names = ", ".join(f.name for f in files)
        raise DownloadError(
            f"{exc}. To install by hand, put these files into {folder}: {names}", exc.offline
        ) from None
    return folder


def safetensors_complete(path: Path) -> bool:
    """True when the file's header accounts for exactly its length (cheap truncation check)."""
    try:
        safetensors_header(path)
    except CheckpointError:
        return False
    return True


def _hf_invalid(folder: Path) -> set[str]:
    """The files of a Hugging Face download that fail their content check."""
    try:
        config = check_hf_config(folder / HF_CONFIG)
    except CheckpointError:
        weights_ok = safetensors_complete(folder / HF_WEIGHTS)
        return {HF_CONFIG} if weights_ok else {HF_CONFIG, HF_WEIGHTS}
    try:
        check_hf_weights(folder / HF_WEIGHTS, config)
    except CheckpointError:
        return {HF_WEIGHTS}
    return set()


@dataclass(frozen=True)
class LocalWeights:
    """What is on disk for one size and source."""

    size: str
    source: str
    path: Path
    bytes: int  # all files, partial ones included
    complete: bool
    missing: tuple[str, ...]  # files absent, of the wrong size or failing their check
    partial: tuple[str, ...]  # files with a `.part` waiting to be resumed


def local_status(size: str, source: str) -> LocalWeights:
    s = resolve_size(size)
    d = gpt2_dir(s.name, source)
    total, missing, partial = 0, [], []
    # Re-validated on every call: files placed by hand (or left by an older
    # version) are only complete when they would load.
    invalid = _hf_invalid(d) if source == "hf" and d.is_dir() else set()
    for file in files_for(source):
        f = d / file
        part = d / (file + ".part")
        if part.is_file():
            partial.append(file)
            total += part.stat().st_size
        if not f.is_file():
            missing.append(file)
            continue
        n = f.stat().st_size
        total += n
        want = s.openai_bytes.get(file) if source == "openai" else None
        if (want is not None and n != want) or file in invalid:
            missing.append(file)
    return LocalWeights(s.name, source, d, total, not missing, tuple(missing), tuple(partial))


def list_local() -> list[LocalWeights]:
    """Every size/source with at least one file on disk, in size order."""
    out = []
    for size in SIZES:
        for source in SOURCES:
            if gpt2_dir(size, source).is_dir():
                status = local_status(size, source)
                if status.bytes or status.complete:
                    out.append(status)
    return out


def find_gpt2(size: str) -> Path:
    """The downloaded directory for a GPT-2 size (HF layout preferred: no TensorFlow)."""
    s = resolve_size(size)
    tried = []
    for source in PREFERRED_SOURCES:
        status = local_status(s.name, source)
        if status.complete:
            return status.path
        lacking = f": missing {', '.join(status.missing)}" if status.path.is_dir() else ""
        tried.append(f"{status.path}{lacking}")
    raise CheckpointError(
        f"GPT-2 {s.name} weights are not downloaded (looked in {'; '.join(tried)}); "
        f"run: gpt-tui download gpt2 --size {s.name} (or place the files there by hand)"
    )


def downloaded_sizes() -> list[str]:
    """GPT-2 sizes with a complete download (any source), in size order."""
    return [
        size
        for size in SIZES
        if any(local_status(size, source).complete for source in PREFERRED_SOURCES)
    ]
