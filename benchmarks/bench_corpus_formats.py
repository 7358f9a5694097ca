"""Tokenizing a generated multi-GB corpus from JSONL and from Parquet, and training on it.

    python benchmarks/bench_corpus_formats.py [--gb 1.0] [--dir /tmp/corpus-bench]

Writes the same documents (paragraphs of the built-in corpus, shuffled into documents
of 200-8,000 characters) as one JSONL file and a folder of Parquet shards, then, each
in a fresh child process (so peak RSS is its own):

  1. tiktoken's own encode_ordinary_batch over the documents, read from the JSONL
     in batches (the yardstick: encoding alone, nothing written);
  2. ours: prepare_corpus on the JSONL (measure pass, split, parallel tokenizing,
     sharded cache with 64 MiB shards), cold;
  3. the same on the Parquet folder;
  4. training a tiny model for 100 steps with random windows across the shards.

Prints throughput (M characters per second), ours as a ratio to tiktoken's in the
same run, how long our measure pass took (the read before tokenizing: a Parquet file
is measured in Arrow, without building Python strings), and each child's peak RSS
with its RSS curve (sampled every 0.5 s) summed up as its first- and last-quarter
means: flat memory shows as two equal numbers. The machine's load (uptime) is printed
before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing it

# VmHWM, not getrusage's ru_maxrss: Linux keeps ru_maxrss across exec, so a child would
# report at least what this (parent) process held when it forked. The curve (VmRSS every
# RSS_EVERY_S) shows whether memory stays flat or grows with the corpus.
RSS_EVERY_S = 0.5
_SAMPLER = f"""
import threading, time
_rss_curve = []
def _sample_rss():
    while True:
        rss = next(l for l in open("/proc/self/status") if l.startswith("VmRSS:"))
        _rss_curve.append(int(rss.split()[1]) / 1024.0)
        time.sleep({RSS_EVERY_S})
threading.Thread(target=_sample_rss, daemon=True).start()
"""
_RSS = """
import json, sys
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print("PEAK_RSS_MB", int(hwm.split()[1]) / 1024.0, file=sys.stderr)
print("RSS_CURVE", json.dumps(_rss_curve), file=sys.stderr)
"""


_TIKTOKEN = """
import json, sys, time
from gptcore.model.tokenizer import get_tokenizer
enc = get_tokenizer()
start, chars, tokens, batch = time.perf_counter(), 0, 0, []
def flush():
    global tokens
    tokens += sum(len(ids) for ids in enc.encode_ordinary_batch(batch, num_threads=8))
with open(sys.argv[1], "rb") as f:
    for line in f:
        text = json.loads(line)["text"]
        batch.append(text)
        chars += len(text)
        if len(batch) == 2000:
            flush(); batch = []
if batch:
    flush()
print(json.dumps({"seconds": time.perf_counter() - start, "chars": chars, "tokens": tokens}))
"""

_OURS = """
import json, sys, time
from pathlib import Path
from gptcore.data import shards
from gptcore.data.tokens import prepare_corpus
from gptcore.data import tokens
shards.SHARD_BYTES = 64 << 20  # several shards at this size, so training reads across them
measure_seconds, _open = [], tokens.open_corpus
def timed_open(*args, **kwargs):  # the measure pass: read through once, before tokenizing
    began = time.perf_counter()
    opened = _open(*args, **kwargs)
    measure_seconds.append(time.perf_counter() - began)
    return opened
tokens.open_corpus = timed_open
start = time.perf_counter()
corpus = prepare_corpus(sys.argv[1], cache_dir=Path(sys.argv[2]))
seconds = time.perf_counter() - start
shards = sorted(p.name for p in (Path(sys.argv[2]) / corpus.key).glob("*.bin"))
print(json.dumps({"seconds": seconds, "chars": corpus.n_chars, "tokens": corpus.n_tokens,
                  "documents": corpus.files, "shards": len(shards),
                  "measure_seconds": sum(measure_seconds)}))
"""

_TRAIN = """
import json, sys, time
from pathlib import Path
import torch
from gptcore.data import tokens
from gptcore.data.order import DataOrder
from gptcore.data.plan import batch_plan
from gptcore.data.tokens import prepare_corpus
from gptcore.model.gpt import GPTModel
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
corpus = prepare_corpus(sys.argv[1], cache_dir=Path(sys.argv[2]))  # cached: mapped only
model_cfg = GPTConfig(context_length=128, emb_dim=64, n_heads=4, n_layers=2, drop_rate=0.0)
cfg = TrainConfig(sampler="random", samples_per_epoch=100 * 4, batch_size=4, max_length=128)
plan = batch_plan(len(corpus.train_tokens), len(corpus.val_tokens), model_cfg, cfg).check()
data = DataOrder(corpus, plan, shuffle=True)
torch.manual_seed(0)
model = GPTModel(model_cfg)
opt = torch.optim.AdamW(model.parameters(), lr=4e-4)
order = data.train_order(1)
start = time.perf_counter()
for step in range(plan.steps_per_epoch):
    x, y = data.step_batch(order, step, 0)
    loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
    opt.zero_grad(); loss.backward(); opt.step()
