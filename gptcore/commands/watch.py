"""`gpt-tui watch RUN_DIR`: open the app on a run started elsewhere (read-only).

The engine only registers the command; the app is injected by the console
script (tui.launch) as `args.open_app`, so gptcore never imports the UI. The
watched run's state is decided as `gpt-tui runs` decides it
(gptcore.runs.table.run_state): a run whose process died without closing it is
"stopped" in both.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "watch",
        help="open the app following a run's metrics.jsonl (e.g. one training in tmux)",
        description="Open the app on the Train screen and follow RUN_DIR/metrics.jsonl live, "
        "read-only: curves, samples and the run's state update as lines are appended. A run "
        "whose process died without closing it (killed, crashed) shows as stopped, as in "
        "`gpt-tui runs`.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run's directory (holds metrics.jsonl)")
    p.set_defaults(func=lambda args: args.open_app(args))
