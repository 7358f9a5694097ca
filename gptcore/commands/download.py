"""`gpt-tui download`: GPT-2 weights (OpenAI or Hugging Face layout, gptcore.weights.downloads)
and the book's corpus (gptcore.data.verdict)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gptcore.data.verdict import VERDICT_BYTES, VERDICT_URL_ENV, fetch_verdict
from gptcore.errors import ConfigError
from gptcore.util.download import RetryPolicy, Timeouts
from gptcore.util.progress import ProgressLine
from gptcore.weights.downloads import download_gpt2
from gptcore.weights.gpt2 import resolve_size


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "download",
        help="download GPT-2 weights or the book's corpus (resumable, verified)",
        description="Downloads resume where they stopped; a file gets its final name only once "
        "its size (and hash, where known) checks out.",
    )
    what = p.add_subparsers(dest="what", metavar="WHAT", required=True)

    g = what.add_parser("gpt2", help="OpenAI's GPT-2 weights")
    g.add_argument("--size", default="124M", help="124M (default), 355M, 774M or 1558M")
    g.add_argument(
        "--source",
        choices=["openai", "hf"],
        default="openai",
        help="openai: the original TF checkpoint (loading needs the tf extra); "
        "hf: Hugging Face safetensors (no TensorFlow)",
    )
    g.add_argument("--mirror", metavar="URL", help="fallback base URL tried after the primary")
    g.add_argument("--base-url", metavar="URL", help="replace the primary base URL")
    g.add_argument("--dir", metavar="DIR", help="download into DIR instead of the data dir")
    _common(g)
    g.set_defaults(func=run_gpt2)

    v = what.add_parser("verdict", help="the book's short story corpus (the-verdict.txt)")
    v.add_argument("--url", help=f"download from URL instead (also: ${VERDICT_URL_ENV})")
    _common(v)
    v.set_defaults(func=run_verdict)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=float, default=30.0, help="read timeout in seconds")
    p.add_argument(
        "--deadline",
        type=float,
        metavar="SECONDS",
        help="time for each whole file, every attempt and the servers' headers included "
        "(default: 10 minutes, or the time it takes at 50 kB/s where that is longer)",
    )
    p.add_argument("--retries", type=int, default=4, help="retries per URL without progress")


def _settings(args: argparse.Namespace):

    if args.timeout <= 0 or args.retries < 0:
        raise ConfigError("--timeout must be positive and --retries >= 0")
    if args.deadline is not None and args.deadline <= 0:
        raise ConfigError("--deadline must be a positive number of seconds")
    timeouts = Timeouts(connect=min(10.0, args.timeout), read=args.timeout, total=args.deadline)
    return timeouts, RetryPolicy(args.retries)


class _Bars:
    """One progress line per file, fed by DownloadProgress events."""

    def __init__(self) -> None:
        self.bar = None
        self.index = -1

    def __call__(self, event) -> None:

        if event.index != self.index or self.bar is None:
            self.close()
            self.index = event.index
            self.bar = ProgressLine(f"[{event.index + 1}/{event.count}] {event.name}", "B")
        self.bar.update(event.done, event.total or 0)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run_gpt2(args: argparse.Namespace) -> int:

    timeouts, retry = _settings(args)
    size = resolve_size(args.size)
    bars = _Bars()
    try:
        folder = download_gpt2(
            size.name,
            args.source,
            base_url=args.base_url,
            mirror=args.mirror,
            dest=Path(args.dir) if args.dir else None,
            timeouts=timeouts,
            retry=retry,
            on_progress=bars,
        )
    finally:
        bars.close()
    total = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    print(f"GPT-2 {size.name} ({args.source}) is complete in {folder} ({total:,} bytes)")
    if args.dir:
        print(f"use it with: --weights {folder} (generate) or --init weights:{folder} (train)")
    else:
        print(f"use it with: --gpt2 {size.name} (generate) or --init gpt2:{size.name} (train)")
    return 0


def run_verdict(args: argparse.Namespace) -> int:

    timeouts, retry = _settings(args)
    bars = _Bars()
    try:
        path = fetch_verdict(args.url, timeouts=timeouts, retry=retry, on_progress=bars)
    finally:
        bars.close()
    print(f"the book's corpus is in {path} ({VERDICT_BYTES:,} bytes, sha256 verified)")
    return 0