kind = type(corpus.train_tokens).__name__
print(json.dumps({"steps": plan.steps_per_epoch, "seconds": time.perf_counter() - start,
                  "train_tokens": len(corpus.train_tokens), "token_array": kind,
                  "loss": float(loss)}))
"""


@dataclass
class Memory:
    """A child's peak RSS and its RSS curve, sampled every RSS_EVERY_S."""

    peak_mb: float
    curve: list[float]

    def describe(self) -> str:
        """Peak, and the curve's first- and last-quarter means: equal when flat."""
        quarter = max(1, len(self.curve) // 4)
        first = statistics.fmean(self.curve[:quarter]) if self.curve else 0.0
        last = statistics.fmean(self.curve[-quarter:]) if self.curve else 0.0
        return (
            f"peak RSS {self.peak_mb:,.0f} MB (RSS over {len(self.curve)} samples: "
            f"first quarter {first:,.0f} MB, last quarter {last:,.0f} MB)"
        )


def child(code: str, *args: str) -> tuple[dict, Memory]:
    """Run `code` in a fresh interpreter; (its JSON line, its memory)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _SAMPLER + code + _RSS, *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"child failed:\n{done.stderr}")
    fields = dict(
        line.split(" ", 1)
        for line in done.stderr.splitlines()
        if line.startswith(("PEAK_RSS_MB", "RSS_CURVE"))
    )
    memory = Memory(float(fields["PEAK_RSS_MB"]), json.loads(fields["RSS_CURVE"]))
    return json.loads(done.stdout.strip().splitlines()[-1]), memory


def generate(folder: Path, target_bytes: int) -> tuple[Path, Path]:
    """The same documents as folder/corpus.jsonl and folder/parquet/*.parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gptcore.data.corpus import builtin_text

    jsonl, shards = folder / "corpus.jsonl", folder / "parquet"
    if jsonl.exists() and shards.exists():
        return jsonl, shards
    shards.mkdir(parents=True, exist_ok=True)
    paragraphs = [p for p in builtin_text().split("\n") if len(p) > 40]
    rng = random.Random(0)
    written, shard, batch = 0, 0, []
    with open(jsonl, "w", encoding="utf-8") as f:
        while written < target_bytes:
            want = rng.randint(200, 8000)
            parts, size = [], 0
            while size < want:
                p = rng.choice(paragraphs)
                parts.append(p)
                size += len(p) + 1
            doc = "\n".join(parts)
            line = json.dumps({"id": written, "text": doc}, ensure_ascii=False) + "\n"
            f.write(line)
            written += len(line.encode())
            batch.append(doc)
            if len(batch) == 20_000:
                pq.write_table(
                    pa.table({"text": batch}),
                    shards / f"part-{shard:05d}.parquet",
                    row_group_size=2_000,
                )
                shard, batch = shard + 1, []
    if batch:
        pq.write_table(
            pa.table({"text": batch}), shards / f"part-{shard:05d}.parquet", row_group_size=2_000
        )
    return jsonl, shards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="size of the JSONL file (GB)")
    parser.add_argument("--dir", default="/tmp/gpt-tui-corpus-bench", help="work folder")
    args = parser.parse_args()
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    jsonl, shards = generate(folder, int(args.gb * 1e9))
    size = jsonl.stat().st_size
    print(
        f"corpus: {size / 1e9:.2f} GB JSONL, {sum(p.stat().st_size for p in shards.iterdir()) / 1e9:.2f} GB Parquet "
        f"({time.perf_counter() - t0:.0f} s to write)"
    )
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    yard, yard_mem = child(_TIKTOKEN, str(jsonl))
    yard_rate = yard["chars"] / yard["seconds"] / 1e6
    print(f"tiktoken encode_ordinary_batch:  {yard_rate:6.2f} M chars/s  {yard_mem.describe()}")
    for name, source in (("JSONL", jsonl), ("Parquet", shards)):
        cache = folder / f"cache-{name}"
        shutil.rmtree(cache, ignore_errors=True)
        ours, memory = child(_OURS, str(source), str(cache))
        rate = ours["chars"] / ours["seconds"] / 1e6
        print(
            f"ours, {name:8s} (cold):          {rate:6.2f} M chars/s  = {rate / yard_rate:.2f} x "
            f"tiktoken  ({ours['documents']:,} documents, {ours['tokens']:,} tokens, "
            f"{ours['shards']} shards; measure pass {ours['measure_seconds']:.0f} s of "
            f"{ours['seconds']:.0f} s)\n    {memory.describe()}"
        )
    trained, train_mem = child(_TRAIN, str(jsonl), str(folder / "cache-JSONL"))
    print(
        f"training on the cache ({trained['token_array']}, {trained['train_tokens']:,} tokens): "
        f"{trained['steps']} steps in {trained['seconds']:.0f} s\n    {train_mem.describe()}"
    )
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
