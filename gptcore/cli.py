"""The `gpt-tui` command: no subcommand opens the app; subcommands run headless.

The engine never imports the UI: the console script lives in `tui.launch`,
which calls `main(argv, open_app=...)` and so injects the app. Each subcommand lives in its own module under gptcore/commands/ exposing
`register(subparsers)`, which adds its parser and sets `func(args) -> int`.
User errors (GptTuiError) print one clear line and exit 2, never a traceback;
a reader that closes the pipe (`gpt-tui runs | head -1`) ends the command quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from gptcore import __version__
from gptcore.errors import GptTuiError
from gptcore.util.paths import HOME_ENV, home_problem

# Subcommand modules, in the order `gpt-tui --help` lists them.
COMMANDS = [
    "train",
    "eval",
    "generate",
    "inspect",
    "summary",
    "plan",
    "tokens",
    "corpus",
    "checkpoints",
    "download",
    "models",
    "runs",
    "watch",
    "timeline",
    "speedlab",
    "sweep",
    "info",
]


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """Options that work before or after any subcommand (`gpt-tui train --home DIR`).

    The default is SUPPRESS: a subcommand's parser that did not see the option
    leaves alone the value given before the subcommand; read it with getattr.
    """
    parser.add_argument(
        "--home",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help=f"keep settings, runs, weights and caches under DIR (also: ${HOME_ENV})",
    )


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser: it takes the global options too, and so do its own
    subcommands (argparse builds nested ones with the parent's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        add_global_options(self)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpt-tui",
        description="Pretrain a GPT from scratch in your terminal. Without a command, opens the app.",
    )
    parser.add_argument("--version", action="version", version=f"gpt-tui {__version__}")
    add_global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    for name in COMMANDS:
        importlib.import_module(f"gptcore.commands.{name}").register(sub)
    return parser


def _print_any_path() -> None:
    """Let stdout print a file name that is not UTF-8 (os.fsdecode keeps its bytes as
    surrogates) as those bytes, as `ls` does, instead of raising UnicodeEncodeError."""
    if getattr(sys.stdout, "errors", None) == "strict" and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="surrogateescape")


# What a shell reports for a command a closed pipe stopped (128 + SIGPIPE).
EXIT_BROKEN_PIPE = 128 + 13


def _reader_gone() -> int:
    """Exit quietly when the reader of stdout went away (`gpt-tui runs | head -1`):
    point stdout at /dev/null so the interpreter's last flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is no real file (a capture)
        pass
    finally:
        os.close(devnull)
    return EXIT_BROKEN_PIPE


AppOpener = Callable[[argparse.Namespace], int]


def _no_app(args: argparse.Namespace) -> int:
    raise GptTuiError("the terminal app is not available here; run a subcommand (see --help)")


def main(argv: Sequence[str] | None = None, open_app: AppOpener | None = None) -> int:
    """Run `gpt-tui`; `open_app(args)` opens the TUI (no subcommand, or `watch`)."""
    _print_any_path()
    parser = build_parser()
    args = parser.parse_args(argv)
    home = getattr(args, "home", None)
    if home:
        os.environ[HOME_ENV] = home
    args.open_app = open_app or _no_app
    func = getattr(args, "func", args.open_app)
    try:
        problem = home_problem()
        if problem:
            raise GptTuiError(f"{problem} (set by --home or ${HOME_ENV})")
        status = int(func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return status
    except BrokenPipeError:
        return _reader_gone()
    except GptTuiError as exc:
        print(f"gpt-tui: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gpt-tui: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
