"""The `gpt-tui` console script: the engine's CLI with the app plugged in.

Only this module knows both sides; the app itself is imported lazily so
headless subcommands start without loading Textual.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gptcore.cli import main as cli_main


def open_app(args: argparse.Namespace) -> int:
    from .app import run

    return run(args)


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(argv, open_app=open_app)


if __name__ == "__main__":
    sys.exit(main())
