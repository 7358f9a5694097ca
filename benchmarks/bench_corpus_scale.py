"""Corpus at scale: tokenize a generated 1 GB corpus, then train from its token cache.

    python benchmarks/bench_corpus_scale.py [--gb 1] [--steps 300] [--every 25] [--keep]

Generates the text in a temporary folder (the built-in corpus's and the-verdict's
paragraphs, shuffled, each numbered at random so no two copies are alike), then runs,
each in a fresh subprocess with its own peak RSS:
  1. ours: prepare_corpus (read, hash, split, tokenize on a thread per core, write
     the uint16 cache), timed end to end, with the process's peak RSS
  2. yardstick: tiktoken's own multi-threaded `encode_ordinary_batch` (num_threads =
     cores) on the same text, read in blocks and cut at the same safe boundaries
  3. training: the `tiny` preset for --steps steps from that cache, sampling the
     process's RSS every --every steps (the cache is memory-mapped: RSS stays flat)
Prints MB/s for both, the ratio, our peak RSS, the RSS samples, and a JSON summary.
Targets: ratio >= 0.7, peak RSS < 1 GB, flat RSS while training.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

from child import run_json

OURS = r"""
import json, resource, sys, time
from gptcore.data.tokens import prepare_corpus
t = time.perf_counter()
corpus = prepare_corpus(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - t, "tokens": corpus.n_tokens,
                  "train_tokens": len(corpus.train_tokens),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

YARDSTICK = r"""
import json, os, resource, sys, time
from gptcore.data.corpus import READ_BYTES
from gptcore.data.tokens import stream_chunks
from gptcore.model.tokenizer import get_tokenizer
enc, cores = get_tokenizer(), os.cpu_count() or 1
t = time.perf_counter()

def blocks():
    with open(sys.argv[1], encoding="utf-8") as f:
        while block := f.read(READ_BYTES):
            yield block

tokens, batch = 0, []
for _, chunk in stream_chunks(blocks(), 0):
    batch.append(chunk)
    if len(batch) == 8 * cores:
        tokens += sum(map(len, enc.encode_ordinary_batch(batch, num_threads=cores)))
        batch = []
tokens += sum(map(len, enc.encode_ordinary_batch(batch, num_threads=cores)))
print(json.dumps({"seconds": time.perf_counter() - t, "tokens": tokens,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

TRAIN = r"""
import json, os, sys, time
from gptcore.settings.files import load_run_config
from gptcore.runs.events import StepEnd
from gptcore.training.trainer import Trainer
path, steps, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def rss_mb():
    # (RSS, anonymous part): the rest is the mapped cache's pages, which the kernel
    # maps ahead of each touched window and can drop at any time.
    with open("/proc/self/status") as f:
        kb = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f) if k.startswith("Rss")}
    return round(kb["RssAnon"] / 1024 + kb["RssFile"] / 1024 + kb["RssShmem"] / 1024, 1), round(kb["RssAnon"] / 1024, 1)

model, cfg = load_run_config("tiny", [f"corpus={json.dumps(path)}", f"max_steps={steps}",
    "epochs=1", f"samples_per_epoch={steps * 8}", f"eval_freq={steps}", "sample_tokens=1"])
samples = []
def listen(event):
    if isinstance(event, StepEnd) and event.step % every == 0:
        samples.append((event.step, *rss_mb()))
t = time.perf_counter()
result = Trainer(model, cfg, listeners=[listen]).run()
print(json.dumps({"result": type(result).__name__, "error": getattr(result, "error", None),
                  "seconds": time.perf_counter() - t, "rss_mb": samples}))
"""


def paragraphs() -> list[str]:
    from gptcore.data.corpus import builtin_text

    found = builtin_text().splitlines()
    verdict = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "the-verdict.txt"
    if verdict.exists():
        found += [" ".join(p.split()) for p in verdict.read_text().split("\n\n")]
    return [p for p in found if p.strip()]


def build_text(path: Path, gigabytes: float) -> None:
    """Shuffled paragraphs, each opened and closed by random numbers, up to the size."""
    paras = paragraphs()
    rng = random.Random(0)
    target, written = int(gigabytes * 1e9), 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            rng.shuffle(paras)
            nums = [rng.randrange(1, 10**6) for _ in range(2 * len(paras))]
            block = "\n".join(
                f"{nums[2 * i]}. {p} ({nums[2 * i + 1]})" for i, p in enumerate(paras)
            )
            block = block[: target - written] + "\n"  # ASCII-heavy; a cut word is fine
            f.write(block)
            written += len(block.encode("utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gb", type=float, default=1.0, help="size of the generated corpus")
    parser.add_argument("--steps", type=int, default=300, help="training steps from the cache")
    parser.add_argument("--every", type=int, default=25, help="sample RSS every N steps")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-corpus-", dir="/tmp"))
    # The children share a private GPT_TUI_HOME: training finds the cache ours wrote.
    env = {**os.environ, "GPT_TUI_HOME": str(tmp / "home")}
    try:
        path = tmp / "corpus.txt"
        build_text(path, args.gb)
        size_mb = path.stat().st_size / 1e6
        ours = run_json(OURS, path, env=env)
        plain = run_json(YARDSTICK, path, env=env)
        train = run_json(TRAIN, path, args.steps, args.every, env=env)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    ours_rate, plain_rate = size_mb / ours["seconds"], size_mb / plain["seconds"]
    rss = [mb for _, mb, _ in train["rss_mb"]]
    anon = [mb for _, _, mb in train["rss_mb"]]
    summary = {
        "corpus_mb": round(size_mb, 1),
        "tokens": ours["tokens"],
        "cores": os.cpu_count(),
        "ours_mb_s": round(ours_rate, 2),
        "tiktoken_encode_ordinary_batch_mb_s": round(plain_rate, 2),
        "ratio": round(ours_rate / plain_rate, 3),
        "ours_peak_rss_mb": round(ours["peak_rss_mb"]),
        "tiktoken_peak_rss_mb": round(plain["peak_rss_mb"]),
        "train_result": train["result"],
        "train_steps": args.steps,
        "train_seconds": round(train["seconds"], 1),
        "train_rss_mb": {"first": rss[0], "last": rss[-1], "max": max(rss)} if rss else None,
        "train_rss_anon_mb": {"first": anon[0], "last": anon[-1], "max": max(anon)}
        if anon
        else None,
        "train_rss_samples_step_rss_anon": train["rss_mb"],
    }
    print(f"corpus: {size_mb:,.0f} MB, {ours['tokens']:,} tokens, {os.cpu_count()} cores")
    print(
        f"ours (prepare_corpus, cold):         {ours_rate:6.2f} MB/s  peak RSS {ours['peak_rss_mb']:,.0f} MB"
    )
    print(
        f"tiktoken encode_ordinary_batch:      {plain_rate:6.2f} MB/s  -> ours {summary['ratio']:.2f}x"
    )
    if rss:
        print(
            f"training tiny from the cache, {args.steps} steps: RSS MB first {rss[0]:.0f}"
            f"  last {rss[-1]:.0f}  max {max(rss):.0f}  ({train['result']})"
        )
        print(
            f"  of which anonymous (not the mapped cache): first {anon[0]:.0f}"
            f"  last {anon[-1]:.0f}  max {max(anon):.0f}"
        )
    if train["error"]:
        print(f"training error: {train['error']}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
