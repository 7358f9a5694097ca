"""sha256 of files, remembered by (path, size, mtime, ctime) so a listing hashes each file once.

`checkpoints list` and the Checkpoints screen flag corrupted weights; hashing a
few GB per checkpoint on every listing would make them slow, so a digest is
kept in CACHE/sha256.json keyed by the file's absolute path, size, mtime_ns and
ctime_ns and computed again only when one of them changes. Anything that rewrites a
file (a bit flipped by an editor, a truncated copy, a half-finished download)
changes its ctime, even when the mtime is set back (`cp -p`, `rsync -a` and
`touch -r` restore it; nothing sets the ctime), so the listing sees it. A file
modified in the last few seconds is hashed but not remembered: a rewrite within
the same timestamp tick would keep size and mtime (git's "racily clean" problem). Loading a checkpoint
to use it (resume, generate) still hashes every byte: the cache only speeds up
listings.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path

from gptcore.errors import DamagedFile
from gptcore.util.fsutil import atomic_write_text
from gptcore.util.paths import cache_dir
from gptcore.util.typedfile import CACHE_LIMIT, read_json

CACHE_FILE = "sha256.json"
# The cache file's schema: absolute path -> [size, mtime_ns, ctime_ns, sha256 hex].
Entry = tuple[int, int, int, str]
RACY_NS = 3_000_000_000  # files modified more recently than this are not remembered


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class HashCache:
    """Digests remembered across processes; `save()` writes what changed."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else cache_dir() / CACHE_FILE
        self._entries: dict[str, list] = {}
        self._dirty = False
        # Read by the typed reader: a damaged cache (a wrong type, a FIFO in its place,
        # too large) is only forgotten; the next listing hashes again.
        with contextlib.suppress(FileNotFoundError, DamagedFile):
            data = read_json(self.path, dict[str, Entry], CACHE_LIMIT)
            self._entries = {k: list(v) for k, v in data.items()}

    def sha256(self, path: str | Path) -> str:
        """The file's digest, from the cache when its size and mtime are unchanged."""
        st = os.stat(path)
        key = str(Path(path).resolve())
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        entry = self._entries.get(key)
        if isinstance(entry, list) and len(entry) == 4 and entry[:3] == stamp:
            return str(entry[3])
        digest = sha256_file(path)
        if time.time_ns() - st.st_mtime_ns > RACY_NS:
            self._entries[key] = [*stamp, digest]
            self._dirty = True
        return digest

    def save(self) -> None:
        """Write the cache (entries of files that are gone are dropped); a cache that
        cannot be written is no error: the next listing hashes again."""
        if not self._dirty:
            return
        entries = {k: v for k, v in self._entries.items() if os.path.exists(k)}
        with contextlib.suppress(OSError):
            atomic_write_text(self.path, json.dumps(entries))
        self._dirty = False
