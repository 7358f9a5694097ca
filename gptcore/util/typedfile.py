"""The one reader of files gpt-tui did not just write: bytes in, declared types out.

Every file read back (events, a run's config, checkpoint meta, caches, saved
results) comes through here, decoded by msgspec straight into a declared schema
(a msgspec Struct, a dataclass, `dict[str, float]` ...). msgspec checks types and
ranges as it decodes, in C, and names the bad field ("$.loss"), so no reader
checks fields by hand and a wrong type cannot reach a format string.

Whatever is wrong becomes one DamagedFile naming the file and the field:

    a FIFO, device or socket in the file's place   refused from its stat, never opened
                                                   blocking (a FIFO cannot hang the read)
    a folder or file that cannot be read           (permission denied, a symlink loop)
    a file larger than its kind's limit            (never read into memory)
    not JSON / TOML, nested too deep               (msgspec and tomllib raise RecursionError)
    a wrong type, a number out of range            (a huge int, 1e400, a NaN timestamp)

A missing file stays FileNotFoundError: callers mean different things by it.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec

from gptcore.errors import DamagedFile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

T = TypeVar("T")

KB, MB = 1 << 10, 1 << 20
# Limits per kind of file, far above anything gpt-tui writes: a file larger than
# its limit is damaged (or someone else's), and is not read into memory.
SMALL_LIMIT = 1 * MB  # a run's config.toml, a cache's meta, a saved Speed Lab result
META_LIMIT = 16 * MB  # a checkpoint's meta.json (RNG states, the train config)
CACHE_LIMIT = 64 * MB  # the timeline cache, the hash cache

# Numbers every schema shares. A count (steps, epochs, tokens, bytes) is a whole number
# exact in JSON; a timestamp is seconds since 1970 before 2100: a NaN, negative or huge
# one is no real time, and would crash time.localtime where it is shown.
MAX_COUNT = 2**53
LAST_TIME = 4102444800.0  # 2100-01-01
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]
Timestamp = Annotated[float, msgspec.Meta(ge=0.0, le=LAST_TIME)]

_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


def _not_regular(mode: int) -> str | None:
    """What a non-regular file is ("a FIFO ..."), None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _unreadable(path: str | Path, exc: OSError) -> DamagedFile:
    return DamagedFile(path, f"cannot be read ({exc.strerror or type(exc).__name__})")


def check_regular(path: str | Path) -> os.stat_result:
    """The stat of `path` (symlinks followed) when it is a regular file; DamagedFile
    for a FIFO, device, socket or folder in its place or a path that cannot be looked
    at. FileNotFoundError when there is nothing there."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _unreadable(path, exc) from None
    kind = _not_regular(st.st_mode)
    if kind is not None:
        raise DamagedFile(path, f"is {kind}, not a regular file")
    return st


def open_regular(path: str | Path) -> int:
    """A read-only file descriptor of `path`, a regular file (see check_regular).

    The stat comes first, so a FIFO is never opened; the open is non-blocking and
    the descriptor checked again, so a FIFO put there in between cannot hang it.
    The caller closes the descriptor."""
    check_regular(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _unreadable(path, exc) from None
    kind = _not_regular(os.fstat(fd).st_mode)
    if kind is not None:
        os.close(fd)
        raise DamagedFile(path, f"is {kind}, not a regular file")
    return fd


def read_bytes(path: str | Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; DamagedFile otherwise."""
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise DamagedFile(path, f"is too large ({size:,} bytes; at most {limit:,} expected)")
        chunks, total = [], 0
        while total <= limit:  # the file may grow while it is read
            chunk = os.read(fd, min(limit + 1 - total, MB))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    finally:
        os.close(fd)
    if total > limit:
        raise DamagedFile(path, f"is too large (more than {limit:,} bytes expected)")
    return b"".join(chunks)


# ---------------------------------------------------------------- decoding

