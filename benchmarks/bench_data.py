"""Corpus pipeline throughput: tokenize + cache a ~100 MB text file, then reload it.

    python benchmarks/bench_data.py [--mb 100] [--repeats 3]

Builds the text locally (the paragraphs of the built-in corpus, or of --source,
in seeded random orders), then, in fresh subprocesses so each measures its own peak RSS:
  1. cold: read + hash + split + tokenize (parallel) + write the token cache
  2. warm: the same call again, which memory-maps the cache
  3. yardstick: read the file and encode it with tiktoken's own GPT-2 encoding
     and batch encoder (one thread per core), writing nothing
Prints MB/s end to end, peak RSS and the reload time, with medians, and the
cold rate as a ratio to the yardstick's.
Targets on a 2-core machine: >= 15 MB/s, peak RSS < 1 GB, reload < 1 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
from pathlib import Path

from child import run_json

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from gptcore.data.tokens import prepare_corpus
path, cache = Path(sys.argv[1]), Path(sys.argv[2])
t = time.perf_counter()
corpus = prepare_corpus(path, cache_dir=cache)
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "tokens": corpus.n_tokens,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

YARDSTICK = r"""
import json, os, sys, time
from gptcore.data.tokens import chunk_spans
from gptcore.model.tokenizer import END_OF_TEXT, get_tokenizer
enc = get_tokenizer()
t = time.perf_counter()
text = open(sys.argv[1], encoding="utf-8").read()
chunks = [text[a:b] for a, b in chunk_spans(text)]
ids = enc.encode_batch(chunks, num_threads=os.cpu_count(), allowed_special={END_OF_TEXT})
print(json.dumps({"seconds": time.perf_counter() - t, "tokens": sum(map(len, ids))}))
"""


def build_text(path: Path, megabytes: int, source: str = "topics") -> None:
    from gptcore.data.corpus import raw_topics_text, read_corpus

    # "topics": the help topics as laid out for a terminal, whitespace runs included
    # (the built-in corpus folds them away).
    text = raw_topics_text() if source == "topics" else read_corpus(source).text
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    rng = random.Random(0)
    target = megabytes * 1_000_000
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            rng.shuffle(paragraphs)
            block = "\n\n".join(paragraphs) + "\n\n"
            f.write(block)
            written += len(block.encode("utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=100, help="size of the generated corpus in MB")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--source",
        default="topics",
        help="text whose paragraphs make up the corpus: `topics` (default: CPython's help "
        "topics with their indentation), `builtin`, `verdict` or a path",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.txt"
        build_text(path, args.mb, args.source)
        size_mb = path.stat().st_size / 1e6
        cold, warm, yardstick = [], [], []
        for i in range(args.repeats):
            cache = Path(tmp) / f"cache{i}"
            cold.append(run_json(CHILD, path, cache))
            warm.append(run_json(CHILD, path, cache))
            yardstick.append(run_json(YARDSTICK, path))
        rates = [size_mb / r["seconds"] for r in cold]
        plain = [size_mb / r["seconds"] for r in yardstick]
        print(f"corpus: {size_mb:.1f} MB, {cold[0]['tokens']:,} tokens")
        print(
            f"cold (tokenize + cache):  MB/s  min {min(rates):.1f}  median {statistics.median(rates):.1f}  max {max(rates):.1f}"
        )
        print(
            f"yardstick (tiktoken gpt2 encode_batch, no cache):  MB/s  median {statistics.median(plain):.1f}"
            f"  -> ours {statistics.median(rates) / statistics.median(plain):.2f}x"
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
