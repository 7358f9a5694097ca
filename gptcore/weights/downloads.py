"""Downloading GPT-2 weights and knowing what is on disk.

`download_gpt2` fetches one size from OpenAI's storage or Hugging Face (mirrors
and test servers through environment overrides), resumable and verified, through
gptcore.util.download. `local_status` / `list_local` say which downloads are
complete, `find_gpt2` the folder a size loads from.

What a download is checked against, before a file gets its final name:
- the hash its source publishes, where it publishes one: Hugging Face states the
  sha256 of each LFS file (model.safetensors) in `X-Linked-Etag` / `ETag`; Azure
  storage (OpenAI's) the MD5 of a blob in `Content-MD5` / `x-ms-blob-content-md5`;
- always, the shape of the size asked for: config.json / hparams.json must give
  that size's layers, width, heads, context and vocabulary, every tensor of
  model.safetensors the shape they imply, and OpenAI's data file exactly the bytes
  of those tensors (so a small model served as a big one is refused).
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gptcore.errors import CheckpointError, ConfigError, DownloadError
from gptcore.settings.model import GPTConfig
from gptcore.util.download import (
    ProgressCallback,
    PublishedDigest,
    RemoteFile,
    RetryPolicy,
    Timeouts,
    download_files,
    probe,
)
from gptcore.util.fsutil import Deleted, delete_named_files
from gptcore.weights.gpt2 import (
    HF_CONFIG,
    HF_FILES,
    HF_WEIGHTS,
    OPENAI_DATA,
    OPENAI_FILES,
    OPENAI_HPARAMS,
    PREFERRED_SOURCES,
    SIZES,
    SOURCES,
    GPT2Size,
    gpt2_dir,
    preset_for,
    resolve_size,
)
from gptcore.weights.layouts import _read_json, config_from_hparams, expected_shapes
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
    """What `download_gpt2` fetches: each file with its URLs (primary, then mirror), its
    size where known, the hash header its source publishes and the checks of its shape."""
    s = resolve_size(size)
    base, mirror = _servers(source, base_url, mirror)
    out = []
    for file in files_for(source):
        urls = [_url(base, s, source, file)]
        if mirror:
            urls.append(_url(mirror, s, source, file))
        if source == "openai":
            known = openai_bytes(s, file)
            check = _hparams_check(s) if file == OPENAI_HPARAMS else None
            out.append(RemoteFile(file, tuple(urls), known, check=check, published=azure_md5))
        elif file == HF_CONFIG:  # sizes unpublished here: the content is checked instead
            out.append(RemoteFile(file, tuple(urls), max_bytes=1_000_000,
                                  check=_hf_config_check(s), published=hf_sha256))  # fmt: skip
        else:  # the largest model.safetensors, gpt2-xl's, is about 6.4 GB
            out.append(RemoteFile(file, tuple(urls), max_bytes=8_000_000_000,
                                  check=_hf_weights_check(s), published=hf_sha256))  # fmt: skip
    return out


_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def hf_sha256(headers: Message, status: int) -> PublishedDigest | None:
    """The sha256 Hugging Face states for an LFS file on its resolve URL (the redirect to
    its CDN carries `X-Linked-Etag`; a direct answer, `ETag`). Small files in git have a
    sha1 ETag instead: not a sha256, so not used."""
    for header in ("X-Linked-Etag", "ETag"):
        value = (headers.get(header) or "").strip().removeprefix("W/").strip('"').lower()
        if _SHA256_HEX.match(value):
            return PublishedDigest("sha256", value, header)
    return None


def azure_md5(headers: Message, status: int) -> PublishedDigest | None:
    """The MD5 that Azure blob storage (OpenAI's) states for a whole blob: Content-MD5 on
    a whole-file answer (on a range it would be the range's), x-ms-blob-content-md5 on any."""
    names = (
        ("x-ms-blob-content-md5", "Content-MD5") if status == 200 else ("x-ms-blob-content-md5",)
    )
    for header in names:
        value = (headers.get(header) or "").strip()
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(raw) == 16:
            return PublishedDigest("md5", raw.hex(), header)
    return None


def openai_bytes(size: GPT2Size, file: str) -> int | None:
    """The exact size of one of OpenAI's files for `size`, where it is known: the data
    file's follows from the size's shape."""
    if file == OPENAI_DATA:  # every tensor of the size, float32, one after another
        return tf_data_bytes(preset_for(size.name))
    return size.openai_bytes.get(file)


def tf_data_bytes(config: GPTConfig) -> int:
    """Bytes of OpenAI's model.ckpt.data file for a model of `config`: its float32
    tensors (497,759,232 for 124M)."""
    return 4 * sum(math.prod(shape) for shape in expected_shapes(config).values())


_SHAPE_FIELDS = (
    ("layers", "n_layers"),
    ("width", "emb_dim"),
    ("heads", "n_heads"),
    ("context", "context_length"),
    ("vocabulary", "vocab_size"),
)


def check_size_shape(config: GPTConfig, size: GPT2Size, where: str | Path) -> None:
    """CheckpointError unless `config` has the shape of GPT-2 `size` (its preset)."""
    want = preset_for(size.name)
    wrong = [
        f"{label} {getattr(config, attr):,} (GPT-2 {size.name} has {getattr(want, attr):,})"
        for label, attr in _SHAPE_FIELDS
        if getattr(config, attr) != getattr(want, attr)
    ]
    if wrong:
        raise CheckpointError(f"{where} is not GPT-2 {size.name}: {', '.join(wrong)}")


def _served(path: Path) -> str:
    """The name of the file a download's `.part` becomes: what messages name."""
    return path.name.removesuffix(".part")


def _hparams_check(size: GPT2Size) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        check_size_shape(config_from_hparams(_read_json(path), path), size, _served(path))

    return check


def _hf_config_check(size: GPT2Size) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        check_size_shape(check_hf_config(path), size, _served(path))

    return check


def _hf_weights_check(size: GPT2Size) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        # Against the config.json fetched (and checked) just before: every tensor's shape.
        config = check_hf_config(path.parent / HF_CONFIG)
        check_size_shape(config, size, HF_CONFIG)
        check_hf_weights(path, config)

    return check


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
        want = openai_bytes(s, file) if source == "openai" else None
        if (want is not None and n != want) or file in invalid:
            missing.append(file)
    return LocalWeights(s.name, source, d, total, not missing, tuple(missing), tuple(partial))


def delete_gpt2(size: str, source: str) -> Deleted:
    """Delete a size's downloaded files from `source`'s folder, by name (partial `.part`
    files too), then the folder when nothing else is in it: files placed there that
    are not GPT-2's, and symlinks, stay and are named."""
    folder = gpt2_dir(resolve_size(size).name, source)
    if not folder.is_dir():
        raise ConfigError(f"no GPT-2 {size} files from {source} in {folder}")
    names = [n for file in files_for(source) for n in (file, file + ".part")]
    return Deleted(folder, delete_named_files(folder, names))


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
