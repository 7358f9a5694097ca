"""User-facing errors: each one carries a message that names the problem.

The CLI prints these without a traceback and exits non-zero; the TUI shows them
as notifications. Anything else escaping is a bug.
"""


class GptTuiError(Exception):
    """Base class for errors caused by the user's input or environment."""


class ConfigError(GptTuiError):
    """An invalid model or training configuration (names the field)."""


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
