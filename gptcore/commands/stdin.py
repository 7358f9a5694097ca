"""Standard input read as UTF-8 text for the commands that take it (generate, tokens)."""

from __future__ import annotations

import sys

from gptcore.errors import GptTuiError


def read_stdin_text() -> str:
    """Standard input as UTF-8 text, whatever encoding Python's stdio was set up with;
    GptTuiError (not a UnicodeDecodeError traceback) when it is not UTF-8."""

    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # replaced by a text-only stream (tests, embedding)
        return sys.stdin.read()
    data = stream.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GptTuiError(
            f"standard input is not UTF-8 text (invalid byte at offset {exc.start})"
        ) from None