_AT = re.compile(r"^(?P<message>.*?) - at `(?P<path>[^`]*)`(?: in `(?P<outer>[^`]*)`)?$", re.S)
_EXPECTED = re.compile(r"^Expected `(?P<want>[^`]*)`(?P<bound>[^,]*)(?:, got `(?P<got>[^`]*)`)?$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]*)`$")


def field_name(json_path: str) -> str | None:
    """`$.model_config.n_layers` -> "model_config.n_layers"; a dict's values and an
    array's items are named by their container ("files", "samples[3]"); `$` -> None."""
    name = json_path.removeprefix("$").removeprefix(".")
    name = name.replace("[...]", "")
    return name or None


def damage(path: str | Path, exc: msgspec.ValidationError) -> DamagedFile:
    """A msgspec validation error as a DamagedFile naming `path` and the field."""
    text = str(exc)
    field = None
    match = _AT.match(text)
    if match is not None:
        text = match["message"]
        # "... - at `key` in `$.files`": a bad key of the object at $.files
        field = field_name(match["outer"] if match["path"] == "key" else match["path"])
    missing = _MISSING.match(text)
    if missing is not None:
        name = missing["name"]
        return DamagedFile(path, "is missing", f"{field}.{name}" if field else name)
    expected = _EXPECTED.match(text)
    if expected is not None:
        want = expected["want"].replace(" | null", " or null")
        problem = f"must be {want}{expected['bound']}"
        problem += f", got {expected['got']}" if expected["got"] else ""
    elif text == "Number out of range":
        problem = "is a number out of range"
    else:
        problem = text[:1].lower() + text[1:]
    return DamagedFile(path, problem if field else f"is damaged: {problem}", field)


def convert(obj: Any, type: type[T], path: str | Path) -> T:
    """Plain Python data (parsed TOML, a JSON object) as `type`; DamagedFile names the field."""
    try:
        return msgspec.convert(obj, type)
    except msgspec.ValidationError as exc:
        raise damage(path, exc) from None
    except RecursionError:
        raise DamagedFile(path, "is nested too deeply") from None


NOT_JSON = "is not valid JSON"


def _lenient_json(data: bytes | str, path: str | Path) -> Any:
    """JSON with bare NaN / Infinity (Python's json writes them; msgspec refuses them)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise DamagedFile(path, "is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DamagedFile(path, f"{NOT_JSON} ({first})") from None


def decode_json(data: bytes | str, type: type[T], path: str | Path) -> T:
    """JSON decoded as `type` (a Struct, dataclass, dict[...] or Any)."""
    try:
        return msgspec.json.decode(data, type=type)
    except msgspec.ValidationError as exc:
        raise damage(path, exc) from None
    except RecursionError:
        raise DamagedFile(path, "is nested too deeply") from None
    except msgspec.DecodeError:
        pass  # not strict JSON: perhaps bare NaN, which older writers wrote
    return convert(_lenient_json(data, path), type, path)


def read_json(path: str | Path, type: type[T], limit: int = SMALL_LIMIT) -> T:
    """A JSON file decoded as `type`; DamagedFile for anything wrong (see the module
    docstring), FileNotFoundError when it is missing."""
    return decode_json(read_bytes(path, limit), type, path)


def parse_toml(data: bytes, path: str | Path) -> dict[str, Any]:
    """TOML text as a dict (bytes that are not UTF-8 kept as surrogates, so a
    non-UTF-8 path written into a config reads back as the same path)."""
    try:
        return tomllib.loads(data.decode("utf-8", errors="surrogateescape"))
    except tomllib.TOMLDecodeError as exc:
        raise DamagedFile(path, f"is not valid TOML ({exc})") from None
    except RecursionError:
        raise DamagedFile(path, "is nested too deeply") from None


def read_toml(path: str | Path, type: type[T], limit: int = SMALL_LIMIT) -> T:
    """A TOML file decoded as `type` (parsed by tomllib, then converted)."""
    return convert(parse_toml(read_bytes(path, limit), path), type, path)
