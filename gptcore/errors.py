"""User-facing errors: each one carries a message that names the problem.

The CLI prints these without a traceback and exits non-zero; the TUI shows them
as notifications. Anything else escaping is a bug.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


class GptTuiError(Exception):
    """Base class for errors caused by the user's input or environment."""


class ConfigError(GptTuiError):
    """An invalid model or training configuration (names the field). `errors` holds a
    FieldError per bad setting when they are known, so a form can mark each field."""

    def __init__(self, message: str, errors: tuple[FieldError, ...] = ()) -> None:
        super().__init__(message)
        self.errors = errors


class CorpusError(GptTuiError):
    """A corpus that cannot be read or is unusable (names the path)."""


class TokenizerError(GptTuiError):
    """The packaged BPE files are missing or do not match GPT-2's."""


class CheckpointError(GptTuiError):
    """A missing, corrupted, truncated or foreign checkpoint."""


class DownloadError(GptTuiError):
    """A download that could not complete (names what was tried).

    `offline` is True when no server answered at all (no connection could be made to
    any address tried): the front ends then say the machine looks offline.
    """

    def __init__(self, message: str, offline: bool = False) -> None:
        super().__init__(message)
        self.offline = offline


class ModelSpecError(ConfigError):
    """A model spec that names nothing loadable (the message quotes the spec)."""


class DamagedFile(GptTuiError):
    """A file gpt-tui reads that is not what its schema says (gptcore.util.typedfile):
    a wrong type or range, too deep, too large, a FIFO or device in its place, or one
    that cannot be read. `path` and `field` ("loss", "model_config.n_layers"; None
    for the whole file) are data, so a front end can list the entry as damaged."""

    def __init__(self, path: str | os.PathLike[str], problem: str, field: str | None = None):
        super().__init__(str(path), problem, field)  # kept in args, so the error pickles
        self.path, self.problem, self.field = str(path), problem, field

    def __str__(self) -> str:
        if self.field is None:  # the problem says it all: "is a FIFO, not a regular file"
            return f"{self.path} {self.problem}"
        return f"{self.path} is damaged: field '{self.field}' {self.problem}"


class DamagedCheckpoint(DamagedFile, CheckpointError):
    """A checkpoint's meta.json that its schema refuses: caught as either."""


class DiskFullError(GptTuiError):
    """A write that failed for lack of space ("no space left on FOLDER: ... N MB")."""


class RunBusyError(GptTuiError):
    """A run folder another process is training into (names its pid and host)."""


@dataclass(frozen=True)
class FieldError:
    """One problem with one setting, as data: a front end marks `field` (the
    setting's name, e.g. "top_k") and shows `message`. `unreachable` says the
    value is well formed but cannot work with this model or device (top-k beyond
    its vocabulary, a temperature so close to 0 that the logits overflow)."""

    field: str
    message: str
    unreachable: bool = False


class GenerationError(GptTuiError):
    """Invalid generation settings or prompt. `errors` holds one FieldError per
    problem, so callers read the field from data, never from the message; a plain
    string is accepted for a problem that belongs to no setting."""

    def __init__(self, *errors: FieldError | str) -> None:
        super().__init__(*errors)  # kept in args, so the error pickles
        self.errors = tuple(e for e in errors if isinstance(e, FieldError))

    def __str__(self) -> str:
        return "; ".join(e.message if isinstance(e, FieldError) else str(e) for e in self.args)

    def by_field(self) -> dict[str, str]:
        """Field name -> its (first) message."""
        out: dict[str, str] = {}
        for e in self.errors:
            out.setdefault(e.field, e.message)
        return out
