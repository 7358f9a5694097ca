"""User-facing errors: each one carries a message that names the problem.

The CLI prints these without a traceback and exits non-zero; the TUI shows them
as notifications. Anything else escaping is a bug.
"""

from __future__ import annotations

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
