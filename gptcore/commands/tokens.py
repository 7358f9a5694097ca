"""`gpt-tui tokens TEXT`: the text split into its GPT-2 tokens."""

from __future__ import annotations

import argparse
import json
import sys

from gptcore.errors import GptTuiError

from .stdin import read_stdin_text

# Alternating background colours for neighbouring tokens on a terminal.
_SHADES = ("\x1b[30;46m", "\x1b[30;43m")
_SPECIAL = "\x1b[1;37;41m"
_RESET = "\x1b[0m"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokens", help="show how text splits into GPT-2 tokens")
    p.add_argument("text", nargs="?", help="the text (default: read standard input)")
    p.add_argument("--ids", action="store_true", help="list every token with its id")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gptcore.model.tokenview import view_tokens

    text = args.text if args.text is not None else read_stdin_text()
    if text == "":
        raise GptTuiError("no text given: pass TEXT or pipe it on standard input")
    view = view_tokens(text)
    if args.json:
        pieces = [
            {"id": p.id, "bytes": p.data.hex(), "text": p.text, "special": p.special}
            for p in view.pieces
        ]
        print(
            json.dumps(
                {
                    "characters": len(text),
                    "tokens": len(view.pieces),
                    "pieces": pieces,
                    "round_trip_ok": view.round_trip_ok,
                }
            )
        )
        return 0
    if args.ids:
        for n, piece in enumerate(view.pieces):
            mark = (
                "  special"
                if piece.special
                else ("  partial character" if piece.text is None else "")
            )
            print(f"{n:>5}  {piece.id:>6}  {piece.label!s}{mark}")
    elif sys.stdout.isatty():
        shaded = [
            (_SPECIAL if p.special else _SHADES[i % 2]) + p.label + _RESET
            for i, p in enumerate(view.pieces)
        ]
        print("".join(shaded))
    else:
        print("|".join(p.label for p in view.pieces))
    ok = "yes" if view.round_trip_ok else "NO"
    print(
        f"{len(text):,} characters, {len(view.pieces):,} tokens; decodes back to the same text: {ok}"
    )
    return 0
