"""Corpus pipeline throughput: tokenize + cache a ~100 MB text file, then reload it.

    python benchmarks/bench_data.py [--mb 100] [--repeats 3]

Builds the text locally (the built-in corpus's paragraphs in seeded random
orders), then, in fresh subprocesses so each measures its own peak RSS:
  1. cold: read + hash + split + tokenize (parallel) + write the token cache
  2. warm: the same call again, which memory-maps the cache
Prints MB/s end to end, peak RSS and the reload time, with medians.
Targets on a 2-core machine: >= 15 MB/s, peak RSS < 1 GB, reload < 1 s.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from gptcore.data import prepare_corpus
path, cache = Path(sys.argv[1]), Path(sys.argv[2])
t = time.perf_counter()
corpus = prepare_corpus(path, cache_dir=cache)
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "tokens": corpus.n_tokens,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def build_text(path: Path, megabytes: int) -> None:
    from gptcore.data import builtin_text

    paragraphs = [p for p in builtin_text().split("\n\n") if p.strip()]
    rng = random.Random(0)
    target = megabytes * 1_000_000
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            rng.shuffle(paragraphs)
            block = "\n\n".join(paragraphs) + "\n\n"
            f.write(block)
            written += len(block.encode("utf-8"))


def run_child(path: Path, cache: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(cache)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=100, help="size of the generated corpus in MB")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.txt"
        build_text(path, args.mb)
        size_mb = path.stat().st_size / 1e6
        cold, warm = [], []
        for i in range(args.repeats):
            cache = Path(tmp) / f"cache{i}"
            cold.append(run_child(path, cache))
            warm.append(run_child(path, cache))
        rates = [size_mb / r["seconds"] for r in cold]
        print(f"corpus: {size_mb:.1f} MB, {cold[0]['tokens']:,} tokens")
        print(
            f"cold (tokenize + cache):  MB/s  min {min(rates):.1f}  median {statistics.median(rates):.1f}  max {max(rates):.1f}"
        )
        print(
            "cold peak RSS:            MB   median {:.0f}  max {:.0f}".format(
                statistics.median(r["peak_rss_mb"] for r in cold),
                max(r["peak_rss_mb"] for r in cold),
            )
        )
        reload = [r["seconds"] for r in warm]
        print(
            f"reload from cache:        s    min {min(reload):.3f}  median {statistics.median(reload):.3f}  max {max(reload):.3f}"
        )
        print(
            "reload peak RSS:          MB   median {:.0f}".format(
                statistics.median(r["peak_rss_mb"] for r in warm)
            )
        )


if __name__ == "__main__":
    main()
