"""`gpt-tui info`: where gpt-tui keeps its files on this machine, and how much they take."""

from __future__ import annotations

import argparse
import json

from gptcore.util.fmt import format_bytes
from gptcore.util.paths import HOME_ENV, folder_size, places


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="where gpt-tui keeps settings, runs, weights and caches, and their sizes",
        description="Prints each folder gpt-tui writes (the platform's per-user folders, or "
        f"those under --home / ${HOME_ENV}) with its size on disk.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = [(place, folder_size(place.path)) for place in places()]
    if args.json:
        print(
            json.dumps(
                {
                    place.name: {"path": str(place.path), "bytes": size, "what": place.what}
                    for place, size in rows
                }
            )
        )
        return 0
    width = max(len(place.name) for place, _ in rows)
    for place, size in rows:
        shown = format_bytes(size) if size is not None else "not yet created"
        print(f"{place.name:<{width}}  {place.path}  ({shown}): {place.what}")
    return 0
