"""A token cache on disk: each split's token ids in shards of bounded size, and a
manifest, written last, that says the cache is complete.

Each shard is written to a temporary file that takes its name only once full, and
the manifest (sizes, dtype, counts) only after every shard: a cache whose writer
was killed has no manifest and is never used (the next run rebuilds it). Token
ids are uint16 while the vocabulary fits, uint32 beyond 65,536 ids (an extended
tokenizer). Training reads across shards through `ShardedTokens`, which maps each
shard (np.memmap) and copies only the windows asked for.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import TracebackType

import msgspec
import numpy as np

from gptcore.errors import DamagedFile
from gptcore.util.fsutil import atomic_open, atomic_write_bytes
from gptcore.util.typedfile import SMALL_LIMIT, Count, read_json

MANIFEST_FILE = "manifest.json"
SHARD_BYTES = 1 << 28  # 256 MiB per shard file
PARTS = ("train", "val")


def token_dtype(vocab_size: int) -> np.dtype:
    """The narrowest unsigned dtype that holds every id of a vocabulary."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


class Shard(msgspec.Struct, frozen=True):
    file: str
    tokens: Count


class Manifest(msgspec.Struct, frozen=True):
    """What a complete token cache holds (manifest.json)."""

    format: int
    name: str
    documents: Count
    chars: Count
    train_chars: Count
    tokens: Count  # of the whole text (a position split can cut one token in two)
    split: str
    dtype: str
    train: list[Shard]
    val: list[Shard]
    doc_shortest: Count = 0
    doc_median: Count = 0
    doc_longest: Count = 0


class ShardWriter:
    """Writes one split's ids into shards `{part}-00000.bin`, ... of at most
    `shard_bytes` each; `abort()` removes every file it wrote."""

    def __init__(self, folder: Path, part: str, dtype: np.dtype, shard_bytes: int) -> None:
        self.folder, self.part, self.dtype = folder, part, np.dtype(dtype)
        self.capacity = max(1, shard_bytes // self.dtype.itemsize)
        self.shards: list[Shard] = []
        self._stack: contextlib.ExitStack | None = None
        self._file = None
        self._filled = 0

    def _open(self) -> None:
        name = f"{self.part}-{len(self.shards):05d}.bin"
        self._stack = contextlib.ExitStack()
        self._file = self._stack.enter_context(atomic_open(self.folder / name, "wb"))
        self.shards.append(Shard(name, 0))
        self._filled = 0

    def _close(self, exc: BaseException | None = None) -> None:
        if self._stack is None:
            return
        stack, self._stack = self._stack, None
        if exc is None:
            stack.close()  # the shard takes its name
            self.shards[-1] = Shard(self.shards[-1].file, self._filled)
        else:
            stack.__exit__(type(exc), exc, exc.__traceback__)  # the temporary file goes

    def write(self, ids: np.ndarray) -> None:
        ids = ids.astype(self.dtype, copy=False)
        while len(ids):
            if self._stack is None or self._filled == self.capacity:
                self._close()
                self._open()
            take = min(len(ids), self.capacity - self._filled)
            self._file.write(ids[:take].tobytes())
            self._filled += take
            ids = ids[take:]

    def finish(self) -> list[Shard]:
        self._close()
        return self.shards

    def abort(self, exc: BaseException) -> None:
        self._close(exc)
        for shard in self.shards:
            (self.folder / shard.file).unlink(missing_ok=True)


class CacheWriter:
    """The shard writers of both splits, as a context: on an exception (an error,
    a cancel) every shard written so far is removed and no manifest is written."""

    def __init__(self, folder: Path, dtype: np.dtype, shard_bytes: int = SHARD_BYTES) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.bin"):  # a killed writer's shards: never listed
            stale.unlink(missing_ok=True)
        (folder / MANIFEST_FILE).unlink(missing_ok=True)
        self.folder, self.dtype = folder, np.dtype(dtype)
        self.parts = [ShardWriter(folder, part, dtype, shard_bytes) for part in PARTS]

    def __enter__(self) -> CacheWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            for part in self.parts:
                part.abort(exc)

    def write(self, part: int, ids: np.ndarray) -> None:
        self.parts[part].write(ids)

    def commit(self, manifest: Manifest) -> None:
        """Close the last shards and write the manifest that marks the cache complete."""
        train, val = (part.finish() for part in self.parts)
        manifest = msgspec.structs.replace(manifest, train=train, val=val, dtype=self.dtype.name)
        atomic_write_bytes(self.folder / MANIFEST_FILE, msgspec.json.encode(manifest))


class ShardedTokens:
    """Several memory-mapped shards read as one token array: len(), slices (copied
    from the shards they span, never the whole) and single ids."""

    def __init__(self, arrays: list[np.ndarray]) -> None:
        self.arrays = arrays
        self.starts = np.cumsum([0] + [len(a) for a in arrays])
        self.dtype = arrays[0].dtype

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, key: int | slice) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                return np.asarray(self)[key]
            return self._span(start, max(start, stop))
        index = key + len(self) if key < 0 else key
        if not 0 <= index < len(self):
            raise IndexError(f"token {key} out of range for {len(self)} tokens")
        shard = int(np.searchsorted(self.starts, index, side="right")) - 1
        return self.arrays[shard][index - self.starts[shard]]

    def _span(self, start: int, stop: int) -> np.ndarray:
        first = int(np.searchsorted(self.starts, start, side="right")) - 1
        pieces = []
        shard = max(0, first)
        while start < stop and shard < len(self.arrays):
            base = int(self.starts[shard])
            piece = self.arrays[shard][start - base : stop - base]
            pieces.append(piece)
            start += len(piece)
            shard += 1
        if len(pieces) == 1:
            return pieces[0]
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=self.dtype)

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        whole = np.concatenate(self.arrays)
        return whole if dtype is None else whole.astype(dtype)

    def tolist(self) -> list[int]:
        return np.asarray(self).tolist()


def joined(arrays: list[np.ndarray], dtype: np.dtype) -> np.ndarray | ShardedTokens:
    """One array (a shard's memmap itself) or several read as one."""
    arrays = [a for a in arrays if len(a)]
    if not arrays:
        return np.zeros(0, dtype=dtype)
    return arrays[0] if len(arrays) == 1 else ShardedTokens(arrays)


def read_manifest(folder: Path) -> Manifest | None:
    """The cache's manifest, or None when absent or damaged (then rebuilt)."""
    try:
        return read_json(folder / MANIFEST_FILE, Manifest, SMALL_LIMIT)
    except (FileNotFoundError, DamagedFile):
        return None


def open_part(folder: Path, manifest: Manifest, part: str) -> np.ndarray | ShardedTokens | None:
    """A split's shards, memory-mapped; None when a shard is missing or the wrong size."""
    if manifest.dtype not in ("uint16", "uint32"):
        return None
    dtype = np.dtype(manifest.dtype)
    arrays = []
    for shard in getattr(manifest, part):
        if Path(shard.file).name != shard.file or shard.file.startswith("."):
            return None  # a manifest names only its own folder's shards
        path = folder / shard.file
        try:
            if path.stat().st_size != shard.tokens * dtype.itemsize:
                return None
        except OSError:
            return None
        if shard.tokens:
            arrays.append(np.memmap(path, dtype=dtype, mode="r"))
    return joined(arrays, dtype)
