"""`gpt-tui models`: which GPT-2 weights are on disk, their sizes and completeness."""

from __future__ import annotations

import argparse
import json

from gptcore.util.fmt import format_bytes
from gptcore.weights.downloads import list_local
from gptcore.weights.gpt2 import weights_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list downloaded GPT-2 weights with sizes and completeness",
        description="Lists what is under the weights folder; incomplete downloads resume with "
        "`gpt-tui download gpt2 --size SIZE --source SOURCE`.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    found = list_local()
    if args.json:
        for w in found:
            print(
                json.dumps(
                    {
                        "size": w.size,
                        "source": w.source,
                        "path": str(w.path),
                        "bytes": w.bytes,
                        "complete": w.complete,
                        "missing": list(w.missing),
                        "partial": list(w.partial),
                    },
                    ensure_ascii=False,
                )
            )
        return 0
    print(f"weights folder: {weights_dir()}")
    if not found:
        print("no GPT-2 weights yet; run: gpt-tui download gpt2 --size 124M [--source hf]")
        return 0
    print(f"{'size':<6} {'source':<7} {'on disk':>9}  status")
    for w in found:
        if w.complete:
            status = f"complete  (use: --init gpt2:{w.size})"
        elif w.partial:
            status = f"partial: {', '.join(w.partial)} (run the download again to resume)"
        else:
            status = f"incomplete: missing {', '.join(w.missing)}"
        print(f"{w.size:<6} {w.source:<7} {format_bytes(w.bytes):>9}  {status}")
    return 0
